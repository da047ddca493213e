import Foundation
import ParleyAMQP
import ParleyMessaging
import Synchronization
import ParleyJSON

/// A message in a `<queue>.dead` queue, as `parley dlq list` shows it.
public struct DeadLetter: Sendable, Hashable {
    /// The dead-letter queue it is in.
    public var deadQueue: String
    public var messageId: String?
    /// The envelope's kind (AMQP `type`: change, canonical, syncRequest, command, written, failed).
    public var kind: String?
    public var system: String?
    public var entityType: String?
    /// Why: Parley's `parley-error`, else the broker's dead-letter reason (e.g. `delivery_limit`).
    public var reason: String
    /// The queue it failed in.
    public var failedQueue: String
    public var failedAt: String?
    public var retries: Int?

    public init(
        deadQueue: String, messageId: String?, kind: String?, system: String?, entityType: String?, reason: String,
        failedQueue: String, failedAt: String?, retries: Int?
    ) {
        self.deadQueue = deadQueue
        self.messageId = messageId
        self.kind = kind
        self.system = system
        self.entityType = entityType
        self.reason = reason
        self.failedQueue = failedQueue
        self.failedAt = failedAt
        self.retries = retries
    }

    /// From a message the management API showed.
    public init(deadQueue: String, peeked m: PeekedMessage) {
        let h = m.headers
        let xDeath = h["x-death"]?.array?.first
        let brokerReason = (h["x-first-death-reason"]?.string ?? xDeath?["reason"]?.string).map { "dead-lettered by the broker: \($0)" }
        self.init(
            deadQueue: deadQueue, messageId: m.messageId, kind: m.type,
            system: h["parley-system"]?.string, entityType: h["parley-entity-type"]?.string,
            reason: h[ParleyHeaders.error]?.string ?? brokerReason ?? "-",
            failedQueue: h[ParleyHeaders.failedQueue]?.string ?? h["x-first-death-queue"]?.string ?? xDeath?["queue"]?.string
                ?? DeadLetters.originalQueue(of: deadQueue),
            failedAt: h[ParleyHeaders.failedAt]?.string ?? xDeath?["time"]?.int.map { StatusRendering.time(Date(timeIntervalSince1970: Double($0))) },
            retries: h[ParleyHeaders.retries]?.int)
    }

    public var typeDescription: String {
        [kind, [system, entityType].compactMap { $0 }.joined(separator: ".")].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
    }

    public var json: JSONValue {
        func s(_ v: String?) -> JSONValue { v.map(JSONValue.string) ?? .null }
        return [
            "deadQueue": .string(deadQueue), "messageId": s(messageId), "kind": s(kind), "system": s(system), "entityType": s(entityType),
            "reason": .string(reason), "failedQueue": .string(failedQueue), "failedAt": s(failedAt),
            "retries": retries.map { .number(JSONNumber($0)) } ?? .null
        ]
    }
}

/// The dead-letter queues: look at them (through the management API, putting every message
/// back) and replay them (over AMQP, publish-confirm before ack).
public enum DeadLetters {
    public static let suffix = ".dead"

    /// `link.events.dead` → `link.events`; a name without the suffix is taken as the original.
    public static func originalQueue(of queue: String) -> String {
        queue.hasSuffix(suffix) ? String(queue.dropLast(suffix.count)) : queue
    }

    public static func deadQueue(of queue: String) -> String {
        queue.hasSuffix(suffix) ? queue : queue + suffix
    }

    /// Headers that describe the failure or the retries: dropped from a replayed copy, so it
    /// starts over as a first delivery with a fresh retry budget.
    public static let strippedHeaders: Set<String> = [
        ParleyHeaders.error, ParleyHeaders.failedQueue, ParleyHeaders.failedAt, ParleyHeaders.retries, Topology.retryQueueHeader,
        "x-death", "x-first-death-reason", "x-first-death-queue", "x-first-death-exchange",
        "x-last-death-reason", "x-last-death-queue", "x-last-death-exchange", "x-delivery-count"
    ]

    /// The copy of a dead letter that goes back to `queue` (through the default exchange, so
    /// to that queue only): same body, message id and properties; the failure and retry
    /// headers removed, `parley-replayed-at` added.
    public static func replayCopy(body: [UInt8], properties: AMQPProperties, to queue: String, at date: Date = Date()) -> OutgoingMessage {
        var p = properties
        p.headers = AMQPTable(p.headers.entries.filter { !strippedHeaders.contains($0.key) })
        p.headers["parley-replayed-at"] = .string(date.formatted(.iso8601))
        p.deliveryMode = 2
        return OutgoingMessage(exchange: "", routingKey: queue, body: body, properties: p, mandatory: true)
    }

