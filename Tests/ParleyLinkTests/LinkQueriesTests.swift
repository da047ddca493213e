import Foundation
import Testing
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
@testable import ParleyLink
import ParleyLinkCore
import ParleyEnvelope

/// The read API for tooling, on state driven through the real engine (scratch database).
@Suite("Link queries", .serialized, .timeLimit(.minutes(5)))
struct LinkQueriesTests {
    static let erpProduct = LinkScenarioTests.erpProduct
    static let erpOrder = LinkScenarioTests.erpOrder

    static func writeId(_ request: Envelope) throws -> String { try #require(try SyncRequestPayload(json: request.payload).writeId) }

    static func ref(_ request: Envelope) throws -> GlobalRef { try #require(GlobalRef(request.entityId)) }

    static func fail(_ h: LinkHarness, _ request: Envelope, kind: String, reason: String, transient: Bool) async throws {
        let payload = FailedPayload(
            stage: "adapter", writeId: try writeId(request), globalId: request.entityId,
            operation: try SyncRequestPayload(json: request.payload).operation,
            kind: kind, reason: reason, transient: transient)
        try await h.deliver(try Envelope.caused(by: request, kind: .failed, payload: payload.json))
    }

    /// An ERP customer whose webshop create is in flight, an order parked for the webshop, a
    /// create the webshop refused, a duplicate held as a conflict, and one request not yet
    /// published.
    @Test("Entity look-up, parked, failed, conflicts and counts show exactly what the engine did")
    func overview() async throws {
        try await LinkHarness.run { h in
            let q = LinkQueries(pool: h.pool)
            try await h.change(.customerp, .customer, "C-1", LinkScenarioTests.erpCustomer("C-1", phone: "111"), at: 0)
            let customerCreate = try #require(try await h.takeRequests().first)
            let customer = try Self.ref(customerCreate)

            try await h.change(
                .customerp, .customer, "C-5", LinkScenarioTests.erpCustomer("C-5", name: "Bad Mail AS", org: nil, email: "bad@fjordfisk.no"), at: 1)
            let refusedCreate = try #require(try await h.takeRequests().first)
            let refused = try Self.ref(refusedCreate)
            try await Self.fail(h, refusedCreate, kind: "http422", reason: "422: e-mail rejected", transient: false)

            // A second ERP customer with C-1's organisation number: held.
            #expect(try await h.change(.customerp, .customer, "C-2", LinkScenarioTests.erpCustomer("C-2", email: nil), at: 2) == .conflict)

            try await h.change(.customerp, .product, "P-1", Self.erpProduct, at: 3)  // its create stays in the outbox
            try await h.change(.customerp, .order, "O-1", Self.erpOrder, at: 4)
            let product = try #require(try await q.entity(system: .customerp, entityType: .product, nativeId: "P-1")).ref
            let order = try #require(try await q.entity(system: .customerp, entityType: .order, nativeId: "O-1")).ref

            // The customer, by its record and by its global id.
            let entity = try #require(try await q.entity(system: .customerp, entityType: .customer, nativeId: "C-1"))
            #expect(try await q.entity(globalId: customer) == entity)
            #expect(entity.ref == customer)
            #expect(entity.entityType == .customer)
            #expect(entity.state["name"] == "Fjord Fisk AS")
            #expect(entity.state["organizationNumber"] == "923609016")
            #expect(entity.state["phone"] == "111")
            #expect(entity.provenance["name"] == Provenance(system: .customerp, modifiedAt: 1_700_000_000_000))
            #expect(Set(entity.state.keys).isSubset(of: entity.provenance.keys))
            #expect(entity.createdAt <= entity.updatedAt)
            #expect(entity.members.count == 1)
            let erp = try #require(entity.members.first)
            #expect(erp.system == .customerp && erp.nativeId == "C-1")
            #expect(erp.sourceModifiedAt == Date(timeIntervalSince1970: 1_700_000_000))
            #expect(erp.status.isQuiet)
            // Not a member of the webshop yet: its create is in flight there.
            #expect(entity.outstanding.map(\.system) == [.customwebshop])
            let write = try #require(entity.outstanding.first?.status.write)
            #expect(write.writeId == (try Self.writeId(customerCreate)))
            #expect(write.operation == .create)
            #expect(write.idempotencyKey == customer.description)
            #expect(write.leaseUntil == h.now.addingTimeInterval(60))
            #expect(!write.pending)
            #expect(entity.outstanding.first?.status.parked == nil && entity.outstanding.first?.status.failure == nil)
            #expect(entity.conflicts.map { [$0.system.rawValue, $0.nativeId, $0.memberId] } == [["customerp", "C-2", "C-1"]])

            // Unknown records and ids, and a global id of the wrong type.
            #expect(try await q.entity(system: .customerp, entityType: .customer, nativeId: "C-404") == nil)
            #expect(try await q.entity(system: .customerp, entityType: .customer, nativeId: "C-2") == nil, "held, not a member")
            #expect(try await q.entity(system: .customwebshop, entityType: .customer, nativeId: "C-1") == nil)
            #expect(try await q.entity(globalId: GlobalRef(.customer, id: UUID())) == nil)
            #expect(try await q.entity(globalId: GlobalRef(.order, id: customer.id)) == nil)

            // Parked: the order, for the webshop, waiting for both references.
            let parked = try await q.parked(limit: 10)
            #expect(parked.count == 1)
            #expect(parked.first?.ref == order)
            #expect(parked.first?.system == .customwebshop)
            #expect(parked.first?.members == [LinkQueries.NativeRecord(system: .customerp, nativeId: "O-1")])
            #expect(parked.first?.parking.waitingFor == [customer.description, product.description].sorted())
            #expect(try await q.parked(limit: 10, system: .powerofficego).isEmpty)
            #expect(try await q.parked(limit: 10, entityType: .customer).isEmpty)
            #expect(try await q.parked(limit: 10, system: .customwebshop, entityType: .order).map(\.ref) == [order])
            let orderEntity = try #require(try await q.entity(globalId: order))
            #expect(orderEntity.outstanding.map(\.system) == [.customwebshop])
            #expect(orderEntity.outstanding.first?.status.parked == parked.first?.parking)
            #expect(orderEntity.outstanding.first?.status.write == nil, "a parked create holds no write slot")
            #expect(orderEntity.state["customer"] == .string(customer.description))

            // Failed: the refused create, permanent, its slot released.
            let failed = try await q.failed(limit: 10)
            #expect(failed.count == 1)
            #expect(failed.first?.ref == refused)
            #expect(failed.first?.system == .customwebshop)
            #expect(failed.first?.members == [LinkQueries.NativeRecord(system: .customerp, nativeId: "C-5")])
            let failure = try #require(failed.first?.failure)
            #expect(failure.kind == "http422")
            #expect(failure.reason == "422: e-mail rejected")
            #expect(!failure.transient)
            #expect(failure.attempts == 1)
            #expect(failure.retryAt == nil)
            let refusedEntity = try #require(try await q.entity(globalId: refused))
            #expect(refusedEntity.outstanding.map(\.system) == [.customwebshop])
            #expect(refusedEntity.outstanding.first?.status == LinkQueries.TargetStatus(failure: failure))

            // Conflicts: C-2 held against C-1's entity.
            let conflicts = try await q.conflicts(limit: 10)
            #expect(conflicts.count == 1)
            #expect(conflicts.first?.ref == customer)
            #expect(conflicts.first?.system == .customerp)
            #expect(conflicts.first?.nativeId == "C-2")
            #expect(conflicts.first?.memberId == "C-1")
            #expect(conflicts.first?.reason.contains("C-2") == true)
            #expect(try await q.conflicts(limit: 10, entityType: .product).isEmpty)

            // Counts.
            let counts = try await q.counts()
            #expect(counts.entities == [.customer: 2, .product: 1, .order: 1])
            func row(_ s: SystemName, _ t: CanonicalEntityType) -> LinkQueries.SystemCounts? {
                counts.systems.first { $0.system == s && $0.entityType == t }
            }
            #expect(counts.systems.count == 6)
            #expect(row(.customerp, .customer) == LinkQueries.SystemCounts(system: .customerp, entityType: .customer, members: 2, conflicts: 1))
            #expect(row(.customerp, .product) == LinkQueries.SystemCounts(system: .customerp, entityType: .product, members: 1))
            #expect(row(.customerp, .order) == LinkQueries.SystemCounts(system: .customerp, entityType: .order, members: 1))
            #expect(
                row(.customwebshop, .customer)
                    == LinkQueries.SystemCounts(system: .customwebshop, entityType: .customer, writesInFlight: 1, failed: 1))
            #expect(row(.customwebshop, .product) == LinkQueries.SystemCounts(system: .customwebshop, entityType: .product, writesInFlight: 1))
            #expect(row(.customwebshop, .order) == LinkQueries.SystemCounts(system: .customwebshop, entityType: .order, parked: 1))
            #expect(
                counts.systems.map { "\($0.system)/\($0.entityType.rawValue)" } == [
                    "customerp/customer", "customerp/order", "customerp/product", "customwebshop/customer", "customwebshop/order",
                    "customwebshop/product"
                ])
            #expect(counts.writesInFlight == 2)
            #expect(counts.parked == 1 && counts.failed == 1 && counts.conflicts == 1)
            #expect(counts.outbox == 1, "the product's create, not yet published")
            #expect(counts.outboxOldest != nil)

            // The machine form carries the same facts.
            let json = entity.json
            #expect(json["id"] == .string(customer.description))
            #expect(json["members"]?[0]?["nativeId"] == "C-1")
            #expect(json["members"]?[0]?["sourceModifiedAt"] == "2023-11-14T22:13:20.000Z")
            #expect(json["outstanding"]?[0]?["write"]?["operation"] == "create")
            #expect(json["outstanding"]?[0]?["nativeId"] == .null)
            #expect(json["provenance"]?["name"]?["system"] == "customerp")
            #expect(counts.json["entities"]?["customer"] == 2)
        }
    }

