import Foundation
import Testing
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyPostgres
@testable import ParleyLink
import ParleyLinkCore
import ParleyJSON

/// Rule 6 at the source (issue 17, cause 1): a change that names records its own system has not
/// reported yet waits for them, so that those records are matched by key (rule 3) like any other
/// before anything refers to them.
@Suite("Link service: changes that wait for the records they name", .serialized, .timeLimit(.minutes(5)))
struct WaitingChangeTests {
    typealias S = LinkScenarioTests

    static let goProduct: JSONValue = ["Id": 88001, "Code": "KAFFE-500", "Name": "Kaffe", "SalesPrice": 79.2]

    /// The waiting changes that are ready, handed back as the service's `LinkWaiting` does.
    @discardableResult
    static func release(_ h: LinkHarness) async throws -> Int {
        let now = h.now
        if let memory = h.memory { return try memory.releaseWaiting(now: now) }
        return try await LinkWaiting.release(limit: 100, engine: h.engine, pool: h.pool, now: { now }).count
    }

    @Test(
        "An order arriving before its product, which PowerOffice Go already has: the order waits, the ERP product matches Go's by SKU (one entity), and the order goes on with the right product"
    )
    func orderBeforeItsPreexistingProduct() async throws {
        try await LinkHarness.run { h in
            // PowerOffice Go has had product KAFFE-500 all along.
            try await h.change(.powerofficego, .product, "88001", Self.goProduct, at: 0)
            #expect(try await h.takeRequests().isEmpty, "no flow leads out of PowerOffice Go")
            // The ERP's customer is known and in the webshop; its new order names a product the
            // ERP's feed has not reported yet.
            try await h.change(.customerp, .customer, "C-1", S.erpCustomer("C-1"), at: 1)
            try await h.written(try #require(try await h.takeRequests().first), nativeId: "501")
            _ = try await h.takeRequests()  // PowerOffice Go's customer create
            #expect(try await h.change(.customerp, .order, "O-1", S.erpOrder, at: 2) == .waiting)
            #expect(try await h.count("waiting_change") == 1)
            #expect(try await h.count("global_entity where entity_type = 'product'") == 1, "no entity made for a record only named")
            #expect(try await Self.release(h) == 0, "its product is not there yet")

            // The ERP product arrives: it matches PowerOffice Go's by SKU.
            try await h.change(.customerp, .product, "P-1", S.erpProduct, at: 3)
            #expect(try await h.count("global_entity where entity_type = 'product'") == 1)
            #expect(try await h.count("natural_key where kind = 'sku'") == 1)
            let productCreate = try #require(try await h.takeRequests().first { $0.system == .customwebshop && $0.entityType == .product })

            // The order is handed back and handled: parked for the webshop until the product is there.
            #expect(try await Self.release(h) == 1)
            #expect(try await h.count("waiting_change") == 0)
            #expect(try await h.count("parked") == 1)
            try await h.written(productCreate, nativeId: "701")
            let orderCreate = try #require(try await h.takeRequests().first { $0.entityType == .order })
            #expect(orderCreate.system == .customwebshop)
            let (_, command) = try h.command(for: orderCreate)
            #expect(command.record["line_items"]?[0]?["product_id"] == 701)
            #expect(command.record["customer_id"] == 501)

            // One product entity with all three records, and the order's line names it.
            let product = try await h.pool.query("select global_id from member where system = 'powerofficego' and native_id = '88001'")[0]
                .decode(UUID.self, at: 0)
            #expect(try await h.count("member where entity_type = 'product' and global_id = '\(product.lowercasedString)'") == 3)
            #expect(try await h.state(of: .customerp, .order, "O-1")["lines"]?[0]?["product"] == .string("product/\(product.lowercasedString)"))
            #expect(try await h.count("conflict") == 0)
            #expect(try await h.count("failed") == 0)
        }
    }

    @Test(
        "A newer change of a waiting record replaces the waiting one; a change with every record known ends the wait; an older waiting change handed back late is stale",
        arguments: LinkHarness.Backend.allCases)
    func newerChangeEndsTheWait(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            try await h.change(.customerp, .customer, "C-1", S.erpCustomer("C-1"), at: 0)
            _ = try await h.takeRequests()
            #expect(try await h.change(.customerp, .order, "O-1", S.erpOrder, at: 2) == .waiting)
            // The same order, edited, still before the product is reported: one waiting change, the newer.
            var edited = try #require(S.erpOrder.object)
            edited["yourReference"] = "Innkjøp 8"
            #expect(try await h.change(.customerp, .order, "O-1", .object(edited), at: 3) == .waiting)
            #expect(try await h.count("waiting_change") == 1)
            #expect(try await h.count("waiting_change where modified_at = \(Int64(1_700_000_003) * 1000)") == 1)
            // An older one arriving late does not replace it.
            #expect(try await h.change(.customerp, .order, "O-1", S.erpOrder, at: 1) == .waiting)
            #expect(try await h.count("waiting_change where modified_at = \(Int64(1_700_000_003) * 1000)") == 1)

            try await h.change(.customerp, .product, "P-1", S.erpProduct, at: 4)
            #expect(try await Self.release(h) == 1)
            #expect(try await h.count("waiting_change") == 0)
            #expect(try await h.state(of: .customerp, .order, "O-1")["customerReference"] == "Innkjøp 8")

            // A change older than what was handled since, which names a record not reported yet,
            // arrives late: it waits, and when handed back it is stale (and its row goes).
            var older = try #require(S.erpOrder.object)
            older["lines"] = [["productId": "P-3", "itemNo": "TE-100", "quantity": 1, "unitPrice": 40, "vatPercent": 15]]
            #expect(try await h.change(.customerp, .order, "O-1", .object(older), at: 2) == .waiting)
            try await h.change(
                .customerp, .product, "P-3",
                [
                    "id": "P-3", "itemNo": "TE-100", "description": "Te", "salesPrice": 40,
                    "vatPercent": 15, "itemType": "STOCK"
                ], at: 5)
            #expect(try await Self.release(h) == 1)
            #expect(try await h.count("waiting_change") == 0)
            #expect(try await h.state(of: .customerp, .order, "O-1")["lines"]?[0]?["sku"] == "KAFFE-500")

            // Handed back twice (two replicas at once), a change has one id: the inbox takes it once.
            let original = try #require(UUID(uuidString: "0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11"))
            #expect(WaitingChange.releasedId(of: original) == WaitingChange.releasedId(of: original))
            #expect(WaitingChange.releasedId(of: original) != original)
        }
    }

