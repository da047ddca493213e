import Foundation
import ParleyLinkCore
import ParleyCore
import Logging
import ParleyAMQP
import ParleyMessaging
import ParleyPostgres
import ServiceLifecycle
import Synchronization
import ParleyEnvelope

/// A message a transaction queued in the outbox: its id (the row's `message_id`) and what goes
/// to the broker.
public struct OutboxMessage: Sendable {
    public let id: UUID
    public let message: OutgoingMessage
}

/// What one transaction queued for the relay (``LinkStore/enqueue(_:exchange:routingKey:)``),
/// kept so that the process that committed it publishes it from memory. Used on the connection
/// thread inside the transaction only; the caller hands ``messages`` over after the commit.
public final class OutboxCollector {
    public internal(set) var messages: [OutboxMessage] = []
    public init() {}
}

/// Publishes the outbox with confirms, then deletes what the broker confirmed. Two lanes:
///
/// - **Committed here**: a transaction of this process claims the rows it queues
///   (`claimed_until` = commit + ``claim``) and, once committed, hands the messages over
///   (``publish(committed:)``); they are published from memory, up to ``lanes`` chunks at once,
///   and their rows deleted. No row is read back, re-encoded or updated on the way.
/// - **The sweep** (each second): rows nobody holds — unclaimed (queued by
///   another process, such as the CLI's retry), or whose claim ran out because the process that
///   queued them stopped before publishing or its publish failed — are claimed
///   (`for update skip locked`, so replicas share them), published in id order and deleted.
///
/// Nothing is lost: a row is deleted only after its confirm. A confirmed row whose delete
/// failed (PostgreSQL restarting) is deleted again at the next sweep, before anything is
/// claimed, so it does not wait out its claim to go out a second time. A message may still go
/// out twice (the broker's confirm lost, the process gone before the delete, or a sweep
/// overtaking a hand-over stuck longer than the claim); consumers deduplicate by message id.
/// Order across transactions is not kept, and need not be: one write is in flight per record
/// and target (rule 8), so two sync requests for the same record and target are never in the
/// outbox at once.
public final class OutboxRelay: Service, Sendable {
    /// How long a transaction's own rows are held for its process to publish them.
    public static let claim: Duration = .seconds(30)
    /// Chunks published at once from the hand-over lane.
    static let lanes = 4
    /// Messages held in memory at most; beyond that a hand-over is left to the sweep (its rows
    /// wait out their claim), so a broker that stops confirming cannot grow memory unbounded.
    static let limit = 20_000

    let pool: PostgresPool
    let publisher: AMQPPublisher
    let logger: Logger
    let wake: AsyncStream<Void>
    let waker: AsyncStream<Void>.Continuation
    let committed: AsyncStream<[OutboxMessage]>
    let handOver: AsyncStream<[OutboxMessage]>.Continuation
    let held = Mutex(0)
    /// Message ids the broker confirmed whose rows could not be deleted yet.
    let undeleted = Mutex<Set<String>>([])

