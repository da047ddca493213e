import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
@testable import ParleyMapping

/// The real `mapping-service` process against the real broker, in a virtual host of its own
/// (so the standard queue names do not meet a demo or another test).
@Suite("mapping-service against RabbitMQ", .serialized)
struct MappingServiceBrokerTests {
    @Test("It maps changes and sync requests, dead-letters what it cannot read or map, keeps running, and stops on SIGTERM")
    func endToEnd() async throws {
        guard let baseURL = ProcessInfo.processInfo.environment["PARLEY_AMQP_URL"], !baseURL.isEmpty else {
            Issue.record("PARLEY_AMQP_URL is not set: run the tests with `make test` (it starts RabbitMQ)")
            return
        }
        let vhost = "parley-test-mapping-\(UUID().uuidString.prefix(8).lowercased())"
        let management = try Management(url: baseURL)
        try await management.createVhost(vhost)
        do {
            try await run(baseURL: baseURL, vhost: vhost)
        } catch {
            try? await management.deleteVhost(vhost)
            throw error
        }
        try await management.deleteVhost(vhost)
    }

    func run(baseURL: String, vhost: String) async throws {
        var endpoint = try AMQPEndpoint(url: baseURL)
        endpoint.vhost = vhost
        let url = "amqp://\(endpoint.user):\(endpoint.password.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)@\(endpoint.host):\(endpoint.port)/\(vhost)"
        var amqp = try AMQPConfiguration(urls: url, connectionName: "test-mapping-service")
        amqp.reconnect = Backoff(initial: .milliseconds(100), maximum: .seconds(2))

        let topology = ParleyTopology.standard
        let publisher = AMQPPublisher(configuration: amqp, topology: topology)
        defer { Task { await publisher.close() } }
        #expect(await publisher.readiness.wait(timeout: .seconds(30)), "publisher ready")

        // The service itself, as users run it.
        let buildDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [buildDir, buildDir.deletingLastPathComponent()].map { $0.appendingPathComponent("mapping-service") }
        let binary = try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
                                  "mapping-service not built next to \(buildDir.path)")
        let service = Process()
        service.executableURL = binary
        var env = ProcessInfo.processInfo.environment
        env["PARLEY_AMQP_URL"] = url
        env["PARLEY_REPOSITORY"] = Golden.root.path
        service.environment = env
        service.standardError = FileHandle.nullDevice
        try service.run()
        defer { if service.isRunning { service.terminate() } }

        func send(_ body: [UInt8], kind: String, system: SystemName, entity: EntityType, exchange: String) async throws {
            try await publisher.publish(exchange: exchange, routingKey: "\(system).\(entity).\(kind)", body: body,
                                        properties: .init(messageId: UUID().uuidString.lowercased()))
        }
        func envelope(_ kind: MessageKind, _ system: SystemName, _ entity: CanonicalEntityType, _ id: String, _ payload: JSONValue) throws -> [UInt8] {
            try Envelope(kind: kind, system: system, entityType: entity.messagingEntityType, entityId: id, payload: payload).encoded()
        }
        let product = try Golden.record(.customwebshop, .product)

        // 1. Not even JSON: dead-lettered with the reason.
        try await send(Array("this is not json".utf8), kind: "change", system: .customwebshop, entity: .product, exchange: ParleyTopology.Exchanges.changes)
        // 2. A record that does not map ("12,5" as a price): dead-lettered naming the field.
        var bad = product.object!
        bad["price"] = "12,5"
        try await send(try envelope(.change, .customwebshop, .product, "701", ChangePayload(record: .object(bad)).json),
                       kind: "change", system: .customwebshop, entity: .product, exchange: ParleyTopology.Exchanges.changes)
        // 3. A good change after the bad ones: the service is still there and maps it.
        try await send(try envelope(.change, .customwebshop, .product, "701", ChangePayload(record: product).json),
                       kind: "change", system: .customwebshop, entity: .product, exchange: ParleyTopology.Exchanges.changes)

        let dead = try await Self.take(2, from: "\(ParleyTopology.Queues.mappingChanges).dead", amqp)
        let reasons = dead.map { $0.properties.headers[ParleyHeaders.error]?.stringValue ?? "" }.sorted()
        #expect(reasons.contains { $0.contains("malformed message") }, "\(reasons)")
        #expect(reasons.contains { $0.contains("customwebshop product field price (salesPriceExclVat)") && $0.contains("12,5") }, "\(reasons)")

