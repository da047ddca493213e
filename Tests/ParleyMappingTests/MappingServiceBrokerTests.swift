import Foundation
import Testing
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import ParleyTestSupport
@testable import ParleyMapping
import ParleyJSON
import ParleyEnvelope

/// The real `mapping-service` process against the real broker, in a virtual host of its own
/// (so the standard queue names do not meet a demo or another test).
@Suite("mapping-service against RabbitMQ", .serialized, .timeLimit(.minutes(5)))
struct MappingServiceBrokerTests {
    @Test("It maps changes and sync requests, dead-letters what it cannot read or map, keeps running, and stops on SIGTERM")
    func endToEnd() async throws {
        try await ScratchVhost.with("parley-test-mapping") { vhost in try await run(vhost) }
    }

    func run(_ vhost: ScratchVhost) async throws {
        let url = vhost.url
        let amqp = try vhost.configuration("test-mapping-service")

        let topology = ParleyTopology.standard
        let publisher = AMQPPublisher(configuration: amqp, topology: topology)
        defer { Task { await publisher.close() } }
        #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout), "publisher ready")

        // The service itself, as users run it.
        let binary = try #require(builtExecutable("mapping-service"), "mapping-service is not built next to the tests")
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
            try await publisher.publish(
                exchange: exchange, routingKey: "\(system).\(entity).\(kind)", body: body,
                properties: .init(messageId: UUID().uuidString.lowercased()))
        }
        func envelope(_ kind: MessageKind, _ system: SystemName, _ entity: CanonicalEntityType, _ id: String, _ payload: JSONValue) throws -> [UInt8]
        {
            try Envelope(kind: kind, system: system, entityType: entity.messagingEntityType, entityId: id, payload: payload).encoded()
        }
        let product = try Golden.record(.customwebshop, .product)

        // 1. Not even JSON: dead-lettered with the reason.
        try await send(
            Array("this is not json".utf8), kind: "change", system: .customwebshop, entity: .product, exchange: ParleyTopology.Exchanges.changes)
        // 2. A record that does not map ("12,5" as a price): dead-lettered naming the field.
        var bad = product.object!
        bad["price"] = "12,5"
        try await send(
            try envelope(.change, .customwebshop, .product, "701", ChangePayload(record: .object(bad)).json),
            kind: "change", system: .customwebshop, entity: .product, exchange: ParleyTopology.Exchanges.changes)
        // 3. A good change after the bad ones: the service is still there and maps it.
        try await send(
            try envelope(.change, .customwebshop, .product, "701", ChangePayload(record: product).json),
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
        try await send(
            try envelope(.syncRequest, .powerofficego, .product, "product/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11", good.json),
            kind: "syncRequest", system: .powerofficego, entity: .product, exchange: ParleyTopology.Exchanges.sync)
        let nameless = SyncRequestPayload(operation: .update, targetId: "88001", entity: ["sku": "KAFFE-500"], writeId: "w-2")
        try await send(
            try envelope(.syncRequest, .powerofficego, .product, "product/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11", nameless.json),
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
        let status = try await withDeadline(.seconds(30), "mapping-service exiting after SIGTERM") {
            while service.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            return service.terminationStatus
        }
        #expect(status == 0)
    }

    /// The first `count` messages on `queue` (acked), failing after 60 s.
    static func take(_ count: Int, from queue: String, _ amqp: AMQPConfiguration) async throws -> [AMQPDelivery] {
        let consumer = AMQPConsumer(configuration: amqp, queue: queue)
        defer { Task { await consumer.close() } }
        return try await withDeadline(.seconds(60), "\(count) messages on \(queue)") {
            var got: [AMQPDelivery] = []
            for await delivery in consumer.deliveries {
                delivery.ack()
                got.append(delivery)
                if got.count == count { break }
            }
            return got
        }
    }
}
