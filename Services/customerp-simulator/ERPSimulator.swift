import Foundation
import Hummingbird
import ParleyCore
import ParleySimulator

/// The custom ERP's contract (docs/contracts/customerp.openapi.yaml): string ids, camelCase,
/// amounts as JSON numbers excluding VAT, `modifiedAt`, PUT updates with an optional
/// `If-Unmodified-Since-Modified-At` lock, `X-Api-Key` or bearer auth.
enum ERPSimulator {
    static let vatRates: [Double] = [25, 15, 12, 0]

    static func makeDatabase() -> SimulatorDatabase {
        SimulatorDatabase(
            entities: [
                EntityStore(name: "customers", uniqueRules: [.exact("customerNo")]),
                EntityStore(name: "products", uniqueRules: [.exact("itemNo")]),
                EntityStore(name: "orders", uniqueRules: [.exact("orderNo")])
            ], firstId: 10_001)
    }

    static let readOnly: [ObjectSchema.Field] = [
        .init("id", .string(), readOnly: true), .init("archived", .bool, readOnly: true),
        .init("modifiedAt", .string(), readOnly: true)
    ]

    static let address = ObjectSchema([
        .init("line1", .string(), nullable: true), .init("line2", .string(), nullable: true),
        .init("postalCode", .string(), nullable: true), .init("city", .string(), nullable: true),
        .init("countryCode", .string(format: .pattern("^[A-Z]{2}$")), nullable: true)
    ])

    static let customer = ObjectSchema(
        readOnly + [
            .init("customerNo", .string()),
            .init("customerType", .string(values: ["PERSON", "COMPANY"]), required: true),
            .init("name", .string(), required: true),
            .init("contactFirstName", .string(), nullable: true), .init("contactLastName", .string(), nullable: true),
            .init("orgNo", .string(), nullable: true), .init("email", .string(format: .email), nullable: true),
            .init("phone", .string(), nullable: true), .init("address", .object(address)),
            .init("currencyCode", .string(format: .pattern("^[A-Z]{3}$")), nullable: true)
        ])

    static let product = ObjectSchema(
        readOnly + [
            .init("itemNo", .string(), required: true), .init("description", .string(), required: true),
            .init("longText", .string(), nullable: true), .init("ean", .string(), nullable: true),
            .init("unitCode", .string(format: .pattern("^[A-Z0-9]{1,3}$"))),
            .init("salesPrice", .number(min: 0)), .init("costPrice", .number(min: 0), nullable: true),
            .init("vatPercent", .number(values: vatRates)),
            .init("itemType", .string(values: ["STOCK", "NONSTOCK", "SERVICE"])),
            .init("quantityOnHand", .number(), nullable: true)
        ])

    static let line = ObjectSchema([
        .init("lineNo", .integer(), readOnly: true), .init("lineAmount", .number(), readOnly: true),
        .init("productId", .string(), nullable: true), .init("itemNo", .string(), required: true),
        .init("text", .string(), nullable: true), .init("quantity", .number(), required: true),
        .init("unitCode", .string(format: .pattern("^[A-Z0-9]{1,3}$")), nullable: true),
        .init("unitPrice", .number(), required: true),
        .init("discountPercent", .number(min: 0, max: 100), nullable: true),
        .init("vatPercent", .number(values: vatRates), required: true)
    ])

    static let orderStatuses = ["ENTERED", "CONFIRMED", "PICKING", "DELIVERED", "CANCELLED"]

    static let order = ObjectSchema(
        readOnly + [
            .init("customerNo", .string(), readOnly: true), .init("totalExclVat", .number(), readOnly: true),
            .init("totalVat", .number(), readOnly: true),
            .init("orderNo", .string()), .init("customerId", .string(), required: true),
            .init("orderDate", .string(format: .date), required: true),
            .init("requestedDeliveryDate", .string(format: .date), nullable: true),
            .init("currencyCode", .string(format: .pattern("^[A-Z]{3}$"))),
            .init("status", .string(values: orderStatuses)), .init("yourReference", .string(), nullable: true),
            .init("lines", .array(.object(line)), required: true)
        ])

    static func render(_ record: StoredRecord) -> JSONValue {
        var o = record.fields
        o["id"] = .string(String(record.id))
        o["archived"] = .bool(record.archived)
        o["modifiedAt"] = .string(record.modifiedAt.rfc3339)
        return .object(o)
    }

    // MARK: - derive

