import CRabbitMQ
import Foundation
import ParleyAMQP

/// The baseline: rabbitmq-c driven directly in a tight loop, one connection on the calling
/// thread, no Swift concurrency, no abstraction. The same message size, properties (persistent,
/// message id), mandatory flag, window and prefetch as the Swift layer gets.
enum RawLoop {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func connect(_ endpoint: AMQPEndpoint, name: String) throws -> amqp_connection_state_t {
        let state = amqp_new_connection()!
        let socket = amqp_tcp_socket_new(state)
        guard amqp_socket_open(socket, endpoint.host, Int32(endpoint.port)) == 0 else { throw Failure(description: "raw: cannot connect") }
        try check(parley_amqp_login_plain(state, endpoint.vhost, 16, 131_072, 10, endpoint.user, endpoint.password, name), "login")
        amqp_channel_open(state, 1)
        try check(amqp_get_rpc_reply(state), "channel.open")
        return state
    }

    static func check(_ r: amqp_rpc_reply_t, _ what: String) throws {
        guard r.reply_type == AMQP_RESPONSE_NORMAL else { throw Failure(description: "raw: \(what) failed (\(r.reply_type))") }
    }

    static func close(_ state: amqp_connection_state_t) {
        _ = amqp_channel_close(state, 1, AMQP_REPLY_SUCCESS)
        _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        amqp_destroy_connection(state)
    }

    /// Declares a durable queue of the given type ("quorum" or "classic").
    static func declare(_ endpoint: AMQPEndpoint, queue: String, type: String) throws {
        let state = try connect(endpoint, name: "bench-declare")
        defer { close(state) }
        try queue.withCString { q in
            try type.withCString { t in
                var entry = amqp_table_entry_t(key: amqp_cstring_bytes("x-queue-type"), value: amqp_field_value_t())
                entry.value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                entry.value.value.bytes = amqp_cstring_bytes(t)
                try withUnsafeMutablePointer(to: &entry) { e in
                    amqp_queue_declare(state, 1, amqp_cstring_bytes(q), 0, 1, 0, 0, amqp_table_t(num_entries: 1, entries: e))
                    try check(amqp_get_rpc_reply(state), "queue.declare")
                }
            }
        }
    }

    static func delete(_ endpoint: AMQPEndpoint, queue: String) throws {
        let state = try connect(endpoint, name: "bench-delete")
        defer { close(state) }
        queue.withCString { q in _ = amqp_queue_delete(state, 1, amqp_cstring_bytes(q), 0, 0) }
    }

    /// Publishes `count` messages with confirms, at most `window` unconfirmed; returns seconds
    /// from the first publish to the last confirm.
    static func publish(_ endpoint: AMQPEndpoint, queue: String, count: Int, size: Int, window: Int) throws -> Double {
        let state = try connect(endpoint, name: "bench-raw-publisher")
        defer { close(state) }
        amqp_confirm_select(state, 1)
        try check(amqp_get_rpc_reply(state), "confirm.select")
        let body = [UInt8](repeating: 0x61, count: size)
        var acked = [Bool](repeating: false, count: count + 1)
        var lowWater: UInt64 = 0
        var confirmed = 0, sent = 0
        let exchange = amqp_cstring_bytes("")
        let key = strdup(queue)!
        defer { free(key) }
        let ids: [UnsafeMutablePointer<CChar>] = (0..<count).map { strdup("raw-\($0)")! }
        defer { ids.forEach { free($0) } }
        let start = ContinuousClock.now
        while confirmed < count {
            while sent < count && sent - confirmed < window {
                var props = amqp_basic_properties_t()
                props._flags = amqp_flags_t(UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG))
                props.delivery_mode = 2
                props.message_id = amqp_cstring_bytes(ids[sent])
                let rc = body.withUnsafeBytes { b in
                    amqp_basic_publish(
                        state, 1, exchange, amqp_cstring_bytes(key), 1, 0, &props,
                        amqp_bytes_t(len: b.count, bytes: UnsafeMutableRawPointer(mutating: b.baseAddress)))
                }
                guard rc == 0 else { throw Failure(description: "raw: publish failed \(rc)") }
                sent += 1
            }
            var frame = amqp_frame_t()
            guard amqp_simple_wait_frame(state, &frame) == 0 else { throw Failure(description: "raw: read failed") }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
            if frame.payload.method.id == AMQP_BASIC_ACK_METHOD {
                let ack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                if ack.multiple != 0 {
                    while lowWater < ack.delivery_tag {
                        lowWater += 1
                        if !acked[Int(lowWater)] { acked[Int(lowWater)] = true; confirmed += 1 }
                    }
                } else if !acked[Int(ack.delivery_tag)] {
                    acked[Int(ack.delivery_tag)] = true
                    confirmed += 1
                }
            } else if frame.payload.method.id == AMQP_BASIC_NACK_METHOD || frame.payload.method.id == AMQP_BASIC_RETURN_METHOD {
                throw Failure(description: "raw: message nacked or returned")
            }
            amqp_maybe_release_buffers(state)
        }
        return (ContinuousClock.now - start).seconds
    }

    /// Consumes `count` messages with manual acks and the given prefetch; returns seconds from
    /// the first delivery to the last ack.
    static func consume(_ endpoint: AMQPEndpoint, queue: String, count: Int, prefetch: UInt16) throws -> Double {
        let state = try connect(endpoint, name: "bench-raw-consumer")
        defer { close(state) }
        amqp_basic_qos(state, 1, 0, prefetch, 0)
        try check(amqp_get_rpc_reply(state), "basic.qos")
        amqp_basic_consume(state, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table)
        try check(amqp_get_rpc_reply(state), "basic.consume")
        var received = 0
        var start: ContinuousClock.Instant?
        while received < count {
            var frame = amqp_frame_t()
            guard amqp_simple_wait_frame(state, &frame) == 0 else { throw Failure(description: "raw: read failed") }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD else { continue }
            if start == nil { start = .now }
            let tag = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee.delivery_tag
            var message = amqp_message_t()
            try check(amqp_read_message(state, 1, &message, 0), "read message")
            // Copy the body out, as any real consumer must before the buffers are released.
            let copy = Array(UnsafeRawBufferPointer(start: message.body.bytes, count: message.body.len))
            precondition(copy.count > 0)
            amqp_destroy_message(&message)
            guard amqp_basic_ack(state, 1, tag, 0) == 0 else { throw Failure(description: "raw: ack failed") }
            received += 1
            amqp_maybe_release_buffers(state)
        }
        return (ContinuousClock.now - start!).seconds
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
