import Foundation
import ParleyLinkCore
import ParleyCore
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
import ServiceLifecycle
import ParleyEnvelope

/// The link service's running parts, each a ServiceLifecycle service:
///
/// - two ``LinkConsumer``s (`link.canonical`, `link.events`) that handle deliveries in batches,
///   many messages per database transaction;
/// - the ``OutboxRelay``, publishing committed sync requests with confirms;
/// - ``LinkMaintenance``: expired write leases and inbox pruning;
/// - ``LinkWaiting``: changes that waited for the records they name, handled once those are members.
///
/// Any number of replicas may run: per-entity order comes from row locks, matching from
/// advisory locks on the natural keys, the relay and lease expiry skip rows another replica
/// holds, and a redelivered message finds its id in the inbox.
public struct LinkService: Sendable {
    public let consumers: [LinkConsumer]
    public let relay: OutboxRelay
    public let maintenance: LinkMaintenance
    public let waiting: LinkWaiting
    public let publisher: AMQPPublisher

    public init(
        amqp: AMQPConfiguration, pool: PostgresPool, engine: LinkEngine, topology: Topology = ParleyTopology.standard,
        batchSize: Int = 100, transactions: Int = 4, logger: Logger = Logger(label: "parley.link")
    ) {
        let publisher = AMQPPublisher(configuration: amqp, topology: topology, logger: logger)
        let relay = OutboxRelay(pool: pool, publisher: publisher, logger: logger)
        self.publisher = publisher
        self.relay = relay
        self.consumers = [ParleyTopology.Queues.linkCanonical, ParleyTopology.Queues.linkEvents].map { queue in
            LinkConsumer(
                amqp: amqp, queue: queue, topology: topology, pool: pool, engine: engine, publisher: publisher,
                relay: relay, batchSize: batchSize, transactions: transactions, logger: logger)
        }
        self.maintenance = LinkMaintenance(pool: pool, engine: engine, relay: relay, logger: logger)
        self.waiting = LinkWaiting(pool: pool, engine: engine, relay: relay, logger: logger)
    }

    /// A ServiceGroup shuts its services down in reverse order: maintenance and the release of
    /// waiting changes first, then the consumers (each finishes the batches in hand), then the
    /// relay, which publishes what they handed over before it stops.
    public var services: [any Service] { [relay] + consumers + [waiting, maintenance] }
}