    init(pool: PostgresPool, publisher: AMQPPublisher, logger: Logger) {
        self.pool = pool
        self.publisher = publisher
        self.logger = logger
        (wake, waker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (committed, handOver) = AsyncStream.makeStream(of: [OutboxMessage].self)
    }

    /// Messages of a committed transaction whose rows it claimed: published from memory.
    public func publish(committed messages: [OutboxMessage]) {
        guard !messages.isEmpty else { return }
        let accepted = held.withLock { count in
            guard count + messages.count <= Self.limit else { return false }
            count += messages.count
            return true
        }
        if accepted {
            handOver.yield(messages)
        } else {
            logger.warning("outbox hand-over full; left to the sweep", metadata: ["messages": "\(messages.count)"])
        }
    }

    public func run() async throws {
        let wake = self.wake, waker = self.waker
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                waker.yield()
            }
        }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                // The hand-over lane: ends when the stream is finished (shutdown), after what
                // was handed over is published.
                group.addTask {
                    await withTaskGroup(of: Void.self) { chunks in
                        var running = 0
                        for await messages in self.committed {
                            if running == Self.lanes {
                                await chunks.next()
                                running -= 1
                            }
                            chunks.addTask { await self.publishCommitted(messages) }
                            running += 1
                        }
                    }
                }
                group.addTask {
                    for await _ in wake {
                        while let published = try? await self.sweep(), published > 0 {}
                    }
                }
            }
        } onGracefulShutdown: {
            // The consumers stopped before this (LinkService lists the relay first, and a
            // ServiceGroup shuts down in reverse order): nothing more is handed over.
            self.handOver.finish()
            waker.finish()
        }
        ticker.cancel()
        _ = try? await sweep()
    }

    func publishCommitted(_ messages: [OutboxMessage]) async {
        defer { held.withLock { $0 -= messages.count } }
        do {
            _ = try await publishAndDelete(messages, unconfirmed: "the sweep takes it when its claim runs out")
        } catch {
            // Published but still there: the next sweep deletes the confirmed ones; what was not
            // confirmed it publishes again after the claim (a duplicate the consumers drop by
            // message id).
            logger.warning("outbox rows published but not deleted", metadata: ["count": "\(messages.count)", "error": "\(error)"])
        }
    }

    /// One sweep round: claim up to 256 rows nobody holds, publish them, delete the confirmed.
    /// Returns how many went out.
    @discardableResult
    public func sweep() async throws -> Int {
        try await deleteConfirmed()
        let rows = try await pool.query(
            """
            update outbox set claimed_until = now() + make_interval(secs => $1)
            where id in (select id from outbox where claimed_until is null or claimed_until < now()
                         order by id limit 256 for update skip locked)
            returning id, message_id, exchange, routing_key, body
            """, [Self.claim.components.seconds])
        var messages: [OutboxMessage] = []
        for row in try rows.sorted(by: { try $0.decode(Int64.self, at: 0) < $1.decode(Int64.self, at: 0) }) {
            let body = try row.decode([UInt8].self, at: 4)
            let exchange = try row.decode(String.self, at: 2), routingKey = try row.decode(String.self, at: 3)
            let message =
                (try? Envelope.decode(body)).map { OutgoingMessage(envelope: $0, exchange: exchange, routingKey: routingKey) }
                ?? OutgoingMessage(exchange: exchange, routingKey: routingKey, body: body)
            messages.append(OutboxMessage(id: try row.decode(UUID.self, at: 1), message: message))
        }
        return try await publishAndDelete(messages, unconfirmed: "will retry")
    }

    /// Publishes with confirms and deletes the rows of what the broker confirmed; returns how
    /// many that was. What it did not confirm stays for a later sweep (`unconfirmed` says so in
    /// the log).
    func publishAndDelete(_ messages: [OutboxMessage], unconfirmed: String) async throws -> Int {
        guard !messages.isEmpty else { return 0 }
        let results = await publisher.publish(contentsOf: messages.map(\.message))
        var done: [String] = []
        for (message, result) in zip(messages, results) {
            switch result {
            case .success: done.append(message.id.lowercasedString)
            case .failure(let error):
                logger.warning("outbox publish failed; \(unconfirmed)", metadata: ["messageId": "\(message.id)", "error": "\(error)"])
            }
        }
        if !done.isEmpty {
            do {
                _ = try await pool.execute("delete from outbox where message_id = any($1::uuid[])", ["{" + done.joined(separator: ",") + "}"])
            } catch {
                undeleted.withLock { $0.formUnion(done) }
                throw error
            }
        }
        return done.count
    }

    /// Deletes the rows of confirmed messages whose delete failed before.
    func deleteConfirmed() async throws {
        let ids = undeleted.withLock { $0 }
        guard !ids.isEmpty else { return }
        _ = try await pool.execute("delete from outbox where message_id = any($1::uuid[])", ["{" + ids.sorted().joined(separator: ",") + "}"])
        undeleted.withLock { $0.subtract(ids) }
        logger.info("outbox rows of confirmed messages deleted after a failed delete", metadata: ["count": "\(ids.count)"])
    }
}
