import Foundation
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
import ParleyJSON
import ParleyEnvelope

/// The adapters' own schema (`parley_adapter`): each system's feed positions, the marks of
/// writes in steps, and the ids the feeds reported. Migrations compiled into the binary, as the
/// link service's.
public enum AdapterSchema {
    public static let name = "parley_adapter"
    public static let migrations: [Migration] = [
        Migration(
            version: 1, name: "feed_position",
            sql: """
                create schema if not exists parley_adapter;
                create table parley_adapter.feed_position (
                    system       text not null,
                    entity_type  text not null,
                    -- The newest modification time published (ms since 1970) and the records
                    -- already published within the overlap window before it ("id@ms").
                    since_ms     bigint,
                    seen         jsonb not null default '[]',
                    -- When the last full rescan finished.
                    rescanned_at timestamptz,
                    updated_at   timestamptz not null default now(),
                    primary key (system, entity_type)
                );
                """),
        // `parley resync`: an operator's request for a full re-read, kept until the poller
        // holding the lease has done one (so it survives restarts and reaches any replica).
        Migration(
            version: 2, name: "resync_requested_at",
            sql: """
                alter table parley_adapter.feed_position add column resync_requested_at timestamptz;
                """),
        // Writes that take several requests (PowerOffice Go's orders): the feed must not report
        // their intermediate states as edits (WriteMarkers).
        Migration(
            version: 3, name: "write_in_progress",
            sql: """
                create table parley_adapter.write_in_progress (
                    system       text not null,
                    entity_type  text not null,
                    native_id    text not null,
                    started_at   timestamptz not null default now(),
                    -- The record's modification time (ms since 1970) when the write ended; null
                    -- while it runs. Reports of the record older than this are the write's own steps.
                    settled_ms   bigint,
                    primary key (system, entity_type, native_id)
                );
                """),
        // Deletes the system's feed does not show (PowerOffice Go): the ids the feed has
        // reported, compared now and then with the ids the system lists (DeleteDetector).
        Migration(
            version: 4, name: "reported_id",
            sql: """
                create table parley_adapter.reported_id (
                    system       text not null,
                    entity_type  text not null,
                    native_id    text not null,
                    reported_at  timestamptz not null default now(),
                    primary key (system, entity_type, native_id)
                );
                -- When the last id reconciliation of the entity finished.
                alter table parley_adapter.feed_position add column reconciled_at timestamptz;
                """)
    ]
}

/// The ids of the records an entity's feed has reported (published as changes), for systems
/// that delete without saying so (``SystemConnector/listsIds(_:)``): ``DeleteDetector`` compares
/// them with the ids the system lists, publishes a delete for each one gone, and forgets it.
public struct ReportedIds: Sendable {
    let pool: PostgresPool
    let system: SystemName

    public init(pool: PostgresPool, system: SystemName) {
        self.pool = pool
        self.system = system
    }

    /// After the feed's changes of these records were published (confirmed).
    public func add(_ entity: CanonicalEntityType, _ ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        let list = PostgresJSON(JSONValue.array(ids.map(JSONValue.string)).serializedString())
        _ = try await pool.execute(
            """
            insert into parley_adapter.reported_id (system, entity_type, native_id)
            select $1, $2, id from jsonb_array_elements_text($3::jsonb) as ids(id)
            on conflict (system, entity_type, native_id) do nothing
            """, [system.rawValue, entity.rawValue, list])
    }

    /// Every id reported so far.
    public func all(_ entity: CanonicalEntityType) async throws -> Set<String> {
        var ids: Set<String> = []
        for row in try await pool.query(
            "select native_id from parley_adapter.reported_id where system = $1 and entity_type = $2",
            [system.rawValue, entity.rawValue])
        {
            ids.insert(try row.decode(String.self, at: 0))
        }
        return ids
    }

