import Foundation
import Testing
import ParleyTestSupport
@testable import ParleyPostgres

/// Every test that needs the server lives under this one serialized suite: the restart
/// test disrupts the server for everyone. Each test uses its own scratch database.
@Suite(.serialized) struct PostgresServerTests {}

// MARK: - Types

extension PostgresServerTests {
    @Suite struct Types {
        /// `select $1 as v` with the parameter's declared type; checks the server saw that type.
        func roundTrip<T: PostgresCodable>(_ pool: PostgresPool, _ value: T) async throws -> T {
            let rows = try await pool.query("select $1 as v", [value])
            #expect(rows.count == 1)
            #expect(rows[0].columns.types[0] == T.postgresDataType)
            return try rows[0].decode(T.self, column: "v")
        }

        @Test func everyTypeRoundTrips() async throws {
            try await TestServer.withScratchPool { pool in
                #expect(try await roundTrip(pool, "héllo ✓ 'quoted' \\ back") == "héllo ✓ 'quoted' \\ back")
                #expect(try await roundTrip(pool, "") == "")
                #expect(try await roundTrip(pool, Int.max) == Int.max)
                #expect(try await roundTrip(pool, Int.min) == Int.min)
                #expect(try await roundTrip(pool, Int64(-42)) == -42)
                #expect(try await roundTrip(pool, Int32.max) == Int32.max)
                #expect(try await roundTrip(pool, true) == true)
                #expect(try await roundTrip(pool, false) == false)
                #expect(try await roundTrip(pool, 0.1 + 0.2) == 0.1 + 0.2)
                let uuid = UUID()
                #expect(try await roundTrip(pool, uuid) == uuid)
                let bytes: [UInt8] = [0, 1, 2, 0x7f, 0x80, 0xff, 0x00, 0x27]
                #expect(try await roundTrip(pool, bytes) == bytes)
                #expect(try await roundTrip(pool, [UInt8]()) == [])
                #expect(try await roundTrip(pool, Data(bytes)) == Data(bytes))

                struct Doc: Codable, Equatable { var name: String; var tags: [String]; var n: Int }
                let doc = Doc(name: "a\"b", tags: ["x", "ü"], n: 3)
                let json = try await roundTrip(pool, try PostgresJSON(encoding: doc))
                #expect(try json.decode(Doc.self) == doc)

                // An int column decodes as Int, Int64 and exactly as Decimal.
                let ints = try await pool.query("select 7::int4 as a, 8::int2 as b, 9::int8 as c")
                #expect(try ints[0].decode(Int.self, column: "a") == 7)
                #expect(try ints[0].decode(Int64.self, column: "b") == 8)
                #expect(try ints[0].decode(Decimal.self, column: "c") == 9)
            }
        }

        @Test func decimalsAreExact() async throws {
            try await TestServer.withScratchPool { pool in
                for text in ["12345678901234567890.123456789", "-0.01", "0", "0.1", "-99999999999999999999.99"] {
                    let d = try PostgresNumeric.parse(text)
                    // What the server stored, seen as text, is exactly what we sent...
                    let rows = try await pool.query("select $1 as v, $1::text as t", [d])
                    #expect(try rows[0].decode(String.self, column: "t") == text)
                    // ... and it comes back equal.
                    #expect(try rows[0].decode(Decimal.self, column: "v") == d)
                }
                // Server-side arithmetic stays exact.
                let sum = try await pool.query(
                    "select $1 + $2 as s", [try PostgresNumeric.parse("0.1"), try PostgresNumeric.parse("0.2")])
                #expect(try sum[0].decode(Decimal.self, column: "s") == PostgresNumeric.parse("0.3"))
                let big = try await pool.query("select 12345678901234567890.123456789::numeric as v")
                #expect(try big[0].decode(Decimal.self, column: "v") == PostgresNumeric.parse("12345678901234567890.123456789"))
            }
        }

