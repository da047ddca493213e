import CRabbitMQ
import Foundation
import ParleyCore
import Logging

/// A message delivered to a consumer. Acknowledge it exactly once, from any task: `ack`,
/// `nack` and `reject` are queued to the consumer's connection thread and return at once.
/// A delivery whose connection has since been replaced cannot be acknowledged (the broker has
/// already put it back and redelivers it); that is logged and otherwise harmless.
public struct AMQPDelivery: Sendable {
    public let body: [UInt8]
    public let properties: AMQPProperties
    public let exchange: String
    public let routingKey: String
    public let redelivered: Bool
    public let deliveryTag: UInt64
    let generation: UInt64
    let mailbox: Mailbox<AMQPConsumer.Command>

    /// How often the broker delivered this message before (quorum queues count it in the
    /// `x-delivery-count` header); 0 on a first delivery.
    public var previousDeliveries: Int {
        Int(properties.headers["x-delivery-count"]?.intValue ?? (redelivered ? 1 : 0))
    }

    public func ack() { mailbox.send(.settle(generation, deliveryTag, .ack)) }
    public func nack(requeue: Bool = true) { mailbox.send(.settle(generation, deliveryTag, .nack(requeue: requeue))) }
    public func reject(requeue: Bool = false) { mailbox.send(.settle(generation, deliveryTag, .reject(requeue: requeue))) }
}

/// The deliveries of a consumer, one at a time. The connection thread hands them over in
/// batches (whatever one read of the socket brought), so a busy consumer is woken once per
/// batch rather than once per message.
public struct AMQPDeliveries: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    /// The same deliveries in batches: each step takes everything that arrived since the last,
    /// for a consumer that handles many messages at once (one database transaction per batch).
    /// Iterate either this or the deliveries one at a time, not both.
    public let batches: DeliveryBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        var source: DeliveryBuffer.AsyncIterator
        var batch: [AMQPDelivery] = []
        var index = 0

        public mutating func next() async -> AMQPDelivery? {
            while index == batch.count {
                guard let next = await source.next() else { return nil }
                batch = next
                index = 0
            }
            defer { index += 1 }
            return batch[index]
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> AMQPDelivery? {
            while index == batch.count {
                guard let next = await source.next(isolation: actor) else { return nil }
                batch = next
                index = 0
            }
            defer { index += 1 }
            return batch[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: batches.makeAsyncIterator()) }
}

/// Consumes one queue with manual acknowledgements and a prefetch window, on a connection and
/// thread of its own. Deliveries arrive on `deliveries` (an AsyncSequence); the sequence goes on
/// across reconnects (after a drop the consumer reconnects with backoff, re-declares the
/// topology, sets the prefetch and consumes again) and across a broker-initiated cancel (the
/// queue is re-declared and consumed again). It ends after `cancel()` or `close()`.
public final class AMQPConsumer: Sendable {
    typealias Settlement = AckBatcher.Kind
    enum Command: Sendable {
        case settle(UInt64, UInt64, Settlement)
        case cancel(CheckedContinuation<Void, Never>)
        case close(CheckedContinuation<Void, Never>)
    }

    public let queue: String
    public let deliveries: AMQPDeliveries
    private let mailbox = Mailbox<Command>()
    /// Up, with the topology declared and consuming.
    public let readiness = ConnectionReadiness()

    public init(
        configuration: AMQPConfiguration, queue: String, topology: Topology? = nil, prefetch: UInt16 = 256,
        logger: Logger = Logger(label: "parley.amqp.consumer")
    ) {
        self.queue = queue
        let buffer = DeliveryBuffer()
        deliveries = AMQPDeliveries(batches: buffer)
        let worker = ConsumerWorker(
            configuration: configuration, queue: queue, declarations: topology?.declarations(),
            prefetch: prefetch, mailbox: mailbox, output: buffer, readiness: readiness, logger: logger)
        startConnectionThread(name: "amqp-consumer \(queue)") { worker.run() }
    }

