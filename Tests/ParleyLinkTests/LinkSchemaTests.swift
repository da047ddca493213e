import Foundation
import Testing
import ParleyPostgres
import ParleyTestSupport
@testable import ParleyLink
import ParleyLinkCore

/// The link schema on the real PostgreSQL, in a scratch database of its own.
@Suite("Link schema on PostgreSQL", .serialized, .timeLimit(.minutes(5)))
struct LinkSchemaTests {
    static func withScratchDatabase(connections: Int = 2, _ body: (PostgresPool) async throws -> Void) async throws {
        try await ScratchDatabase.with("parley_link_test") { config in
            let pool = PostgresPool(configuration: config, maxConnections: connections)
            do {
                try await body(pool)
            } catch {
                await pool.close()
                throw error
            }
            await pool.close()
        }
    }

    @Test("Migrations apply once; identity rules are constraints: one global entity per member, one member per system, one write in flight")
    func constraints() async throws {
        try await Self.withScratchDatabase { pool in
            let migrator = try Migrator(migrations: LinkSchema.migrations, schema: "public")
            #expect(try await migrator.migrate(on: pool).applied == LinkSchema.migrations.map(\.version))
            #expect(try await migrator.migrate(on: pool).applied.isEmpty)

            let a = UUID(), b = UUID()
            for id in [a, b] {
                _ = try await pool.execute("insert into global_entity (id, entity_type) values ($1, 'customer')", [id])
            }
            _ = try await pool.execute(
                "insert into member (global_id, system, entity_type, native_id) values ($1, 'customerp', 'customer', 'C-1')", [a])

            func violation(_ sql: String, _ binds: [any PostgresEncodable]) async -> String? {
                do {
                    _ = try await pool.execute(sql, binds)
                    return nil
                } catch let e as PostgresError {
                    return e.sqlState
                } catch {
                    return "\(error)"
                }
            }
            // The same native record cannot join a second global entity ...
            #expect(
                await violation("insert into member (global_id, system, entity_type, native_id) values ($1, 'customerp', 'customer', 'C-1')", [b])
                    == "23505")
            // ... and a global entity has at most one member per system.
            #expect(
                await violation("insert into member (global_id, system, entity_type, native_id) values ($1, 'customerp', 'customer', 'C-2')", [a])
                    == "23505")
            // One write in flight per (global entity, target).
            _ = try await pool.execute(
                "insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until) values ($1, 'customwebshop', 'w1', 'create', $2, now())",
                [a, a.uuidString])
            #expect(
                await violation(
                    "insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until) values ($1, 'customwebshop', 'w2', 'update', $2, now())",
                    [a, a.uuidString]) == "23505")
            // Empty natural keys are never stored, so they can never match.
            #expect(
                await violation("insert into natural_key (entity_type, kind, value, global_id) values ('customer', 'email', '', $1)", [a]) == "23514")
            // A message id is processed once.
            let message = UUID()
            _ = try await pool.execute("insert into inbox (message_id) values ($1)", [message])
            #expect(await violation("insert into inbox (message_id) values ($1)", [message]) == "23505")
        }
    }
}
