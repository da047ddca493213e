import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
@testable import ParleyMapping
import ParleyJSON
import ParleyEnvelope

/// The mapping service's message logic, without a broker.
@Suite("Mapping processor: messages in, messages out")
struct MappingProcessorTests {
    let processor = MappingProcessor(mappings: Golden.mappings)

    func change(_ system: SystemName, _ entity: CanonicalEntityType, id: String, payload: JSONValue) throws -> Envelope {
        try Envelope(
            kind: .change, system: system, entityType: entity.messagingEntityType, entityId: id,
            time: Date(timeIntervalSince1970: 1_762_000_000), payload: payload)
    }

    @Test("A change becomes a canonical message for the link service, in the same chain")
    func changeToCanonical() throws {
        let input = try change(
            .customwebshop, .order, id: "9001",
            payload: ChangePayload(record: try Golden.record(.customwebshop, .order)).json)
        let output = try processor.process(change: input)
        #expect(output.exchange == ParleyTopology.Exchanges.canonical)
        #expect(output.routingKey == "customwebshop.order.canonical")
        #expect(output.envelope.kind == .canonical)
        #expect(output.envelope.entityId == "9001")
        #expect(output.envelope.correlationId == input.correlationId)
        #expect(output.envelope.causationId == input.id)
        #expect(output.envelope.time == input.time)
        let canonical = try CanonicalPayload(json: output.envelope.payload)
        #expect(canonical.carried.contains("lines"))
        #expect(canonical.references.map(\.path) == ["customer", "lines[0].product", "lines[1].product"])
        #expect(canonical.entity["status"] == "processing")
        // And it survives the wire.
        let decoded = try Envelope.decode(output.envelope.encoded())
        #expect(try CanonicalPayload(json: decoded.payload) == canonical)
    }

    @Test("A delete becomes an archive of the global entity")
    func deleteArchives() throws {
        let output = try processor.process(change: try change(.customerp, .product, id: "P-2001", payload: ["operation": "delete"]))
        let canonical = try CanonicalPayload(json: output.envelope.payload)
        #expect(canonical.operation == .delete)
        #expect(canonical.entity == ["archived": true])
        #expect(canonical.carried == ["archived"])
    }

    static let rejected: [(JSONValue, String)] = [
        (["record": ["id": 701, "sku": "X", "price": "12,5", "tax_rate": 25]], "field price (salesPriceExclVat)"),
        (["operation": "upsert"], "payload field record: an upsert needs the record"),
        (["record": ["id": 702]], "the record's id 702 is not the message's entityId 701"),
        (["record": [1, 2]], "expected the record as a JSON object"),
        (["recrod": ["id": 701]], "payload field recrod: unknown member")
    ]

    @Test("Unmappable changes are rejected with a reason naming the field", arguments: rejected)
    func rejectedChanges(payload: JSONValue, reason: String) throws {
        let input = try change(.customwebshop, .product, id: "701", payload: payload)
        #expect(throws: MappingRejection.self) { try processor.process(change: input) }
        do {
            _ = try processor.process(change: input)
        } catch {
            #expect(error.reason.contains(reason), "\(error.reason)")
        }
    }

    @Test("A message of the wrong kind or for an unknown entity is rejected")
    func wrongKindOrEntity() throws {
        let sync = try Envelope(kind: .syncRequest, system: .customerp, entityType: .customer, entityId: "x", payload: [:])
        #expect(throws: MappingRejection.self) { try processor.process(change: sync) }
        let invoice = try Envelope(kind: .change, system: .customerp, entityType: "invoice", entityId: "x", payload: [:])
        #expect(throws: MappingRejection.self) { try processor.process(change: invoice) }
        let unknownSystem = try Envelope(kind: .change, system: "sap", entityType: .customer, entityId: "x", payload: [:])
        #expect(throws: MappingRejection.self) { try processor.process(change: unknownSystem) }
    }

    func syncRequest(_ system: SystemName, _ entity: CanonicalEntityType, globalId: String, _ payload: SyncRequestPayload) throws -> Envelope {
        try Envelope(kind: .syncRequest, system: system, entityType: entity.messagingEntityType, entityId: globalId, payload: payload.json)
    }