        @Test func datesRoundTripWithinAMicrosecond() async throws {
            try await TestServer.withScratchPool { pool in
                let fixed = Date(timeIntervalSince1970: 1_700_000_000.123456)
                let rows = try await pool.query("select $1 as v, $1::text as t", [fixed])
                #expect(try rows[0].decode(String.self, column: "t") == "2023-11-14 22:13:20.123456+00")
                for date in [fixed, Date(), Date(timeIntervalSince1970: -1_234_567_890.000001)] {
                    let back = try await roundTrip(pool, date)
                    #expect(abs(back.timeIntervalSince(date)) < 0.000001)
                }
                // The session is in UTC: now() comes back as a +00 timestamp.
                let now = try await pool.query("select now()::text as t, now() as n")
                #expect(try now[0].decode(String.self, column: "t").hasSuffix("+00"))
                #expect(abs(try now[0].decode(Date.self, column: "n").timeIntervalSinceNow) < 60)
            }
        }

        @Test func everyTypeAsNull() async throws {
            try await TestServer.withScratchPool { pool in
                func null<T: PostgresCodable>(_ type: T.Type) async throws {
                    let rows = try await pool.query("select $1 as v", [T?.none])
                    #expect(rows[0].columns.types[0] == T.postgresDataType, "\(T.self)")
                    #expect(rows[0].isNull(at: 0))
                    #expect(try rows[0].decode(T?.self, column: "v") == nil)
                    // A non-optional decode of NULL is a clear error naming the column.
                    let error = #expect(throws: PostgresError.self) { try rows[0].decode(T.self, column: "v") }
                    #expect(error?.kind == .decoding)
                    #expect(error?.column == "v")
                    #expect(error?.message.contains("NULL") == true)
                }
                try await null(String.self)
                try await null(Int.self)
                try await null(Int64.self)
                try await null(Int32.self)
                try await null(Bool.self)
                try await null(Double.self)
                try await null(Decimal.self)
                try await null(Date.self)
                try await null(UUID.self)
                try await null(PostgresJSON.self)
                try await null([UInt8].self)
                try await null(Data.self)

                // And stored in typed columns.
                try await pool.execute(
                    """
                    create table n (s text, i bigint, b bool, d numeric, t timestamptz, u uuid, j jsonb, y bytea)
                    """)
                let inserted = try await pool.execute(
                    "insert into n values ($1, $2, $3, $4, $5, $6, $7, $8)",
                    [String?.none, Int?.none, Bool?.none, Decimal?.none, Date?.none, UUID?.none, PostgresJSON?.none, [UInt8]?.none])
                #expect(inserted == 1)
                let row = try #require(try await pool.query("select * from n").first)
                #expect(row.values.allSatisfy { $0 == nil })
                #expect(try row.decode(Decimal?.self, column: "d") == nil)
                #expect(try row.decode(Date?.self, column: "t") == nil)
            }
        }

        @Test func rowsByNameAndIndexWithClearMismatchErrors() async throws {
            try await TestServer.withScratchPool { pool in
                let row = try #require(try await pool.query("select 'abc'::text as name, 5 as n").first)
                #expect(try row.decode(String.self, at: 0) == "abc")
                #expect(try row["n", as: Int.self] == 5)
                #expect(try row[1, as: Int32.self] == 5)
                let mismatch = #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "name") }
                #expect(mismatch?.kind == .decoding)
                #expect(mismatch?.description.contains("\"name\"") == true)
                #expect(mismatch?.description.contains("(text)") == true)
                #expect(mismatch?.description.contains("Int") == true)
                let missing = #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "nope") }
                #expect(missing?.message.contains("nope") == true)
                #expect(throws: PostgresError.self) { try row.decode(Int.self, at: 9) }
            }
        }

