import Foundation
import Testing
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
@testable import ParleyLink
import ParleyLinkCore
import ParleyJSON
import ParleyEnvelope

/// Order lines merged member by member on the real PostgreSQL, with the real mapping logic
/// (issue 17, cause 2): PowerOffice Go carries no line VAT rate and the webshop no line discount,
/// and neither may erase what it does not carry.
@Suite("Order lines merged by line identity, on the database", .serialized, .timeLimit(.minutes(5)))
struct LineMergeScenarioTests {
    /// The ERP's products: coffee at 15 % VAT, cups at 25 %, tea at 12 %.
    static let products: [(id: String, sku: String, price: Double, vatPercent: Int, shopId: Int, goId: Int)] = [
        ("P-1", "KAFFE-500", 79.2, 15, 701, 88001), ("P-2", "KOPP", 49, 25, 702, 88002), ("P-3", "TE-100", 30, 12, 703, 88003)
    ]

    static func erpProduct(_ p: (id: String, sku: String, price: Double, vatPercent: Int, shopId: Int, goId: Int)) -> JSONValue {
        [
            "id": .string(p.id), "itemNo": .string(p.sku), "description": .string(p.sku), "salesPrice": .number(JSONNumber("\(p.price)")!),
            "vatPercent": .number(JSONNumber(p.vatPercent)), "itemType": "STOCK"
        ]
    }

    /// ERP order O-1 of customer C-1: sixteen coffee with a 10 % discount, two cups.
    static let erpOrder: JSONValue = [
        "id": "O-1", "orderNo": "SO-1", "customerId": "C-1", "orderDate": "2026-11-03", "status": "CONFIRMED", "currencyCode": "NOK",
        "lines": [
            ["productId": "P-1", "itemNo": "KAFFE-500", "quantity": 16, "unitPrice": 79.2, "discountPercent": 10, "vatPercent": 15],
            ["productId": "P-2", "itemNo": "KOPP", "quantity": 2, "unitPrice": 49, "vatPercent": 25]
        ]
    ]

