import Foundation
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
import ParleyTestSupport
import Testing
#if canImport(FoundationNetworking)
    import FoundationNetworking
    import ParleyJSON
    import ParleyEnvelope
#endif

/// The real `mapping-service` and `link-service` processes on RabbitMQ and PostgreSQL (a vhost
/// and a database of their own), each serving /health and /metrics on a port of its own; the
/// test plays the webshop's adapter.
@Suite("Monitoring of the running services", .serialized, .timeLimit(.minutes(5)))
struct MonitoringProcessTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test(
        "Ready when broker and database are connected, messages counted as consumed and published, link gauges and sync latency, 503 naming the database once it is gone"
    )
    func monitoring() async throws {
        try await ScratchVhost.with("parley-test-monitoring") { vhost in
            try await ScratchDatabase.with("parley_monitoring") { database, databaseURL in
                try await Self.run(vhost: vhost, database: database, databaseURL: databaseURL)
            }
        }
    }

    static func start(_ name: String, port: Int, env: [String: String], log: URL) throws -> Process {
        let process = Process()
        process.executableURL = try #require(builtExecutable(name), "\(name) is not built next to the tests")
        process.arguments = ["--http-port", "\(port)"]
        process.environment = env
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        return process
    }

    static func run(vhost: ScratchVhost, database: PostgresConfiguration, databaseURL: String) async throws {
        var env = ProcessInfo.processInfo.environment
        env["PARLEY_AMQP_URL"] = vhost.url
        env["PARLEY_DATABASE_URL"] = databaseURL
        env["PARLEY_REPOSITORY"] = root.path
        env["PARLEY_LOG_LEVEL"] = "warning"
        env["PARLEY_HTTP_HOST"] = "127.0.0.1"
        env["PARLEY_HTTP_PORT"] = "1"  // --http-port must win over it
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("parley-monitoring-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let mappingPort = try freePort(), linkPort = try freePort()
        let mapping = try start("mapping-service", port: mappingPort, env: env, log: logs.appendingPathComponent("mapping-service.log"))
        let link = try start("link-service", port: linkPort, env: env, log: logs.appendingPathComponent("link-service.log"))
        defer {
            for process in [mapping, link] where process.isRunning { process.terminate() }
        }
        let mappingURL = "http://127.0.0.1:\(mappingPort)", linkURL = "http://127.0.0.1:\(linkPort)"
        func metrics(_ base: String) async throws -> String { try await get(base + "/metrics").1 }
        func failed(_ what: String) -> String {
            let text = ["mapping-service", "link-service"].map { name in
                "\(name): " + ((try? String(contentsOf: logs.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? "")
            }.joined(separator: "\n")
            return "\(what)\n\(text)"
        }

        // Ready: both connected to the broker, the link service to its database too.
        for base in [mappingURL, linkURL] {
            let body = try await waitFor(failed("\(base)/health/ready answering 200"), within: .seconds(90)) {
                let answer = try? await get(base + "/health/ready")
                return answer?.0 == 200 ? answer?.1 : nil
            }
            #expect(body.contains(#""status":"ready""#))
        }
        let linkReady = try await get(linkURL + "/health/ready").1
        for check in ["broker.publisher", "broker.consumer.link.canonical", "broker.consumer.link.events", "database"] {
            #expect(linkReady.contains(#"{"name":"\#(check)","status":"up"}"#), "\(linkReady)")
        }
        #expect(try await get(mappingURL + "/health/live").0 == 200)

        // The webshop's adapter: every command carried out and reported written. PowerOffice
        // Go's is not there, so its write stays in flight.
        let amqp = try vhost.configuration("test-adapter")
        let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
        defer { Task { await publisher.close() } }
        #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
        let webshop = Task {
            let consumer = AMQPConsumer(configuration: amqp, queue: ParleyTopology.Queues.adapterCommands(.customwebshop))
            defer { Task { await consumer.close() } }
            for await delivery in consumer.deliveries {
                if let envelope = try? delivery.envelope(), let command = try? CommandPayload(json: envelope.payload) {
                    let written = try Envelope.caused(
                        by: envelope, kind: .written, entityId: command.targetId ?? "W-1",
                        payload: WrittenPayload(command: command).json)
                    try await publisher.publish(
                        OutgoingMessage(
                            envelope: written, exchange: ParleyTopology.Exchanges.events,
                            routingKey: ParleyTopology.routingKey(system: .customwebshop, entityType: written.entityType, kind: .written)))
                }
                delivery.ack()
            }
        }
        defer { webshop.cancel() }

        // One ERP customer, changed a second ago, and one message that is not an envelope.
        let record: JSONValue = [
            "id": "C-1", "customerType": "COMPANY", "name": "Fjord Bygg AS", "email": "post@fjordbygg.no", "phone": "+47 900 00 100"
        ]
        let change = try Envelope(
            kind: .change, system: .customerp, entityType: .customer, entityId: "C-1",
            time: Date().addingTimeInterval(-1), payload: ChangePayload(record: record).json)
        try await publisher.publish(
            OutgoingMessage(envelope: change, exchange: ParleyTopology.Exchanges.changes, routingKey: "customerp.customer.change"))
        try await publisher.publish(exchange: ParleyTopology.Exchanges.changes, routingKey: "customerp.customer.change", body: Array("not json".utf8))

        // The mapping service: the change mapped and its canonical message confirmed, the
        // malformed one dead-lettered for a bounded reason.
        let mappingSeries = [
            #"parley_messages_consumed_total{service="mapping-service",queue="mapping.changes",outcome="ack"}"#: 1.0,
            #"parley_messages_consumed_total{service="mapping-service",queue="mapping.changes",outcome="dead_letter"}"#: 1,
            #"parley_failures_total{service="mapping-service",reason="malformed"}"#: 1,
            #"parley_messages_published_total{service="mapping-service",exchange="parley.canonical"}"#: 1,
            #"parley_messages_published_total{service="mapping-service",exchange="parley.commands"}"#: 2,
            #"parley_message_processing_seconds_count{service="mapping-service",queue="mapping.changes"}"#: 2
        ]
        // The link service: the canonical change and the webshop's written event consumed, a
        // sync latency for the webshop's write, PowerOffice Go's write in flight.
        let linkSeries = [
            #"parley_messages_consumed_total{service="link-service",queue="link.canonical",outcome="ack"}"#: 1.0,
            #"parley_messages_consumed_total{service="link-service",queue="link.events",outcome="ack"}"#: 1,
            #"parley_messages_published_total{service="link-service",exchange="parley.sync"}"#: 2,
            #"parley_sync_latency_seconds_count{target="customwebshop"}"#: 1,
            #"parley_link_inflight_writes{system="powerofficego"}"#: 1,
            #"parley_link_inflight_writes{system="customwebshop"}"#: 0,
            "parley_link_parked_entities": 0,
            "parley_link_failed_entities": 0,
            "parley_link_conflicts": 0
        ]
        for (base, expected) in [(mappingURL, mappingSeries), (linkURL, linkSeries)] {
            do {
                _ = try await waitFor("the metrics of \(base)", within: .seconds(60)) { () async throws -> Bool? in
                    let text = try await metrics(base)
                    return expected.allSatisfy { sample(text, $0.key) == $0.value } ? true : nil
                }
            } catch {
                let text = (try? await metrics(base)) ?? "(no answer)"
                for (series, value) in expected { #expect(sample(text, series) == value, "\(series)") }
                Issue.record(Comment(rawValue: failed("metrics of \(base):\n\(text)")))
            }
        }
        let text = try await metrics(linkURL)
        // A second ago, give or take the machine: well under the 20 s bucket.
        #expect(sample(text, #"parley_sync_latency_seconds_bucket{target="customwebshop",le="20.0"}"#) == 1, "\(text)")
        #expect(text.contains("# TYPE parley_sync_latency_seconds histogram"))

        // The database goes away: the link service is no longer ready and says why; the mapping
        // service, which has no database, stays ready.
        let admin = PostgresPool(
            configuration: try PostgresConfiguration(url: ProcessInfo.processInfo.environment["PARLEY_DATABASE_URL"]!),
            maxConnections: 1)
        try await admin.dropDatabase(try PostgresIdentifier(database.database))
        await admin.close()
        let down = try await waitFor(failed("link-service not ready without its database"), within: .seconds(30)) {
            let answer = try? await get(linkURL + "/health/ready")
            return answer?.0 == 503 ? answer?.1 : nil
        }
        #expect(down.contains(#""down":["database"]"#), "\(down)")
        #expect(try await get(linkURL + "/health/live").0 == 200)
        #expect(try await get(mappingURL + "/health/ready").0 == 200)
        try? FileManager.default.removeItem(at: logs)
    }
}