    @Test(
        "The expected echo leaves out a line member no line was written with: the target fills it as it likes (the webshop names a line after its product)"
    )
    func echoLeavesOutUnwrittenLineMembers() throws {
        let erp = try Golden.mapper(.customerp, .order).toCanonical(try Golden.record(.customerp, .order))
        var values = Golden.resolve(erp)
        values["lines"] = .array(
            (values["lines"]?.array ?? []).map { line -> JSONValue in
                guard case .object(var o) = line else { return line }
                o["description"] = nil
                return .object(o)
            })
        let request = SyncRequestPayload(
            operation: .create, targetId: nil, entity: CanonicalJSON.nest(values, entity: .order),
            targetIds: MappingEngineGoldenTests.targetIds(from: .customerp, to: .customwebshop), writeId: "w-1")
        let output = try processor.process(
            syncRequest: try syncRequest(.customwebshop, .order, globalId: "order/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11", request))
        let command = try CommandPayload(json: output.envelope.payload)
        #expect(command.record["line_items"]?[0]?["name"] == nil)
        #expect(!command.expected.carried.contains("lines") && !command.expected.carried.contains("lines.description"))
        #expect(
            command.expected.carried.contains("lines.sku") && command.expected.carried.contains("lines.product")
                && command.expected.carried.contains("lines.unitPriceExclVat"))
    }

    @Test("A sync request becomes a command for the target's adapter, with the idempotency key and the expected echo")
    func syncToCommand() throws {
        let shop = try Golden.mapper(.customwebshop, .order).toCanonical(try Golden.record(.customwebshop, .order))
        let values = Golden.resolve(shop)
        let targetIds = MappingEngineGoldenTests.targetIds(from: .customwebshop, to: .powerofficego)
        let request = SyncRequestPayload(
            operation: .create, targetId: nil, entity: CanonicalJSON.nest(values, entity: .order),
            targetIds: targetIds, writeId: "w-1")
        let input = try syncRequest(.powerofficego, .order, globalId: "order/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11", request)
        let output = try processor.process(syncRequest: input)
        #expect(output.exchange == ParleyTopology.Exchanges.commands)
        #expect(output.routingKey == "powerofficego.order.command")
        #expect(output.envelope.kind == .command)
        let command = try CommandPayload(json: output.envelope.payload)
        #expect(command.operation == .create)
        #expect(command.idempotencyKey == "order/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11")
        #expect(command.writeId == "w-1")
        #expect(command.cleared.isEmpty, "a create clears nothing")
        #expect(command.record["CustomerId"] == 1234567)
        #expect(command.expected.carried.contains("lines.quantity") && command.expected.carried.contains("lines.product"))
        #expect(!command.expected.carried.contains("lines.vatRate"), "Go computes line VAT itself")
        #expect(!command.expected.carried.contains("lines.discountPercent"), "no line carries a discount: Go fills its own Allowance")
        #expect(try CommandPayload(json: JSONValue.parse(output.envelope.payload.serializedString())) == command)
    }

    @Test("A sync request the target would refuse becomes a failed event for the link service, not a command")
    func syncToFailed() throws {
        let request = SyncRequestPayload(operation: .update, targetId: "88001", entity: ["sku": "KOPP"], writeId: "w-2")
        let output = try processor.process(
            syncRequest: try syncRequest(.powerofficego, .product, globalId: "product/5f0c8f5e-1c1a-4f0e-9d7a-3a1f2f1c9e11", request))
        #expect(output.envelope.kind == .failed)
        #expect(output.exchange == ParleyTopology.Exchanges.events)
        #expect(output.routingKey == "powerofficego.product.failed")
        #expect(output.envelope.payload["field"] == "Name")
        #expect(output.envelope.payload["kind"] == "validation")
        #expect(output.envelope.payload["writeId"] == "w-2")
        #expect(output.envelope.payload["targetId"] == "88001")
        #expect(output.envelope.payload["reason"]?.string?.contains("powerofficego product field Name") == true)
    }

    @Test("A malformed sync request is rejected: an update without the target's id, unknown canonical fields")
    func rejectedSync() throws {
        let noTarget: JSONValue = ["operation": "update", "entity": ["sku": "KOPP"]]
        let input = try Envelope(kind: .syncRequest, system: .powerofficego, entityType: .product, entityId: "g", payload: noTarget)
        #expect(throws: MappingRejection.self) { try processor.process(syncRequest: input) }
        let unknown: JSONValue = ["operation": "create", "entity": ["colour": "blue"]]
        let input2 = try Envelope(kind: .syncRequest, system: .powerofficego, entityType: .product, entityId: "g", payload: unknown)
        #expect(throws: MappingRejection.self) { try processor.process(syncRequest: input2) }
    }
}