    /// Stops taking messages: the broker is told to stop delivering and `deliveries` ends.
    /// Deliveries already handed out can still be acknowledged until `close()`.
    public func cancel() async {
        await withCheckedContinuation { c in mailbox.send(.cancel(c)) }
    }

    /// Cancels if still consuming, sends every acknowledgement queued so far, and closes the
    /// connection. Unacknowledged deliveries go back to the queue (the broker requeues them).
    public func close() async {
        await withCheckedContinuation { c in mailbox.send(.close(c)) }
    }
}

private final class ConsumerWorker: @unchecked Sendable {
    let configuration: AMQPConfiguration
    let queue: String
    let declarations: Topology.Declarations?
    let prefetch: UInt16
    let mailbox: Mailbox<AMQPConsumer.Command>
    let output: DeliveryBuffer
    let readiness: ConnectionReadiness
    let logger: Logger
    static let channel: UInt16 = 1

    var generation: UInt64 = 0
    var acks = AckBatcher()
    /// Deliveries read in this pass, handed to the stream together: one wake-up of the
    /// consuming task per batch instead of per message.
    var received: [AMQPDelivery] = []
    var wantConsuming = true
    var consumerTag: String?
    var cancelWaiters: [CheckedContinuation<Void, Never>] = []
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
    var backoff: Backoff
    var endpointIndex = 0

    init(
        configuration: AMQPConfiguration, queue: String, declarations: Topology.Declarations?, prefetch: UInt16,
        mailbox: Mailbox<AMQPConsumer.Command>, output: DeliveryBuffer,
        readiness: ConnectionReadiness, logger: Logger
    ) {
        self.readiness = readiness
        self.configuration = configuration
        self.queue = queue
        self.declarations = declarations
        self.prefetch = prefetch
        self.mailbox = mailbox
        self.output = output
        self.logger = logger
        self.backoff = configuration.reconnect
    }

    func run() {
        while closeWaiters.isEmpty {
            let socket = connect(configuration: configuration, backoff: &backoff, startAt: &endpointIndex, logger: logger) { delay in
                _ = mailbox.wait(socket: nil, timeout: delay)
                processCommands(socket: nil)
                // Cancelling while disconnected needs no broker: just end the stream.
                if !cancelWaiters.isEmpty { finishStream() }
                return closeWaiters.isEmpty
            }
            guard let socket else { break }
            do {
                try session(socket)
                socket.close()
                break
            } catch {
                logger.warning("AMQP consumer connection lost", metadata: ["queue": "\(queue)", "error": "\(error)"])
                consumerTag = nil
                socket.destroy()
                endpointIndex += 1
            }
        }
        finishStream()
        for c in closeWaiters { c.resume() }
    }

    private func flushReceived() {
        guard !received.isEmpty else { return }
        output.append(received)
        received.removeAll(keepingCapacity: true)
    }

    private func finishStream() {
        flushReceived()
        wantConsuming = false
        output.finish()
        for c in cancelWaiters { c.resume() }
        cancelWaiters.removeAll()
    }

    /// Applies queued commands. Settlements for an older connection are dropped: their
    /// delivery tags mean nothing on the new channel, and the broker redelivers the messages.
    private func processCommands(socket: AMQPSocket?) {
        var batch: [(tag: UInt64, kind: AckBatcher.Kind)] = []
        for command in mailbox.take() {
            switch command {
            case .settle(let gen, let tag, let how):
                if socket != nil, gen == generation {
                    batch.append((tag, how))
                } else {
                    logger.debug("AMQP settlement for a previous connection dropped", metadata: ["deliveryTag": "\(tag)"])
                }
            case .cancel(let c):
                cancelWaiters.append(c)
            case .close(let c):
                closeWaiters.append(c)
            }
        }
        guard let socket, !batch.isEmpty else { return }
        do {
            for f in acks.frames(for: batch) {
                switch f.kind {
                case .ack: try socket.ack(channel: Self.channel, tag: f.tag, multiple: f.multiple)
                case .nack(let requeue): try socket.nack(channel: Self.channel, tag: f.tag, multiple: f.multiple, requeue: requeue)
                case .reject(let requeue): try socket.reject(channel: Self.channel, tag: f.tag, requeue: requeue)
                }
            }
        } catch {
            // The read side notices the broken connection and reconnects.
            logger.warning("AMQP settlement failed", metadata: ["error": "\(error)"])
        }
    }

