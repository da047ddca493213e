import Foundation
import Testing
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
@testable import ParleyLink
import ParleyLinkCore
import ParleyJSON
import ParleyEnvelope

/// Conditional writes (issue 17): an update names the record's time the state was merged with
/// (`baseModifiedAt`); the adapter does not overwrite a record modified since (`changed`, its
/// record published as a change) nor write to one that is gone (`gone`, its delete published).
@Suite("Link service: conditional writes, changed and gone records", .serialized, .timeLimit(.minutes(5)))
struct ConditionalWriteScenarioTests {
    typealias S = LinkScenarioTests

    static let shopProduct: JSONValue = ["id": 702, "sku": "KAFFE-500", "name": "Kaffe", "price": "91.08", "tax_rate": 15, "type": "simple"]

    static func instant(_ seconds: Int) -> String { CivilTime.formatInstant(ms: (1_700_000_000 + Int64(seconds)) * 1000) }

    static func failed(_ request: Envelope, kind: String, transient: Bool) throws -> Envelope {
        let sync = try SyncRequestPayload(json: request.payload)
        let payload = FailedPayload(
            stage: "adapter", writeId: sync.writeId, globalId: request.entityId, operation: sync.operation, kind: kind,
            reason: "customwebshop product 702: \(kind)", transient: transient, targetId: sync.targetId)
        return try Envelope.caused(by: request, kind: .failed, payload: payload.json)
    }

    /// ERP product P-1 created in the webshop as 702, whose answer says it was modified at 1 s.
    static func linked(_ h: LinkHarness) async throws {
        try await h.change(.customerp, .product, "P-1", S.erpProduct, at: 0)
        let create = try #require(try await h.takeRequests().first { $0.system == .customwebshop })
        #expect(try SyncRequestPayload(json: create.payload).baseModifiedAt == nil, "a create has no base")
        try await h.deliver(try h.writtenEvent(create, nativeId: "702", modifiedAt: 1))
        _ = try await h.takeRequests()
    }

    /// ``linked(_:)``, then the ERP's edit of the name at 2 s: the update it sends the webshop.
    static func edited(_ h: LinkHarness) async throws -> Envelope {
        try await linked(h)
        var edited = try #require(S.erpProduct.object)
        edited["description"] = "Kaffe mørk"
        try await h.change(.customerp, .product, "P-1", .object(edited), at: 2)
        return try #require(try await h.takeRequests().first { $0.system == .customwebshop })
    }

    @Test(
        "An update's base is the record's time after Parley's last write to it, then the time of its own last change",
        arguments: LinkHarness.Backend.allCases)
    func baseFollowsTheRecord(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            let update = try await Self.edited(h)
            let request = try SyncRequestPayload(json: update.payload)
            #expect(request.operation == .update && request.targetId == "702")
            #expect(request.baseModifiedAt == Self.instant(1))
            let (_, command) = try h.command(for: update)
            #expect(command.baseModifiedAt == Self.instant(1), "the mapping service hands it on")
            try await h.deliver(try h.writtenEvent(update, nativeId: "702", modifiedAt: 3))
            // The webshop reports the record at 4 s (what was written; a touch): the next write's base.
            var shop = try #require(Self.shopProduct.object)
            shop["name"] = "Kaffe mørk"
            try await h.change(.customwebshop, .product, "702", .object(shop), at: 4)
            var later = try #require(S.erpProduct.object)
            later["description"] = "Kaffe lys"
            try await h.change(.customerp, .product, "P-1", .object(later), at: 5)
            let next = try #require(try await h.takeRequests().last { $0.system == .customwebshop })
            #expect(try SyncRequestPayload(json: next.payload).baseModifiedAt == Self.instant(4))
        }
    }

    @Test(
        "changed: the write waits for the record's change, which is merged (its edit kept) and the merged state written back with the new base; nothing is recorded as failed",
        arguments: LinkHarness.Backend.allCases)
    func changedRecordMergedThenWritten(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            let update = try await Self.edited(h)
            // The webshop's price was edited at 3 s, not yet reported: the adapter did not write.
            try await h.deliver(try Self.failed(update, kind: "changed", transient: true))
            #expect(try await h.count("write_slot where system = 'customwebshop'") == 0)
            #expect(try await h.count("failed") == 0)
            #expect(try await h.count("parked where system = 'customwebshop' and waiting_for = '[]'::jsonb") == 1)
            // The record the adapter published: its price edit wins (later), the name it lacks is written back.
            var shop = try #require(Self.shopProduct.object)
            shop["price"] = "114.00"
            try await h.change(.customwebshop, .product, "702", .object(shop), at: 3)
            #expect(try await h.count("parked") == 0)
            let requests = try await h.takeRequests()
            let back = try #require(requests.first { $0.system == .customwebshop })
            let request = try SyncRequestPayload(json: back.payload)
            #expect(request.operation == .update && request.baseModifiedAt == Self.instant(3))
            #expect(request.entity["name"] == "Kaffe mørk")
            #expect(request.entity["salesPriceExclVat"] != S.erpProduct["salesPrice"], "\(request.entity)")
            #expect(requests.contains { $0.system == .customerp }, "the webshop's price goes to the ERP")
        }
    }

    @Test("changed, with the record's change held while the write was in flight: handled when the refusal arrives, and the merged state written back")
    func changedWithHeldChange() async throws {
        try await LinkHarness.run { h in
            let update = try await Self.edited(h)
            var shop = try #require(Self.shopProduct.object)
            shop["price"] = "114.00"
            #expect(
                try await h.change(.customwebshop, .product, "702", .object(shop), at: 3)
                    == .held(
                        global: try #require(
                            try await h.pool.query("select global_id from member where native_id = '702'").first?.decode(UUID.self, at: 0))))
            try await h.deliver(try Self.failed(update, kind: "changed", transient: true))
            #expect(try await h.count("parked") == 0)
            #expect(try await h.count("write_slot where system = 'customwebshop'") == 1)
            let back = try #require(try await h.takeRequests().first { $0.system == .customwebshop })
            #expect(try SyncRequestPayload(json: back.payload).baseModifiedAt == Self.instant(3))
        }
    }

    @Test(
        "gone: no failure and no retry; the record's delete, published by the adapter, archives the other members",
        arguments: LinkHarness.Backend.allCases)
    func goneRecord(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            let update = try await Self.edited(h)
            try await h.deliver(try Self.failed(update, kind: "gone", transient: false))
            #expect(try await h.count("write_slot where system = 'customwebshop'") == 0)
            #expect(try await h.count("failed") == 0)
            #expect(try await h.count("parked") == 0)
            let delete = try Envelope(
                kind: .change, system: .customwebshop, entityType: .product, entityId: "702",
                time: Date(timeIntervalSince1970: 1_700_000_004), payload: ChangePayload(operation: .delete, record: nil).json)
            try await h.deliver(try h.processor.process(change: delete).envelope)
            let archive = try #require(try await h.takeRequests().first { $0.system == .customerp })
            #expect(try SyncRequestPayload(json: archive.payload).operation == .archive)
        }
    }
}