    @Test(
        "A write to a record whose own newer change waits is parked, and goes once that change is handled, carrying both",
        arguments: LinkHarness.Backend.allCases)
    func writeWaitsForTheRecordsOwnChange(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            try await S.erpCustomerAndProductInWebshop(h)
            try await h.change(.customerp, .order, "O-1", S.erpOrder, at: 2)
            let create = try #require(try await h.takeRequests().first { $0.entityType == .order })
            try await h.written(create, nativeId: "9001")
            _ = try await h.takeRequests()  // PowerOffice Go's create
            // The ERP adds a line for a product its feed has not reported yet: that change waits.
            var withNewLine = try #require(S.erpOrder.object)
            withNewLine["lines"] = [
                ["productId": "P-1", "itemNo": "KAFFE-500", "quantity": 2, "unitPrice": 79.2, "vatPercent": 15],
                ["productId": "P-2", "itemNo": "TE-100", "quantity": 1, "unitPrice": 40, "vatPercent": 15]
            ]
            #expect(try await h.change(.customerp, .order, "O-1", .object(withNewLine), at: 10) == .waiting)
            // Meanwhile the webshop edits the order: writing it to the ERP now would overwrite the
            // ERP's new line, so that write waits.
            let (_, command) = try h.command(for: create)
            var shopOrder = command.record
            shopOrder["id"] = 9001
            shopOrder["status"] = "completed"
            try await h.change(.customwebshop, .order, "9001", .object(shopOrder), at: 11)
            let requests = try await h.takeRequests()
            #expect(!requests.contains { $0.system == .customerp }, "\(requests.map(\.system))")
            #expect(try await h.count("parked where system = 'customerp'") == 1)

            // The product is reported; the ERP's change is handed back: both edits stand, and the
            // ERP is written the webshop's status.
            try await h.change(
                .customerp, .product, "P-2",
                [
                    "id": "P-2", "itemNo": "TE-100", "description": "Te", "salesPrice": 40,
                    "vatPercent": 15, "itemType": "STOCK"
                ], at: 12)
            _ = try await h.takeRequests()
            #expect(try await Self.release(h) == 1)
            let state = try await h.state(of: .customerp, .order, "O-1")
            #expect(state["lines"]?.array?.count == 2)
            #expect(state["status"] == "completed")
            let toErp = try await h.takeRequests().filter { $0.system == .customerp }
            #expect(toErp.count == 1)
            #expect(try SyncRequestPayload(json: toErp[0].payload).entity["status"] == "completed")
            #expect(try await h.count("parked where system = 'customerp'") == 0)
        }
    }

    @Test("Orders and the records they name in one batch, the order first: it waits, and is handed back once the batch committed them")
    func orderFirstInABatch() async throws {
        try await LinkHarness.run { h in
            let customer = try h.canonical(.customerp, .customer, "C-1", S.erpCustomer("C-1"), at: 0)
            let product = try h.canonical(.customerp, .product, "P-1", S.erpProduct, at: 1)
            let order = try h.canonical(.customerp, .order, "O-1", S.erpOrder, at: 2)
            let (results, path) = try await h.deliverBatch([order, customer, product])
            #expect(results == [.done, .done, .done] && path == .batch)
            #expect(try await h.count("waiting_change") == 1)
            #expect(try await Self.release(h) == 1)
            #expect(try await h.count("member where entity_type = 'order'") == 1)
            #expect(try await h.count("global_entity") == 3)
        }
    }
}