/// Consumes one of the link service's queues in batches: up to `batchSize` messages in one
/// transaction (``LinkBatch``: set-based, and when a message fails, again with a savepoint per
/// message), so one message the service cannot take is dead-lettered with its reason while the
/// others commit. Acks follow the commit. Up to `transactions` batches run at once, each on its
/// own database connection, so one batch's work in the engine overlaps another's in PostgreSQL;
/// they relate to each other exactly as replicas do (row locks order each entity's changes).
public final class LinkConsumer: Service, Sendable {
    let consumer: AMQPConsumer
    let queue: String
    let topology: Topology
    let pool: PostgresPool
    let engine: LinkEngine
    let publisher: AMQPPublisher
    let relay: OutboxRelay
    let batchSize: Int
    let transactions: Int
    let logger: Logger
    /// Between tries of a batch while the database is away: 0.2 s doubling to 5 s.
    static let databaseBackoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5), jitter: 0)

    init(
        amqp: AMQPConfiguration, queue: String, topology: Topology, pool: PostgresPool, engine: LinkEngine,
        publisher: AMQPPublisher, relay: OutboxRelay, batchSize: Int, transactions: Int, logger: Logger
    ) {
        // Enough unacked deliveries for every transaction in flight and two batches gathering:
        // with one, the next backlog was often a part batch (a benchmark at 100 per batch
        // averaged 62 messages per transaction; with two, 81, and about 10 % more changes/s).
        self.consumer = AMQPConsumer(
            configuration: amqp, queue: queue, topology: topology,
            prefetch: UInt16(clamping: max((max(1, transactions) + 2) * batchSize, 16)), logger: logger)
        self.queue = queue
        self.topology = topology
        self.pool = pool
        self.engine = engine
        self.publisher = publisher
        self.relay = relay
        self.batchSize = max(1, batchSize)
        self.transactions = max(1, transactions)
        self.logger = logger
    }

    public func run() async throws {
        let consumer = self.consumer
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                var running = 0
                for await backlog in consumer.deliveries.batches {
                    var start = 0
                    while start < backlog.count {
                        if running == transactions {
                            await group.next()
                            running -= 1
                        }
                        let batch = Array(backlog[start..<min(start + batchSize, backlog.count)])
                        group.addTask { await self.process(batch) }
                        running += 1
                        start += batch.count
                    }
                }
            }
        } onGracefulShutdown: {
            Task { await consumer.cancel() }
        }
        await consumer.close()
        logger.info("link consumer stopped", metadata: ["queue": "\(queue)"])
    }

    /// The consumer's connection is up and consuming (for `/health/ready`).
    public var readiness: ConnectionReadiness { consumer.readiness }

    public var queueName: String { queue }

    enum Result: Sendable {
        case done
        case rejected(String, FailureClass)
    }

    func process(_ deliveries: [AMQPDelivery]) async {
        let started = ContinuousClock.now
        var envelopes: [(Int, Envelope)] = []
        var results = [Result](repeating: .done, count: deliveries.count)
        for (index, delivery) in deliveries.enumerated() {
            do {
                envelopes.append((index, try delivery.envelope()))
            } catch {
                results[index] = .rejected("malformed message: \(error)", .malformed)
            }
        }
        guard let writesConfirmed = await handle(envelopes, results: &results) else { return }
        for (index, delivery) in deliveries.enumerated() {
            var outcome = MessagingMetrics.Outcome.ack
            if case .rejected(let reason, let failureClass) = results[index] {
                logger.error(
                    "message dead-lettered",
                    metadata: ["queue": "\(queue)", "messageId": "\(delivery.properties.messageId ?? "-")", "reason": "\(reason)"])
                MessagingMetrics.failure(failureClass)
                do {
                    try await publisher.publish(ParleyHeaders.deadLetter(delivery, from: queue, reason: reason, topology: topology))
                } catch {
                    delivery.nack(requeue: true)
                    continue
                }
                outcome = .deadLetter
            }
            delivery.ack()
            // Every message of a batch took the batch's time: they committed together.
            MessagingMetrics.consumed(queue: queue, outcome: outcome, elapsed: ContinuousClock.now - started)
        }
        if !writesConfirmed.isEmpty { await SyncLatency.record(writesConfirmed, pool: pool, logger: logger) }
    }

    /// The batch through the engine until it commits (the database away: backed off, the
    /// deliveries kept unacked until it is back); records the rejected in `results` and returns
    /// the writes confirmed by written events, or `nil` when cancelled meanwhile.
    func handle(_ batch: [(Int, Envelope)], results: inout [Result]) async -> [SyncLatency.Write]? {
        var attempt = 0
        while true {
            do {
                let processed = try await LinkBatch.process(batch.map(\.1), engine: engine, pool: pool)
                relay.publish(committed: processed.outbox)
                var confirmed: [SyncLatency.Write] = []
                for ((index, envelope), outcome) in zip(batch, processed.results) {
                    switch outcome {
                    case .rejected(let reason):
                        results[index] = .rejected(reason, .permanent)
                    case .done:
                        // A written event that committed (a stale one, ignored by the engine, counts too).
                        if envelope.kind == .written, let written = try? WrittenPayload(json: envelope.payload),
                            let ref = GlobalRef(written.globalId)
                        {
                            confirmed.append(SyncLatency.Write(global: ref.id, target: envelope.system))
                        }
                    }
                }
                return confirmed
            } catch {
                attempt += 1
                MessagingMetrics.failure(.transient)
                let retryNow = (error as? PostgresError).map { $0.isDeadlock || $0.isSerializationFailure } ?? false
                logger.warning("link batch failed; retrying", metadata: ["queue": "\(queue)", "attempt": "\(attempt)", "error": "\(error)"])
                if Task.isCancelled { return nil }
                // Conflicts between replicas: again at once. The database away: back off, and
                // keep the deliveries (unacked) until it is back.
                try? await Task.sleep(for: retryNow ? .milliseconds(Int64.random(in: 1...20)) : Self.databaseBackoff.ceiling(forAttempt: attempt))
            }
        }
    }
}

/// Periodic work: writes whose lease ran out are sent again; processed message ids older than
/// the retention are pruned from the inbox.
public final class LinkMaintenance: Service, Sendable {
    let pool: PostgresPool
    let engine: LinkEngine
    let relay: OutboxRelay
    let logger: Logger
    let interval: Duration
    let inboxRetention: Duration

    init(
        pool: PostgresPool, engine: LinkEngine, relay: OutboxRelay, logger: Logger,
        interval: Duration = .seconds(2), inboxRetention: Duration = .seconds(7 * 24 * 3600)
    ) {
        self.pool = pool
        self.engine = engine
        self.relay = relay
        self.logger = logger
        self.interval = interval
        self.inboxRetention = inboxRetention
    }

    public func run() async throws {
        var lastPrune = ContinuousClock.now - .seconds(3600)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let engine = self.engine
                let (resent, outbox) = try await pool.transaction { tx in
                    let collector = OutboxCollector()
                    return (try engine.expireLeases(in: tx, outbox: collector), collector.messages)
                }
                relay.publish(committed: outbox)
                if resent > 0 { logger.info("writes sent again after their lease", metadata: ["count": "\(resent)"]) }
                if ContinuousClock.now - lastPrune > .seconds(600) {
                    let seconds = inboxRetention.components.seconds
                    _ = try await pool.execute("delete from inbox where processed_at < now() - make_interval(secs => $1)", [seconds])
                    lastPrune = ContinuousClock.now
                }
            } catch {
                logger.warning("link maintenance failed; trying again", metadata: ["error": "\(error)"])
            }
            // Shutdown must not wait out a long interval.
            let interval = self.interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
