import Foundation
import ParleyEnvelope
import ParleyJSON
import PropertyBased
import Testing

@testable import ParleyCanonical

// MARK: Generators

let textGen = Gen.letterOrNumber.string(of: 0...8)
let centsGen = Gen.int(in: -100_000_000...100_000_000)

func cents(_ c: Int) -> Decimal { Decimal(c) / 100 }

/// A product with every field carried, from plain generated values.
let productGen = zip(
    textGen.array(of: 5), centsGen.array(of: 3), Gen.int(in: 0...100), Gen.bool, Gen.bool
).map { (input: ([String], [Int], Int, Bool, Bool)) -> Product in
    let (texts, amounts, vat, service, archived) = input
    return Product(
        sku: texts[0], name: texts[1], description: texts[2], gtin: texts[3], unitOfMeasure: texts[4],
        salesPriceExclVat: cents(amounts[0]), costPrice: cents(amounts[1]), vatRate: Decimal(vat) / 100,
        productType: service ? .service : .product, stock: cents(amounts[2]), archived: archived)
}

/// Another spelling of the same number (exponent, trailing zeros, upper-case E).
func respell(_ value: Decimal, variant: Int) -> String {
    let plain = value.description
    switch variant % 4 {
    case 0: return plain.contains(".") ? plain + "000" : plain + ".0"
    case 1:
        // value × 100 is an integer for our generated values: write it as <int>e-2.
        return "\((value * 100).description)e-2"
    case 2: return value == 0 ? "-0.00E+3" : "\((value * 1000).description)0E-4"
    default: return plain
    }
}

/// The same canonical document spelled differently: members rotated and reversed, text padded
/// with white space, numbers re-spelled.
func respelled(_ json: JSONValue, variant: Int, pad: Int) -> JSONValue {
    switch json {
    case .string(let s):
        return .string(String(repeating: " ", count: pad) + s + (pad > 0 ? "\t\n" : ""))
    case .number(let n):
        guard let value = n.decimal, let number = JSONNumber(respell(value, variant: variant)) else {
            Issue.record("cannot respell \(n.text) (variant \(variant))")
            return json
        }
        return .number(number)
    case .array(let elements):
        return .array(elements.map { respelled($0, variant: variant, pad: pad) })
    case .object(let object):
        var members = object.map { ($0.key, respelled($0.value, variant: variant, pad: pad)) }
        if !members.isEmpty { members = Array(members[(variant % members.count)...] + members[..<(variant % members.count)]) }
        if variant % 2 == 1 { members.reverse() }
        return .object(JSONObject(members))
    default:
        return json
    }
}

/// Changes field `index` (in registry order) of a product to a different value.
func mutate(_ p: Product, field index: Int) -> Product {
    var p = p
    switch CanonicalField.product[index].path {
    case "sku": p.sku = (p.sku ?? "") + "x"
    case "name": p.name = (p.name ?? "") + "x"
    case "description": p.description = (p.description ?? "") + "x"
    case "gtin": p.gtin = (p.gtin ?? "") + "1"
    case "unitOfMeasure": p.unitOfMeasure = (p.unitOfMeasure ?? "") + "X"
    case "salesPriceExclVat": p.salesPriceExclVat = (p.salesPriceExclVat ?? 0) + cents(1)
    case "costPrice": p.costPrice = (p.costPrice ?? 0) - cents(1)
    case "vatRate": p.vatRate = (p.vatRate ?? 0) + cents(1)
    case "productType": p.productType = p.productType == .service ? .product : .service
    case "stock": p.stock = (p.stock ?? 0) + 1
    case "archived": p.archived = !(p.archived ?? false)
    default: Issue.record("untested field \(CanonicalField.product[index].path)")
    }
    return p
}

// MARK: Properties

