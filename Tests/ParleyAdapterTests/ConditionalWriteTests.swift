import Foundation
import Testing
import ParleyAMQP
import ParleyCanonical
import ParleyCore
import ParleyMessaging
import ParleyTestSupport
@testable import ParleyAdapter
import ParleyJSON
import ParleyEnvelope

/// Conditional writes (issue 17): an update names the record's time the state was merged with
/// (`baseModifiedAt`); the adapter reads the record first and writes only if it has not been
/// modified since. A modified record is published as a change and the command reported `changed`;
/// a record that is gone has its delete published and the command reported `gone`.
@Suite("Conditional writes: changed and gone records", .serialized, .timeLimit(.minutes(5)))
struct ConditionalWriteTests {
    typealias P = AdapterProcessTests

    static func update(_ id: String, key: String, record: JSONObject, writeId: String, base: String) -> CommandPayload {
        CommandPayload(
            operation: .update, targetId: id, idempotencyKey: key, record: record, cleared: [],
            expected: CanonicalPayload(operation: .upsert, entity: [:], carried: [], references: [], modifiedAt: nil),
            writeId: writeId, baseModifiedAt: base)
    }

    @Test("payloads: baseModifiedAt and written's modifiedAt are written only when set, read back, and must be instants")
    func payloads() throws {
        let request = SyncRequestPayload(
            operation: .update, targetId: "7", entity: ["name": "x"], writeId: "w", baseModifiedAt: "2026-12-05T10:00:00.123Z")
        #expect(try SyncRequestPayload(json: request.json) == request)
        #expect(SyncRequestPayload(operation: .create, targetId: nil, entity: [:]).json["baseModifiedAt"] == nil)
        #expect(throws: PayloadError.self) {
            try SyncRequestPayload(json: ["operation": "update", "targetId": "7", "entity": [:], "baseModifiedAt": "yesterday"])
        }
        let command = Self.update("7", key: "product/1", record: ["Name": "x"], writeId: "w", base: "2026-12-05T10:00:00.123Z")
        #expect(try CommandPayload(json: command.json) == command)
        let written = WrittenPayload(command: command, modifiedAt: "2026-12-05T10:00:01.000Z")
        #expect(try WrittenPayload(json: written.json) == written)
        #expect(WrittenPayload(command: command).json["modifiedAt"] == nil)
    }

    @Test(
        "powerofficego-adapter: an update with an older base publishes the product and reports 'changed'; with its current time it is written and the new time reported; a deleted product is 'gone', its delete published"
    )
    func powerOffice() async throws {
        try await ScratchVhost.with("parley-test-conditional") { vhost in
            try await ScratchDatabase.with("parley_conditional") { _, databaseURL in
                let port = P.port()
                let go = "http://127.0.0.1:\(port)"
                let simulator = try P.start("powerofficego-simulator", ["--port", "\(port)"])
                defer { simulator.terminate() }
                try await P.waitUntilUp(go + "/_admin/faults")
                let (status, created) = try await DeleteDetectionTests.goCall(
                    go, "POST", "/v2/Products", body: ["Name": "Ullgenser", "Code": "SKU-A"])
                #expect(status == 200)
                let product = try #require(created?["Id"]?.number?.text)
                let changedAt = try #require(created?["LastChangedDateTimeOffset"]?.string)
                let current = CivilTime.formatInstant(ms: try CivilTime.parseInstant(changedAt))
                let (_, other) = try await DeleteDetectionTests.goCall(go, "POST", "/v2/Products", body: ["Name": "Lue", "Code": "SKU-B"])
                let deleted = try #require(other?["Id"]?.number?.text)
                try await DeleteDetectionTests.goDelete(go, "/v2/Products/\(deleted)")

                let amqp = try vhost.configuration("test-conditional")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                let env = P.environment(vhost, databaseURL).merging(P.powerOffice(go)) { a, _ in a }
                let adapter = try P.start("powerofficego-adapter", ["--poll-seconds", "3600"], env: env)
                defer { adapter.terminate() }
                #expect(
                    try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(500)).map(\.entityId) == [product])

                func send(_ command: CommandPayload) async throws {
                    try await publisher.publish(
                        OutgoingMessage(
                            envelope: try Envelope(
                                kind: .command, system: .powerofficego, entityType: .product, entityId: command.targetId ?? "", payload: command.json),
                            exchange: ParleyTopology.Exchanges.commands,
                            routingKey: ParleyTopology.routingKey(system: .powerofficego, entityType: .product, kind: .command)))
                }
                // Modified after the base: not written, published.
                try await send(
                    Self.update(
                        product, key: "product/00000000-0000-4000-8000-000000000001", record: ["Name": "Genser"], writeId: "w-1",
                        base: "2026-01-01T00:00:00.000Z"))
                let first = try await P.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(500))
                let changed = try FailedPayload(json: try #require(first.first).payload)
                #expect(first.first?.kind == .failed && changed.kind == "changed" && changed.transient && changed.targetId == product, "\(changed)")
                let published = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(500))
                #expect(published.map(\.entityId) == [product])
                #expect(
                    try ChangePayload(json: try #require(published.first).payload).record?["Name"] == "Ullgenser", "the record as it is, unwritten")

                // Not modified since its current time: written, and the time after the write reported.
                try await send(
                    Self.update(
                        product, key: "product/00000000-0000-4000-8000-000000000001", record: ["Name": "Genser"], writeId: "w-2", base: current))
                let second = try await P.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(500))
                #expect(second.first?.kind == .written, "\(String(describing: second.first?.payload))")
                let written = try WrittenPayload(json: try #require(second.first).payload)
                let after = try #require(written.modifiedAt)
                #expect(try CivilTime.parseInstant(after) >= CivilTime.parseInstant(current))
                let (_, read) = try await DeleteDetectionTests.goCall(go, "GET", "/v2/Products/\(product)")
                #expect(read?["Name"] == "Genser")
                // The same command again (redelivered: the process died before it reported): the
                // record was modified since its base, but by this write — written, not "changed".
                try await send(
                    Self.update(
                        product, key: "product/00000000-0000-4000-8000-000000000001", record: ["Name": "Genser"], writeId: "w-2", base: current))
                let again = try await P.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(500))
                #expect(again.first?.kind == .written, "\(String(describing: again.first?.payload))")
                #expect(try WrittenPayload(json: try #require(again.first).payload).modifiedAt == after)

                // Deleted in Go: gone, and its delete published (the linked records are archived).
                try await send(
                    Self.update(deleted, key: "product/00000000-0000-4000-8000-000000000002", record: ["Name": "Lue"], writeId: "w-3", base: current))
                let third = try await P.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(500))
                let gone = try FailedPayload(json: try #require(third.first).payload)
                #expect(gone.kind == "gone" && !gone.transient, "\(gone)")
                let deletes = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(500))
                #expect(deletes.map(\.entityId) == [deleted])
                #expect(try ChangePayload(json: try #require(deletes.first).payload).operation == .delete)
                // Without a base (an older link service), no read first: the 404 itself says gone.
                var noBase = Self.update(
                    deleted, key: "product/00000000-0000-4000-8000-000000000002", record: ["Name": "Lue"], writeId: "w-4", base: current)
                noBase.baseModifiedAt = nil
                try await send(noBase)
                let fourth = try await P.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(500))
                #expect(try FailedPayload(json: try #require(fourth.first).payload).kind == "gone")
                try await P.stop(adapter)
            }
        }
    }
}