    @Test("A member's own status: an update in flight after a transient failure, with its retry time; a create coalescing a newer state")
    func memberStatus() async throws {
        try await LinkHarness.run { h in
            let q = LinkQueries(pool: h.pool)
            try await h.change(.customerp, .customer, "C-1", LinkScenarioTests.erpCustomer("C-1", phone: "111"), at: 0)
            let create = try #require(try await h.takeRequests().first)
            let customer = try Self.ref(create)
            try await h.written(create, nativeId: "501")
            #expect(try await h.takeRequests().map(\.system) == [.powerofficego])
            // The ERP edits the phone: an update to the webshop; PowerOffice Go's create is in flight, so it waits.
            try await h.change(.customerp, .customer, "C-1", LinkScenarioTests.erpCustomer("C-1", phone: "222"), at: 10)
            let update = try #require(try await h.takeRequests().first { $0.system == .customwebshop })
            try await Self.fail(h, update, kind: "http503", reason: "503 Service Unavailable", transient: true)

            let entity = try #require(try await q.entity(system: .customwebshop, entityType: .customer, nativeId: "501"))
            #expect(entity.ref == customer)
            #expect(entity.state["phone"] == "222")
            #expect(entity.provenance["phone"] == Provenance(system: .customerp, modifiedAt: 1_700_000_010_000))
            #expect(entity.members.map(\.system) == [.customerp, .customwebshop])
            #expect(entity.members.map(\.nativeId) == ["C-1", "501"])
            #expect(entity.members[0].sourceModifiedAt == Date(timeIntervalSince1970: 1_700_000_010))
            #expect(entity.members[0].status.isQuiet)
            let shop = entity.members[1]
            #expect(shop.sourceModifiedAt == nil, "nothing reported from the webshop yet, only our write")
            let retryAt = h.now.addingTimeInterval(5)
            #expect(shop.status.write?.operation == .update)
            #expect(shop.status.write?.writeId == (try Self.writeId(update)))
            #expect(shop.status.write?.leaseUntil == retryAt, "the lease is the retry timer")
            #expect(shop.status.failure?.transient == true)
            #expect(shop.status.failure?.kind == "http503")
            #expect(shop.status.failure?.attempts == 1, "one failure is one attempt")
            #expect(shop.status.failure?.retryAt == retryAt)
            #expect(shop.status.parked == nil)
            #expect(entity.outstanding.map(\.system) == [.powerofficego])
            #expect(entity.outstanding.first?.status.write?.operation == .create)
            #expect(entity.outstanding.first?.status.write?.pending == true, "the new phone follows the create")
            #expect(entity.conflicts.isEmpty)

            let failed = try await q.failed(limit: 10)
            #expect(failed.map(\.ref) == [customer])
            #expect(failed.first?.members.map(\.nativeId) == ["C-1", "501"])
            #expect(failed.first?.failure == shop.status.failure)
            let counts = try await q.counts()
            #expect(counts.entities == [.customer: 1, .product: 0, .order: 0])
            #expect(counts.systems.first { $0.system == .customwebshop }?.failedTransient == 1)
            #expect(counts.writesInFlight == 2)
            #expect(counts.outbox == 0)
            #expect(counts.outboxOldest == nil)
        }
    }