        @Test func hostileStringsAreStoredLiterally() async throws {
            try await TestServer.withScratchPool { pool in
                try await pool.execute("create table x (s text not null)")
                let evil = "'); drop table x; --"
                #expect(try await pool.execute("insert into x (s) values ($1)", [evil]) == 1)
                let quote = "\"; select pg_sleep(10); -- $1 \\'"
                try await pool.execute("insert into x (s) values ($1)", [quote])
                let rows = try await pool.query("select s from x where s = $1", [evil])
                #expect(try rows.map { try $0.decode(String.self, column: "s") } == [evil])
                let count = try await pool.query("select count(*) as c from x")
                #expect(try count[0].decode(Int.self, column: "c") == 2)
            }
        }
    }
}

// MARK: - Transactions and errors

extension PostgresServerTests {
    @Suite struct Transactions {
        struct Boom: Error {}

        @Test func throwRollsBackAndReturnCommits() async throws {
            try await TestServer.withScratchPool { pool in
                try await pool.execute("create table t (id int primary key, note text)")
                await #expect(throws: Boom.self) {
                    try await pool.transaction { tx in
                        try tx.execute("insert into t values ($1, $2)", [1, "rolled back"])
                        #expect(try tx.query("select count(*) as c from t")[0].decode(Int.self, column: "c") == 1)
                        throw Boom()
                    }
                }
                #expect(try await pool.query("select * from t where id = $1", [1]).isEmpty)

                let returned = try await pool.transaction { tx -> Int in
                    try tx.execute("insert into t values ($1, $2)", [2, "kept"])
                    try tx.execute("insert into t values ($1, $2)", [3, "kept"])
                    return try tx.query("select count(*) as c from t")[0].decode(Int.self, column: "c")
                }
                #expect(returned == 2)
                let ids = try await pool.query("select id from t order by id").map { try $0.decode(Int.self, column: "id") }
                #expect(ids == [2, 3])
            }
        }

        @Test func isolationLevels() async throws {
            try await TestServer.withScratchPool { pool in
                let level = try await pool.transaction(isolation: .serializable) { tx in
                    try tx.query("show transaction_isolation")[0].decode(String.self, at: 0)
                }
                #expect(level == "serializable")
                let dflt = try await pool.transaction { tx in
                    try tx.query("show transaction_isolation")[0].decode(String.self, at: 0)
                }
                #expect(dflt == "read committed")
            }
        }

        @Test func failedCommitPropagates() async throws {
            try await TestServer.withScratchPool { pool in
                try await pool.execute("create table p (id int primary key)")
                try await pool.execute("create table c (pid int references p deferrable initially deferred)")
                // The deferred foreign key is checked at COMMIT, which fails.
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.transaction { tx in try tx.execute("insert into c values ($1)", [Int32(99)]) }
                }
                #expect(error?.isForeignKeyViolation == true)
                #expect(try await pool.query("select * from c").isEmpty)

                // A body that swallows a statement error cannot commit: the server turns
                // COMMIT into ROLLBACK, and we say so.
                let aborted = await #expect(throws: PostgresError.self) {
                    try await pool.transaction { tx in
                        try tx.execute("insert into p values ($1)", [Int32(1)])
                        _ = try? tx.execute("insert into p values ($1)", [Int32(1)])
                    }
                }
                #expect(aborted?.kind == .transactionAborted)
                #expect(try await pool.query("select * from p").isEmpty)
            }
        }

        @Test func serverErrorsCarrySQLStateAndPoolStaysUsable() async throws {
            try await TestServer.withScratchPool(max: 1) { pool in
                try await pool.execute("create table u (id int primary key)")
                try await pool.execute("insert into u values ($1)", [Int32(1)])
                let dup = await #expect(throws: PostgresError.self) {
                    try await pool.execute("insert into u values ($1)", [Int32(1)])
                }
                #expect(dup?.kind == .server)
                #expect(dup?.sqlState == "23505")
                #expect(dup?.isUniqueViolation == true)
                #expect(dup?.constraint == "u_pkey")
                #expect(dup?.detail?.contains("(id)=(1)") == true)
                #expect(dup.map { $0.description.contains("[23505]") && !$0.description.contains("\n") } == true)

                let syntax = await #expect(throws: PostgresError.self) { try await pool.query("selec 1") }
                #expect(syntax?.sqlState == "42601")
                #expect(syntax?.isSyntaxError == true)

                // Same (single) connection, still fine — also after an error inside a transaction.
                await #expect(throws: PostgresError.self) {
                    try await pool.transaction { tx in try tx.execute("insert into u values ($1)", [Int32(1)]) }
                }
                #expect(try await pool.query("select count(*) from u")[0].decode(Int.self, at: 0) == 1)
            }
        }

        @Test func transactionLeftOpenByHandIsRolledBackBeforeReuse() async throws {
            try await TestServer.withScratchPool(max: 1) { pool in
                try await pool.execute("create table t (id int)")
                try await pool.withConnection { c in
                    try await c.execute("begin")
                    try await c.execute("insert into t values ($1)", [Int32(1)])
                }
                #expect(try await pool.query("select * from t").isEmpty)
                _ = try await pool.transaction { tx in try tx.execute("insert into t values ($1)", [Int32(2)]) }
                #expect(try await pool.query("select count(*) from t")[0].decode(Int.self, at: 0) == 1)
            }
        }
    }
}

