import Foundation
import ParleyEnvelope
import ParleyJSON
import Testing

@testable import ParleyCanonical

func dec(_ text: String) -> Decimal { Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))! }

let customerRef = GlobalRef(.customer, id: UUID(uuidString: "0B6F5E1C-6C1A-4F0E-9D7A-3A1F2F1C9E11")!)
let productRef = GlobalRef(.product, id: UUID(uuidString: "9A3B0C2D-1111-4222-8333-444455556666")!)

let fullCustomer = Customer(
    kind: .company, name: "Nordlys AS", firstName: "Kari", lastName: "Nordmann", email: "post@nordlys.no",
    organizationNumber: "923609016", phone: "+4712345678",
    postalAddress: PostalAddress(
        addressLine1: "Storgata 1", addressLine2: "Att: Innkjøp", postalCode: "0161", city: "Oslo", country: "NO"),
    currency: "NOK", archived: false)

let fullProduct = Product(
    sku: "NL-100", name: "Lampe", description: "En lampe", gtin: "7038010000003", unitOfMeasure: "EA",
    salesPriceExclVat: dec("1999.50"), costPrice: dec("1200"), vatRate: dec("0.25"), productType: .product,
    stock: dec("12.5"), archived: true)

let fullOrder = Order(
    orderNumber: "SO-1001", customer: customerRef, orderDate: CalendarDate(year: 2026, month: 2, day: 28),
    deliveryDate: CalendarDate("2026-03-02"), currency: "NOK", status: .confirmed, customerReference: "PO 77",
    lines: [
        OrderLine(
            product: productRef, sku: "NL-100", description: "Lampe", quantity: dec("2"),
            unitPriceExclVat: dec("1999.5"), discountPercent: dec("10"), vatRate: dec("0.25")),
        OrderLine(sku: "FRAKT", quantity: dec("1"), unitPriceExclVat: dec("99"))
    ],
    archived: false)

@Suite struct ModelJSONTests {
    func roundTrip<E: CanonicalEntity>(_ entity: E) throws {
        let json = entity.canonicalJSON
        #expect(try E(canonicalJSON: json) == entity)
        // Through text as well: exact decimals survive serialisation.
        let text = json.serializedString()
        #expect(try E(canonicalJSONText: text) == entity)
    }

    @Test func fullRoundTrips() throws {
        try roundTrip(fullCustomer)
        try roundTrip(fullProduct)
        try roundTrip(fullOrder)
    }

    @Test func sparseRoundTrips() throws {
        try roundTrip(Customer())
        try roundTrip(Customer(email: "a@b.no", postalAddress: PostalAddress(city: "Bergen")))
        try roundTrip(Product(sku: "X"))
        try roundTrip(Product(salesPriceExclVat: dec("0.1")))
        try roundTrip(Order())
        try roundTrip(Order(lines: []))
        try roundTrip(Order(status: .cancelled, lines: [OrderLine()]))
        #expect(Customer().canonicalJSON == .object(JSONObject()))
    }

    @Test func onlyCarriedFieldsArePresent() throws {
        let json = Customer(name: "A", postalAddress: PostalAddress(city: "Oslo")).canonicalJSON
        #expect(json.object?.keys == ["name", "postalAddress"])
        #expect(json["postalAddress"]?.object?.keys == ["city"])
        #expect(Order(lines: []).canonicalJSON["lines"] == .array([]))
    }

    @Test func jsonShape() throws {
        let json = fullOrder.canonicalJSON
        #expect(json["customer"] == .string("customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11"))
        #expect(json["orderDate"] == .string("2026-02-28"))
        #expect(json["status"] == .string("confirmed"))
        #expect(json["lines"]?[0]?["unitPriceExclVat"] == .number(JSONNumber("1999.5")!))
        #expect(json["lines"]?[0]?["product"] == .string(productRef.description))
        #expect(fullProduct.canonicalJSON["vatRate"] == .number(JSONNumber("0.25")!))
        #expect(fullCustomer.canonicalJSON["postalAddress"]?["postalCode"] == .string("0161"))
    }

