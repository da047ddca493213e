import Foundation
import Testing
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
@testable import ParleyLink
import ParleyLinkCore
import ParleyJSON
import ParleyEnvelope

/// A create the target refuses because it already has a record with the entity's key (issue 17):
/// the adapter reports `exists` with the record it found by that key, and the record's own change.
@Suite("Link service: a create refused because the record exists", .serialized, .timeLimit(.minutes(5)))
struct ExistingRecordScenarioTests {
    typealias S = LinkScenarioTests

    static func exists(_ create: Envelope, existingId: String) throws -> Envelope {
        let payload = FailedPayload(
            stage: "adapter", writeId: try SyncRequestPayload(json: create.payload).writeId, globalId: create.entityId,
            operation: .create, kind: "exists", reason: "customwebshop already has a product with sku 'KAFFE-500': id \(existingId)",
            transient: true, existingId: existingId)
        return try Envelope.caused(by: create, kind: .failed, payload: payload.json)
    }

    static let shopProduct: JSONValue = ["id": 702, "sku": "KAFFE-500", "name": "Kaffe", "price": "91.08", "tax_rate": 15, "type": "simple"]

    @Test(
        "The refusal arrives first, then the record found by its key: it is linked, the failure cleared, and the create sent again becomes an update of that record",
        arguments: LinkHarness.Backend.allCases)
    func linkedThenUpdated(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend, lease: .seconds(60)) { h in
            try await h.change(.customerp, .product, "P-1", S.erpProduct, at: 0)
            let create = try #require(try await h.takeRequests().first)
            try await h.deliver(try Self.exists(create, existingId: "702"))
            #expect(try await h.failures().filter { $0.transient && $0.kind == "exists" }.count == 1)
            #expect(try await h.count("write_slot") == 1, "kept: the create is sent again after the backoff")
            // The adapter published the webshop's record as a change: it matches by SKU and joins.
            try await h.change(.customwebshop, .product, "702", Self.shopProduct, at: 1)
            #expect(try await h.count("global_entity") == 1)
            #expect(try await h.count("failed") == 0)
            // After the backoff the write goes again: an update of 702, not a second create.
            h.now = h.now.addingTimeInterval(10)
            #expect(try await h.expireLeases(now: h.now) == 1)
            let again = try #require(try await h.takeRequests().first { $0.system == .customwebshop })
            let request = try SyncRequestPayload(json: again.payload)
            #expect(request.operation == .update)
            #expect(request.targetId == "702")
            #expect(request.writeId == (try SyncRequestPayload(json: create.payload).writeId))
        }
    }

    @Test(
        "The record found by its key already belongs to another entity: a duplicate conflict, reported with its reason, the create not sent again",
        arguments: LinkHarness.Backend.allCases)
    func duplicateEntity(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            try await h.change(.customerp, .product, "P-1", S.erpProduct, at: 0)
            let create = try #require(try await h.takeRequests().first)
            // The webshop's 702 was known under another SKU, and has been given this one since.
            var other = try #require(Self.shopProduct.object)
            other["sku"] = "KAFFE-OLD"
            try await h.change(.customwebshop, .product, "702", .object(other), at: 1)
            #expect(try await h.count("global_entity") == 2)
            _ = try await h.takeRequests()
            #expect(try await h.deliver(try Self.exists(create, existingId: "702")) == .conflict)
            #expect(try await h.count("conflict where native_id = '702'") == 1)
            #expect(try await h.failures().filter { !$0.transient && $0.kind == "duplicate" && $0.reason.contains("duplicate conflict") }.count == 1)
            #expect(try await h.count("write_slot where system = 'customwebshop'") == 0)
        }
    }
}