// MARK: - Concurrency and reconnects

extension PostgresServerTests {
    @Suite struct PoolBehaviour {
        @Test func manyConcurrentQueriesThroughFourConnections() async throws {
            try await TestServer.withScratchDatabase { config in
                try await TestServer.withPool(config, max: 4) { pool in
                    let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                        for i in 0..<200 {
                            group.addTask {
                                let rows = try await pool.query("select $1 * 2 as v, pg_backend_pid() as pid", [i])
                                return (i, try rows[0].decode(Int.self, column: "v"))
                            }
                        }
                        var out: [(Int, Int)] = []
                        for try await r in group { out.append(r) }
                        return out
                    }
                    #expect(results.count == 200)
                    #expect(results.allSatisfy { $0.1 == $0.0 * 2 })
                    let sessions = try await pool.query(
                        "select count(*) from pg_stat_activity where datname = $1 and application_name = $2",
                        [config.database, config.applicationName])
                    #expect(try sessions[0].decode(Int.self, at: 0) <= 4)
                }
            }
        }

        @Test func reconnectsAfterBackendIsTerminated() async throws {
            try await TestServer.withScratchPool(max: 1) { pool in
                let pid = try await pool.query("select pg_backend_pid()")[0].decode(Int32.self, at: 0)
                // The session kills itself: a connection-level error (57P01), retried once on a
                // fresh connection (which kills itself too), then thrown.
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.query("select pg_terminate_backend(pg_backend_pid())")
                }
                #expect(error?.isConnectionError == true)
                // The broken connection was discarded; the next use reconnects.
                let newPid = try await pool.query("select pg_backend_pid()")[0].decode(Int32.self, at: 0)
                #expect(newPid != pid)
            }
        }

        @Test func connectionErrorInsideTransactionIsThrown() async throws {
            try await TestServer.withScratchPool(max: 1) { pool in
                try await pool.execute("create table t (id int)")
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.transaction { tx in
                        try tx.execute("insert into t values ($1)", [Int32(1)])
                        _ = try tx.query("select pg_terminate_backend(pg_backend_pid())")
                    }
                }
                #expect(error?.isConnectionError == true)
                #expect(error?.kind == .connectionLost)
                // Not retried, not committed; the pool reconnects for the next use.
                #expect(try await pool.query("select count(*) from t")[0].decode(Int.self, at: 0) == 0)
            }
        }

        @Test func closedPoolRejectsWork() async throws {
            let config = try TestServer.baseConfiguration()
            let pool = PostgresPool(configuration: config, maxConnections: 1)
            #expect(try await pool.query("select 1")[0].decode(Int32.self, at: 0) == 1)
            await pool.close()
            let error = await #expect(throws: PostgresError.self) { try await pool.query("select 1") }
            #expect(error?.kind == .closed)
        }

        @Test func poolRecoversAfterServerRestart() async throws {
            // No other suite may use the server while it restarts.
            try await ServerDisruption.exclusive { try await restartAlone() }
        }

        func restartAlone() async throws {
            try await TestServer.withScratchDatabase { config in
                try await TestServer.withPool(config, max: 2) { pool in
                    // Open both connections so both are stale after the restart.
                    async let a = pool.query("select pg_sleep(0.2), 1")
                    async let b = pool.query("select pg_sleep(0.2), 2")
                    _ = try await (a, b)

                    try await TestServer.restartServer()

                    // pg_ctl -w returned, so the server accepts connections; allow a bounded
                    // window for it to finish starting, but no fixed sleeps.
                    let deadline = Date().addingTimeInterval(30)
                    var attempts = 0
                    var lastError: (any Error)?
                    var recovered = false
                    while Date() < deadline {
                        attempts += 1
                        do {
                            let v = try await pool.query("select $1 + 1", [41])[0].decode(Int.self, at: 0)
                            #expect(v == 42)
                            recovered = true
                            break
                        } catch {
                            lastError = error
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                    #expect(recovered, "pool did not recover after restart (\(attempts) attempts, last: \(String(describing: lastError)))")
                    // Both pooled connections work again, concurrently.
                    async let c = pool.query("select pg_sleep(0.1), 3")
                    async let d = pool.query("select pg_sleep(0.1), 4")
                    _ = try await (c, d)
                }
            }
        }
    }
}

