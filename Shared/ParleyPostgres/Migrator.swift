import Foundation
import ParleyCore
import Logging

/// One versioned schema change.
public struct Migration: Sendable, Hashable {
    public let version: Int64
    public let name: String
    public let sql: String
    /// SHA-256 (hex) of the SQL text; recorded when applied, compared on every run.
    public var checksum: String { SHA256.hex(Array(sql.utf8)) }

    public init(version: Int64, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Loads every `*.sql` file of `directory`, named `<digits>_<name>.sql` (e.g.
    /// `0001_create_users.sql`; name characters a-z A-Z 0-9 _ -). Other files are ignored.
    /// A `.sql` file with another name, or two files with the same version, is an error.
    public static func load(directory: URL) throws -> [Migration] {
        func fail(_ why: String) -> PostgresError { PostgresError(kind: .migration, message: why) }
        let files: [URL]
        do {
            files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        } catch {
            throw fail("cannot list migrations directory \(directory.path): \(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        for file in files where file.pathExtension == "sql" {
            let base = file.deletingPathExtension().lastPathComponent
            guard let underscore = base.firstIndex(of: "_") else {
                throw fail("bad migration file name '\(file.lastPathComponent)': expected <version>_<name>.sql")
            }
            let digits = base[..<underscore]
            let name = base[base.index(after: underscore)...]
            let nameOK =
                !name.isEmpty
                && name.unicodeScalars.allSatisfy {
                    ($0.isASCII && (CharacterSet.alphanumerics.contains($0))) || $0 == "_" || $0 == "-"
                }
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let version = Int64(digits), nameOK else {
                throw fail("bad migration file name '\(file.lastPathComponent)': expected <version>_<name>.sql")
            }
            let sql: String
            do { sql = try String(contentsOf: file, encoding: .utf8) } catch {
                throw fail("cannot read migration \(file.lastPathComponent): \(error.localizedDescription)")
            }
            migrations.append(Migration(version: version, name: String(name), sql: sql))
        }
        return try Migrator.validated(migrations)
    }
}

/// What one `Migrator.migrate` run did.
public struct MigrationReport: Sendable, Equatable {
    /// Versions applied by this run, in order.
    public var applied: [Int64]
    /// Versions that were already recorded before this run.
    public var alreadyApplied: [Int64]
}

/// Applies versioned migrations exactly once each.
///
/// - Every pending migration (ordered by version) runs inside its own transaction, together
///   with its row in `<schema>.parley_schema_migrations(version, name, checksum, applied_at)`.
/// - A recorded migration whose checksum differs from the given SQL is an error (an applied
///   migration was edited); nothing is applied then.
/// - Several replicas may run it at once: the whole run holds the session-level advisory lock
///   `pg_advisory_lock(Migrator.advisoryLockKey)` on one connection, so a second runner waits,
///   then finds nothing to do. The lock is released at the end (or when the session dies).
/// - `schema` selects where the history table lives (created if missing), so each service can
///   keep its own; the migrations' own SQL is run as written (no search_path change).
public struct Migrator: Sendable {
    /// The advisory lock key: 0x5041524C45594D47, the ASCII bytes "PARLEYMG".
    public static let advisoryLockKey: Int64 = 0x5041_524C_4559_4D47

    public let migrations: [Migration]
    public let schema: PostgresIdentifier
    let logger: Logger

    public init(migrations: [Migration], schema: String = "public", logger: Logger = Logger(label: "parley.postgres.migrator")) throws {
        self.migrations = try Self.validated(migrations)
        self.schema = try PostgresIdentifier(schema)
        self.logger = logger
    }

    public init(directory: URL, schema: String = "public", logger: Logger = Logger(label: "parley.postgres.migrator")) throws {
        try self.init(migrations: Migration.load(directory: directory), schema: schema, logger: logger)
    }

    static func validated(_ migrations: [Migration]) throws -> [Migration] {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.version == b.version {
            throw PostgresError(kind: .migration, message: "duplicate migration version \(a.version): '\(a.name)' and '\(b.name)'")
        }
        if let bad = sorted.first(where: { $0.version < 0 }) {
            throw PostgresError(kind: .migration, message: "migration version must not be negative: \(bad.version)")
        }
        return sorted
    }

    /// Runs pending migrations on one connection leased from `pool` for the whole run.
    @discardableResult
    public func migrate(on pool: PostgresPool) async throws -> MigrationReport {
        try await pool.withConnection { try await migrate(on: $0) }
    }

    /// Runs pending migrations on `connection` (one job on its thread: the advisory lock
    /// wait blocks that dedicated thread, not the cooperative pool).
    @discardableResult
    public func migrate(on connection: PostgresConnection) async throws -> MigrationReport {
        let migrations = self.migrations
        let schema = self.schema
        let logger = self.logger
        return try await connection.onThread { session in
            try Self.run(migrations, schema: schema, session: session, logger: logger)
        }
    }

    private static func run(
        _ migrations: [Migration], schema: PostgresIdentifier, session: PGSession, logger: Logger
    ) throws -> MigrationReport {
        // Only here may a broken session be replaced: after the lock is taken, a lost
        // connection (and with it the lock) must end the run with an error.
        try session.ensureConnected()
        _ = try session.execute("SELECT pg_advisory_lock($1)", [advisoryLockKey])
        defer {
            if session.isConnected {
                if !session.isIdle { _ = try? session.execute("ROLLBACK", []) }
                _ = try? session.execute("SELECT pg_advisory_unlock($1)", [advisoryLockKey])
            }
        }
        let table = schema.quoted + ".parley_schema_migrations"
        _ = try session.execute("CREATE SCHEMA IF NOT EXISTS " + schema.quoted, [])
        _ = try session.execute(
            "CREATE TABLE IF NOT EXISTS " + table + " ("
                + "version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
                + "applied_at timestamptz NOT NULL DEFAULT now())", [])
        var recorded: [Int64: (name: String, checksum: String)] = [:]
        for row in try session.execute("SELECT version, name, checksum FROM " + table + " ORDER BY version", []).rows {
            recorded[try row.decode(Int64.self, column: "version")] =
                (try row.decode(String.self, column: "name"), try row.decode(String.self, column: "checksum"))
        }
        let known = Set(migrations.map(\.version))
        for version in recorded.keys.sorted() where !known.contains(version) {
            logger.warning("database has migration \(version) that this code does not know (newer deployment?)")
        }
        for m in migrations {
            if let r = recorded[m.version], r.checksum != m.checksum {
                throw PostgresError(
                    kind: .migration,
                    message:
                        "checksum mismatch for applied migration \(m.version) '\(m.name)': it was edited after being applied (recorded \(r.checksum.prefix(12)), file \(m.checksum.prefix(12))); add a new migration instead"
                )
            }
        }
        var applied: [Int64] = []
        for m in migrations where recorded[m.version] == nil {
            logger.info("applying migration \(m.version) \(m.name)")
            do {
                try session.runTransaction(isolation: .readCommitted, retryBegin: false) { tx in
                    try tx.session.executeScript(m.sql)
                    try tx.execute(
                        "INSERT INTO " + table + " (version, name, checksum) VALUES ($1, $2, $3)",
                        [m.version, m.name, m.checksum])
                }
            } catch let error as PostgresError {
                var e = error
                e.message = "migration \(m.version) '\(m.name)' failed: " + e.message
                throw e
            }
            applied.append(m.version)
        }
        return MigrationReport(applied: applied, alreadyApplied: recorded.keys.sorted())
    }
}

extension Migrator {
    /// ``migrate(on:)-swift.method``, waiting for the database: while PostgreSQL cannot be
    /// reached (not up yet, restarting, failing over) the run is tried again with backoff —
    /// 0.5 s doubling to at most 10 s, logged each time — so a service started before its
    /// database comes up starts when the database does instead of exiting. Any other error (a
    /// migration that fails, a changed checksum) is thrown at once; so is cancellation.
    @discardableResult
    public func migrateWhenReachable(on pool: PostgresPool) async throws -> MigrationReport {
        var backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(10), jitter: 0)
        while true {
            do {
                return try await migrate(on: pool)
            } catch let error as PostgresError where error.isConnectionError {
                let delay = backoff.next()
                logger.warning("database unreachable; migrating when it is", metadata: ["error": "\(error)", "retryIn": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }
}