    static func deriveCustomer(_ f: [String: JSONValue], _ current: StoredRecord?, _ db: SimulatorDatabase) throws -> [String: JSONValue] {
        var f = f
        try Derive.requireText(f, "name")
        try Derive.requireText(f, "customerNo")
        if f["customerNo"] == nil {
            f["customerNo"] = .string(Derive.nextNumber(db, entity: "customers", member: "customerNo", prefix: "K-", start: 10_001))
        }
        if f["address"] == nil { f["address"] = .object([:]) }
        return f
    }

    static func deriveProduct(_ f: [String: JSONValue], _ current: StoredRecord?, _ db: SimulatorDatabase) throws -> [String: JSONValue] {
        var f = f
        try Derive.requireText(f, "itemNo")
        try Derive.requireText(f, "description")
        try Derive.requireCents(f["salesPrice"], field: "salesPrice")
        try Derive.requireCents(f["costPrice"], field: "costPrice")
        if f["unitCode"] == nil { f["unitCode"] = .string("EA") }
        if f["salesPrice"] == nil { f["salesPrice"] = .int(0) }
        if f["vatPercent"] == nil { f["vatPercent"] = .int(25) }
        if f["itemType"] == nil { f["itemType"] = .string("STOCK") }
        return f
    }

    static func deriveOrder(_ f: [String: JSONValue], _ current: StoredRecord?, _ db: SimulatorDatabase) throws -> [String: JSONValue] {
        var f = f
        guard let customerRaw = f["customerId"]?.stringValue, let cid = Int64(customerRaw),
            let customer = db.store("customers").get(cid)
        else {
            throw Problem.validation([.init(field: "customerId", message: "no customer with this id")])
        }
        f["customerNo"] = customer.fields["customerNo"] ?? .null
        if f["orderNo"] == nil {
            f["orderNo"] = .string(Derive.nextNumber(db, entity: "orders", member: "orderNo", prefix: "SO-", start: 100_001))
        }
        try Derive.requireText(f, "orderNo")
        if f["status"] == nil { f["status"] = .string("ENTERED") }
        if f["currencyCode"] == nil { f["currencyCode"] = .string("NOK") }
        var lines: [JSONValue] = []
        var totalExcl = Decimal(0), totalVat = Decimal(0)
        var errors: [Problem.FieldError] = []
        let products = db.store("products")
        for (i, value) in (f["lines"]?.arrayValue ?? []).enumerated() {
            guard var l = value.objectValue else { continue }
            let p = "lines[\(i)]"
            if let pidRaw = l["productId"]?.stringValue {
                if Int64(pidRaw).flatMap(products.get) == nil {
                    errors.append(.init(field: "\(p).productId", message: "no product with this id"))
                }
            } else if let itemNo = l["itemNo"]?.stringValue,
                let match = products.find(where: { $0.fields["itemNo"]?.stringValue == itemNo })
            {
                l["productId"] = .string(String(match.id))
            } else {
                l["productId"] = .null
            }
            if let d = l["unitPrice"]?.decimalValue, d != d.roundedHalfAwayFromZero(scale: 2) {
                errors.append(.init(field: "\(p).unitPrice", message: "must have at most two decimals"))
            }
            let q = l["quantity"]?.decimalValue ?? 0, price = l["unitPrice"]?.decimalValue ?? 0
            let discount = l["discountPercent"]?.decimalValue ?? 0
            let vat = l["vatPercent"]?.decimalValue ?? 0
            let amount = (q * price * (100 - discount) / 100).roundedHalfAwayFromZero(scale: 2)
            l["lineNo"] = .int(Int64(i + 1))
            l["lineAmount"] = .decimal(amount)
            totalExcl += amount
            totalVat += (amount * vat / 100).roundedHalfAwayFromZero(scale: 2)
            lines.append(.object(l))
        }
        if !errors.isEmpty { throw Problem.validation(errors) }
        f["lines"] = .array(lines)
        f["totalExclVat"] = .decimal(totalExcl)
        f["totalVat"] = .decimal(totalVat)
        return f
    }

    static func apis() -> [EntityAPI] {
        func api(
            _ name: String, _ schema: ObjectSchema,
            _ derive: @escaping @Sendable ([String: JSONValue], StoredRecord?, SimulatorDatabase) throws -> [String: JSONValue]
        ) -> EntityAPI {
            EntityAPI(
                name: name, schema: schema, derive: derive, render: render, updateMethod: .put, limitName: "limit",
                defaultLimit: 100, maxLimit: 500, preconditionHeader: "If-Unmodified-Since-Modified-At")
        }
        return [api("customers", customer, deriveCustomer), api("products", product, deriveProduct), api("orders", order, deriveOrder)]
    }

