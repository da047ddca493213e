import Foundation
import Testing
import ParleyEnvelope
import ParleyJSON
@testable import ParleyCanonical

@Suite("Order line identity and derived fields")
struct LineIdentityAndDerivedTests {
    static let coffee = "product/9a3b0c2d-1111-4222-8333-444455556666"

    @Test("A line is its product, else its SKU, else nothing, and its occurrence among lines with the same key")
    func identity() {
        let lines: [JSONValue] = [
            ["product": .string(Self.coffee), "sku": "KAFFE-500", "quantity": 1],
            ["sku": " FRAKT ", "quantity": 1],
            ["product": .string(Self.coffee.uppercased()), "quantity": 2],  // the same product, spelled in capitals
            ["quantity": 1], ["product": "", "sku": "  ", "quantity": 2],  // no key: blank is none
            ["sku": "frakt"]  // SKUs keep their case
        ]
        #expect(
            OrderLineIdentity.identities(of: lines).map(\.description)
                == ["\(Self.coffee)#0", "sku:FRAKT#0", "\(Self.coffee)#1", "#0", "#1", "sku:frakt#0"])
        // Removing a line before them, or reordering, changes no other line's identity.
        let moved = [lines[2], lines[3], lines[0]]
        #expect(OrderLineIdentity.identities(of: moved).map(\.description) == ["\(Self.coffee)#0", "#0", "\(Self.coffee)#1"])
    }

    @Test("A person's full name is the first and last name; nothing for a company or when a name is missing")
    func personName() {
        let person: [String: JSONValue] = ["kind": "person", "firstName": " Kari ", "lastName": "Nordmann", "name": "K. Nordmann"]
        #expect(DerivedField.personName.derive(person) == "Kari Nordmann")
        var company = person
        company["kind"] = "company"
        #expect(DerivedField.personName.derive(company) == nil)
        var noLast = person
        noLast["lastName"] = " "
        #expect(DerivedField.personName.derive(noLast) == nil)
        #expect(DerivedField.fields(of: .customer).map(\.path) == ["name"] && DerivedField.fields(of: .order).isEmpty)
        // PowerOffice Go's personName converter reads a person's name the same way.
        let read = try? PersonNameConverter().toCanonical(["IsPerson": true, "FirstName": "Kari", "LastName": "Nordmann"], context: .empty)
        #expect(read?["name"] == DerivedField.personName.derive(person))
    }

    @Test("Line fields named along with `lines` select those members in the hash; `lines` alone hashes every member")
    func hashLinesWithMembers() throws {
        let a: JSONValue = ["lines": [["sku": "A", "quantity": 2, "vatRate": 0.25]]]
        let b: JSONValue = ["lines": [["sku": "A", "quantity": 2]]]
        let named = ["lines", "lines.sku", "lines.quantity"].compactMap { CanonicalField.named($0, entity: .order) }
        let all = [CanonicalField.named("lines", entity: .order)!]
        #expect(
            try CanonicalHash.hex(ofCanonicalJSON: a, entity: .order, fields: named)
                == CanonicalHash.hex(ofCanonicalJSON: b, entity: .order, fields: named))
        #expect(
            try CanonicalHash.hex(ofCanonicalJSON: a, entity: .order, fields: all)
                != CanonicalHash.hex(ofCanonicalJSON: b, entity: .order, fields: all))
    }
}