/// The connectors make the write itself conditional on the record as read, where the system can:
/// an edit between the writer's read and its write refuses the write (`SystemError.modified`).
@Suite("Conditional writes: the systems' own locks", .serialized, .timeLimit(.minutes(3)))
struct ConnectorConditionTests {
    typealias P = AdapterProcessTests

    static func isModified(_ body: () async throws -> Void) async -> Bool {
        do {
            try await body()
            return false
        } catch {
            if case .modified? = error as? SystemError { return true }
            Issue.record("expected modified, got \(error)")
            return false
        }
    }

    @Test("the ERP: If-Unmodified-Since-Modified-At with the modifiedAt read; a 412 after an edit in between is 'modified', the edit kept")
    func erp() async throws {
        let port = P.port()
        let erp = "http://127.0.0.1:\(port)"
        let simulator = try P.start("customerp-simulator", ["--port", "\(port)", "--api-key", "test-key"])
        defer { simulator.terminate() }
        try await P.waitUntilUp(erp + "/_admin/records")
        let connector = RESTContractConnector(system: .customerp, http: HTTPJSONClient(baseURL: erp) { [("X-Api-Key", "test-key")] }, style: .erp)
        let created = try await connector.create(
            .customer, record: ["customerType": "COMPANY", "name": "Kunde AS", "email": "kunde@example.no"],
            idempotencyKey: "customer/1")
        let id = try #require(created["id"]?.string)
        let read = try #require(try await connector.record(.customer, id: id))
        _ = try await connector.update(.customer, id: id, record: ["name": "Kunde AS (brukeren)"], cleared: [], current: nil)
        #expect(
            await Self.isModified {
                _ = try await connector.update(.customer, id: id, record: ["name": "Kunde AS (Parley)"], cleared: [], current: read)
            })
        #expect(try await connector.record(.customer, id: id)?["name"] == "Kunde AS (brukeren)")
        let fresh = try #require(try await connector.record(.customer, id: id))
        #expect(
            try await connector.update(.customer, id: id, record: ["name": "Kunde AS (Parley)"], cleared: [], current: fresh)["name"]
                == "Kunde AS (Parley)")
    }

    @Test(
        "PowerOffice Go: each replaced value tested first; an edit in between refuses the patch as 'modified' — a product, and a confirmed order's header (left confirmed)"
    )
    func powerOffice() async throws {
        let port = P.port()
        let go = "http://127.0.0.1:\(port)"
        let simulator = try P.start("powerofficego-simulator", ["--port", "\(port)", "--rate-limit", "0"])
        defer { simulator.terminate() }
        try await P.waitUntilUp(go + "/_admin/faults")
        let env = P.powerOffice(go)
        let connector = PowerOfficeConnector(
            baseURL: env["PARLEY_POWEROFFICE_URL"]!,
            credentials: .init(
                tokenURL: env["PARLEY_POWEROFFICE_TOKEN_URL"]!, applicationKey: env["PARLEY_POWEROFFICE_APPLICATION_KEY"]!,
                clientKey: env["PARLEY_POWEROFFICE_CLIENT_KEY"]!, subscriptionKey: env["PARLEY_POWEROFFICE_SUBSCRIPTION_KEY"]!))
        let product = try await connector.create(
            .product, record: ["Code": "KAFFE-500", "Name": "Kaffe", "UnitPrice": 79.2], idempotencyKey: "product/x")
        let productId = try #require(product["Id"]?.number?.text)
        let read = try #require(try await connector.record(.product, id: productId))
        _ = try await connector.update(.product, id: productId, record: ["Name": "Kaffe (brukeren)"], cleared: [], current: nil)
        #expect(
            await Self.isModified {
                _ = try await connector.update(
                    .product, id: productId, record: ["Name": "Kaffe (Parley)", "UnitPrice": 80], cleared: [], current: read)
            })
        #expect(try await connector.record(.product, id: productId)?["Name"] == "Kaffe (brukeren)")
        let fresh = try #require(try await connector.record(.product, id: productId))
        #expect(
            try await connector.update(.product, id: productId, record: ["Name": "Kaffe (Parley)"], cleared: [], current: fresh)["Name"]
                == "Kaffe (Parley)")

        let customer = try await connector.create(.customer, record: ["IsPerson": false, "Name": "Fjord Fisk AS"], idempotencyKey: "customer/x")
        let line: JSONValue = ["ProductId": try #require(product["Id"]), "Description": "Kaffe", "Quantity": 2, "ProductUnitPrice": 79.2]
        let order = try await connector.create(
            .order,
            record: [
                "CustomerId": try #require(customer["Id"]), "CurrencyCode": "NOK", "SalesOrderStatus": "Confirmed", "SalesOrderDate": "2026-11-05",
                "SalesOrderLines": [line]
            ], idempotencyKey: "order/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11")
        let orderId = try #require(order["Id"]?.string)
        let before = try #require(try await connector.record(.order, id: orderId))
        _ = try await connector.update(.order, id: orderId, record: ["CurrencyCode": "SEK"], cleared: [], current: nil)
        #expect(
            await Self.isModified {
                _ = try await connector.update(
                    .order, id: orderId, record: ["CurrencyCode": "NOK", "SalesOrderLines": [line]], cleared: [], current: before)
            })
        let after = try #require(try await connector.record(.order, id: orderId))
        #expect(after["CurrencyCode"] == "SEK")
        #expect(after["SalesOrderStatus"] == "Confirmed")
    }
}
