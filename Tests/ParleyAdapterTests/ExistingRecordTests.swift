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

/// A create refused because a record with the same natural key exists ends in that record being
/// linked, never in a permanent failure: the adapter finds it by its key, publishes it as a
/// change, and reports the command `failed` with kind `exists` and its id.
@Suite("Creates refused: the record exists", .serialized, .timeLimit(.minutes(5)))
struct ExistingRecordTests {
    typealias P = AdapterProcessTests

    // MARK: Recognising the refusal (no I/O)

    @Test(
        "the webshop's 409: the entity's unique member named in errors, with a value in the record sent; an Idempotency-Key 409 or another member is not"
    )
    func webshopRefusal() {
        let connector = RESTContractConnector(system: .customwebshop, http: HTTPJSONClient(baseURL: "http://127.0.0.1:1") { [] }, style: .webshop)
        let refusal = SystemError.permanent(status: 409, "POST /products: sku 'OST-1' is already used by record 105.")
        func problem(_ field: String) -> JSONValue {
            ["status": 409, "title": "Conflict", "errors": [["field": .string(field), "message": "must be unique"]]]
        }
        #expect(
            connector.classify(refusal, problem: problem("sku"), entity: .product, record: ["sku": "OST-1", "name": "Ost"])
                == .keyInUse(status: 409, "POST /products: sku 'OST-1' is already used by record 105.", key: NaturalKey(field: "sku", value: "OST-1"))
        )
        #expect(
            connector.classify(refusal, problem: problem("email"), entity: .customer, record: ["email": "Kari@Example.no"])
                == .keyInUse(
                    status: 409, "POST /products: sku 'OST-1' is already used by record 105.",
                    key: NaturalKey(field: "email", value: "Kari@Example.no")))
        #expect(connector.classify(refusal, problem: problem("Idempotency-Key"), entity: .product, record: ["sku": "OST-1"]) == refusal)
        #expect(
            connector.classify(refusal, problem: problem("sku"), entity: .customer, record: ["email": "a@b.no"]) == refusal, "not the customer's key")
        #expect(
            connector.classify(refusal, problem: problem("sku"), entity: .product, record: ["sku": "  "]) == refusal, "an empty key finds nothing")
        #expect(connector.classify(refusal, problem: problem("number"), entity: .order, record: [:]) == refusal)
        #expect(connector.classify(refusal, problem: nil, entity: .product, record: ["sku": "OST-1"]) == refusal)
        let erp = RESTContractConnector(system: .customerp, http: HTTPJSONClient(baseURL: "http://127.0.0.1:1") { [] }, style: .erp)
        #expect(
            erp.classify(refusal, problem: problem("sku"), entity: .product, record: ["sku": "OST-1"]) == refusal,
            "the ERP contract has no such look-up")
    }

    @Test("PowerOffice Go's 400 for a product: 'code … already in use' with a Code sent; other 400s are not")
    func powerOfficeRefusal() {
        #expect(
            PowerOfficeConnector.codeInUse(
                detail: "Product code 'sku-genser' is already in use on product Id = 2000001.", record: ["Code": "SKU-GENSER"])
                == NaturalKey(field: "Code", value: "SKU-GENSER"))
        #expect(
            PowerOfficeConnector.codeInUse(detail: "Product code already in use", record: ["Code": "A-1", "Name": "x"])
                == NaturalKey(field: "Code", value: "A-1"))
        #expect(PowerOfficeConnector.codeInUse(detail: "The Name field is required.", record: ["Code": "A-1"]) == nil)
        #expect(PowerOfficeConnector.codeInUse(detail: "Product code 'x' is already in use.", record: ["Name": "no code sent"]) == nil)
        #expect(PowerOfficeConnector.codeInUse(detail: "ExternalImportReference is already in use.", record: ["Code": "A-1"]) == nil)
    }

    @Test("failed's existingId: written only when set, read back, and older payloads without it still read")
    func failedPayload() throws {
        let exists = FailedPayload(
            stage: "adapter", writeId: "w-1", globalId: "product/1", operation: .create, kind: "exists",
            reason: "customwebshop already has a product with sku 'OST-1': id 105", transient: true, existingId: "105")
        #expect(exists.json["existingId"] == "105")
        #expect(try FailedPayload(json: exists.json) == exists)
        let old: JSONValue = [
            "stage": "adapter", "writeId": "w-1", "globalId": "product/1", "operation": "create", "kind": "http409",
            "reason": "HTTP 409: taken", "transient": false
        ]
        let read = try FailedPayload(json: old)
        #expect(read.existingId == nil && read.kind == "http409")
        #expect(read.json["existingId"] == nil)
        #expect(throws: PayloadError.self) { try FailedPayload(json: ["stage": "adapter", "kind": "exists", "reason": "r", "existingId": 105]) }
    }

    // MARK: Against the simulators, with the broker

    static func command(_ entity: CanonicalEntityType, key: String, record: JSONObject, writeId: String) -> CommandPayload {
        CommandPayload(
            operation: .create, targetId: nil, idempotencyKey: key, record: record, cleared: [],
            expected: CanonicalPayload(operation: .upsert, entity: [:], carried: [], references: [], modifiedAt: nil), writeId: writeId)
    }

    static func send(_ command: CommandPayload, _ system: SystemName, _ entity: EntityType, via publisher: AMQPPublisher) async throws {
        try await publisher.publish(
            OutgoingMessage(
                envelope: try Envelope(kind: .command, system: system, entityType: entity, entityId: command.idempotencyKey, payload: command.json),
                exchange: ParleyTopology.Exchanges.commands, routingKey: ParleyTopology.routingKey(system: system, entityType: entity, kind: .command)
            ))
    }

    @Test(
        "customwebshop-adapter: creating an existing SKU or e-mail (in another case) publishes the existing record as a change and reports failed 'exists' with its id; a 409 for a reused Idempotency-Key stays a permanent failure"
    )
    func webshopExisting() async throws {
        try await ScratchVhost.with("parley-test-exists-shop") { vhost in
            try await ScratchDatabase.with("parley_exists_shop") { _, databaseURL in
                let shopPort = P.port(), hookPort = P.port()
                let shop = "http://127.0.0.1:\(shopPort)"
                let simulator = try P.start("customwebshop-simulator", ["--port", "\(shopPort)", "--consumer-key", "ck", "--consumer-secret", "cs"])
                defer { simulator.terminate() }
                try await P.waitUntilUp(shop + "/_admin/records")
                let basic = ["Authorization": "Basic " + Data("ck:cs".utf8).base64EncodedString()]
                func create(_ path: String, key: String, _ body: JSONValue) async throws -> String {
                    let (status, created) = try await P.http(
                        "POST", shop + path, headers: basic.merging(["Idempotency-Key": key]) { a, _ in a }, body: body)
                    #expect(status == 201, "POST \(path): \(String(describing: created))")
                    return try #require(created?["id"]?.number?.text)
                }
                let product = try await create("/products", key: "seed-p", ["sku": "OST-1", "name": "Brunost", "price": "124.50"])
                let customer = try await create("/customers", key: "seed-c", ["email": "Kari.Nordmann@Example.no", "first_name": "Kari"])
                // Created directly with the key the third command will use, and another body.
                let reused = "product/00000000-0000-4000-8000-000000000003"
                _ = try await create("/products", key: reused, ["sku": "OST-2", "name": "Geitost"])

                let amqp = try vhost.configuration("test-exists-shop")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                let env = P.environment(vhost, databaseURL).merging([
                    "PARLEY_CUSTOMWEBSHOP_URL": shop, "PARLEY_CUSTOMWEBSHOP_KEY": "ck", "PARLEY_CUSTOMWEBSHOP_SECRET": "cs",
                    "PARLEY_CUSTOMWEBSHOP_WEBHOOK_SECRET": "whsec"
                ]) { a, _ in a }
                let adapter = try P.start("customwebshop-adapter", ["--poll-seconds", "3600", "--webhook-port", "\(hookPort)"], env: env)
                defer { adapter.terminate() }
                // The first poll publishes the three records; out of the way.
                #expect(try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 3, quiet: .milliseconds(500)).count == 3)

                try await Self.send(
                    Self.command(
                        .product, key: "product/00000000-0000-4000-8000-000000000001",
                        record: ["sku": "OST-1", "name": "Geitost", "price": "99.00"], writeId: "w-p"),
                    .customwebshop, .product, via: publisher)
                try await Self.send(
                    Self.command(
                        .customer, key: "customer/00000000-0000-4000-8000-000000000002",
                        record: ["email": "kari.nordmann@example.no", "first_name": "Kari"], writeId: "w-c"),
                    .customwebshop, .customer, via: publisher)
                try await Self.send(
                    Self.command(.product, key: reused, record: ["sku": "OST-3", "name": "Nøkkelost"], writeId: "w-r"),
                    .customwebshop, .product, via: publisher)

                let events = try await P.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 3)
                #expect(events.count == 3)
                #expect(events.allSatisfy { $0.kind == .failed && $0.system == .customwebshop })
                let failed = Dictionary(
                    uniqueKeysWithValues: try events.map { e in
                        let p = try FailedPayload(json: e.payload); return (p.writeId ?? "", p)
                    })
                for (writeId, id) in [("w-p", product), ("w-c", customer)] {
                    let event = try #require(failed[writeId])
                    #expect(event.kind == "exists")
                    #expect(event.transient)
                    #expect(event.existingId == id)
                    #expect(event.operation == .create)
                    #expect(event.reason.contains(id), "\(event.reason)")
                }
                let other = try #require(failed["w-r"])
                #expect(other.kind == "http409" && !other.transient && other.existingId == nil, "\(other)")

                // Each existing record once, as the feed reports it.
                let changes = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 2)
                #expect(changes.count == 2)
                let byId = Dictionary(uniqueKeysWithValues: changes.map { ($0.entityId, $0) })
                let productChange = try #require(byId[product])
                #expect(productChange.kind == .change && productChange.system == .customwebshop && productChange.entityType == .product)
                let productPayload = try ChangePayload(json: productChange.payload)
                #expect(
                    productPayload.operation == .upsert && productPayload.record?["sku"] == "OST-1" && productPayload.record?["name"] == "Brunost")
                let customerChange = try #require(byId[customer])
                #expect(customerChange.entityType == .customer)
                #expect(try ChangePayload(json: customerChange.payload).record?["email"] == "Kari.Nordmann@Example.no")
                try await P.stop(adapter)
            }
        }
    }

    @Test(
        "powerofficego-adapter: creating a product whose Code is taken publishes the existing product as a change and reports failed 'exists' with its id; another 400 stays permanent"
    )
    func powerOfficeExisting() async throws {
        try await ScratchVhost.with("parley-test-exists-go") { vhost in
            try await ScratchDatabase.with("parley_exists_go") { _, databaseURL in
                let port = P.port()
                let go = "http://127.0.0.1:\(port)"
                let simulator = try P.start("powerofficego-simulator", ["--port", "\(port)"])
                defer { simulator.terminate() }
                try await P.waitUntilUp(go + "/_admin/faults")
                let (status, created) = try await DeleteDetectionTests.goCall(
                    go, "POST", "/v2/Products", body: ["Name": "Ullgenser", "Code": "SKU-GENSER"])
                #expect(status == 200)
                let product = try #require(created?["Id"]?.number?.text)

                let amqp = try vhost.configuration("test-exists-go")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                let env = P.environment(vhost, databaseURL).merging(P.powerOffice(go)) { a, _ in a }
                let adapter = try P.start("powerofficego-adapter", ["--poll-seconds", "3600"], env: env)
                defer { adapter.terminate() }
                #expect(
                    try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(500)).map(\.entityId) == [product])

                try await Self.send(
                    Self.command(
                        .product, key: "product/00000000-0000-4000-8000-000000000001",
                        record: ["Name": "Genser", "Code": "SKU-GENSER"], writeId: "w-1"),
                    .powerofficego, .product, via: publisher)
                let events = try await P.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(500))
                #expect(events.count == 1)
                let failed = try FailedPayload(json: try #require(events.first).payload)
                #expect(events.first?.kind == .failed)
                #expect(failed.kind == "exists" && failed.transient && failed.existingId == product, "\(failed)")
                let changes = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(500))
                #expect(changes.map(\.entityId) == [product])
                let change = try #require(changes.first)
                #expect(change.kind == .change && change.system == .powerofficego && change.entityType == .product)
                #expect(try ChangePayload(json: change.payload).record?["Code"] == "SKU-GENSER")

                // Refused for another reason (no name): a permanent failure, nothing published.
                try await Self.send(
                    Self.command(.product, key: "product/00000000-0000-4000-8000-000000000002", record: ["Code": "NO-NAME"], writeId: "w-2"),
                    .powerofficego, .product, via: publisher)
                let refused = try await P.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(500))
                let permanent = try FailedPayload(json: try #require(refused.first).payload)
                #expect(permanent.kind == "http400" && !permanent.transient && permanent.existingId == nil, "\(permanent)")
                #expect(try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 0, quiet: .seconds(1)).isEmpty)
                try await P.stop(adapter)
            }
        }
    }
}