    /// After the record's delete was published: it is not reported again.
    public func remove(_ entity: CanonicalEntityType, _ id: String) async throws {
        _ = try await pool.execute(
            "delete from parley_adapter.reported_id where system = $1 and entity_type = $2 and native_id = $3",
            [system.rawValue, entity.rawValue, id])
    }
}

/// Writes that take several requests (``SystemConnector/writesInSteps(_:)``: PowerOffice Go's
/// orders, whose lines are replaced one by one between unlocking and locking the order). Their
/// intermediate states show in the system's feed with a modification time of their own; read
/// as changes they would look like edits in that system (an order back to draft, half its
/// lines) and flow everywhere. So the writer marks the record before its first request and
/// settles the mark with the record's modification time after its last, and the poller leaves
/// out a report of a marked record that is older than that — or any report while the write is
/// still running. The write's end state has that time or a later one, so the next poll reports
/// it (and the link service drops it as the echo it is); an edit someone makes meanwhile is in
/// that or a later report. Marks are shared by all of one system's adapter replicas (its
/// database) and expire after ``lifetime`` (a writer that died mid-write).
public struct WriteMarkers: Sendable {
    let pool: PostgresPool
    let system: SystemName
    public static let lifetime: Duration = .seconds(600)

    public init(pool: PostgresPool, system: SystemName) {
        self.pool = pool
        self.system = system
    }

    /// Before the write's first request. `true`: an earlier write of the record is still marked
    /// running — it died half-way (the process killed) or failed half-way and is to be retried
    /// (the writer left its mark unsettled) — so what the record holds now may be that write's half, which this
    /// write is to finish, not anyone's edit.
    @discardableResult
    public func begin(_ entity: CanonicalEntityType, id: String) async throws -> Bool {
        let rows = try await pool.query(
            """
            with earlier as (
                select settled_ms is null and started_at > now() - make_interval(secs => $4) as running
                from parley_adapter.write_in_progress where system = $1 and entity_type = $2 and native_id = $3
            )
            insert into parley_adapter.write_in_progress (system, entity_type, native_id) values ($1, $2, $3)
            on conflict (system, entity_type, native_id) do update set started_at = now(), settled_ms = null
            returning coalesce((select running from earlier), false)
            """, [system.rawValue, entity.rawValue, id, Self.lifetime.components.seconds])
        return try rows.first?.decode(Bool.self, at: 0) ?? false
    }

    /// After its last: `modifiedAt` is the record's modification time as the write left it;
    /// `nil` (the write failed half-way, or the system did not say) settles at the current time.
    public func settle(_ entity: CanonicalEntityType, id: String, modifiedAt: Int64?) async throws {
        _ = try await pool.execute(
            """
            update parley_adapter.write_in_progress
            set settled_ms = coalesce($4, (extract(epoch from clock_timestamp()) * 1000)::bigint)
            where system = $1 and entity_type = $2 and native_id = $3
            """, [system.rawValue, entity.rawValue, id, modifiedAt])
    }

    /// Which of these reports (id, modification time in ms) are a marked write's own steps.
    public func hidden(_ entity: CanonicalEntityType, _ reports: [(id: String, modifiedAt: Int64?)]) async throws -> Set<String> {
        guard !reports.isEmpty else { return [] }
        let ids = PostgresJSON(JSONValue.array(reports.map { .string($0.id) }).serializedString())
        var settled: [String: Int64?] = [:]
        for row in try await pool.query(
            """
            select native_id, settled_ms from parley_adapter.write_in_progress
            where system = $1 and entity_type = $2 and native_id = any(array(select jsonb_array_elements_text($3::jsonb)))
              and started_at > now() - make_interval(secs => $4)
            """, [system.rawValue, entity.rawValue, ids, Self.lifetime.components.seconds])
        {
            settled[try row.decode(String.self, at: 0)] = row.isNull(at: 1) ? .some(nil) : try row.decode(Int64.self, at: 1)
        }
        var hidden: Set<String> = []
        for report in reports {
            guard let mark = settled[report.id] else { continue }
            // Running: any report may be a step. Settled: only the older ones are.
            if let end = mark, let at = report.modifiedAt, at >= end { continue }
            hidden.insert(report.id)
        }
        return hidden
    }

