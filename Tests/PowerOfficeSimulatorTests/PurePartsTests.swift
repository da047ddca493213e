import Foundation
import ParleyCanonical
import Testing
import struct ParleySimulator.NorwegianData

@testable import PowerOfficeSimulator

/// A clock tests move by hand (microseconds).
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(_ start: Int64 = 1_750_000_000_000_000) { value = start }
    var now: Int64 { lock.withLock { value } }
    func advance(seconds: Double) { lock.withLock { value += Int64(seconds * 1_000_000) } }
    var function: @Sendable () -> Int64 { { [self] in self.now } }
}

func json(_ text: String) -> JSONValue { try! JSONValue.parse(Array(text.utf8)) }

@Suite("JSON Patch (RFC 6902)")
struct JSONPatchTests {
    @Test func replaceAddRemoveOnObjects() throws {
        let doc = json(#"{"a": 1, "b": {"c": "x"}, "list": [1, 2]}"#)
        let patch = try JSONPatch(
            parsing: json(
                #"""
                [{"op": "replace", "path": "/a", "value": 2},
                 {"op": "add", "path": "/b/d", "value": true},
                 {"op": "remove", "path": "/b/c"},
                 {"op": "add", "path": "/list/-", "value": 3},
                 {"op": "add", "path": "/list/0", "value": 0},
                 {"op": "test", "path": "/a", "value": 2}]
                """#))
        #expect(try patch.apply(to: doc) == json(#"{"a": 2, "b": {"d": true}, "list": [0, 1, 2, 3]}"#))
    }

    @Test func replaceOfAMissingMemberFails() throws {
        let patch = try JSONPatch(parsing: json(#"[{"op": "replace", "path": "/missing", "value": 1}]"#))
        #expect(throws: JSONPatch.Failure.self) { try patch.apply(to: json("{}")) }
    }

    @Test func pointerEscapesAndMoveCopy() throws {
        #expect(try JSONPatch.pointer("/a~1b/c~0d") == ["a/b", "c~d"])
        let patch = try JSONPatch(parsing: json(#"[{"op": "copy", "from": "/a", "path": "/b"}, {"op": "move", "from": "/a", "path": "/c"}]"#))
        #expect(try patch.apply(to: json(#"{"a": 5}"#)) == json(#"{"b": 5, "c": 5}"#))
    }

    @Test func malformedDocumentsAreRefused() {
        #expect(throws: JSONPatch.Failure.self) { try JSONPatch(parsing: json(#"{"op": "replace"}"#)) }
        #expect(throws: JSONPatch.Failure.self) { try JSONPatch(parsing: json(#"[{"op": "frobnicate", "path": "/a"}]"#)) }
        #expect(throws: JSONPatch.Failure.self) { try JSONPatch(parsing: json(#"[{"op": "replace", "path": "a", "value": 1}]"#)) }
        #expect(throws: JSONPatch.Failure.self) { try JSONPatch(parsing: json(#"[{"op": "add", "path": "/a"}]"#)) }
    }
}

@Suite("Go store")
struct GoStoreTests {
    func store(_ clock: ManualClock = ManualClock()) -> GoStore { GoStore(clock: MonotonicClock(now: clock.function)) }

    @Test func customerPatchAppliesWritableFieldsAndRefusesReadOnlyOnes() throws {
        var s = store()
        let c = try s.createCustomer(
            json(#"{"Name": "Fjord AS", "OrganizationNumber": "923609016", "MailAddress": {"City": "OSLO", "ZipCode": "0150"}}"#))
        let id = c["Id"]!.int64Value!
        #expect(c["Number"] == .int(10_000))
        #expect(c["MailAddress"]?["Id"] != nil)
        let patched = try s.patchCustomer(
            id,
            json(
                #"[{"op": "replace", "path": "/emailAddress", "value": "post@fjord.no"}, {"op": "replace", "path": "/MailAddress/City", "value": "BERGEN"}]"#
            ))
        #expect(patched["EmailAddress"] == .string("post@fjord.no"))
        #expect(patched["MailAddress"]?["City"] == .string("BERGEN"))
        #expect(patched["MailAddress"]?["Id"] == c["MailAddress"]?["Id"])
        #expect(patched["LastChangedDateTimeOffset"] != c["LastChangedDateTimeOffset"])
        for path in ["/Id", "/LastChangedDateTimeOffset", "/IsActive", "/MailAddress/Id", "/NoSuchField"] {
            #expect(throws: GoError.self, "\(path) should be refused") {
                try s.patchCustomer(id, json(#"[{"op": "replace", "path": "\#(path)", "value": 1}]"#))
            }
        }
        let removed = try s.patchCustomer(id, json(#"[{"op": "remove", "path": "/EmailAddress"}]"#))
        #expect(removed["EmailAddress"] == nil)
    }

    @Test func productValidation() throws {
        var s = store()
        #expect(throws: GoError.self) { try s.createProduct(json(#"{"Code": "A"}"#)) }  // Name required
        #expect(throws: GoError.self) { try s.createProduct(json(#"{"Name": "\#(String(repeating: "x", count: 401))"}"#)) }
        #expect(throws: GoError.self) { try s.createProduct(json(#"{"Name": "x", "ProductType": "Gadget"}"#)) }
        #expect(throws: GoError.self) { try s.createProduct(json(#"{"Name": "x", "SalesPrice": 10}"#)) }  // not a Go field
        let p = try s.createProduct(json(#"{"Name": "Lue", "Code": "SKU-1", "UnitPrice": 199}"#))
        #expect(p["ProductType"] == .string("Product"))
        let error = #expect(throws: GoError.self) { try s.createProduct(json(#"{"Name": "Lue 2", "Code": "sku-1"}"#)) }
        #expect(error?.status == 400)
        #expect(throws: GoError.self) { try s.patchProduct(p["Id"]!.int64Value!, json(#"[{"op": "remove", "path": "/Name"}]"#)) }
    }

    @Test func externalImportReferenceIsADuplicateCheck() throws {
        var s = store()
        let first = try s.createCustomer(json(#"{"Name": "A", "ExternalImportReference": "parley:1"}"#))
        let error = #expect(throws: GoError.self) { try s.createCustomer(json(#"{"Name": "A again", "ExternalImportReference": "parley:1"}"#)) }
        #expect(error?.status == 400)
        #expect(error?.detail == "ExternalImportReference is already in use. 'parley:1' is used on (contact) Id = \(first["Id"]!.int64Value!).")
        #expect(s.customers.count == 1)
        #expect(try s.listCustomers(ListQuery([("externalImportReference", "parley:1")])).map { $0["Id"] } == [first["Id"]])

        let order: JSONValue = json(#"{"CustomerId": \#(first["Id"]!.int64Value!), "ExternalImportReference": "parley:o1"}"#)
        _ = try s.createSalesOrder(order)
        #expect(throws: GoError.self) { try s.createSalesOrder(order) }
        #expect(s.orders.count == 1)
    }

    @Test func timestampsStrictlyIncreaseAndFilterIncrementally() throws {
        let clock = ManualClock()  // frozen: every change in the same microsecond
        var s = store(clock)
        var stamps: [String] = []
        for i in 0..<5 { stamps.append(try s.createProduct(json(#"{"Name": "P\#(i)"}"#))["LastChangedDateTimeOffset"]!.stringValue!) }
        let parsed = stamps.map { GoTimestamp(parsing: $0)! }
        #expect(parsed == parsed.sorted() && Set(parsed).count == 5)
        let after = try s.listProducts(ListQuery([("lastChangedDateTimeOffsetGreaterThan", stamps[2])]))
        #expect(after.map { $0["Name"] } == [.string("P3"), .string("P4")])
        // The same instant in another offset, and with the '+' turned into a space by a query string.
        let t = parsed[2]
        let shifted = GoTimestamp(microseconds: t.microseconds + 2 * 3_600_000_000).formatted.replacingOccurrences(of: "+00:00", with: "+02:00")
        #expect(try s.listProducts(ListQuery([("lastChangedDateTimeOffsetGreaterThan", shifted)])).count == 2)
        #expect(
            try s.listProducts(ListQuery([("lastChangedDateTimeOffsetGreaterThan", stamps[2].replacingOccurrences(of: "+", with: " "))])).count == 2)
        #expect(throws: GoError.self) { try s.listProducts(ListQuery([("lastChangedDateTimeOffsetGreaterThan", "yesterday")])) }
        // A patch moves the record past the cursor.
        _ = try s.patchProduct(after[0]["Id"]!.int64Value! - 3, json(#"[{"op": "replace", "path": "/Name", "value": "P0b"}]"#))
        #expect(try s.listProducts(ListQuery([("lastChangedDateTimeOffsetGreaterThan", stamps[4])])).map { $0["Name"] } == [.string("P0b")])
    }

    @Test func timestampFormatRoundTrips() {
        let t = GoTimestamp(microseconds: 1_632_556_980_123_456)
        #expect(t.formatted == "2021-09-25T08:03:00.123456+00:00")
        #expect(GoTimestamp(parsing: "2021-09-25 08:03:00.123456+00:00") == t)
        #expect(GoTimestamp(parsing: "2021-09-25T10:03:00.1234560+02:00") == t)
        #expect(GoTimestamp(parsing: "2021-02-30T00:00:00Z") == nil)
    }

    @Test func paging() throws {
        var s = store()
        for i in 0..<7 { _ = try s.createProduct(json(#"{"Name": "P\#(i)"}"#)) }
        let page2 = try s.listProducts(ListQuery([("PageSize", "3"), ("resourceParameter.PageNumber", "2")]))
        #expect(page2.map { $0["Name"] } == ["P3", "P4", "P5"].map { Optional(JSONValue.string($0)) })
        #expect(try s.listProducts(ListQuery([("PageSize", "3"), ("PageNumber", "4")])).isEmpty)
        #expect(throws: GoError.self) { try s.listProducts(ListQuery([("PageSize", "20001")])) }
    }

    @Test("Fields (resourceParameter) keeps only the named properties, case-insensitively; an unknown one is 400")
    func fieldSelection() throws {
        var s = store()
        for i in 0..<3 { _ = try s.createProduct(json(#"{"Name": "P\#(i)", "Code": "C\#(i)"}"#)) }
        let query = ListQuery([("resourceParameter.Fields", "id, CODE"), ("PageSize", "2")])
        let shaped = try query.shape(try s.listProducts(query), as: "ProductDto")
        #expect(shaped.count == 2)
        #expect(shaped.allSatisfy { Set($0.keys) == ["Id", "Code"] })
        #expect(shaped.map { $0["Code"] } == [.string("C0"), .string("C1")])
        let all = try s.listProducts(ListQuery([]))
        #expect(try ListQuery([]).shape(all, as: "ProductDto") == all, "no Fields: every property")
        #expect(throws: GoError.self) { try ListQuery([("Fields", "Id,Colour")]).shape(all, as: "ProductDto") }
    }

    @Test func salesOrdersComputeAmountsAndLockWhenConfirmed() throws {
        var s = store()
        let c = try s.createCustomer(json(#"{"Name": "Kunde AS"}"#))
        let p = try s.createProduct(json(#"{"Name": "Lue", "Code": "LUE", "UnitPrice": 100}"#))
        let order = try s.createSalesOrder(
            json(
                #"""
                {"CustomerId": \#(c["Id"]!.int64Value!), "SalesOrderLines": [
                  {"ProductId": \#(p["Id"]!.int64Value!), "Quantity": 2, "Allowance": 10},
                  {"ProductCode": "LUE", "Quantity": 1, "ProductUnitPrice": 50}]}
                """#))
        #expect(order["SalesOrderNo"] == .int(1))
        #expect(order["CustomerNo"] == c["Number"])
        #expect(order["NetAmount"] == .double(230))
        #expect(order["TotalAmount"] == .double(287.5))
        guard case .array(let lines)? = order["SalesOrderLines"] else { Issue.record("no lines"); return }
        #expect(lines[0]["ProductCode"] == .string("LUE") && lines[0]["VatRate"] == .double(0.25))
        let id = order["Id"]!.stringValue!
        #expect(throws: GoError.self) { try s.createSalesOrder(json(#"{"CustomerId": 1}"#)) }
        #expect(throws: GoError.self) { try s.patchSalesOrder(id, json(#"[{"op": "replace", "path": "/SalesOrderLines", "value": []}]"#)) }
        let line = try s.addSalesOrderLine(id, json(#"{"ProductId": \#(p["Id"]!.int64Value!), "Quantity": 1}"#))
        #expect(try s.salesOrderComplete(id)["LineCount"] == .int(3))
        _ = try s.patchSalesOrderLine(id, line["Id"]!.stringValue!, json(#"[{"op": "replace", "path": "/Quantity", "value": 3}]"#))
        #expect(try s.salesOrderComplete(id)["NetAmount"] == .double(530))
        _ = try s.patchSalesOrder(id, json(#"[{"op": "replace", "path": "/SalesOrderStatus", "value": "Confirmed"}]"#))
        #expect(throws: GoError.self) { try s.addSalesOrderLine(id, json(#"{"Quantity": 1}"#)) }
        #expect(throws: GoError.self) { try s.patchSalesOrder(id, json(#"[{"op": "replace", "path": "/CustomerReference", "value": "x"}]"#)) }
        _ = try s.patchSalesOrder(id, json(#"[{"op": "replace", "path": "/SalesOrderStatus", "value": "Draft"}]"#))
        try s.deleteSalesOrderLine(id, line["Id"]!.stringValue!)
        #expect(try s.salesOrderComplete(id)["LineCount"] == .int(2))
    }
}

@Suite("Tokens, rate limit, faults, seed data")
struct AuthAndLimitsTests {
    @Test func tokensExpireAfterTheirLifetime() throws {
        let clock = ManualClock()
        var issuer = TokenIssuer(applicationKey: "app", clientKey: "client", lifetimeSeconds: 1200)
        let basic = "Basic " + Data("app:client".utf8).base64EncodedString()
        #expect(throws: TokenIssuer.Refusal.invalidClient) {
            try issuer.issue(authorization: "Basic " + Data("app:wrong".utf8).base64EncodedString(), grantType: "client_credentials", now: clock.now)
        }
        #expect(throws: TokenIssuer.Refusal.unsupportedGrantType) { try issuer.issue(authorization: basic, grantType: "password", now: clock.now) }
        let token = try issuer.issue(authorization: basic, grantType: "client_credentials", now: clock.now)
        #expect(token.expiresIn == 1200)
        #expect(issuer.isValid(authorization: "Bearer \(token.accessToken)", now: clock.now))
        clock.advance(seconds: 1199.9)
        #expect(issuer.isValid(authorization: "Bearer \(token.accessToken)", now: clock.now))
        clock.advance(seconds: 0.1)
        #expect(!issuer.isValid(authorization: "Bearer \(token.accessToken)", now: clock.now))
        let fresh = try issuer.issue(authorization: basic, grantType: "client_credentials", now: clock.now)
        #expect(issuer.isValid(authorization: "Bearer \(fresh.accessToken)", now: clock.now))
        issuer.expireAll()
        #expect(!issuer.isValid(authorization: "Bearer \(fresh.accessToken)", now: clock.now))
    }

    @Test func tokenBucketAllowsTenPerSecond() {
        var bucket = TokenBucket(ratePerSecond: 10)
        let t0: Int64 = 1_000_000_000
        for _ in 0..<10 { #expect(bucket.take(now: t0) == .allowed) }
        guard case .throttled(let retryAfter) = bucket.take(now: t0) else { Issue.record("11th request allowed"); return }
        #expect(abs(retryAfter - 0.1) < 1e-9)
        #expect(bucket.take(now: t0 + 100_000) == .allowed)
        #expect(bucket.take(now: t0 + 100_000) != .allowed)
        #expect(bucket.take(now: t0 + 10_000_000) == .allowed)  // refilled, capped at capacity
    }

    @Test func faultBurstThenRates() {
        var faults = FaultInjector(seed: 1)
        faults.settings.throttleBurst = 2
        #expect(faults.decide() == .throttle(retryAfterSeconds: 1))
        #expect(faults.decide() == .throttle(retryAfterSeconds: 1))
        #expect(faults.decide() == .none)
        faults.settings.errorRate = 1
        #expect(faults.decide() == .serverError)
    }

    @Test func seededDataIsValidAndDeterministic() throws {
        var a = GoStore(clock: MonotonicClock(now: ManualClock().function))
        var b = GoStore(clock: MonotonicClock(now: ManualClock().function))
        try NorwegianSampleData.seed(&a, count: 12, seed: 7)
        try NorwegianSampleData.seed(&b, count: 12, seed: 7)
        #expect(a.customers == b.customers && a.orders == b.orders)
        #expect(a.customers.count == 12 && a.products.count == 12 && a.orders.count == 12)
        // The shared generator's companies, each with a valid organisation number where it has one.
        let companies = a.customers.values.filter { $0["IsPerson"] == .bool(false) }
        let expected = NorwegianData.dataset(seed: 7, count: 12).customers.filter { $0.kind == .company }
        #expect(companies.count == expected.count)
        #expect(!companies.isEmpty)
        #expect(companies.compactMap { $0["OrganizationNumber"]?.stringValue }.count == expected.compactMap(\.organizationNumber).count)
        for c in companies {
            guard let number = c["OrganizationNumber"]?.stringValue else { continue }
            #expect(NaturalKeys.isValidNorwegianOrganizationNumber(number), "\(number)")
        }
        #expect(a.customers.values.contains { $0["IsPerson"] == .bool(true) && $0["FirstName"] != nil })
    }
}
