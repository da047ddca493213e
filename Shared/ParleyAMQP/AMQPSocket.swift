import ParleyCore
import CRabbitMQ
import Foundation

/// One rabbitmq-c connection. **Thread-confined**: created, used and destroyed on the single
/// thread of the publisher or consumer that owns it, never shared. This is the only type (with
/// the benchmark's raw baseline) that calls into rabbitmq-c.
final class AMQPSocket {
    private(set) var state: amqp_connection_state_t?
    let endpoint: AMQPEndpoint
    /// The negotiated heartbeat in seconds (0 = none).
    private(set) var heartbeat: Int32 = 0
    /// Scratch memory for the C structures of one call at a time.
    private let arena = CArena()

    init(endpoint: AMQPEndpoint, configuration: AMQPConfiguration) throws {
        self.endpoint = endpoint
        guard let state = amqp_new_connection() else {
            throw AMQPError.library(operation: "new connection", status: AMQP_STATUS_NO_MEMORY.rawValue, message: "out of memory")
        }
        self.state = state
        do {
            try open(configuration)
        } catch {
            amqp_destroy_connection(state)
            self.state = nil
            throw error
        }
    }

    private func open(_ configuration: AMQPConfiguration) throws {
        let state = self.state!
        let socket: OpaquePointer?
        if endpoint.tls {
            socket = amqp_ssl_socket_new(state)
            guard let socket else {
                throw AMQPError.library(operation: "TLS socket", status: AMQP_STATUS_SSL_ERROR.rawValue, message: "could not create TLS socket")
            }
            let tls = configuration.tls
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
            if let ca = tls.caCertificatePath {
                try check(amqp_ssl_socket_set_cacert(socket, ca), "TLS CA certificate \(ca)")
            }
            if let cert = tls.clientCertificatePath, let key = tls.clientKeyPath {
                try check(amqp_ssl_socket_set_key(socket, cert, key), "TLS client key")
            }
        } else {
            socket = amqp_tcp_socket_new(state)
            guard socket != nil else {
                throw AMQPError.library(operation: "TCP socket", status: AMQP_STATUS_NO_MEMORY.rawValue, message: "could not create socket")
            }
        }
        var timeout = timeval(configuration.connectTimeout)
        try check(amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &timeout), "connect to \(endpoint.host):\(endpoint.port)")
        _ = amqp_set_handshake_timeout(state, &timeout)
        let reply = parley_amqp_login_plain(
            state, endpoint.vhost, 16, configuration.frameMax,
            Int32(configuration.heartbeat.inSeconds.rounded()),
            endpoint.user, endpoint.password, configuration.connectionName)
        try check(reply, "login to \(endpoint)")
        heartbeat = amqp_get_heartbeat(state)
        var rpcTimeout = timeval(.seconds(30))
        _ = amqp_set_rpc_timeout(state, &rpcTimeout)
    }

    deinit { destroy() }

    var fileDescriptor: Int32 { state.map { amqp_get_sockfd($0) } ?? -1 }

    /// Whether rabbitmq-c already holds bytes or decoded frames we have not taken yet; then
    /// `poll()` on the socket would not see them.
    var hasBufferedInput: Bool {
        guard let state else { return false }
        return amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0
    }

    // MARK: channels and declarations

    func openChannel(_ channel: UInt16) throws {
        amqp_channel_open(state, channel)
        try check(amqp_get_rpc_reply(state), "channel.open")
    }

    /// Declares the topology, or with `passive` (``AMQPConfiguration/TopologyMode/verify``)
    /// checks that its exchanges and queues exist, creating and binding nothing.
    func declare(_ d: Topology.Declarations, channel: UInt16, passive: Bool = false) throws {
        let how = passive ? " (passive: the topology must already exist)" : ""
        for e in d.exchanges {
            arena.reset()
            amqp_exchange_declare(
                state, channel, arena.bytes(e.name), arena.bytes(e.kind.rawValue),
                passive ? 1 : 0, 1, 0, 0, amqp_empty_table)
            try check(amqp_get_rpc_reply(state), "exchange.declare \(e.name)" + how)
        }
        for q in d.queues {
            arena.reset()
            amqp_queue_declare(state, channel, arena.bytes(q.name), passive ? 1 : 0, 1, 0, 0, passive ? amqp_empty_table : arena.table(q.arguments))
            try check(amqp_get_rpc_reply(state), "queue.declare \(q.name)" + how)
        }
        if passive { return }
        for (queue, b) in d.bindings {
            arena.reset()
            amqp_queue_bind(
                state, channel, arena.bytes(queue), arena.bytes(b.exchange), arena.bytes(b.routingKey),
                arena.table(b.arguments))
            try check(amqp_get_rpc_reply(state), "queue.bind \(queue) to \(b.exchange)")
        }
    }

    func confirmSelect(channel: UInt16) throws {
        amqp_confirm_select(state, channel)
        try check(amqp_get_rpc_reply(state), "confirm.select")
    }

    func qos(channel: UInt16, prefetch: UInt16) throws {
        amqp_basic_qos(state, channel, 0, prefetch, 0)
        try check(amqp_get_rpc_reply(state), "basic.qos")
    }

    /// Starts consuming; returns the consumer tag.
    func consume(channel: UInt16, queue: String, consumerTag: String) throws -> String {
        arena.reset()
        let ok = amqp_basic_consume(state, channel, arena.bytes(queue), arena.bytes(consumerTag), 0, 0, 0, amqp_empty_table)
        try check(amqp_get_rpc_reply(state), "basic.consume \(queue)")
        return ok.map { $0.pointee.consumer_tag.string } ?? consumerTag
    }

    func cancel(channel: UInt16, consumerTag: String) throws {
        arena.reset()
        amqp_basic_cancel(state, channel, arena.bytes(consumerTag))
        try check(amqp_get_rpc_reply(state), "basic.cancel")
    }

    // MARK: publishing and acknowledging (asynchronous methods: no reply awaited)

    func publish(channel: UInt16, _ m: OutgoingMessage) throws {
        arena.reset()
        var props = m.properties.c(in: arena)
        let rc = m.body.withUnsafeBytes { body in
            amqp_basic_publish(
                state, channel, arena.bytes(m.exchange), arena.bytes(m.routingKey),
                m.mandatory ? 1 : 0, 0, &props,
                amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
        try check(rc, "basic.publish")
    }

    func ack(channel: UInt16, tag: UInt64, multiple: Bool) throws {
        try check(amqp_basic_ack(state, channel, tag, multiple ? 1 : 0), "basic.ack")
    }

    func nack(channel: UInt16, tag: UInt64, multiple: Bool, requeue: Bool) throws {
        try check(amqp_basic_nack(state, channel, tag, multiple ? 1 : 0, requeue ? 1 : 0), "basic.nack")
    }

    func reject(channel: UInt16, tag: UInt64, requeue: Bool) throws {
        try check(amqp_basic_reject(state, channel, tag, requeue ? 1 : 0), "basic.reject")
    }

    /// Answers a broker's channel.close so the channel number can be reused.
    func channelCloseOk(channel: UInt16) {
        var ok = amqp_channel_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok)
    }

    func connectionCloseOk() {
        var ok = amqp_connection_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok)
    }

    // MARK: reading

    /// The next frame if one is available without blocking (this also sends a heartbeat when
    /// one is due), or nil.
    func nextFrame() throws -> amqp_frame_t? {
        var frame = amqp_frame_t()
        var tv = timeval(tv_sec: 0, tv_usec: 0)
        let rc = amqp_simple_wait_frame_noblock(state, &frame, &tv)
        if rc == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        try check(rc, "read frame")
        return frame
    }

    /// Reads the content header and body that follow a basic.deliver / basic.return on
    /// `channel` (they are already on the wire right behind the method).
    func readContent(channel: UInt16) throws -> (AMQPProperties, [UInt8]) {
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        try check(reply, "read message content")
        defer { amqp_destroy_message(&message) }
        return (AMQPProperties(message.properties), message.body.array)
    }

    /// Frees decoded frames once nothing refers to them any more.
    func releaseBuffers() {
        if let state { amqp_maybe_release_buffers(state) }
    }

    /// Closes politely (best effort) and frees everything.
    func close() {
        guard let state else { return }
        _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        destroy()
    }

    func destroy() {
        guard let state else { return }
        amqp_destroy_connection(state)
        self.state = nil
    }

    // MARK: errors

    private func check(_ rc: Int32, _ op: String) throws {
        guard rc < 0 else { return }
        throw AMQPError.library(operation: op, status: rc, message: String(cString: amqp_error_string2(rc)))
    }

    private func check(_ reply: amqp_rpc_reply_t, _ op: String) throws {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw AMQPError.library(
                operation: op, status: reply.library_error,
                message: String(cString: amqp_error_string2(reply.library_error)))
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            switch reply.reply.id {
            case AMQP_CONNECTION_CLOSE_METHOD:
                let m = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                connectionCloseOk()
                throw AMQPError.connectionClosed(code: m.reply_code, text: m.reply_text.string)
            case AMQP_CHANNEL_CLOSE_METHOD:
                let m = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                throw AMQPError.channelClosed(code: m.reply_code, text: "\(op): \(m.reply_text.string)")
            default:
                throw AMQPError.library(
                    operation: op, status: AMQP_STATUS_UNEXPECTED_STATE.rawValue,
                    message: "unexpected server method \(reply.reply.id)")
            }
        default:
            throw AMQPError.library(operation: op, status: AMQP_STATUS_UNEXPECTED_STATE.rawValue, message: "no reply")
        }
    }
}