    // MARK: list

    /// The dead-letter queues of the vhost with their depth (all of them, or the one of `queue`).
    public static func queues(_ api: ManagementAPI, queue: String? = nil) async throws -> [QueueStats] {
        if let queue {
            let dead = deadQueue(of: queue)
            guard let stats = try await api.queue(dead) else { throw OperationsError("no queue \(dead) in vhost \(api.vhost)") }
            return [stats]
        }
        return try await api.queues().filter { $0.name.hasSuffix(suffix) }
    }

    /// Up to `limit` dead letters of one dead-letter queue, each put back where it was.
    public static func list(_ api: ManagementAPI, deadQueue: String, limit: Int) async throws -> [DeadLetter] {
        try await api.peek(deadQueue, count: limit).map { DeadLetter(deadQueue: deadQueue, peeked: $0) }
    }

    // MARK: replay

    public struct ReplayReport: Sendable {
        public var deadQueue: String
        public var originalQueue: String
        /// Message ids (or "-") republished and then acked from the dead queue.
        public var replayed: [String] = []
        /// Dead letters looked at and left where they were (not selected).
        public var kept = 0
        /// Dead letters that could not be republished (left in the dead queue), with the reason.
        public var failures: [(messageId: String, reason: String)] = []
    }

    /// Republishes dead letters of `queue` to the queue itself: all of them, or the one with
    /// message id `id`. Each copy is confirmed by the broker before its dead letter is acked,
    /// so a crash in between duplicates (the consumers are idempotent) rather than loses.
    /// Dead letters not selected stay unacked until the end and then return to the dead
    /// queue. Looks at up to `window` dead letters not selected (the prefetch), and stops once
    /// nothing new arrives for `idle`.
    public static func replay(
        configuration: AMQPConfiguration, queue: String, id: String?, window: UInt16 = 1000, idle: Duration = .seconds(1),
        connectTimeout: Duration = .seconds(10)
    ) async throws -> ReplayReport {
        let dead = deadQueue(of: queue)
        let original = originalQueue(of: queue)
        let url = configuration.endpoints.map(\.description).joined(separator: ",")
        let publisher = AMQPPublisher(configuration: configuration)
        guard await publisher.readiness.wait(timeout: connectTimeout) else {
            await publisher.close()
            throw OperationsError.unreachable(
                "RabbitMQ", at: url, reason: "no connection within \(connectTimeout)",
                hint: "is RabbitMQ running? set PARLEY_AMQP_URL")
        }
        let consumer = AMQPConsumer(configuration: configuration, queue: dead, prefetch: window)
        guard await consumer.readiness.wait(timeout: connectTimeout) else {
            await consumer.close()
            await publisher.close()
            throw OperationsError(
                "cannot consume \(dead) on \(Redact.url(url)): does the queue exist in that vhost? (`parley dlq list` shows the dead-letter queues)")
        }
        let inbox = Inbox()
        let reader = Task { for await batch in consumer.deliveries.batches { inbox.add(batch) } }
        var report = ReplayReport(deadQueue: dead, originalQueue: original)
        var lastArrival = ContinuousClock.now
        scan: while true {
            let batch = inbox.take()
            if batch.isEmpty {
                if ContinuousClock.now - lastArrival >= idle { break }
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            lastArrival = .now
            for delivery in batch {
                let messageId = delivery.properties.messageId ?? "-"
                guard id == nil || delivery.properties.messageId == id else {
                    report.kept += 1
                    continue
                }
                do {
                    try await publisher.publish(replayCopy(body: delivery.body, properties: delivery.properties, to: original))
                    delivery.ack()
                    report.replayed.append(messageId)
                } catch {
                    report.failures.append((messageId, "\(error)"))
                }
                if id != nil { break scan }
            }
        }
        // Sends the acks, then closes: what was not acked goes back to the dead queue.
        await consumer.close()
        reader.cancel()
        await publisher.close()
        return report
    }
}

/// Deliveries handed from the consumer's reading task to the replay loop.
private final class Inbox: Sendable {
    private let items = Mutex<[AMQPDelivery]>([])
    func add(_ batch: [AMQPDelivery]) { items.withLock { $0.append(contentsOf: batch) } }
    func take() -> [AMQPDelivery] {
        items.withLock { items in
            defer { items = [] }; return items
        }
    }
}