@Suite struct HashPropertyTests {
    @Test func spellingKeyOrderAndWhiteSpaceDoNotChangeTheHash() async {
        await propertyCheck(input: productGen, Gen.int(in: 0...7), Gen.int(in: 0...3)) { product, variant, pad in
            let all = CanonicalField.product
            let expected = CanonicalHash.hex(of: product, fields: all)
            let json = respelled(product.canonicalJSON, variant: variant, pad: pad)
            #expect((try? CanonicalHash.hex(ofCanonicalJSON: json, entity: .product, fields: all)) == expected)
            // And after a round trip through the model (which, unlike the hash, does not trim
            // enumeration values, so only without padding).
            if pad == 0 {
                let decoded = try? Product(canonicalJSON: json)
                #expect(decoded.map { CanonicalHash.hex(of: $0, fields: all) } == expected)
            }
        }
    }

    @Test func aFieldChangesTheHashExactlyWhenItIsCarried() async {
        let count = CanonicalField.product.count
        await propertyCheck(
            input: productGen, Gen.int(in: 0...(count - 1)), Gen.bool.array(of: count)
        ) { product, index, mask in
            let carried = CanonicalField.product.indices.filter { mask[$0] }.map { CanonicalField.product[$0] }
            let changed = mutate(product, field: index)
            let before = CanonicalHash.hex(of: product, fields: carried)
            let after = CanonicalHash.hex(of: changed, fields: carried)
            if mask[index] {
                #expect(before != after, "changing \(CanonicalField.product[index].path) must change the hash")
            } else {
                #expect(before == after, "\(CanonicalField.product[index].path) is not carried")
            }
            // With every field carried, any change shows.
            #expect(
                CanonicalHash.hex(of: product, fields: CanonicalField.product)
                    != CanonicalHash.hex(of: changed, fields: CanonicalField.product))
        }
    }

    @Test func customerFieldsOutsideTheSetDoNotMatter() async {
        let carried = ["name", "email", "postalAddress.city"].map { CanonicalField.named($0, entity: .customer)! }
        await propertyCheck(input: textGen, textGen, textGen, textGen) { name, city, phone, line1 in
            let base = Customer(name: name, postalAddress: PostalAddress(city: city))
            var other = base
            other.phone = phone
            other.postalAddress?.addressLine1 = line1
            other.organizationNumber = "923609016"
            #expect(CanonicalHash.hex(of: base, fields: carried) == CanonicalHash.hex(of: other, fields: carried))
            var moved = base
            moved.postalAddress?.city = city + "x"
            #expect(CanonicalHash.hex(of: base, fields: carried) != CanonicalHash.hex(of: moved, fields: carried))
        }
    }
}

// MARK: Examples

@Suite struct HashExampleTests {
    let allOrder = CanonicalField.fields(of: .order)

    @Test(arguments: [
        ("10", "10"), ("10.0", "10"), ("1e1", "10"), ("1E+1", "10"), ("100e-1", "10"), ("10.00", "10"),
        ("-0", "0"), ("-0.000", "0"), ("0e5", "0"), ("0.250", "0.25"), ("25e-2", "0.25"), ("-1.50", "-1.5"),
        ("007", "7"), ("1e-7", "0.0000001"), ("12345678901234567.890", "12345678901234567.89"),
        ("1e100", "1e100"), ("1.5e-100", "15e-101")
    ])
    func canonicalDecimals(text: String, canonical: String) {
        #expect(CanonicalHash.canonicalDecimalText(text) == canonical)
    }

    @Test func absentNullEmptyAndBlankTextHashTheSame() throws {
        let fields = CanonicalField.customer
        let absent = CanonicalHash.hex(of: Customer(), fields: fields)
        #expect(CanonicalHash.hex(of: Customer(name: ""), fields: fields) == absent)
        #expect(CanonicalHash.hex(of: Customer(name: "  \t"), fields: fields) == absent)
        #expect(CanonicalHash.hex(of: Customer(postalAddress: PostalAddress(city: "")), fields: fields) == absent)
        let null = try CanonicalHash.hex(ofCanonicalJSON: ["name": nil], entity: .customer, fields: fields)
        #expect(null == absent)
        #expect(CanonicalHash.hex(of: Customer(name: "A"), fields: fields) != absent)
    }