    /// Drops expired marks.
    public func prune() async throws {
        _ = try await pool.execute(
            "delete from parley_adapter.write_in_progress where system = $1 and started_at <= now() - make_interval(secs => $2)",
            [system.rawValue, Self.lifetime.components.seconds])
    }
}

/// Reads and writes feed positions.
public struct FeedPositionStore: Sendable {
    let pool: PostgresPool
    let system: SystemName

    public init(pool: PostgresPool, system: SystemName) {
        self.pool = pool
        self.system = system
    }

    public func load(_ entity: CanonicalEntityType) async throws -> FeedPosition {
        guard
            let row = try await pool.query(
                "select since_ms, seen::text from parley_adapter.feed_position where system = $1 and entity_type = $2",
                [system.rawValue, entity.rawValue]
            ).first
        else { return FeedPosition() }
        let since: Int64? = row.isNull(at: 0) ? nil : try row.decode(Int64.self, at: 0)
        let seen = try JSONValue.parse(try row.decode(String.self, at: 1)).array?.compactMap(\.string) ?? []
        return FeedPosition(since: since, seen: Set(seen))
    }

    public func save(_ position: FeedPosition, _ entity: CanonicalEntityType) async throws {
        let seen = JSONValue.array(position.seen.sorted().map(JSONValue.string)).serializedString()
        _ = try await pool.execute(
            """
            insert into parley_adapter.feed_position (system, entity_type, since_ms, seen) values ($1, $2, $3, $4)
            on conflict (system, entity_type) do update set since_ms = excluded.since_ms, seen = excluded.seen, updated_at = now()
            """, [system.rawValue, entity.rawValue, position.since, PostgresJSON(seen)])
    }

    /// When the last full rescan of the entity finished.
    public func rescannedAt(_ entity: CanonicalEntityType) async throws -> Date? {
        try await pool.query(
            "select rescanned_at from parley_adapter.feed_position where system = $1 and entity_type = $2",
            [system.rawValue, entity.rawValue]
        ).first.flatMap { $0.isNull(at: 0) ? nil : try $0.decode(Date.self, at: 0) }
    }

    public func markRescanned(_ entity: CanonicalEntityType, at date: Date) async throws {
        _ = try await pool.execute(
            """
            insert into parley_adapter.feed_position (system, entity_type, rescanned_at) values ($1, $2, $3)
            on conflict (system, entity_type) do update set rescanned_at = excluded.rescanned_at
            """, [system.rawValue, entity.rawValue, date])
    }

    /// When the last id reconciliation of the entity finished (``DeleteDetector``).
    public func reconciledAt(_ entity: CanonicalEntityType) async throws -> Date? {
        try await pool.query(
            "select reconciled_at from parley_adapter.feed_position where system = $1 and entity_type = $2",
            [system.rawValue, entity.rawValue]
        ).first.flatMap { $0.isNull(at: 0) ? nil : try $0.decode(Date.self, at: 0) }
    }

    public func markReconciled(_ entity: CanonicalEntityType, at date: Date) async throws {
        _ = try await pool.execute(
            """
            insert into parley_adapter.feed_position (system, entity_type, reconciled_at) values ($1, $2, $3)
            on conflict (system, entity_type) do update set reconciled_at = excluded.reconciled_at
            """, [system.rawValue, entity.rawValue, date])
    }
}