        let canonical = try #require(try await Self.take(1, from: ParleyTopology.Queues.linkCanonical, amqp).first)
        let canonicalEnvelope = try canonical.envelope()
        #expect(canonicalEnvelope.kind == .canonical)
        #expect(canonicalEnvelope.entityId == "701")
        let payload = try CanonicalPayload(json: canonicalEnvelope.payload)
        #expect(payload.entity["salesPriceExclVat"] == .number(JSONNumber("79.2")!))

        // 4. A sync request: a command for PowerOffice Go's adapter; one Go would refuse: a failed event.
        let normalised = try Golden.mapper(.customwebshop, .product).toCanonical(product)
        let good = SyncRequestPayload(operation: .create, targetId: nil, entity: normalised.canonicalJSON, writeId: "w-1")
        try await send(try envelope(.syncRequest, .powerofficego, .product, "product/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11", good.json),
                       kind: "syncRequest", system: .powerofficego, entity: .product, exchange: ParleyTopology.Exchanges.sync)
        let nameless = SyncRequestPayload(operation: .update, targetId: "88001", entity: ["sku": "KAFFE-500"], writeId: "w-2")
        try await send(try envelope(.syncRequest, .powerofficego, .product, "product/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11", nameless.json),
                       kind: "syncRequest", system: .powerofficego, entity: .product, exchange: ParleyTopology.Exchanges.sync)
        let command = try #require(try await Self.take(1, from: ParleyTopology.Queues.adapterCommands(.powerofficego), amqp).first)
        let commandPayload = try CommandPayload(json: try command.envelope().payload)
        #expect(commandPayload.record["Code"] == "KAFFE-500")
        #expect(commandPayload.record["UnitPrice"] == .number(JSONNumber("79.20")!))
        #expect(commandPayload.idempotencyKey == "product/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11")
        let failed = try #require(try await Self.take(1, from: ParleyTopology.Queues.linkEvents, amqp).first)
        let failedEnvelope = try failed.envelope()
        #expect(failedEnvelope.kind == .failed)
        #expect(failedEnvelope.payload["field"] == "Name")
        #expect(failedEnvelope.payload["writeId"] == "w-2")

        // 5. SIGTERM: a clean exit.
        kill(service.processIdentifier, SIGTERM)
        let status = try await Self.deadline(.seconds(30)) {
            while service.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            return service.terminationStatus
        }
        #expect(status == 0)
    }

    /// The first `count` messages on `queue` (acked), failing after 60 s.
    static func take(_ count: Int, from queue: String, _ amqp: AMQPConfiguration) async throws -> [AMQPDelivery] {
        let consumer = AMQPConsumer(configuration: amqp, queue: queue)
        defer { Task { await consumer.close() } }
        return try await deadline(.seconds(60)) {
            var got: [AMQPDelivery] = []
            for await delivery in consumer.deliveries {
                delivery.ack()
                got.append(delivery)
                if got.count == count { break }
            }
            return got
        }
    }

    struct Timeout: Error {}

    static func deadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw Timeout() }
            return value
        }
    }
}

/// The RabbitMQ management API, for a virtual host per test.
struct Management: Sendable {
    let base: String
    let authorization: String
    let user: String

    init(url: String) throws {
        let endpoint = try AMQPEndpoint(url: url)
        base = ProcessInfo.processInfo.environment["PARLEY_AMQP_MANAGEMENT_URL"] ?? "http://\(endpoint.host):15672"
        authorization = "Basic " + Data("\(endpoint.user):\(endpoint.password)".utf8).base64EncodedString()
        user = endpoint.user
    }

    func request(_ method: String, _ path: String, body: String? = nil) async throws -> Int {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.setValue(authorization, forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (_, response) = try await URLSession.shared.data(for: request)
        return (response as! HTTPURLResponse).statusCode
    }

    func createVhost(_ name: String) async throws {
        let created = try await request("PUT", "/api/vhosts/\(name)", body: "{}")
        #expect((200..<300).contains(created), "creating vhost \(name): HTTP \(created)")
        let granted = try await request("PUT", "/api/permissions/\(name)/\(user)", body: #"{"configure":".*","write":".*","read":".*"}"#)
        #expect((200..<300).contains(granted), "permissions on \(name): HTTP \(granted)")
    }

    func deleteVhost(_ name: String) async throws {
        _ = try await request("DELETE", "/api/vhosts/\(name)")
    }
}
