import Foundation
import Hummingbird
import ParleyCore
import ParleySimulator

/// The custom webshop's contract (docs/contracts/customwebshop.openapi.yaml), WooCommerce
/// style: integer ids, snake_case, prices INCLUDING VAT as decimal strings, `tax_rate`
/// percent numbers, `date_modified_gmt`, PATCH updates, Basic (consumer key/secret) or
/// bearer auth, and signed change webhooks.
enum WebshopSimulator {
    static let vatRates: [Double] = [25, 15, 12, 0]

    /// The unique members, which the lists also filter by (`?email=`, `?sku=`): the record a
    /// duplicate's 409 refers to is found with the same comparison.
    static let uniqueEmail = UniqueRule.caseInsensitive("email")
    static let uniqueSku = UniqueRule.exact("sku")

    static func makeDatabase() -> SimulatorDatabase {
        SimulatorDatabase(
            entities: [
                EntityStore(name: "customers", uniqueRules: [uniqueEmail]),
                EntityStore(name: "products", uniqueRules: [uniqueSku]),
                EntityStore(name: "orders", uniqueRules: [.exact("number")])
            ], firstId: 101)
    }

    static let billing = ObjectSchema(
        ["first_name", "last_name", "company", "address_1", "address_2", "postcode", "city", "country", "email", "phone"]
            .map { ObjectSchema.Field($0, .string(), nullable: true) })

    static let readOnly: [ObjectSchema.Field] = [
        .init("id", .integer(), readOnly: true), .init("archived", .bool, readOnly: true),
        .init("date_modified_gmt", .string(), readOnly: true)
    ]

    static let customer = ObjectSchema(
        readOnly + [
            .init("date_created_gmt", .string(), readOnly: true),
            .init("email", .string(format: .email), required: true),
            .init("first_name", .string(), nullable: true), .init("last_name", .string(), nullable: true),
            .init("billing", .object(billing)), .init("meta_data", .stringMap)
        ])

    static let product = ObjectSchema(
        readOnly + [
            .init("sku", .string()), .init("name", .string(), required: true),
            .init("description", .string(), nullable: true), .init("type", .string(values: ["simple", "virtual"])),
            .init("price", .string(format: .decimalString)), .init("tax_rate", .number(values: vatRates)),
            .init("unit", .string(), nullable: true), .init("gtin", .string(), nullable: true),
            .init("manage_stock", .bool), .init("stock_quantity", .integer(), nullable: true), .init("meta_data", .stringMap)
        ])

    static let lineItem = ObjectSchema([
        .init("id", .integer(), readOnly: true), .init("total", .string(), readOnly: true),
        .init("total_tax", .string(), readOnly: true),
        .init("product_id", .integer(min: 0)), .init("sku", .string(), required: true), .init("name", .string()),
        .init("quantity", .integer(min: 1), required: true), .init("price", .string(format: .decimalString), required: true),
        .init("tax_rate", .number(values: vatRates))
    ])

    static let order = ObjectSchema(
        readOnly + [
            .init("number", .string(), readOnly: true), .init("date_created_gmt", .string(), readOnly: true),
            .init("total", .string(), readOnly: true), .init("total_tax", .string(), readOnly: true),
            .init("customer_id", .integer(min: 0)),
            .init("status", .string(values: ["pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"])),
            .init("currency", .string(format: .pattern("^[A-Z]{3}$"))), .init("customer_note", .string(), nullable: true),
            .init("billing", .object(billing)), .init("line_items", .array(.object(lineItem))), .init("meta_data", .stringMap)
        ])

    static func render(entity: String, _ record: StoredRecord) -> JSONValue {
        var o = record.fields
        o["id"] = .int(record.id)
        o["archived"] = .bool(record.archived)
        o["date_modified_gmt"] = .string(record.modifiedAt.rfc3339)
        if entity != "products" { o["date_created_gmt"] = .string(record.createdAt.rfc3339) }
        return .object(o)
    }

    static func money(_ s: JSONValue?) -> Decimal { s?.stringValue.flatMap { Decimal(string: $0) } ?? 0 }

    // MARK: - derive

    static func deriveCustomer(_ f: [String: JSONValue], _ current: StoredRecord?, _ db: SimulatorDatabase) throws -> [String: JSONValue] {
        var f = f
        try Derive.requireText(f, "email")
        if f["billing"] == nil { f["billing"] = .object([:]) }
        if f["meta_data"] == nil { f["meta_data"] = .object([:]) }
        return f
    }