    @Test("Retry: a permanently failed entity gets a new sync request from the engine's own path; nothing else is retried")
    func retry() async throws {
        try await LinkHarness.run { h in
            let q = LinkQueries(pool: h.pool)
            try await h.change(
                .customerp, .customer, "C-5", LinkScenarioTests.erpCustomer("C-5", name: "Bad Mail AS", org: nil, email: "bad@fjordfisk.no"), at: 0)
            let first = try #require(try await h.takeRequests().first)
            let ref = try Self.ref(first)
            try await Self.fail(h, first, kind: "http422", reason: "422: e-mail rejected", transient: false)
            #expect(try await h.count("write_slot") == 0)

            let outcome = try await q.retry(globalId: ref, system: .customwebshop, now: h.now)
            guard case .sent(let writeId, let operation) = outcome else { Issue.record("\(outcome)"); return }
            #expect(operation == .create)
            #expect(writeId != (try Self.writeId(first)), "a new write")
            let requests = try await h.takeRequests()
            #expect(requests.count == 1)
            let request = try #require(requests.first)
            #expect(request.kind == .syncRequest)
            #expect(request.system == .customwebshop)
            #expect(request.entityId == ref.description, "the same idempotency key")
            let payload = try SyncRequestPayload(json: request.payload)
            #expect(payload.writeId == writeId)
            #expect(payload.operation == .create)
            #expect(payload.entity["name"] == "Bad Mail AS")
            // The failure stays recorded until a write succeeds; the write is in flight.
            #expect(try await q.failed(limit: 10).map(\.ref) == [ref])
            #expect(try await q.entity(globalId: ref)?.outstanding.first?.status.write?.writeId == writeId)

            // Asked again while that write is in flight: nothing is sent or marked.
            #expect(try await q.retry(globalId: ref, system: .customwebshop, now: h.now) == .inFlight(writeId: writeId))
            #expect(try await h.takeRequests().isEmpty)
            #expect(try await q.entity(globalId: ref)?.outstanding.first?.status.write?.pending == false)

            // The webshop accepts it: the failure is gone and the record is a member.
            try await h.written(request, nativeId: "777")
            #expect(try await q.failed(limit: 10).isEmpty)
            #expect(try await q.entity(system: .customwebshop, entityType: .customer, nativeId: "777")?.ref == ref)
            #expect(try await h.takeRequests().map(\.system) == [.powerofficego], "the chain continues; no second webshop write")
            #expect(try await q.retry(globalId: ref, system: .customwebshop, now: h.now) == .notFailed)
            #expect(try await h.takeRequests().isEmpty)

            // A transient failure is the service's to retry.
            try await h.change(.customerp, .customer, "C-1", LinkScenarioTests.erpCustomer("C-1"), at: 1)
            let other = try #require(try await h.takeRequests().first)
            try await Self.fail(h, other, kind: "http503", reason: "503", transient: true)
            #expect(
                try await q.retry(globalId: try Self.ref(other), system: .customwebshop, now: h.now)
                    == .alreadyScheduled(retryAt: h.now.addingTimeInterval(5)))
            #expect(try await h.takeRequests().isEmpty)

            await #expect(throws: LinkError.self) {
                try await q.retry(globalId: GlobalRef(.customer, id: UUID()), system: .customwebshop)
            }
        }
    }
}
