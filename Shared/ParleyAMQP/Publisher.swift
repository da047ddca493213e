import CRabbitMQ
import Foundation
import ParleyCore
import Logging
import Synchronization

/// Publishes persistent messages with publisher confirms, on a connection and thread of its own.
///
/// `publish` returns once the broker has confirmed the message and throws when it was nacked,
/// returned as unroutable (mandatory), refused with a channel error (e.g. 404 for a missing
/// exchange), or in flight when the connection dropped. Up to `window` publishes are in flight
/// at once; more wait their turn. After a connection loss the publisher reconnects by itself
/// (backoff, every endpoint in turn), re-declares the topology and re-enables confirm mode;
/// publishes submitted meanwhile are sent then.
public final class AMQPPublisher: Sendable {
    typealias Continuation = CheckedContinuation<Void, any Error>
    typealias BatchContinuation = CheckedContinuation<[Result<Void, AMQPError>], Never>
    enum Command: Sendable {
        case publish(OutgoingMessage, Continuation)
        case publishBatch([OutgoingMessage], BatchContinuation)
        case close(CheckedContinuation<Void, Never>)
    }

    private let mailbox = Mailbox<Command>()
    /// Up, with the topology declared and confirm mode on.
    public let readiness = ConnectionReadiness()

    public init(
        configuration: AMQPConfiguration, topology: Topology? = nil, window: Int = 512,
        logger: Logger = Logger(label: "parley.amqp.publisher")
    ) {
        precondition(window > 0)
        let worker = PublisherWorker(
            configuration: configuration, declarations: topology?.declarations(),
            window: window, mailbox: mailbox, readiness: readiness, logger: logger)
        startConnectionThread(name: "amqp-publisher \(configuration.connectionName)") { worker.run() }
    }

    /// Publishes and waits for the broker's confirm. A message without a message id gets one.
    public func publish(_ message: OutgoingMessage) async throws {
        try await withCheckedThrowingContinuation { (c: Continuation) in
            mailbox.send(.publish(message, c))
        }
        PublishMetrics.confirmed(exchange: message.exchange)
    }

    /// Publishes every message and waits until the broker settled all of them; one result per
    /// message, in order, with the same meaning as `publish`'s outcome. Cheaper than one
    /// `publish` per message when a caller has many at hand (an outbox relay): one suspension
    /// for the whole batch.
    public func publish(contentsOf messages: [OutgoingMessage]) async -> [Result<Void, AMQPError>] {
        guard !messages.isEmpty else { return [] }
        let results = await withCheckedContinuation { (c: BatchContinuation) in
            mailbox.send(.publishBatch(messages, c))
        }
        var confirmed: [String: Int] = [:]
        for (message, result) in zip(messages, results) {
            if case .success = result { confirmed[message.exchange, default: 0] += 1 }
        }
        for (exchange, count) in confirmed { PublishMetrics.confirmed(exchange: exchange, count: count) }
        return results
    }

    public func publish(
        exchange: String, routingKey: String, body: [UInt8],
        properties: AMQPProperties = .init(), mandatory: Bool = true
    ) async throws {
        try await publish(
            OutgoingMessage(
                exchange: exchange, routingKey: routingKey, body: body,
                properties: properties, mandatory: mandatory))
    }

    /// Waits for the confirms of what is in flight, then closes the connection. Publishes that
    /// could not be sent (no connection) fail with `.closed`.
    public func close() async {
        await withCheckedContinuation { c in mailbox.send(.close(c)) }
    }
}

/// Who waits for a publish: a single caller, or one slot of a batch.
private enum Waiter {
    case single(AMQPPublisher.Continuation)
    case batch(BatchCollector, Int)

    func finish(_ result: Result<Void, AMQPError>) {
        switch self {
        case .single(let c): c.resume(with: result.mapError { $0 as any Error })
        case .batch(let collector, let index): collector.finish(index, result)
        }
    }
}

/// The outcomes of one `publish(contentsOf:)`, resumed when the last one is known. Touched
/// only on the publisher's thread.
private final class BatchCollector {
    var results: [Result<Void, AMQPError>]
    var remaining: Int
    let continuation: AMQPPublisher.BatchContinuation

    init(count: Int, continuation: AMQPPublisher.BatchContinuation) {
        results = Array(repeating: .failure(.closed), count: count)
        remaining = count
        self.continuation = continuation
    }

    func finish(_ index: Int, _ result: Result<Void, AMQPError>) {
        results[index] = result
        remaining -= 1
        if remaining == 0 { continuation.resume(returning: results) }
    }
}

/// The publisher's state, touched only on its own thread.
private final class PublisherWorker: @unchecked Sendable {
    typealias Continuation = Waiter
    let configuration: AMQPConfiguration
    let declarations: Topology.Declarations?
    let window: Int
    let mailbox: Mailbox<AMQPPublisher.Command>
    let readiness: ConnectionReadiness
    let logger: Logger
    static let channel: UInt16 = 1

    var pending: [(OutgoingMessage, Continuation)] = []
    var pendingHead = 0
    var tracker = ConfirmTracker<Continuation>()
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
    var backoff: Backoff
    var endpointIndex = 0
    var resumedSinceSleep = false