    // MARK: - seeding

    static func seed(_ count: Int, seedValue: UInt64, into db: inout SimulatorDatabase) throws {
        guard count > 0 else { return }
        let data = NorwegianData.dataset(seed: seedValue, count: count, referenceDay: Timestamp.now().utcDate)
        let wall = Timestamp.now()
        var customerIds: [Int64] = []
        for c in data.customers {
            var f: [String: JSONValue] = [
                "customerType": .string(c.kind == .company ? "COMPANY" : "PERSON"), "name": .string(c.name),
                "email": .string(c.email), "phone": .string(c.phone), "currencyCode": .string("NOK"),
                "address": .object([
                    "line1": .string(c.addressLine1), "line2": .null, "postalCode": .string(c.postalCode),
                    "city": .string(c.city), "countryCode": .string(c.countryCode)
                ])
            ]
            f["orgNo"] = c.organizationNumber.map(JSONValue.string) ?? .null
            f["contactFirstName"] = .string(c.firstName)
            f["contactLastName"] = .string(c.lastName)
            f = try deriveCustomer(f, nil, db)
            customerIds.append(try db.create("customers", fields: f, wall: wall).record.id)
        }
        var productIds: [Int64] = []
        for p in data.products {
            let f: [String: JSONValue] = try deriveProduct(
                [
                    "itemNo": .string(p.sku), "description": .string(p.name), "longText": .string(p.description),
                    "ean": p.gtin.map(JSONValue.string) ?? .null, "unitCode": .string(p.unitCode),
                    "salesPrice": .decimal(p.priceExclVat), "costPrice": .decimal(p.costPriceExclVat),
                    "vatPercent": .int(Int64(p.vatRate)), "itemType": .string(p.kind == .service ? "SERVICE" : "STOCK"),
                    "quantityOnHand": p.stock.map { .int(Int64($0)) } ?? .null
                ], nil, db)
            productIds.append(try db.create("products", fields: f, wall: wall).record.id)
        }
        let statusNames: [SeedOrder.Status: String] = [
            .new: "ENTERED", .confirmed: "CONFIRMED", .inProgress: "PICKING", .delivered: "DELIVERED", .cancelled: "CANCELLED"
        ]
        for o in data.orders {
            let lines: [JSONValue] = o.lines.map { l in
                let p = data.products[l.productIndex]
                return .object([
                    "productId": .string(String(productIds[l.productIndex])), "itemNo": .string(p.sku),
                    "text": .string(p.name), "quantity": .int(Int64(l.quantity)), "unitCode": .string(p.unitCode),
                    "unitPrice": .decimal(p.priceExclVat),
                    "discountPercent": l.discountPercent == 0 ? .null : .int(Int64(l.discountPercent)),
                    "vatPercent": .int(Int64(p.vatRate))
                ])
            }
            let f = try deriveOrder(
                [
                    "customerId": .string(String(customerIds[o.customerIndex])), "orderDate": .string(o.orderDate),
                    "requestedDeliveryDate": .null, "status": .string(statusNames[o.status] ?? "ENTERED"),
                    "yourReference": o.customerReference.map(JSONValue.string) ?? .null, "lines": .array(lines)
                ], nil, db)
            _ = try db.create("orders", fields: f, wall: wall)
        }
    }

    /// The simulator's router: the contract's endpoints behind problem, fault and auth
    /// middleware, plus `/_admin`.
    static func makeRouter(state: SimulatorState, auth: AuthPolicy, seedValue: UInt64) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: FaultMiddleware(state: state))
        router.add(middleware: AuthMiddleware(policy: auth))
        for api in apis() { EntityRoutes.add(api, to: router, state: state) }
        AdminRoutes.add(
            to: router, state: state, render: { _, record in render(record) },
            seed: { n, db in try seed(n, seedValue: seedValue, into: &db) })
        return router
    }

    static func makeState(seed count: Int, seedValue: UInt64, faults: FaultSettings) throws -> SimulatorState {
        var db = makeDatabase()
        try seed(count, seedValue: seedValue, into: &db)
        return SimulatorState(database: db, faults: faults)
    }
}