    /// Customer C-1 and the products in all three systems; then order O-1 from the ERP, written
    /// to the webshop (9001) and to PowerOffice Go (5551). Returns the order's global id and the
    /// order as the webshop and Go hold it.
    static func orderEverywhere(_ h: LinkHarness) async throws -> (global: UUID, shop: JSONObject, go: JSONObject) {
        try await h.change(.customerp, .customer, "C-1", LinkScenarioTests.erpCustomer("C-1"), at: 0)
        for (i, p) in products.enumerated() { try await h.change(.customerp, .product, p.id, erpProduct(p), at: 1 + i) }
        func nativeId(_ request: Envelope) throws -> String {
            if request.entityType == .customer { return request.system == .customwebshop ? "501" : "1234567" }
            let sku = try SyncRequestPayload(json: request.payload).entity["sku"]?.string
            let p = try #require(products.first { $0.sku == sku })
            return String(request.system == .customwebshop ? p.shopId : p.goId)
        }
        for _ in 0..<2 {  // the webshop's creates, then PowerOffice Go's
            for request in try await h.takeRequests() { try await h.written(request, nativeId: try nativeId(request)) }
        }
        #expect(try await h.takeRequests().isEmpty)

        try await h.change(.customerp, .order, "O-1", erpOrder, at: 10)
        let toShop = try await h.takeRequests()
        #expect(toShop.map(\.system) == [.customwebshop])
        let (_, shopCommand) = try h.command(for: toShop[0])
        try await h.written(toShop[0], nativeId: "9001")
        let toGo = try await h.takeRequests()
        #expect(toGo.map(\.system) == [.powerofficego])
        let (_, command) = try h.command(for: toGo[0])
        try await h.written(toGo[0], nativeId: "5551")
        #expect(try await h.takeRequests().isEmpty)
        // Go holds what it was written, its own number, and a VAT rate per line that it computes
        // itself (and that Parley does not read).
        var record = command.record
        record["Id"] = 5551
        record["SalesOrderNo"] = 10001
        record["SalesOrderLines"] = .array(
            (record["SalesOrderLines"]?.array ?? []).map { line in
                var line = line
                line["VatRate"] = 0.25
                return line
            })
        var shop = shopCommand.record
        shop["id"] = 9001
        shop["number"] = "9001"
        return (try #require(GlobalRef(toGo[0].entityId)).id, shop, record)
    }

    /// The ERP's and the webshop's update for a change from Go: their commands (the mapping
    /// service accepts both, so neither target will refuse them for a missing VAT rate), written;
    /// then each reports back what it was written, which is no edit.
    static func updatesReachErpAndShop(_ h: LinkHarness, at seconds: Int) async throws -> (erp: JSONObject, shop: JSONObject) {
        let requests = try await h.takeRequests()
        #expect(requests.map(\.system).sorted { $0.rawValue < $1.rawValue } == [.customerp, .customwebshop], "Go is not written its own edit")
        let toErp = try #require(requests.first { $0.system == .customerp })
        let toShop = try #require(requests.first { $0.system == .customwebshop })
        let (erpOutput, erp) = try h.command(for: toErp)
        let (shopOutput, shop) = try h.command(for: toShop)
        #expect(erpOutput.kind == .command && shopOutput.kind == .command)
        try await h.written(toErp, nativeId: "O-1")
        try await h.written(toShop, nativeId: "9001")
        var erpRecord = erp.record
        erpRecord["id"] = "O-1"
        var shopRecord = shop.record
        shopRecord["id"] = 9001
        shopRecord["number"] = "9001"
        #expect(
            try await h.change(.customerp, .order, "O-1", .object(erpRecord), at: seconds + 1)
                == .unchanged(global: try #require(GlobalRef(toErp.entityId)).id))
        try await h.change(.customwebshop, .order, "9001", .object(shopRecord), at: seconds + 1)
        #expect(try await h.takeRequests().isEmpty, "their echoes are no edit")
        return (erp.record, shop.record)
    }

    static func lines(_ record: JSONObject, _ array: String) -> [JSONValue] { record[array]?.array ?? [] }

    @Test(
        "PowerOffice Go edits a line's quantity, adds a line and removes one: the ERP and the webshop get each with their VAT rates and discounts intact, and Go is written nothing",
        arguments: LinkHarness.Backend.allCases)
    func goEditsAddsAndRemovesLines(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            var (global, _, go) = try await Self.orderEverywhere(h)

            // The issue's case: 16 → 19 in PowerOffice Go.
            var goLines = go["SalesOrderLines"]?.array ?? []
            goLines[0]["Quantity"] = 19
            go["SalesOrderLines"] = .array(goLines)
            let outcome = try await h.change(.powerofficego, .order, "5551", .object(go), at: 30)
            guard case .applied(_, let changed, let writes, _) = outcome else { Issue.record("\(outcome)"); return }
            #expect(changed == ["lines"] && writes == 2)
            var state = try await h.state(of: .customerp, .order, "O-1")
            #expect(state["lines"]?[0]?["quantity"] == 19)
            #expect(state["lines"]?[0]?["vatRate"]?.decimal == Decimal(string: "0.15"), "Go carries no VAT rate: it keeps the ERP's")
            #expect(state["lines"]?[0]?["discountPercent"]?.decimal == 10)
            #expect(state["lines"]?[1]?["vatRate"]?.decimal == Decimal(string: "0.25"))
            var (erp, shop) = try await Self.updatesReachErpAndShop(h, at: 30)
            #expect(Self.lines(erp, "lines").map { $0["quantity"] } == [19, 2])
            #expect(Self.lines(erp, "lines").map { $0["vatPercent"]?.decimal } == [15, 25])
            #expect(Self.lines(erp, "lines")[0]["discountPercent"]?.decimal == 10)
            #expect(Self.lines(shop, "line_items").map { $0["quantity"] } == [19, 2])
            #expect(Self.lines(shop, "line_items").map { $0["tax_rate"]?.decimal } == [15, 25])
            // Go reporting its order again (a poll after the webhook) is no edit.
            #expect(try await h.change(.powerofficego, .order, "5551", .object(go), at: 32) == .unchanged(global: global))

            // A line added in Go, which has no VAT rate for it: it takes its product's (tea, 12 %).
            goLines.insert(
                ["ProductId": 88003, "ProductCode": "TE-100", "Quantity": 4, "ProductUnitPrice": 30, "Allowance": 0, "VatRate": 0.25], at: 1)
            go["SalesOrderLines"] = .array(goLines)
            try await h.change(.powerofficego, .order, "5551", .object(go), at: 40)
            state = try await h.state(of: .customerp, .order, "O-1")
            #expect(state["lines"]?.array?.count == 3)
            #expect(state["lines"]?[1]?["sku"] == "TE-100" && state["lines"]?[1]?["vatRate"]?.decimal == Decimal(string: "0.12"))
            (erp, shop) = try await Self.updatesReachErpAndShop(h, at: 40)
            #expect(Self.lines(erp, "lines").map { $0["itemNo"] } == ["KAFFE-500", "TE-100", "KOPP"])
            #expect(Self.lines(erp, "lines").map { $0["vatPercent"]?.decimal } == [15, 12, 25])
            #expect(Self.lines(shop, "line_items").map { $0["tax_rate"]?.decimal } == [15, 12, 25])

            // The cups removed in Go.
            goLines.remove(at: 2)
            go["SalesOrderLines"] = .array(goLines)
            try await h.change(.powerofficego, .order, "5551", .object(go), at: 50)
            (erp, shop) = try await Self.updatesReachErpAndShop(h, at: 50)
            #expect(Self.lines(erp, "lines").map { $0["itemNo"] } == ["KAFFE-500", "TE-100"])
            #expect(Self.lines(erp, "lines").map { $0["quantity"] } == [19, 4])
            #expect(Self.lines(erp, "lines").map { $0["vatPercent"]?.decimal } == [15, 12])
            #expect(Self.lines(erp, "lines")[0]["discountPercent"]?.decimal == 10)
            #expect(Self.lines(shop, "line_items").map { $0["sku"] } == ["KAFFE-500", "TE-100"])
            #expect(try await h.count("write_slot") == 0)
        }
    }

    @Test(
        "The webshop, which carries no line discount, edits a quantity: the ERP's discount stays, and PowerOffice Go gets the new quantity with it",
        arguments: LinkHarness.Backend.allCases)
    func shopKeepsDiscount(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            var (_, record, _) = try await Self.orderEverywhere(h)
            var items = record["line_items"]?.array ?? []
            items[1]["quantity"] = 3
            record["line_items"] = .array(items)
            try await h.change(.customwebshop, .order, "9001", .object(record), at: 30)
            let after = try await h.state(of: .customerp, .order, "O-1")
            #expect(after["lines"]?[0]?["discountPercent"]?.decimal == 10)
            #expect(after["lines"]?[1]?["quantity"] == 3)
            let requests = try await h.takeRequests()
            #expect(Set(requests.map(\.system)) == [.customerp, .powerofficego])
            let toGo = try #require(requests.first { $0.system == .powerofficego })
            let goLines = try h.command(for: toGo).1.record["SalesOrderLines"]?.array ?? []
            #expect(goLines.map { $0["Allowance"]?.decimal } == [10, nil])
            #expect(goLines.map { $0["Quantity"] } == [16, 3])
        }
    }
}

