import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
@testable import ParleyMapping
import ParleyJSON
import ParleyEnvelope

/// The engine's behaviour on bad input and at the edges, over the repository's real tables:
/// every failure names the system, the entity, the field and the reason.
@Suite("Mapping engine: errors and edges")
struct MappingEngineTests {
    func record(_ system: SystemName, _ entity: CanonicalEntityType, _ edit: (inout JSONObject) -> Void) throws -> JSONValue {
        var object = try #require(try Golden.record(system, entity).object)
        edit(&object)
        return .object(object)
    }

    func expectError(
        _ kind: MappingError.Kind, field: String, reasonContains: String,
        sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws(MappingError) -> Void
    ) {
        do {
            try body()
            Issue.record("expected a \(kind) error on \(field)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
            #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
            #expect(error.reason.contains(reasonContains), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("\"12,5\" as a price names the native field and the canonical one")
    func commaDecimal() throws {
        let native = try record(.customwebshop, .product) { $0["price"] = "12,5" }
        expectError(.conversion, field: "price", reasonContains: "12,5") { () throws(MappingError) in
            _ = try Golden.mapper(.customwebshop, .product).toCanonical(native)
        }
        do {
            _ = try Golden.mapper(.customwebshop, .product).toCanonical(native)
        } catch {
            #expect(error.description.hasPrefix("customwebshop product field price (salesPriceExclVat): "))
        }
    }

    @Test("An unknown country is an error on the country field")
    func unknownCountry() throws {
        let native = try record(.customwebshop, .customer) {
            $0["billing"] = ["country": "Atlantis", "city": "Oslo"]
        }
        expectError(.conversion, field: "billing.country", reasonContains: "Atlantis") { () throws(MappingError) in
            _ = try Golden.mapper(.customwebshop, .customer).toCanonical(native)
        }
    }

    @Test("Wrong JSON types: a quantity as text, lines that are not an array, a line that is not an object")
    func wrongTypes() throws {
        let mapper = Golden.mapper(.customerp, .order)
        let quantityAsText = try record(.customerp, .order) { o in
            var lines = o["lines"]!.array!
            var line = lines[1].object!
            line["quantity"] = "one"
            lines[1] = .object(line)
            o["lines"] = .array(lines)
        }
        expectError(.conversion, field: "lines[1].quantity", reasonContains: "one") { () throws(MappingError) in
            _ = try mapper.toCanonical(quantityAsText)
        }
        let linesAsText = try record(.customerp, .order) { $0["lines"] = "none" }
        expectError(.invalidRecord, field: "lines", reasonContains: "array") { () throws(MappingError) in
            _ = try mapper.toCanonical(linesAsText)
        }
        let lineAsNumber = try record(.customerp, .order) { $0["lines"] = [7] }
        expectError(.invalidRecord, field: "lines[0]", reasonContains: "line object") { () throws(MappingError) in
            _ = try mapper.toCanonical(lineAsNumber)
        }
        // An identity field with the wrong JSON type fails the canonical check, naming the path.
        let currencyAsNumber = try record(.customerp, .order) { $0["currencyCode"] = 578 }
        expectError(.invalidCanonical, field: "currency", reasonContains: "expected a string") { () throws(MappingError) in
            _ = try mapper.toCanonical(currencyAsNumber)
        }
        expectError(.invalidRecord, field: "", reasonContains: "object") { () throws(MappingError) in
            _ = try mapper.toCanonical(.array([]))
        }
    }

    @Test("A record without its id is rejected")
    func missingId() throws {
        let noId = try record(.powerofficego, .product) { $0["Id"] = nil }
        expectError(.invalidRecord, field: "Id", reasonContains: "no id") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .product).toCanonical(noId)
        }
    }

    @Test("Missing name: PowerOffice needs a Name for a company and for a product")
    func missingName() throws {
        let noName = try record(.powerofficego, .customer) { $0["Name"] = .null }
        expectError(.conversion, field: "IsPerson, Name, FirstName, LastName", reasonContains: "a company needs a Name") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .customer).toCanonical(noName)
        }
        let product = try Golden.mapper(.customwebshop, .product).toCanonical(try Golden.record(.customwebshop, .product))
        var values = product.values
        values["name"] = nil
        expectError(.validation, field: "Name", reasonContains: "required by ProductPostDto") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .product).toNative(values)
        }
    }

    @Test("Target rules: City and ZipCode together, Allowance within 0...100, lengths from the spec")
    func targetRules() throws {
        let customer: [String: JSONValue] = ["kind": "company", "name": "Fjord Fisk AS", "postalAddress.city": "Bergen"]
        expectError(.validation, field: "MailAddress.ZipCode", reasonContains: "together with MailAddress.City") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .customer).toNative(customer)
        }
        let order: [String: JSONValue] = [
            "customer": "customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11",
            "lines": [["sku": "KOPP", "quantity": 1, "unitPriceExclVat": 10, "discountPercent": 120]]
        ]
        expectError(.validation, field: "SalesOrderLines[0].Allowance", reasonContains: "above 100") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .order).toNative(order, targetIds: ["customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11": "17"])
        }
        let longCode: [String: JSONValue] = ["sku": .string(String(repeating: "X", count: 101)), "name": "Kopp"]
        expectError(.validation, field: "Code", reasonContains: "at most 100") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .product).toNative(longCode)
        }
    }

    @Test("An order whose customer has no record in the target is never written with a dangling reference")
    func unresolvedReference() throws {
        let order: [String: JSONValue] = ["customer": "customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11", "lines": []]
        expectError(.unresolvedReference, field: "CustomerId", reasonContains: "has no record in powerofficego") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .order).toNative(order)
        }
        // PowerOffice ids are integers: a non-numeric id cannot be written.
        expectError(.unresolvedReference, field: "CustomerId", reasonContains: "whole numbers") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .order).toNative(order, targetIds: ["customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11": "abc"])
        }
    }

    @Test("Invalid canonical input to a write names the canonical path")
    func invalidCanonical() throws {
        expectError(.invalidCanonical, field: "salesPriceExclVat", reasonContains: "expected a number") { () throws(MappingError) in
            _ = try Golden.mapper(.powerofficego, .product).toNative(["name": "Kopp", "salesPriceExclVat": "12.50"])
        }
    }

    @Test("Absent stays absent and empty is cleared: only nullable fields are listed to clear")
    func clearing() throws {
        let write = try Golden.mapper(.powerofficego, .customer).toNative(["kind": "company", "name": "Fjord Fisk AS"])
        #expect(write.record["Name"] == "Fjord Fisk AS")
        #expect(write.record["IsPerson"] == false)
        #expect(write.record["EmailAddress"] == nil)
        #expect(write.cleared.contains("EmailAddress"))
        #expect(write.cleared.contains("MailAddress.City"))
        // The webshop's status is a non-nullable enum: with no canonical status it is left alone.
        let order = try Golden.mapper(.customwebshop, .order).toNative(["currency": "NOK"])
        #expect(!order.cleared.contains("status"))
    }

    @Test("A webshop person (first and last name, no kind) becomes a PowerOffice person")
    func personWithoutKind() throws {
        let write = try Golden.mapper(.powerofficego, .customer).toNative(["firstName": "Ola", "lastName": "Nordmann"])
        #expect(write.record["IsPerson"] == true)
        #expect(write.record["FirstName"] == "Ola")
        #expect(write.record["LastName"] == "Nordmann")
    }

    @Test("The expected echo applies the lossy mappings: a refunded webshop order reads back as cancelled")
    func lossyEcho() throws {
        let mapper = Golden.mapper(.customwebshop, .order)
        let write = try mapper.toNative(["status": "cancelled", "currency": "NOK"])
        let echo = try mapper.expectedEcho(of: write)
        #expect(echo.values["status"] == "cancelled")
        // And a read-only field (the shop's own order number) is not expected back.
        #expect(!echo.carried.contains("orderNumber"))
    }
}