    @Test func hashIsLowerCaseHex() {
        let h = CanonicalHash.hex(of: fullOrder, fields: allOrder)
        #expect(h.count == 64)
        #expect(h.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func hashedDocumentIsFlatAndSorted() {
        let doc = CanonicalHash.document(
            flat: Customer(name: " A ", postalAddress: PostalAddress(city: "Oslo")).canonicalFieldValues,
            entity: .customer, fields: CanonicalField.customer)
        #expect(doc.serializedString(options: [.sortedKeys]) == #"{"name":"A","postalAddress.city":"Oslo"}"#)
    }

    @Test func valuesNotTypesOfFieldsMatter() {
        // Same text in different fields must not collide.
        let a = CanonicalHash.hex(of: Customer(name: "x"), fields: CanonicalField.customer)
        let b = CanonicalHash.hex(of: Customer(phone: "x"), fields: CanonicalField.customer)
        #expect(a != b)
        // A number is not its text.
        let p1 = try? CanonicalHash.hex(ofCanonicalJSON: ["sku": "10"], entity: .product, fields: CanonicalField.product)
        let p2 = try? CanonicalHash.hex(ofCanonicalJSON: ["sku": 10], entity: .product, fields: CanonicalField.product)
        #expect(p1 != p2)
    }

    @Test func linesAreHashedWholeAndInOrder() {
        var changed = fullOrder
        changed.lines![1].quantity = 2
        #expect(CanonicalHash.hex(of: fullOrder, fields: allOrder) != CanonicalHash.hex(of: changed, fields: allOrder))
        var swapped = fullOrder
        swapped.lines!.reverse()
        #expect(CanonicalHash.hex(of: fullOrder, fields: allOrder) != CanonicalHash.hex(of: swapped, fields: allOrder))
        var none = fullOrder
        none.lines = []
        var absent = fullOrder
        absent.lines = nil
        #expect(CanonicalHash.hex(of: none, fields: allOrder) != CanonicalHash.hex(of: absent, fields: allOrder))
    }

    @Test func lineFieldsSelectMembersOfEachLine() {
        // A system that carries lines without discounts: a discount change is not a change for it.
        let carried = ["lines.sku", "lines.quantity", "lines.unitPriceExclVat"].map {
            CanonicalField.named($0, entity: .order)!
        }
        var discounted = fullOrder
        discounted.lines![0].discountPercent = 50
        #expect(CanonicalHash.hex(of: fullOrder, fields: carried) == CanonicalHash.hex(of: discounted, fields: carried))
        #expect(CanonicalHash.hex(of: fullOrder, fields: allOrder) != CanonicalHash.hex(of: discounted, fields: allOrder))
        var more = fullOrder
        more.lines![0].quantity = 3
        #expect(CanonicalHash.hex(of: fullOrder, fields: carried) != CanonicalHash.hex(of: more, fields: carried))
    }

    @Test func referencesIgnoreUUIDCase() throws {
        let upper: JSONValue = ["customer": .string("customer/0B6F5E1C-6C1A-4F0E-9D7A-3A1F2F1C9E11")]
        let fields = [CanonicalField.named("customer", entity: .order)!]
        #expect(
            try CanonicalHash.hex(ofCanonicalJSON: upper, entity: .order, fields: fields)
                == CanonicalHash.hex(of: Order(customer: customerRef), fields: fields))
    }

    @Test func pathsAPIRejectsUnknownPaths() {
        #expect(CanonicalHash.hex(of: fullProduct, paths: ["sku", "name"]) != nil)
        #expect(CanonicalHash.hex(of: fullProduct, paths: ["sku", "nmae"]) == nil)
    }
}