extension LineMergeScenarioTests {
    @Test(
        "A person's first-name edit in the webshop (which has no full name) reaches the ERP's full name too, and nothing echoes back",
        arguments: LinkHarness.Backend.allCases)
    func personNameFollows(backend: LinkHarness.Backend) async throws {
        try await LinkHarness.run(backend) { h in
            let erpPerson: JSONValue = [
                "id": "C-7", "customerType": "PERSON", "name": "Kari Nordmann", "contactFirstName": "Kari",
                "contactLastName": "Nordmann", "email": "kari@nordmann.no"
            ]
            try await h.change(.customerp, .customer, "C-7", erpPerson, at: 0)
            try await h.written(try await h.takeRequests()[0], nativeId: "507")
            let toGo = try await h.takeRequests()
            try await h.written(toGo[0], nativeId: "1234507")
            #expect(try await h.takeRequests().isEmpty)

            try await h.change(
                .customwebshop, .customer, "507", LinkScenarioTests.shopCustomer(507, email: "kari@nordmann.no", first: "Karianne"), at: 10)
            let state = try await h.state(of: .customerp, .customer, "C-7")
            #expect(state["name"] == "Karianne Nordmann" && state["firstName"] == "Karianne")
            let requests = try await h.takeRequests()
            #expect(Set(requests.map(\.system)) == [.customerp, .powerofficego])
            let toErp = try #require(requests.first { $0.system == .customerp })
            let (_, erp) = try h.command(for: toErp)
            #expect(erp.record["name"] == "Karianne Nordmann" && erp.record["contactFirstName"] == "Karianne")
            let goUpdate = try #require(requests.first { $0.system == .powerofficego })
            let (_, go) = try h.command(for: goUpdate)
            #expect(go.record["FirstName"] == "Karianne")
            // Both report back what they were written: no edit, nothing more is sent.
            for (request, command, id) in [(toErp, erp, "C-7"), (goUpdate, go, "1234507")] {
                try await h.written(request, nativeId: id)
                var record = command.record
                record[request.system == .customerp ? "id" : "Id"] = request.system == .customerp ? .string(id) : 1234507
                if request.system == .powerofficego { record["Name"] = "Karianne Nordmann" }
                try await h.change(request.system, .customer, id, .object(record), at: 20)
            }
            #expect(try await h.takeRequests().isEmpty)
            #expect(try await h.state(of: .customerp, .customer, "C-7")["name"] == "Karianne Nordmann")
        }
    }
}