extension timeval {
    init(_ d: Duration) {
        let s = d.components.seconds
        let us = d.components.attoseconds / 1_000_000_000_000
        self.init(tv_sec: Int(s), tv_usec: Int(us))
    }
}

/// The frames the publisher and consumer loops react to, decoded from rabbitmq-c's frame.
enum IncomingMethod {
    case basicAck(tag: UInt64, multiple: Bool)
    case basicNack(tag: UInt64, multiple: Bool)
    case basicReturn(code: UInt16, text: String)
    case basicDeliver(consumerTag: String, tag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
    case basicCancel(consumerTag: String)
    case channelClose(code: UInt16, text: String)
    case connectionClose(code: UInt16, text: String)
    case connectionBlocked(reason: String)
    case connectionUnblocked
    case other(UInt32)

    init?(_ frame: amqp_frame_t) {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return nil }
        let decoded = frame.payload.method.decoded
        switch frame.payload.method.id {
        case AMQP_BASIC_ACK_METHOD:
            let m = decoded!.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            self = .basicAck(tag: m.delivery_tag, multiple: m.multiple != 0)
        case AMQP_BASIC_NACK_METHOD:
            let m = decoded!.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            self = .basicNack(tag: m.delivery_tag, multiple: m.multiple != 0)
        case AMQP_BASIC_RETURN_METHOD:
            let m = decoded!.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            self = .basicReturn(code: m.reply_code, text: m.reply_text.string)
        case AMQP_BASIC_DELIVER_METHOD:
            let m = decoded!.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            self = .basicDeliver(
                consumerTag: m.consumer_tag.string, tag: m.delivery_tag, redelivered: m.redelivered != 0,
                exchange: m.exchange.string, routingKey: m.routing_key.string)
        case AMQP_BASIC_CANCEL_METHOD:
            let m = decoded!.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            self = .basicCancel(consumerTag: m.consumer_tag.string)
        case AMQP_CHANNEL_CLOSE_METHOD:
            let m = decoded!.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            self = .channelClose(code: m.reply_code, text: m.reply_text.string)
        case AMQP_CONNECTION_CLOSE_METHOD:
            let m = decoded!.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            self = .connectionClose(code: m.reply_code, text: m.reply_text.string)
        case AMQP_CONNECTION_BLOCKED_METHOD:
            let m = decoded!.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            self = .connectionBlocked(reason: m.reason.string)
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            self = .connectionUnblocked
        default:
            self = .other(frame.payload.method.id)
        }
    }
}