    private func session(_ socket: AMQPSocket) throws {
        try socket.openChannel(Self.channel)
        if let declarations { try socket.declare(declarations, channel: Self.channel, passive: configuration.topology == .verify) }
        try socket.qos(channel: Self.channel, prefetch: prefetch)
        generation += 1
        acks.reset()
        if wantConsuming { try subscribe(socket) }
        backoff.reset()
        readiness.set(true)
        defer { readiness.set(false) }
        var pump = SocketPump(socket: socket, mailbox: mailbox)

        while true {
            processCommands(socket: socket)
            if (!cancelWaiters.isEmpty || !closeWaiters.isEmpty) && wantConsuming {
                if let tag = consumerTag { try socket.cancel(channel: Self.channel, consumerTag: tag) }
                consumerTag = nil
                finishStream()
            } else if !cancelWaiters.isEmpty {
                for c in cancelWaiters { c.resume() }
                cancelWaiters.removeAll()
            }
            if !closeWaiters.isEmpty {
                processCommands(socket: socket)
                return
            }

            try pump.read { try handle($0, socket) }
            flushReceived()
            try pump.wait(busy: false) { try handle($0, socket) }
            flushReceived()
        }
    }

    private func subscribe(_ socket: AMQPSocket) throws {
        let tag = "\(configuration.connectionName).\(queue).\(UUID().uuidString.prefix(8).lowercased())"
        consumerTag = try socket.consume(channel: Self.channel, queue: queue, consumerTag: tag)
        logger.info("AMQP consuming", metadata: ["queue": "\(queue)", "prefetch": "\(prefetch)"])
    }

    private func handle(_ frame: amqp_frame_t, _ socket: AMQPSocket) throws {
        guard let method = IncomingMethod(frame) else { return }
        switch method {
        case .basicDeliver(_, let tag, let redelivered, let exchange, let routingKey):
            let (properties, body) = try socket.readContent(channel: frame.channel)
            guard wantConsuming else {
                // Arrived after we cancelled: hand it straight back.
                try socket.nack(channel: Self.channel, tag: tag, multiple: false, requeue: true)
                return
            }
            received.append(
                AMQPDelivery(
                    body: body, properties: properties, exchange: exchange, routingKey: routingKey,
                    redelivered: redelivered, deliveryTag: tag, generation: generation, mailbox: mailbox))
        case .basicCancel(let tag):
            // The broker cancelled us (the queue was deleted, or a node went away). Declare the
            // topology again and resume; if that fails, reconnect with backoff.
            logger.warning("AMQP consumer cancelled by broker; resubscribing", metadata: ["queue": "\(queue)", "consumerTag": "\(tag)"])
            consumerTag = nil
            if let declarations { try socket.declare(declarations, channel: Self.channel, passive: configuration.topology == .verify) }
            if wantConsuming { try subscribe(socket) }
        case .channelClose(let code, let text):
            socket.channelCloseOk(channel: Self.channel)
            throw AMQPError.channelClosed(code: code, text: text)
        case .connectionClose(let code, let text):
            socket.connectionCloseOk()
            throw AMQPError.connectionClosed(code: code, text: text)
        case .basicAck, .basicNack, .basicReturn, .connectionBlocked, .connectionUnblocked, .other:
            break
        }
    }
}