    static func deriveProduct(_ f: [String: JSONValue], _ current: StoredRecord?, _ db: SimulatorDatabase) throws -> [String: JSONValue] {
        var f = f
        try Derive.requireText(f, "name")
        if let p = f["price"]?.stringValue {
            let d = money(.string(p))
            if d != d.roundedHalfAwayFromZero(scale: 2) {
                throw Problem.validation([.init(field: "price", message: "must have at most two decimals")])
            }
            f["price"] = .string(d.moneyString)
        } else {
            f["price"] = .string("0.00")
        }
        if f["type"] == nil { f["type"] = .string("simple") }
        if f["tax_rate"] == nil { f["tax_rate"] = .int(25) }
        if f["manage_stock"] == nil { f["manage_stock"] = .bool(f["stock_quantity"].map { !$0.isNull } ?? false) }
        return f
    }

    static func deriveOrder(_ f: [String: JSONValue], _ current: StoredRecord?, _ db: SimulatorDatabase) throws -> [String: JSONValue] {
        var f = f
        let customerId = f["customer_id"]?.intValue ?? 0
        f["customer_id"] = .int(customerId)
        var customer: StoredRecord?
        if customerId != 0 {
            customer = db.store("customers").get(customerId)
            if customer == nil { throw Problem.validation([.init(field: "customer_id", message: "no customer with this id")]) }
        }
        if current == nil {
            f["number"] = .string(Derive.nextNumber(db, entity: "orders", member: "number", prefix: "", start: 1001))
            if f["billing"] == nil { f["billing"] = customer?.fields["billing"] ?? .object([:]) }
        }
        if f["status"] == nil { f["status"] = .string("pending") }
        if f["currency"] == nil { f["currency"] = .string("NOK") }
        let products = db.store("products")
        var errors: [Problem.FieldError] = []
        var lines: [JSONValue] = []
        var total = Decimal(0), totalTax = Decimal(0)
        for (i, value) in (f["line_items"]?.arrayValue ?? []).enumerated() {
            guard var l = value.objectValue else { continue }
            let p = "line_items[\(i)]"
            var product: StoredRecord?
            if let pid = l["product_id"]?.intValue, pid != 0 {
                product = products.get(pid)
                if product == nil { errors.append(.init(field: "\(p).product_id", message: "no product with this id")) }
            } else if let sku = l["sku"]?.stringValue {
                product = products.find(where: { $0.fields["sku"]?.stringValue == sku })
            }
            l["product_id"] = .int(product?.id ?? 0)
            if l["name"] == nil { l["name"] = product?.fields["name"] ?? l["sku"] ?? .string("") }
            if l["tax_rate"] == nil { l["tax_rate"] = product?.fields["tax_rate"] ?? .int(25) }
            let price = money(l["price"])
            if price != price.roundedHalfAwayFromZero(scale: 2) {
                errors.append(.init(field: "\(p).price", message: "must have at most two decimals"))
            }
            let rate = l["tax_rate"]?.decimalValue ?? 0
            let lineTotal = (price * Decimal(l["quantity"]?.intValue ?? 0)).roundedHalfAwayFromZero(scale: 2)
            let lineTax = (lineTotal * rate / (100 + rate)).roundedHalfAwayFromZero(scale: 2)
            l["id"] = .int(Int64(i + 1))
            l["price"] = .string(price.moneyString)
            l["total"] = .string(lineTotal.moneyString)
            l["total_tax"] = .string(lineTax.moneyString)
            total += lineTotal
            totalTax += lineTax
            lines.append(.object(l))
        }
        if !errors.isEmpty { throw Problem.validation(errors) }
        f["line_items"] = .array(lines)
        f["total"] = .string(total.moneyString)
        f["total_tax"] = .string(totalTax.moneyString)
        return f
    }

    static func apis() -> [EntityAPI] {
        func api(
            _ name: String, _ schema: ObjectSchema,
            _ derive: @escaping @Sendable ([String: JSONValue], StoredRecord?, SimulatorDatabase) throws -> [String: JSONValue]
        ) -> EntityAPI {
            EntityAPI(
                name: name, schema: schema, derive: derive, render: { render(entity: name, $0) }, updateMethod: .patch,
                limitName: "per_page", defaultLimit: 20, maxLimit: 100,
                filters: name == "customers" ? [uniqueEmail] : name == "products" ? [uniqueSku] : [])
        }
        return [api("customers", customer, deriveCustomer), api("products", product, deriveProduct), api("orders", order, deriveOrder)]
    }

    static let resourceNames = ["customers": "customer", "products": "product", "orders": "order"]

    // MARK: - seeding

    static func priceInclVat(_ excl: Decimal, _ rate: Int) -> Decimal {
        (excl * Decimal(100 + rate) / 100).roundedHalfAwayFromZero(scale: 2)
    }