/// Requests for a full re-read (`parley resync`): a time in `resync_requested_at` of the feed
/// position's row. The poller that holds the system's lease sees it at its next poll, rescans
/// the entity and clears the request, unless a newer one arrived meanwhile.
extension FeedPositionStore {
    /// Asks for a full re-read of `entities` (every entity type when empty); returns the
    /// request's time (the database's clock).
    @discardableResult
    public static func requestResync(pool: PostgresPool, system: SystemName, entities: [CanonicalEntityType] = []) async throws -> Date {
        let types = (entities.isEmpty ? CanonicalEntityType.allCases : entities).map(\.rawValue)
        var requested = Date()
        for type in types {
            let row = try await pool.query(
                """
                insert into parley_adapter.feed_position (system, entity_type, resync_requested_at) values ($1, $2, now())
                on conflict (system, entity_type) do update set resync_requested_at = now()
                returning resync_requested_at
                """, [system.rawValue, type])
            if let first = row.first { requested = try first.decode(Date.self, at: 0) }
        }
        return requested
    }

    /// Pending requests of a system: entity type → when it was asked for.
    public static func pendingResyncs(pool: PostgresPool, system: SystemName) async throws -> [CanonicalEntityType: Date] {
        var pending: [CanonicalEntityType: Date] = [:]
        for row in try await pool.query(
            """
            select entity_type, resync_requested_at from parley_adapter.feed_position
            where system = $1 and resync_requested_at is not null
            """, [system.rawValue])
        {
            if let type = CanonicalEntityType(rawValue: try row.decode(String.self, at: 0)) { pending[type] = try row.decode(Date.self, at: 1) }
        }
        return pending
    }

    /// When a full re-read of the entity was requested and not yet done.
    public func resyncRequested(_ entity: CanonicalEntityType) async throws -> Date? {
        try await pool.query(
            "select resync_requested_at from parley_adapter.feed_position where system = $1 and entity_type = $2",
            [system.rawValue, entity.rawValue]
        ).first.flatMap { $0.isNull(at: 0) ? nil : try $0.decode(Date.self, at: 0) }
    }

    /// Clears the request answered by a rescan that started after it was made; a request made
    /// during the rescan stays (the exact time read before is compared, in the database's clock).
    public func clearResync(_ entity: CanonicalEntityType, requestedAt: Date) async throws {
        _ = try await pool.execute(
            """
            update parley_adapter.feed_position set resync_requested_at = null
            where system = $1 and entity_type = $2 and resync_requested_at <= $3
            """, [system.rawValue, entity.rawValue, requestedAt])
    }
}

/// Exactly one replica polls a system: the holder of a PostgreSQL session-level advisory lock,
/// kept on a connection of its own. If the holder dies its session ends, the lock is released,
/// and another replica's next `acquire` gets it.
public actor PollLease {
    let configuration: PostgresConfiguration
    let key: String
    private var connection: PostgresConnection?
    /// The backend holding the lock. A connection that silently reconnected has a new backend
    /// and no lock, so the pid, not the connection object, says whether the lease is held.
    private var backend: Int32?

    public init(configuration: PostgresConfiguration, system: SystemName) {
        self.configuration = configuration
        self.key = "parley-poll:\(system.rawValue)"
    }

    /// Whether this replica holds the lease now: checks a held lease's connection is alive,
    /// tries to take a free one.
    public func holds() async -> Bool {
        if let connection {
            if let pid = try? await connection.query("select pg_backend_pid()")[0].decode(Int32.self, at: 0), pid == backend {
                return true
            }
            await connection.close()
            self.connection = nil
        }
        do {
            let connection = try await PostgresConnection.connect(configuration)
            let row = try await connection.query("select pg_try_advisory_lock(hashtextextended($1, 0)), pg_backend_pid()", [key])[0]
            if try row.decode(Bool.self, at: 0) {
                self.connection = connection
                self.backend = try row.decode(Int32.self, at: 1)
                return true
            }
            await connection.close()
            return false
        } catch {
            return false
        }
    }

    /// Gives the lease up (on shutdown), so another replica takes over at once.
    public func release() async {
        guard let connection else { return }
        _ = try? await connection.query("select pg_advisory_unlock(hashtextextended($1, 0))", [key])
        await connection.close()
        self.connection = nil
    }
}
