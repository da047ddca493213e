import Foundation
import Synchronization
import Testing
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
import ParleyTestSupport
@testable import ParleyLink
import ParleyLinkCore
import ParleyJSON
import ParleyEnvelope

/// The real processes — `mapping-service` and `link-service` — on RabbitMQ and PostgreSQL, each
/// run in a vhost and a database of its own; the test plays the three adapters.
@Suite("link-service against RabbitMQ and PostgreSQL", .serialized, .timeLimit(.minutes(5)))
struct LinkServiceBrokerTests {
    static let customers = 30

    @Test("Two link-service replicas on one queue reach the same end state as one, every change delivered twice, each record created once per target")
    func replicas() async throws {
        let one = try await Self.scenario(replicas: 1)
        let two = try await Self.scenario(replicas: 2)
        #expect(one.count == Self.customers)
        #expect(one == two)
    }

    /// Per ERP customer: its members and the fields every system shares, as text.
    static func scenario(replicas: Int) async throws -> [String: String] {
        try await ScratchVhost.with("parley-test-link") { vhost in
            try await ScratchDatabase.with("parley_link_e2e") { database, databaseURL in
                try await run(replicas: replicas, vhost: vhost, database: database, databaseURL: databaseURL)
            }
        }
    }

    static func run(replicas: Int, vhost: ScratchVhost, database: PostgresConfiguration, databaseURL: String) async throws -> [String: String] {
        let amqp = try vhost.configuration("test-adapters")
        let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
        #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
        var env = ProcessInfo.processInfo.environment
        env["PARLEY_AMQP_URL"] = vhost.url
        env["PARLEY_DATABASE_URL"] = databaseURL
        env["PARLEY_REPOSITORY"] = LinkHarness.root.path
        env["PARLEY_LOG_LEVEL"] = "warning"
        var processes: [Process] = []
        for name in ["mapping-service"] + Array(repeating: "link-service", count: replicas) {
            let process = Process()
            process.executableURL = try #require(builtExecutable(name), "\(name) is not built next to the tests")
            process.arguments = name == "link-service" ? ["--batch-size", "16"] : []
            process.environment = env
            process.standardError = FileHandle.nullDevice
            try process.run()
            processes.append(process)
        }
        defer { for p in processes where p.isRunning { p.terminate() } }

        // The adapters: carry out every command and report it written, with deterministic ids.
        let creates = Locked<[String: Int]>([:])
        let adapters = (ParleyTopology.systems).map { system in
            Task {
                let consumer = AMQPConsumer(configuration: amqp, queue: ParleyTopology.Queues.adapterCommands(system))
                defer { Task { await consumer.close() } }
                for await delivery in consumer.deliveries {
                    guard let envelope = try? delivery.envelope(), let command = try? CommandPayload(json: envelope.payload) else {
                        delivery.ack()
                        continue
                    }
                    let email = command.record["email"]?.string ?? command.record["EmailAddress"]?.string ?? "?"
                    let nativeId = command.targetId ?? "\(system)-\(email)"
                    if command.operation == .create {
                        creates.withLock { $0["\(system) \(command.idempotencyKey)", default: 0] += 1 }
                    }
                    let written = try Envelope.caused(
                        by: envelope, kind: .written, entityId: nativeId,
                        payload: WrittenPayload(command: command).json)
                    try await publisher.publish(
                        OutgoingMessage(
                            envelope: written, exchange: ParleyTopology.Exchanges.events,
                            routingKey: ParleyTopology.routingKey(system: system, entityType: written.entityType, kind: .written)))
                    delivery.ack()
                }
            }
        }
        defer { for adapter in adapters { adapter.cancel() } }

        // The ERP reports its customers, every change twice (at-least-once delivery upstream).
        for i in 0..<customers {
            let record: JSONValue = [
                "id": .string("C-\(i)"), "customerType": "COMPANY", "name": .string("Kunde \(i) AS"),
                "email": .string("kunde\(i)@example.no"), "phone": .string("+47 900 00 \(100 + i)")
            ]
            let change = try Envelope(
                kind: .change, system: .customerp, entityType: .customer, entityId: "C-\(i)",
                time: Date(timeIntervalSince1970: 1_800_000_000 + Double(i)), payload: ChangePayload(record: record).json)
            for _ in 0..<2 {
                try await publisher.publish(
                    OutgoingMessage(
                        envelope: change, exchange: ParleyTopology.Exchanges.changes,
                        routingKey: "customerp.customer.change"))
            }
        }

        // Done: every customer in all three systems, nothing in flight, nothing left to publish.
        let pool = PostgresPool(configuration: database, maxConnections: 1)
        defer { Task { await pool.close() } }
        try await withDeadline(.seconds(120), "every customer linked in all three systems") {
            while true {
                // Until the link service has migrated its database, the tables are not there.
                guard
                    let rows = try? await pool.query(
                        """
                        select (select count(*) from member), (select count(*) from write_slot), (select count(*) from outbox)
                        """)
                else {
                    try await Task.sleep(for: .milliseconds(200))
                    continue
                }
                if let row = rows.first, try row.decode(Int.self, at: 0) == 3 * customers,
                    try row.decode(Int.self, at: 1) == 0, try row.decode(Int.self, at: 2) == 0
                {
                    return
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let duplicateCreates = creates.withLock { $0.filter { $0.value > 1 } }
        #expect(creates.withLock { $0.count } == 2 * customers, "one create per customer in the webshop and in PowerOffice Go")
        #expect(duplicateCreates.isEmpty, "\(duplicateCreates)")
        #expect(try await pool.query("select count(*) from global_entity")[0].decode(Int.self, at: 0) == customers)
        #expect(try await pool.query("select count(*) from conflict")[0].decode(Int.self, at: 0) == 0)

        var summary: [String: String] = [:]
        for row in try await pool.query(
            """
            select e.native_id, string_agg(m.system || '=' || m.native_id, ' ' order by m.system), g.state::text
            from member e join member m on m.global_id = e.global_id join global_entity g on g.id = e.global_id
            where e.system = 'customerp' group by e.native_id, g.state::text
            """)
        {
            let state = try JSONValue.parse(try row.decode(String.self, at: 2))
            let shared = ["name", "email", "phone"].map { "\($0)=\(state[$0]?.string ?? "-")" }.joined(separator: " ")
            summary[try row.decode(String.self, at: 0)] = try row.decode(String.self, at: 1) + " | " + shared
        }
        for process in processes { process.terminate() }
        await publisher.close()
        return summary
    }
}