    @Test func exactDecimalsSurvive() throws {
        let text = #"{"salesPriceExclVat": 12345678901234567.89, "stock": 1e3}"#
        let product = try Product(canonicalJSONText: text)
        #expect(product.salesPriceExclVat == dec("12345678901234567.89"))
        #expect(product.stock == dec("1000"))
        #expect(product.canonicalJSON["salesPriceExclVat"] == .number(JSONNumber("12345678901234567.89")!))
    }

    @Test func nullIsNotCarried() throws {
        let c = try Customer(canonicalJSONText: #"{"name": null, "postalAddress": {"city": null}, "email": "a@b.c"}"#)
        #expect(c == Customer(email: "a@b.c"))
    }

    func decodeError<E: CanonicalEntity>(_ type: E.Type, _ text: String) -> CanonicalDecodingError? {
        do {
            _ = try E(canonicalJSONText: text)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [
        (#"{"name": 5}"#, "name", "expected a string"),
        (#"{"nmae": "x"}"#, "nmae", "unknown field"),
        (#"{"kind": "alien"}"#, "kind", "not one of person, company"),
        (#"{"archived": "yes"}"#, "archived", "expected a boolean"),
        (#"{"postalAddress": "Oslo"}"#, "postalAddress", "expected an object"),
        (#"{"postalAddress": {"town": "Oslo"}}"#, "postalAddress.town", "unknown field"),
        (#"{"postalAddress": {"city": 1}}"#, "postalAddress.city", "expected a string"),
        (#"[]"#, "", "expected an object"),
        (#"{"name": "#, "", "malformed JSON")
    ])
    func customerDecodingErrorsNameTheField(text: String, path: String, reason: String) {
        let error = decodeError(Customer.self, text)
        #expect(error?.path == path)
        #expect(error?.reason.contains(reason) == true, "\(String(describing: error))")
        #expect(error?.entity == .customer)
    }

    @Test func productDecodingErrors() {
        #expect(decodeError(Product.self, #"{"vatRate": "0.25"}"#)?.path == "vatRate")
        #expect(decodeError(Product.self, #"{"stock": 1e200}"#)?.reason.contains("exactly") == true)
        #expect(decodeError(Product.self, #"{"productType": "goods"}"#)?.path == "productType")
    }

    @Test func orderDecodingErrorsNameTheLine() {
        #expect(decodeError(Order.self, #"{"orderDate": "2026-02-30"}"#)?.path == "orderDate")
        #expect(decodeError(Order.self, #"{"orderDate": "28.02.2026"}"#)?.path == "orderDate")
        #expect(decodeError(Order.self, #"{"status": "Confirmed"}"#)?.path == "status")
        #expect(decodeError(Order.self, #"{"customer": "product/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11"}"#)?.path == "customer")
        #expect(decodeError(Order.self, #"{"lines": {}}"#)?.path == "lines")
        #expect(decodeError(Order.self, #"{"lines": [{}, 3]}"#)?.path == "lines[1]")
        #expect(decodeError(Order.self, #"{"lines": [{"quantity": "2"}]}"#)?.path == "lines[0].quantity")
        #expect(decodeError(Order.self, #"{"lines": [{"qty": 2}]}"#)?.path == "lines[0].qty")
        #expect(decodeError(Order.self, #"{"lines.sku": "x"}"#)?.path == "lines.sku")
        let error = decodeError(Order.self, #"{"lines": [{"vatRate": true}]}"#)
        #expect(error?.description == "order field lines[0].vatRate: expected a number, found boolean")
    }

    @Test func documentedExampleDecodes() throws {
        // The example in docs/canonical-model.md.
        let order = try Order(
            canonicalJSONText: """
                {
                  "orderNumber": "SO-1001",
                  "customer": "customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11",
                  "orderDate": "2026-02-28",
                  "currency": "NOK",
                  "status": "confirmed",
                  "lines": [
                    {
                      "product": "product/9a3b0c2d-1111-4222-8333-444455556666",
                      "sku": "NL-100",
                      "quantity": 2,
                      "unitPriceExclVat": 1999.5,
                      "discountPercent": 10,
                      "vatRate": 0.25
                    },
                    { "sku": "FRAKT", "quantity": 1, "unitPriceExclVat": 99 }
                  ]
                }
                """)
        var expected = fullOrder
        expected.deliveryDate = nil
        expected.customerReference = nil
        expected.archived = nil
        expected.lines![0].description = nil
        #expect(order == expected)
    }

    @Test func calendarDate() {
        #expect(CalendarDate("2024-02-29") != nil)
        #expect(CalendarDate("2023-02-29") == nil)
        #expect(CalendarDate("1900-02-29") == nil)
        #expect(CalendarDate("2000-02-29") != nil)
        #expect(CalendarDate("2026-13-01") == nil)
        #expect(CalendarDate("2026-1-01") == nil)
        #expect(CalendarDate(year: 7, month: 3, day: 9)?.description == "0007-03-09")
        #expect(CalendarDate("2026-01-31")! < CalendarDate("2026-02-01")!)
    }

    @Test func globalRef() {
        #expect(GlobalRef("customer/0B6F5E1C-6C1A-4F0E-9D7A-3A1F2F1C9E11") == customerRef)
        #expect(GlobalRef("client/0B6F5E1C-6C1A-4F0E-9D7A-3A1F2F1C9E11") == nil)
        #expect(GlobalRef("customer/nope") == nil)
        #expect(GlobalRef(customerRef.description) == customerRef)
    }
}

@Suite struct ModelFieldRegistryTests {
    @Test func namedFindsKnownPathsOnly() {
        #expect(CanonicalField.named("postalAddress.city", entity: .customer)?.kind == .text)
        #expect(CanonicalField.named("lines", entity: .order)?.kind == .lines)
        #expect(CanonicalField.named("lines.quantity", entity: .order)?.kind == .decimal)
        #expect(CanonicalField.named("lines.quantity", entity: .order)?.isLineField == true)
        #expect(CanonicalField.named("customer", entity: .order)?.referencedEntity == .customer)
        #expect(CanonicalField.named("status", entity: .order)?.allowedValues.contains("cancelled") == true)
        #expect(CanonicalField.named("postalAddress.town", entity: .customer) == nil)
        #expect(CanonicalField.named("sku", entity: .customer) == nil)
        #expect(CanonicalField.named("postalAddress", entity: .customer) == nil)
        #expect(CanonicalField.named("", entity: .product) == nil)
    }

    @Test func linesAreOneMergeField() {
        let merge = CanonicalField.fields(of: .order).map(\.path)
        #expect(merge.contains("lines"))
        #expect(!merge.contains { $0.hasPrefix("lines.") })
    }

    @Test func registryMatchesTheEntities() {
        // Every registered merge field is written by a fully populated entity, and nothing else.
        for (entity, values) in [
            (CanonicalEntityType.customer, fullCustomer.canonicalFieldValues),
            (CanonicalEntityType.product, fullProduct.canonicalFieldValues),
            (CanonicalEntityType.order, fullOrder.canonicalFieldValues)
        ] {
            #expect(Set(values.keys) == Set(CanonicalField.fields(of: entity).map(\.path)))
        }
        let lineMembers = fullOrder.lines![0].canonicalJSON.object!.keys
        #expect(lineMembers == CanonicalField.orderLine.map { $0.lineMember! })
        // Paths are unique per entity.
        for entity in CanonicalEntityType.allCases {
            let paths = CanonicalField.allFields(of: entity).map(\.path)
            #expect(Set(paths).count == paths.count)
        }
    }
}
