import Foundation
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres

/// The adapters' own schema (`parley_adapter`): each system's feed positions. Migrations
/// compiled into the binary, as the link service's.
public enum AdapterSchema {
    public static let name = "parley_adapter"
    public static let migrations: [Migration] = [
        Migration(version: 1, name: "feed_position", sql: """
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
    ]
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
        guard let row = try await pool.query(
            "select since_ms, seen::text from parley_adapter.feed_position where system = $1 and entity_type = $2",
            [system.rawValue, entity.rawValue]).first else { return FeedPosition() }
        let since: Int64? = row.isNull(at: 0) ? nil : try row.decode(Int64.self, at: 0)
        let seen = try JSONValue.parse(try row.decode(String.self, at: 1)).array?.compactMap(\.string) ?? []
        return FeedPosition(since: since, seen: Set(seen))
    }

    public func save(_ position: FeedPosition, _ entity: CanonicalEntityType) async throws {
        let seen = JSONValue.array(position.seen.sorted().map(JSONValue.string)).serializedString()
        _ = try await pool.execute("""
            insert into parley_adapter.feed_position (system, entity_type, since_ms, seen) values ($1, $2, $3, $4)
            on conflict (system, entity_type) do update set since_ms = excluded.since_ms, seen = excluded.seen, updated_at = now()
            """, [system.rawValue, entity.rawValue, position.since, PostgresJSON(seen)])
    }

    /// When the last full rescan of the entity finished.
    public func rescannedAt(_ entity: CanonicalEntityType) async throws -> Date? {
        try await pool.query("select rescanned_at from parley_adapter.feed_position where system = $1 and entity_type = $2",
                             [system.rawValue, entity.rawValue]).first.flatMap { $0.isNull(at: 0) ? nil : try $0.decode(Date.self, at: 0) }
    }

    public func markRescanned(_ entity: CanonicalEntityType, at date: Date) async throws {
        _ = try await pool.execute("""
            insert into parley_adapter.feed_position (system, entity_type, rescanned_at) values ($1, $2, $3)
            on conflict (system, entity_type) do update set rescanned_at = excluded.rescanned_at
            """, [system.rawValue, entity.rawValue, date])
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