// MARK: - Migrations

extension PostgresServerTests {
    @Suite struct Migrations {
        static let base: [Migration] = [
            Migration(
                version: 1, name: "create_log",
                sql: """
                    create table migration_log (version int not null, at timestamptz not null default now());
                    select pg_sleep(0.3); -- widen the window in which runners overlap
                    insert into migration_log (version) values (1);
                    """),
            Migration(
                version: 2, name: "create_items",
                sql: """
                    create table items (id uuid primary key, price numeric(20, 4) not null);
                    insert into migration_log (version) values (2);
                    """),
            Migration(
                version: 3, name: "index_items",
                sql: """
                    create index items_price on items (price);
                    insert into migration_log (version) values (3);
                    """)
        ]

        func versions(_ pool: PostgresPool, table: String) async throws -> [Int64] {
            // The table name is fixed text from this test, not input.
            try await pool.query("select version from " + table + " order by version").map { try $0.decode(Int64.self, at: 0) }
        }

        @Test func concurrentRunnersApplyEachMigrationOnce() async throws {
            try await TestServer.withScratchDatabase { config in
                try await TestServer.withPool(config, max: 2) { poolA in
                    try await TestServer.withPool(config, max: 2) { poolB in
                        let migrator = try Migrator(migrations: Self.base)
                        async let ra = migrator.migrate(on: poolA)
                        async let rb = migrator.migrate(on: poolB)
                        let (a, b) = try await (ra, rb)
                        // One runner did everything; the other waited for the lock, then found nothing.
                        #expect((a.applied + b.applied).sorted() == [1, 2, 3])
                        #expect(a.applied.isEmpty || b.applied.isEmpty)

                        let log = try await poolA.query("select version from migration_log order by version")
                        #expect(try log.map { try $0.decode(Int.self, at: 0) } == [1, 2, 3])
                        #expect(try await versions(poolA, table: "parley_schema_migrations") == [1, 2, 3])
                        let meta = try await poolA.query(
                            "select name, checksum, applied_at from parley_schema_migrations where version = $1", [Int64(2)])
                        #expect(try meta[0].decode(String.self, column: "name") == "create_items")
                        #expect(try meta[0].decode(String.self, column: "checksum") == Self.base[1].checksum)
                        #expect(abs(try meta[0].decode(Date.self, column: "applied_at").timeIntervalSinceNow) < 120)

                        // Second run: a no-op.
                        let again = try await migrator.migrate(on: poolB)
                        #expect(again.applied.isEmpty)
                        #expect(again.alreadyApplied == [1, 2, 3])
                        #expect(try await poolA.query("select count(*) from migration_log")[0].decode(Int.self, at: 0) == 3)

                        // A new migration is applied on its own.
                        let more = try Migrator(
                            migrations: Self.base + [
                                Migration(version: 4, name: "more", sql: "insert into migration_log (version) values (4)")
                            ])
                        #expect(try await more.migrate(on: poolA).applied == [4])
                    }
                }
            }
        }