    init(
        configuration: AMQPConfiguration, declarations: Topology.Declarations?, window: Int,
        mailbox: Mailbox<AMQPPublisher.Command>, readiness: ConnectionReadiness, logger: Logger
    ) {
        self.readiness = readiness
        self.configuration = configuration
        self.declarations = declarations
        self.window = window
        self.mailbox = mailbox
        self.logger = logger
        self.backoff = configuration.reconnect
    }

    var closing: Bool { !closeWaiters.isEmpty }
    var hasPending: Bool { pendingHead < pending.count }

    func absorb() {
        for command in mailbox.take() {
            switch command {
            case .publish(let m, let c): pending.append((m, .single(c)))
            case .publishBatch(let ms, let c):
                let collector = BatchCollector(count: ms.count, continuation: c)
                for (i, m) in ms.enumerated() { pending.append((m, .batch(collector, i))) }
            case .close(let c): closeWaiters.append(c)
            }
        }
    }

    func run() {
        while true {
            absorb()
            if closing { break }
            let socket = connect(configuration: configuration, backoff: &backoff, startAt: &endpointIndex, logger: logger) { delay in
                _ = mailbox.wait(socket: nil, timeout: delay)
                absorb()
                return !closing
            }
            guard let socket else { break }
            do {
                try session(socket)
                socket.close()
                break
            } catch {
                let failure =
                    (error as? AMQPError).map { e -> AMQPError in
                        if case .connectionLost = e { return e }
                        return .connectionLost(e.description)
                    } ?? .connectionLost("\(error)")
                logger.warning("AMQP publisher connection lost", metadata: ["error": "\(error)", "inFlight": "\(tracker.inFlight)"])
                settle(tracker.failAll(failure))
                socket.destroy()
                endpointIndex += 1
            }
        }
        for i in pendingHead..<pending.count { pending[i].1.finish(.failure(.closed)) }
        pending.removeAll()
        pendingHead = 0
        settle(tracker.failAll(.closed))
        for c in closeWaiters { c.resume() }
    }

    private func session(_ socket: AMQPSocket) throws {
        try socket.openChannel(Self.channel)
        if let declarations { try socket.declare(declarations, channel: Self.channel, passive: configuration.topology == .verify) }
        try socket.confirmSelect(channel: Self.channel)
        backoff.reset()
        readiness.set(true)
        defer { readiness.set(false) }
        var pump = SocketPump(socket: socket, mailbox: mailbox)

        while true {
            absorb()
            if closing && !hasPending && tracker.inFlight == 0 { return }

            while tracker.inFlight < window, hasPending {
                var (message, continuation) = pending[pendingHead]
                pendingHead += 1
                if message.properties.messageId == nil { message.properties.messageId = UUID().uuidString.lowercased() }
                tracker.register(messageId: message.properties.messageId!, token: continuation)
                try socket.publish(channel: Self.channel, message)
            }
            if pendingHead > 4096, pendingHead * 2 > pending.count {
                pending.removeFirst(pendingHead)
                pendingHead = 0
            }

            resumedSinceSleep = false
            try pump.read { try handle($0, socket) }
            if resumedSinceSleep && !hasPending {
                // Publishers we just resumed are about to send their next message: give them
                // the CPU before going to sleep, instead of being woken for each of them.
                for _ in 0..<4 where mailbox.isEmpty { sched_yield() }
                absorb()
            }
            // Sleep only when there is nothing we could send.
            try pump.wait(busy: hasPending && tracker.inFlight < window) { try handle($0, socket) }
        }
    }

    private func handle(_ frame: amqp_frame_t, _ socket: AMQPSocket) throws {
        guard let method = IncomingMethod(frame) else { return }
        switch method {
        case .basicAck(let tag, let multiple):
            settle(tracker.ack(tag: tag, multiple: multiple))
        case .basicNack(let tag, let multiple):
            settle(tracker.nack(tag: tag, multiple: multiple))
        case .basicReturn(let code, let text):
            let (properties, _) = try socket.readContent(channel: frame.channel)
            tracker.markReturned(messageId: properties.messageId ?? "", code: code, text: text)
        case .channelClose(let code, let text):
            // e.g. 404 NOT_FOUND for a publish to a missing exchange: the channel is gone and
            // with it every pending confirm. Fail them with the broker's reason, then reopen.
            logger.warning("AMQP publisher channel closed by broker", metadata: ["code": "\(code)", "text": "\(text)"])
            socket.channelCloseOk(channel: Self.channel)
            settle(tracker.failAll(.channelClosed(code: code, text: text)))
            try socket.openChannel(Self.channel)
            try socket.confirmSelect(channel: Self.channel)
        case .connectionClose(let code, let text):
            socket.connectionCloseOk()
            throw AMQPError.connectionClosed(code: code, text: text)
        case .connectionBlocked(let reason):
            logger.warning("AMQP broker blocked publishing", metadata: ["reason": "\(reason)"])
        case .connectionUnblocked:
            logger.info("AMQP broker unblocked publishing")
        case .basicDeliver, .basicCancel, .other:
            break
        }
    }

    private func settle(_ outcomes: [(Continuation, ConfirmTracker<Continuation>.Outcome)]) {
        if !outcomes.isEmpty { resumedSinceSleep = true }
        for (waiter, outcome) in outcomes {
            switch outcome {
            case .confirmed: waiter.finish(.success(()))
            case .returned(let code, let text): waiter.finish(.failure(.returned(code: code, text: text)))
            case .nacked: waiter.finish(.failure(.nacked))
            case .failed(let e): waiter.finish(.failure(e))
            }
        }
    }
}
