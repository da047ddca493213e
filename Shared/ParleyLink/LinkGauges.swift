import CoreMetrics
import Foundation
import ParleyLinkCore
import ParleyCore
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
import ServiceLifecycle
import ParleyJSON
import ParleyEnvelope

/// The link service's state as gauges, refreshed by one query every few seconds
/// (docs/monitoring.md):
///
/// - `parley_link_inflight_writes{system}`: write slots open per target (rule 8: sent, not yet
///   answered, or waiting to be sent again after their lease);
/// - `parley_link_parked_entities`: entities waiting for a referenced entity to reach a target;
/// - `parley_link_waiting_changes`: changes waiting for records their own system has not reported
///   yet (an order before its customer or products);
/// - `parley_link_failed_entities`: entities a target refused or that could not be mapped for it;
/// - `parley_link_conflicts`: duplicate records held as conflicts.
///
/// The counts are the whole database's, so every replica reports the same numbers: take `max`
/// across replicas, not `sum`. `LinkQueries.counts()` has the same numbers and more, but it also
/// counts every member and entity (two scans of the biggest tables); this reads only the small
/// tables, cheap enough for every few seconds.
public final class LinkGauges: Service, Sendable {
    let pool: PostgresPool
    let interval: Duration
    let logger: Logger

    static let inflight = MetricHandles { labels in Gauge(label: "parley_link_inflight_writes", dimensions: [("system", labels[0])]) }
    static let parked = MetricHandles { _ in Gauge(label: "parley_link_parked_entities") }
    static let waiting = MetricHandles { _ in Gauge(label: "parley_link_waiting_changes") }
    static let failed = MetricHandles { _ in Gauge(label: "parley_link_failed_entities") }
    static let conflicts = MetricHandles { _ in Gauge(label: "parley_link_conflicts") }

    public init(pool: PostgresPool, interval: Duration = .seconds(5), logger: Logger) {
        self.pool = pool
        self.interval = interval
        self.logger = logger
    }

    public struct Counts: Sendable, Equatable {
        public var inflightWrites: [SystemName: Int] = [:]
        public var parked = 0
        public var waiting = 0
        public var failed = 0
        public var conflicts = 0
    }

    /// Reads the counts (one statement, one snapshot) and sets the gauges.
    @discardableResult
    public func refresh() async throws -> Counts {
        let rows = try await pool.query(
            """
            select 'inflight', system, count(*) from write_slot group by system
            union all select 'parked', null, count(*) from parked
            union all select 'waiting', null, count(*) from waiting_change
            union all select 'failed', null, count(*) from failed
            union all select 'conflicts', null, count(*) from conflict
            """)
        var counts = Counts()
        for system in ParleyTopology.systems { counts.inflightWrites[system] = 0 }
        for row in rows {
            let count = try row.decode(Int.self, at: 2)
            switch try row.decode(String.self, at: 0) {
            case "inflight":
                if let system = SystemName(rawValue: try row.decode(String.self, at: 1)) { counts.inflightWrites[system] = count }
            case "parked": counts.parked = count
            case "waiting": counts.waiting = count
            case "failed": counts.failed = count
            default: counts.conflicts = count
            }
        }
        for (system, count) in counts.inflightWrites { Self.inflight[system.rawValue].record(count) }
        Self.parked[].record(counts.parked)
        Self.waiting[].record(counts.waiting)
        Self.failed[].record(counts.failed)
        Self.conflicts[].record(counts.conflicts)
        return counts
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await refresh()
            } catch {
                logger.debug("link gauges not refreshed", metadata: ["error": "\(error)"])
            }
            let interval = self.interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}

/// `parley_sync_latency_seconds{target}`: for every write a target confirmed (a `written` event
/// that completed the current write), the time from the newest source modification in the
/// entity's canonical state to when the link service recorded the confirmation.
///
/// What the data honestly has: each canonical field keeps the source's modification time of
/// the change that set it (`global_entity.provenance`), on the source system's own clock; the
/// written event carries no time of the change that caused it. So this measures "edited in the
/// source → confirmed written in the target", end to end (polling interval, queues, mapping,
/// the target's API, retries, parking), for the newest edit the entity holds. Caveats: clock
/// skew between the source system and the link service shifts it (negative values count as 0);
/// the first sync of a record edited long ago (an initial load, a match of pre-existing records)
/// shows as its age; when edits were coalesced, the newest one is measured.
public enum SyncLatency {
    public struct Write: Sendable, Hashable {
        public var global: UUID
        public var target: SystemName
    }

    static let seconds = MetricHandles { labels in CoreMetrics.Timer(label: "parley_sync_latency_seconds", dimensions: [("target", labels[0])]) }

    /// Looks up the entities' newest modification times (one query) and records a sample per write.
    public static func record(_ writes: [Write], pool: PostgresPool, logger: Logger, now: Date = Date()) async {
        let ids = Array(Set(writes.map(\.global)))
        do {
            let rows = try await pool.query(
                """
                select id::text, (select max((p.value ->> 'modifiedAt')::bigint) from jsonb_each(provenance) p)
                from global_entity where id in (select jsonb_array_elements_text($1::jsonb)::uuid)
                """, [PostgresJSON(JSONValue.array(ids.map { .string($0.lowercasedString) }).serializedString())])
            var modified: [UUID: Int64] = [:]
            for row in rows {
                guard let id = UUID(uuidString: try row.decode(String.self, at: 0)), let ms = try row.decode(Int64?.self, at: 1) else { continue }
                modified[id] = ms
            }
            let nowMilliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded())
            for write in writes {
                guard let ms = modified[write.global] else { continue }
                seconds[write.target.rawValue].recordNanoseconds(max(0, nowMilliseconds - ms) * 1_000_000)
            }
        } catch {
            logger.debug("sync latency not recorded", metadata: ["error": "\(error)"])
        }
    }
}