    static func seed(_ count: Int, seedValue: UInt64, into db: inout SimulatorDatabase) throws {
        guard count > 0 else { return }
        let data = NorwegianData.dataset(seed: seedValue, count: count, referenceDay: Timestamp.now().utcDate)
        let wall = Timestamp.now()
        var customerIds: [Int64] = []
        for c in data.customers {
            var f: [String: JSONValue] = [
                "email": .string(c.email), "first_name": .string(c.firstName), "last_name": .string(c.lastName),
                "billing": .object([
                    "first_name": .string(c.firstName), "last_name": .string(c.lastName),
                    "company": c.kind == .company ? .string(c.name) : .null, "address_1": .string(c.addressLine1),
                    "address_2": .null, "postcode": .string(c.postalCode), "city": .string(c.city),
                    "country": .string("Norge"), "email": .string(c.email), "phone": .string(c.phone)
                ]),
                "meta_data": .object(c.organizationNumber.map { ["org_number": .string($0)] } ?? [:])
            ]
            f = try deriveCustomer(f, nil, db)
            customerIds.append(try db.create("customers", fields: f, wall: wall).record.id)
        }
        var productIds: [Int64] = []
        for p in data.products {
            let f = try deriveProduct(
                [
                    "sku": .string(p.sku), "name": .string(p.name), "description": .string("<p>\(p.description)</p>"),
                    "type": .string(p.kind == .service ? "virtual" : "simple"),
                    "price": .string(priceInclVat(p.priceExclVat, p.vatRate).moneyString), "tax_rate": .int(Int64(p.vatRate)),
                    "unit": .string(unitWord(p.unitCode)), "gtin": p.gtin.map(JSONValue.string) ?? .null,
                    "manage_stock": .bool(p.stock != nil), "stock_quantity": p.stock.map { .int(Int64($0)) } ?? .null
                ], nil, db)
            productIds.append(try db.create("products", fields: f, wall: wall).record.id)
        }
        let statusNames: [SeedOrder.Status: String] = [
            .new: "pending", .confirmed: "processing", .inProgress: "on-hold", .delivered: "completed", .cancelled: "cancelled"
        ]
        for o in data.orders {
            let lines: [JSONValue] = o.lines.map { l in
                let p = data.products[l.productIndex]
                let unit = priceInclVat(p.priceExclVat, p.vatRate) * Decimal(100 - l.discountPercent) / 100
                return .object([
                    "product_id": .int(productIds[l.productIndex]), "sku": .string(p.sku), "name": .string(p.name),
                    "quantity": .int(Int64(l.quantity)), "price": .string(unit.roundedHalfAwayFromZero(scale: 2).moneyString),
                    "tax_rate": .int(Int64(p.vatRate))
                ])
            }
            let f = try deriveOrder(
                [
                    "customer_id": .int(customerIds[o.customerIndex]), "status": .string(statusNames[o.status] ?? "pending"),
                    "customer_note": o.customerReference.map { .string("Ref: \($0)") } ?? .null, "line_items": .array(lines)
                ], nil, db)
            _ = try db.create("orders", fields: f, wall: wall)
        }
    }

    static func unitWord(_ code: String) -> String {
        ["EA": "pcs", "KGM": "kg", "LTR": "l", "MTR": "m", "HUR": "hour"][code] ?? "pcs"
    }

    static func makeRouter(state: SimulatorState, auth: AuthPolicy, seedValue: UInt64, webhooks: WebhookDispatcher?) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: FaultMiddleware(state: state))
        router.add(middleware: AuthMiddleware(policy: auth))
        for api in apis() {
            EntityRoutes.add(api, to: router, state: state) { change in
                webhooks?.send(
                    WebhookEvent(
                        event: change.event, resource: resourceNames[change.entity] ?? change.entity, id: change.record.id,
                        occurredAt: change.record.modifiedAt))
            }
        }
        AdminRoutes.add(
            to: router, state: state, render: { entity, record in render(entity: entity, record) },
            seed: { n, db in try seed(n, seedValue: seedValue, into: &db) })
        router.get("/_admin/webhooks") { _, _ in
            Response.json(
                JSONValue.object([
                    "url": webhooks.map { .string($0.url) } ?? .null,
                    "delivered": .int(Int64(webhooks?.statistics.delivered ?? 0)),
                    "failedAttempts": .int(Int64(webhooks?.statistics.failedAttempts ?? 0)),
                    "abandoned": .int(Int64(webhooks?.statistics.abandoned ?? 0))
                ]))
        }
        return router
    }

    static func makeState(seed count: Int, seedValue: UInt64, faults: FaultSettings) throws -> SimulatorState {
        var db = makeDatabase()
        try seed(count, seedValue: seedValue, into: &db)
        return SimulatorState(database: db, faults: faults)
    }
}