        @Test func editedMigrationIsAnError() async throws {
            try await TestServer.withScratchPool { pool in
                try await Migrator(migrations: Self.base).migrate(on: pool)
                var edited = Self.base
                edited[1] = Migration(version: 2, name: "create_items", sql: Self.base[1].sql + "\n-- tweak")
                edited.append(Migration(version: 4, name: "never", sql: "create table never_applied (x int)"))
                let error = await #expect(throws: PostgresError.self) {
                    try await Migrator(migrations: edited).migrate(on: pool)
                }
                #expect(error?.kind == .migration)
                #expect(error?.message.contains("checksum mismatch for applied migration 2") == true)
                // Nothing was applied, and the advisory lock was released (a new run proceeds).
                #expect(try await pool.query("select to_regclass($1) is null", ["never_applied"])[0].decode(Bool.self, at: 0))
                let report = try await Migrator(migrations: Self.base).migrate(on: pool)
                #expect(report.applied.isEmpty)
            }
        }

        @Test func failingMigrationRollsBackAlone() async throws {
            try await TestServer.withScratchPool { (pool: PostgresPool) async throws in
                let broken =
                    Self.base + [
                        Migration(
                            version: 4, name: "broken",
                            sql: """
                                create table half_done (x int);
                                insert into missing_table values (1);
                                """)
                    ]
                let error = await #expect(throws: PostgresError.self) { try await Migrator(migrations: broken).migrate(on: pool) }
                #expect(error?.sqlState == "42P01")
                let message = error?.message ?? ""
                #expect(message.hasPrefix("migration 4 "))
                #expect(message.contains("broken"))
                #expect(try await versions(pool, table: "parley_schema_migrations") == [1, 2, 3])
                #expect(try await pool.query("select to_regclass($1) is null", ["half_done"])[0].decode(Bool.self, at: 0))
            }
        }

        @Test func schemaOptionKeepsSeparateHistories() async throws {
            try await TestServer.withScratchPool { pool in
                let orders = try Migrator(
                    migrations: [Migration(version: 1, name: "orders", sql: "create table orders_t (id int)")], schema: "svc_orders")
                let billing = try Migrator(
                    migrations: [Migration(version: 1, name: "billing", sql: "create table billing_t (id int)")], schema: "svc_billing")
                #expect(try await orders.migrate(on: pool).applied == [1])
                #expect(try await billing.migrate(on: pool).applied == [1])
                #expect(try await versions(pool, table: "svc_orders.parley_schema_migrations") == [1])
                #expect(try await versions(pool, table: "svc_billing.parley_schema_migrations") == [1])
                #expect(try await orders.migrate(on: pool).applied.isEmpty)
            }
        }

        @Test func loadsFromADirectory() async throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-mig-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            try "create table a (id int);".write(to: dir.appendingPathComponent("0001_create_a.sql"), atomically: true, encoding: .utf8)
            try "alter table a add column b text;".write(to: dir.appendingPathComponent("0002_add_b.sql"), atomically: true, encoding: .utf8)
            try await TestServer.withScratchPool { pool in
                let report = try await Migrator(directory: dir).migrate(on: pool)
                #expect(report.applied == [1, 2])
                try await pool.execute("insert into a (id, b) values ($1, $2)", [1, "x"])
            }
        }
    }
}
