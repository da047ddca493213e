import Foundation
import Logging
import ParleyCore
import ParleyLinkCore
import ParleyMessaging
import ParleyPostgres
import ServiceLifecycle
import ParleyEnvelope

/// Hands the changes that waited for the records they name (`waiting_change`, an order whose
/// customer or products its system had not reported yet) back to the engine once every one of
/// them is a member, in a batch like the consumers' (``LinkBatch``).
///
/// Level-triggered: each round reads the waiting changes that are ready now, whoever recorded
/// them and however their records got linked (a change of their own, a match, Parley's create),
/// so no release is missed between two transactions or two replicas. A released change gets a
/// message id derived from its own, so two replicas releasing it at once handle it once (the
/// inbox); handling it removes its row (``LinkStore/resolveWaiting(_:modifiedAt:)``). One the
/// engine rejects stays, with the reason, and is tried again after a backoff.
public final class LinkWaiting: Service, Sendable {
    let pool: PostgresPool
    let engine: LinkEngine
    let relay: OutboxRelay
    let logger: Logger
    let interval: Duration
    let limit: Int

    init(pool: PostgresPool, engine: LinkEngine, relay: OutboxRelay, logger: Logger, interval: Duration = .milliseconds(500), limit: Int = 100) {
        self.pool = pool
        self.engine = engine
        self.relay = relay
        self.logger = logger
        self.interval = interval
        self.limit = limit
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                while try await release() == limit {}
            } catch {
                logger.warning("releasing waiting changes failed; trying again", metadata: ["error": "\(error)"])
            }
            let interval = self.interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One round: up to `limit` ready changes through the engine. Returns how many were ready.
    @discardableResult
    public func release() async throws -> Int {
        let processed = try await Self.release(limit: limit, engine: engine, pool: pool)
        relay.publish(committed: processed.outbox)
        if processed.count > 0 { logger.info("waiting changes released", metadata: ["count": "\(processed.count)"]) }
        return processed.count
    }

    /// The ready changes handled in one ``LinkBatch``; those rejected are kept with their reason
    /// and a retry time. Returns how many were ready and what the batch queued for the relay.
    static func release(limit: Int, engine: LinkEngine, pool: PostgresPool, now: @escaping @Sendable () -> Date = { Date() })
        async throws -> (count: Int, outbox: [OutboxMessage])
    {
        let rows = try await pool.query(
            """
            select w.envelope, w.system, w.entity_type, w.native_id, w.modified_at from waiting_change w
            where (w.retry_at is null or w.retry_at <= now())
              and not exists (select 1 from jsonb_array_elements(w.waiting_for) r where not exists (
                  select 1 from member m where m.system = r->>0 and m.entity_type = r->>1 and m.native_id = r->>2))
            order by w.waiting_since limit $1
            """, [limit])
        guard !rows.isEmpty else { return (0, []) }
        var envelopes: [Envelope] = []
        var keys: [(system: String, entity: String, nativeId: String, modifiedAt: Int64)] = []
        for row in rows {
            let key = (
                try row.decode(String.self, at: 1), try row.decode(String.self, at: 2), try row.decode(String.self, at: 3),
                try row.decode(Int64.self, at: 4)
            )
            do {
                let original = try Envelope.decode(try row.decode([UInt8].self, at: 0))
                envelopes.append(try WaitingChange.released(original))
                keys.append(key)
            } catch {
                // Stored by this service, so never expected; kept visible rather than dropped.
                try await markRejected(key, reason: "the waiting change cannot be read: \(error)", pool: pool)
            }
        }
        let processed = try await LinkBatch.process(envelopes, engine: engine, pool: pool, now: now)
        for (key, result) in zip(keys, processed.results) {
            if case .rejected(let reason) = result { try await markRejected(key, reason: reason, pool: pool) }
        }
        return (rows.count, processed.outbox)
    }

    static func markRejected(
        _ key: (system: String, entity: String, nativeId: String, modifiedAt: Int64), reason: String,
        pool: PostgresPool
    ) async throws {
        _ = try await pool.execute(
            """
            update waiting_change set attempts = attempts + 1, reason = $5,
                retry_at = now() + make_interval(secs => least(900, 5 * power(2, attempts)))
            where system = $1 and entity_type = $2 and native_id = $3 and modified_at = $4
            """, [key.system, key.entity, key.nativeId, key.modifiedAt, "could not be handled: \(reason)"])
    }

}
