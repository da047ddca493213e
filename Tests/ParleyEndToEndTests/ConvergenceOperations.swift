import Foundation
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

/// What the convergence test does to the systems, through their own APIs, as their users would.
extension ConvergenceRun {
    /// What one edit changes, named the same in every system that has it (so two systems'
    /// edits of one group are a conflict on the same canonical fields).
    enum Group: String, Sendable, CaseIterable {
        // customers
        case name, personName, firstName, lastName, email, orgNo, phone, line1, line2, postal, city, country, currency
        // products
        case sku, productName, description, gtin, unit, price, cost, vat, productType, stock
        // orders
        case orderNo, orderDate, deliveryDate, orderCurrency, status, reference
        case lineQuantity, linePrice, lineText, lineDiscount, lineVat, lineAdd, lineRemove

        var isLines: Bool { rawValue.hasPrefix("line") && self != .line1 && self != .line2 }

        /// The canonical fields an edit of the group may change.
        var fields: Set<String> {
            switch self {
            case .name: ["name"]
            case .personName: ["name", "firstName", "lastName"]
            case .firstName: ["firstName", "name"]
            case .lastName: ["lastName", "name"]
            case .email: ["email"]
            case .orgNo: ["organizationNumber"]
            case .phone: ["phone"]
            case .line1: ["postalAddress.addressLine1"]
            case .line2: ["postalAddress.addressLine2"]
            case .postal: ["postalAddress.postalCode"]
            case .city: ["postalAddress.city"]
            case .country: ["postalAddress.country"]
            case .currency, .orderCurrency: ["currency"]
            case .sku: ["sku"]
            case .productName: ["name"]
            case .description: ["description"]
            case .gtin: ["gtin"]
            case .unit: ["unitOfMeasure"]
            case .price: ["salesPriceExclVat"]
            case .cost: ["costPrice"]
            case .vat: ["vatRate", "salesPriceExclVat"]
            case .productType: ["productType"]
            case .stock: ["stock"]
            case .orderNo: ["orderNumber"]
            case .orderDate: ["orderDate"]
            case .deliveryDate: ["deliveryDate"]
            case .status: ["status"]
            case .reference: ["customerReference"]
            case .lineQuantity, .linePrice, .lineText, .lineDiscount, .lineVat, .lineAdd, .lineRemove: ["lines"]
            }
        }
    }

    static let statuses = ["draft", "confirmed", "processing", "completed"]
    static let erpStatus = ["draft": "ENTERED", "confirmed": "CONFIRMED", "processing": "PICKING", "completed": "DELIVERED"]
    static let shopStatus = ["draft": "pending", "confirmed": "on-hold", "processing": "processing", "completed": "completed"]

    /// A person by the mapping's rule: a `person` kind, or no kind with a first and a last name
    /// (a webshop customer, which PowerOffice Go holds as a person).
    func personLike(_ thing: Thing) -> Bool {
        thing.isPerson || (thing.values["kind"] == nil && thing.values["firstName"] != nil && thing.values["lastName"] != nil)
    }

    /// The edits a system's users can make to a thing now (less those the run avoids).
    func groups(_ thing: Thing, in system: SystemName) -> [Group] {
        allGroups(thing, in: system).filter { group in
            !settings.avoid.contains(group.rawValue) && !settings.avoid.contains("\(system.rawValue).\(group.rawValue)")
                && !(group.isLines && settings.avoid.contains("\(system.rawValue).lines"))
        }
    }

    func allGroups(_ thing: Thing, in system: SystemName) -> [Group] {
        var out: [Group] = []
        switch thing.entity {
        case .customer:
            let person = personLike(thing)
            switch system {
            case .customerp:
                out =
                    (person ? [.personName] : [.name, .firstName, .lastName, .orgNo]) + [
                        .email, .phone, .line1, .line2, .postal, .city, .country, .currency
                    ]
            case .customwebshop: out = [.firstName, .lastName, .email, .phone, .line1, .line2, .postal, .city, .country]
            default:
                out = (person ? [.firstName, .lastName] : [.name, .orgNo]) + [.email, .phone, .line1, .line2, .postal, .city, .country, .currency]
            }
        case .product:
            out = [.productName, .description, .gtin, .unit, .price, .stock]
            if !thing.usedOnLines { out.append(.sku) }
            if !once.contains("\(thing.id)/productType") { out.append(.productType) }
            if system != .customwebshop { out.append(.cost) }
            if system != .powerofficego { out.append(.vat) }
        case .order:
            let status = thing.values["status"]?.string ?? "draft"
            let lines = thing.values["lines"]?.array?.count ?? 0
            let canAdd = !lineProducts(for: thing, in: system).isEmpty
            let later = Self.statuses.drop { $0 != status }.dropFirst()
            switch system {
            case .customerp:
                out = [.orderNo, .orderDate, .deliveryDate, .orderCurrency, .reference, .lineQuantity, .linePrice, .lineText, .lineDiscount, .lineVat]
                if !later.isEmpty { out.append(.status) }
            case .customwebshop:
                out = [.orderCurrency, .lineQuantity, .linePrice, .lineText, .lineVat]
                if !later.isEmpty { out.append(.status) }
            default:
                // PowerOffice Go locks a confirmed order: its users edit drafts.
                guard status == "draft" else { return [] }
                out = [.orderDate, .deliveryDate, .orderCurrency, .reference, .status, .lineQuantity, .linePrice, .lineText, .lineDiscount]
                if !settings.goLineAdds { return out + (lines > 1 ? [.lineRemove] : []) }
            }
            if canAdd { out.append(.lineAdd) }
            if lines > 1 { out.append(.lineRemove) }
        }
        return out
    }

    /// Products that may go on a new line of `order` in `system`: not archived, SKU never
    /// edited, not on the order yet, and reaching every system the order does.
    func lineProducts(for order: Thing, in system: SystemName) -> [Int] {
        let onOrder = Set((order.values["lines"]?.array ?? []).compactMap { Thing.thingId($0.object?["product"]) })
        return things.values.filter { p in
            p.entity == .product && !p.frozen && !p.skuEdited && !onOrder.contains(p.id)
                && p.expectedSystems.contains(system) && p.expectedSystems.isSuperset(of: order.expectedSystems)
        }.map(\.id).sorted()
    }

    // MARK: The operation mix

    /// One operation, chosen by the seed from what the model holds.
    func randomOperation() async throws {
        let kind = rng.weighted([("create", 28), ("edit", 52), ("conflict", settings.conflicts ? 8 : 0), ("twin", 6), ("archive", 6)])
        switch kind {
        case "create":
            let system = rng.weighted([(SystemName.customerp, 45), (.customwebshop, 35), (.powerofficego, 20)])
            let entity = rng.weighted([(CanonicalEntityType.customer, 30), (.product, 30), (.order, 40)])
            try await create(entity, in: system)
        case "edit":
            let live = things.values.filter { !$0.frozen }.map(\.id).sorted()
            for _ in 0..<5 where !live.isEmpty {
                let thing = things[rng.pick(live)]!
                let system = rng.pick(thing.expectedSystems.sorted { $0.rawValue < $1.rawValue })
                let options = groups(thing, in: system)
                if options.isEmpty { continue }
                try await edit(thing.id, in: system, rng.pick(options))
                return
            }
            try await create(.product, in: .customerp)
        case "conflict":
            let candidates = things.values.filter { !$0.frozen && $0.expectedSystems.count > 1 }.map(\.id).sorted()
            for _ in 0..<5 where !candidates.isEmpty {
                let thing = things[rng.pick(candidates)]!
                let systems = thing.expectedSystems.sorted { $0.rawValue < $1.rawValue }
                let a = rng.pick(systems)
                let b = rng.pick(systems.filter { $0 != a })
                let shared = Set(groups(thing, in: a)).intersection(groups(thing, in: b)).subtracting([.lineAdd, .lineRemove, .orderNo])
                    .sorted { $0.rawValue < $1.rawValue }
                if shared.isEmpty { continue }
                try await conflict(thing.id, rng.pick(shared), a, b)
                return
            }
            try await create(.customer, in: .customerp)
        case "twin":
            let which = rng.int(0...4)
            if settings.avoid.contains("twin") { return }
            switch which {
            case 0: try await twin(.product, first: .powerofficego, then: .customerp, withOrder: true)
            case 1: try await twin(.product, first: .customwebshop, then: .customerp, withOrder: rng.chance(0.5))
            case 2: try await twin(.customer, first: .powerofficego, then: .customerp, withOrder: false)
            case 3: try await twin(.customer, first: .customwebshop, then: .customerp, withOrder: false)
            default: try await twin(.customer, first: .powerofficego, then: .customwebshop, withOrder: false)
            }
        default:
            // Archives and deletes, of records that have been around for a while.
            let candidates = things.values.filter { !$0.frozen && $0.id < nextThing - 8 }.map(\.id).sorted()
            guard !candidates.isEmpty else { try await create(.customer, in: .customwebshop); return }
            let thing = things[rng.pick(candidates)]!
            var systems = thing.expectedSystems.sorted { $0.rawValue < $1.rawValue }
            if thing.entity == .order && thing.values["status"]?.string != "draft" { systems.removeAll { $0 == .powerofficego } }
            guard !systems.isEmpty else { return }
            let system = rng.pick(systems)
            if settings.avoid.contains("archive") || (system == .powerofficego && settings.avoid.contains("delete")) { return }
            try await archive(thing.id, in: system)
        }
    }

    // MARK: Creates

    @discardableResult
    func create(_ entity: CanonicalEntityType, in system: SystemName, twinOf existing: Int? = nil, person: Bool? = nil) async throws -> Int {
        switch entity {
        case .customer: return try await createCustomer(in: system, twinOf: existing, person: person)
        case .product: return try await createProduct(in: system, twinOf: existing)
        case .order: return try await createOrder(in: system)
        }
    }

    func post(_ system: SystemName, _ path: String, _ body: JSONValue?, _ what: String) async throws -> JSONObject {
        let (status, answer) = try await stack.request(system, "POST", path, body)
        guard (200..<300).contains(status), case .object(let record)? = answer else {
            throw Stack.HTTPError(
                description: "\(what): \(system) answered \(status) \(answer?.serializedString() ?? "") to \(body?.serializedString() ?? "no body")")
        }
        return record
    }

    func countryName(_ code: String) -> String {
        (try? ConverterRegistry.standard.converter(named: "countryName.no")?.toNative(.string(code), context: .empty))??.string ?? "Norge"
    }

    func unitWord(_ code: String) -> String {
        (try? ConverterRegistry.standard.converter(named: "unitOfMeasure")?.toNative(.string(code), context: .empty))??.string ?? "pcs"
    }

    static func money(_ d: Decimal) -> String {
        var value = d, rounded = Decimal()
        NSDecimalRound(&rounded, &value, 2, .plain)
        let text = "\(rounded)"
        guard let dot = text.firstIndex(of: ".") else { return text + ".00" }
        let decimals = text.distance(from: dot, to: text.endIndex) - 1
        return decimals == 1 ? text + "0" : text
    }

    func createCustomer(in system: SystemName, twinOf existing: Int?, person wanted: Bool?) async throws -> Int {
        let id = existing ?? newThing(.customer)
        let prior = existing.flatMap { things[$0] }
        let person = wanted ?? (prior.map(personLike) ?? (system == .customwebshop ? true : rng.chance(0.4)))
        let first = fresh.firstName(&rng), last = fresh.lastName(&rng)
        // A twin has the key of the record it must match: the organisation number of a company,
        // the e-mail address of a person (and of a company half the time).
        var email = fresh.email(&rng)
        var org = person ? nil : fresh.organizationNumber()
        if let prior {
            if let known = prior.values["organizationNumber"]?.string, !person { org = known }
            if person || rng.chance(0.5), let known = prior.values["email"]?.string { email = known }
        }
        let country = rng.chance(0.8) ? "NO" : rng.pick(FreshValues.countries)
        let line2: String? = rng.chance(0.5) ? fresh.line2() : nil
        let body: JSONValue
        let path: String
        switch system {
        case .customerp:
            var o: JSONObject = [
                "customerType": .string(person ? "PERSON" : "COMPANY"), "name": .string(person ? "\(first) \(last)" : fresh.companyName(&rng)),
                "contactFirstName": .string(first), "contactLastName": .string(last), "email": .string(email), "phone": .string(fresh.phone()),
                "currencyCode": "NOK",
                "address": .object([
                    "line1": .string(fresh.street(&rng)), "line2": line2.map(JSONValue.string) ?? .null,
                    "postalCode": .string(fresh.postalCode()), "city": .string(fresh.city(&rng)), "countryCode": .string(country)
                ])
            ]
            if let org { o["orgNo"] = .string(org) }
            body = .object(o)
            path = "/customers"
        case .customwebshop:
            var billing: JSONObject = [
                "address_1": .string(fresh.street(&rng)), "postcode": .string(fresh.postalCode()), "city": .string(fresh.city(&rng)),
                "country": .string(countryName(country)), "phone": .string(fresh.phone())
            ]
            if let line2 { billing["address_2"] = .string(line2) }
            body = ["email": .string(email), "first_name": .string(first), "last_name": .string(last), "billing": .object(billing)]
            path = "/customers"
        default:
            var o: JSONObject = ["EmailAddress": .string(email), "PhoneNumber": .string(fresh.phone()), "CurrencyCode": "NOK"]
            var address: JSONObject = [
                "AddressLine1": .string(fresh.street(&rng)), "ZipCode": .string(fresh.postalCode()), "City": .string(fresh.city(&rng)),
                "CountryCode": .string(country)
            ]
            if let line2 { address["AddressLine2"] = .string(line2) }
            o["MailAddress"] = .object(address)
            if person {
                o["IsPerson"] = true
                o["FirstName"] = .string(first)
                o["LastName"] = .string(last)
            } else {
                o["IsPerson"] = false
                o["Name"] = .string(fresh.companyName(&rng))
                if let org { o["OrganizationNumber"] = .string(org) }
            }
            body = .object(o)
            path = "/Customers"
        }
        let record = try await post(system, path, body, "create customer")
        guard let native = Oracle.id(of: record, in: system) else { throw Stack.HTTPError(description: "no id in \(record)") }
        things[id]!.origins[system] = native
        note(
            "create \(things[id]!.label)\(existing == nil ? "" : " (a second record, to be matched)") in \(system) as \(native): \(Self.short(body))")
        try await recordWrite(id, system, before: nil, after: record, candidates: nil, what: "created")
        return id
    }

    func createProduct(in system: SystemName, twinOf existing: Int?) async throws -> Int {
        let id = existing ?? newThing(.product)
        let sku = existing.flatMap { things[$0]?.values["sku"]?.string } ?? fresh.sku()
        let vat = rng.pick(FreshValues.vatPercents)
        let unit = rng.pick(FreshValues.units)
        let service = rng.chance(0.2)
        let price = fresh.amount(&rng), cost = fresh.amount(&rng, upTo: 500)
        let body: JSONValue
        let path: String
        switch system {
        case .customerp:
            body = [
                "itemNo": .string(sku), "description": .string(fresh.productName(&rng)), "longText": .string(fresh.description()),
                "ean": .string(fresh.gtin()), "unitCode": .string(unit), "salesPrice": .decimal(price), "costPrice": .decimal(cost),
                "vatPercent": .int(vat), "itemType": .string(service ? "SERVICE" : "STOCK"), "quantityOnHand": .int(fresh.count(&rng))
            ]
            path = "/products"
        case .customwebshop:
            body = [
                "sku": .string(sku), "name": .string(fresh.productName(&rng)), "description": .string(fresh.description()),
                "gtin": .string(fresh.gtin()), "unit": .string(unitWord(unit)), "price": .string(Self.money(price)), "tax_rate": .int(vat),
                "type": .string(service ? "virtual" : "simple"), "manage_stock": true, "stock_quantity": .int(fresh.count(&rng))
            ]
            path = "/products"
        default:
            body = [
                "Code": .string(sku), "Name": .string(fresh.productName(&rng)), "Description": .string(fresh.description()),
                "Gtin": .string(fresh.gtin()), "UnitOfMeasureCode": .string(unit), "UnitPrice": .decimal(price), "UnitCost": .decimal(cost),
                "ProductType": .string(service ? "Service" : "Product"), "StockOnHand": .int(fresh.count(&rng))
            ]
            path = "/Products"
        }
        let record = try await post(system, path, body, "create product")
        guard let native = Oracle.id(of: record, in: system) else { throw Stack.HTTPError(description: "no id in \(record)") }
        things[id]!.origins[system] = native
        note(
            "create \(things[id]!.label)\(existing == nil ? "" : " (a second record, to be matched)") in \(system) as \(native): \(Self.short(body))")
        try await recordWrite(id, system, before: nil, after: record, candidates: nil, what: "created")
        return id
    }

    /// The native id of a thing's record in a system: at once where the test created it, else
    /// once the link service has made and linked its copy there.
    func locate(_ id: Int, in system: SystemName) async throws -> String {
        if let own = things[id]!.origins[system] { return own }
        return try await present(id, in: system).0
    }

    /// An order of existing customers and products; in the ERP, now and then of a customer or
    /// products created a moment before (the order may reach the link service before them).
    func createOrder(in system: SystemName, customer fixedCustomer: Int? = nil, products fixedProducts: [Int] = []) async throws -> Int {
        let customers = things.values.filter { $0.entity == .customer && !$0.frozen && $0.expectedSystems.contains(system) }.map(\.id).sorted()
        var customer = fixedCustomer ?? (customers.isEmpty ? nil : rng.pick(customers))
        if customer == nil || (system == .customerp && fixedCustomer == nil && rng.chance(0.25)) {
            customer = try await createCustomer(in: system, twinOf: nil, person: nil)
        }
        var products = fixedProducts
        let candidates = things.values.filter { $0.entity == .product && !$0.frozen && !$0.skuEdited && $0.expectedSystems.contains(system) }.map(
            \.id
        ).sorted()
        let want = rng.int(1...3)
        if system == .customerp && fixedProducts.isEmpty && rng.chance(0.25) { products.append(try await createProduct(in: system, twinOf: nil)) }
        var pool = candidates.filter { !products.contains($0) }
        while products.count < want && !pool.isEmpty {
            let p = rng.pick(pool)
            pool.removeAll { $0 == p }
            products.append(p)
        }
        if products.isEmpty { products.append(try await createProduct(in: system, twinOf: nil)) }
        let id = newThing(.order)
        let customerId = try await locate(customer!, in: system)
        var lines: [JSONValue] = []
        for p in products {
            let product = things[p]!
            things[p]!.usedOnLines = true
            let native = try await locate(p, in: system)
            let sku = product.values["sku"]?.string ?? ""
            let vat = product.values["vatRate"]?.decimal.map { NSDecimalNumber(decimal: $0 * 100).intValue } ?? rng.pick(FreshValues.vatPercents)
            let price = fresh.amount(&rng)
            let quantity = fresh.quantity(&rng)
            switch system {
            case .customerp:
                lines.append([
                    "productId": .string(native), "itemNo": .string(sku), "text": .string(fresh.lineText(&rng)), "quantity": .int(quantity),
                    "unitPrice": .decimal(price), "discountPercent": .int(rng.chance(0.5) ? 0 : rng.int(1...30)), "vatPercent": .int(vat)
                ])
            case .customwebshop:
                lines.append([
                    "product_id": .int(Int(native) ?? 0), "sku": .string(sku), "name": .string(fresh.lineText(&rng)), "quantity": .int(quantity),
                    "price": .string(Self.money(price)), "tax_rate": .int(vat)
                ])
            default:
                lines.append([
                    "ProductId": .int(Int(native) ?? 0), "Description": .string(fresh.lineText(&rng)), "Quantity": .int(quantity),
                    "ProductUnitPrice": .decimal(price), "Allowance": .int(rng.chance(0.5) ? 0 : rng.int(1...30))
                ])
            }
        }
        let status = rng.weighted([("draft", 50), ("confirmed", 30), ("processing", 20)])
        let body: JSONValue
        let path: String
        switch system {
        case .customerp:
            body = [
                "customerId": .string(customerId), "orderNo": .string(fresh.orderNo()), "orderDate": .string(fresh.date(&rng)),
                "requestedDeliveryDate": .string(fresh.date(&rng)), "currencyCode": "NOK", "status": .string(Self.erpStatus[status]!),
                "yourReference": .string(fresh.reference()), "lines": .array(lines)
            ]
            path = "/orders"
        case .customwebshop:
            body = [
                "customer_id": .int(Int(customerId) ?? 0), "status": .string(Self.shopStatus[status]!), "currency": "NOK", "line_items": .array(lines)
            ]
            path = "/orders"
        default:
            body = [
                "CustomerId": .int(Int(customerId) ?? 0), "SalesOrderDate": .string(fresh.date(&rng)), "DeliveryDate": .string(fresh.date(&rng)),
                "CurrencyCode": "NOK", "SalesOrderStatus": "Draft", "CustomerReference": .string(fresh.reference()), "SalesOrderLines": .array(lines)
            ]
            path = "/SalesOrders/Complete"
        }
        let record = try await post(system, path, body, "create order")
        guard let native = Oracle.id(of: record, in: system) else { throw Stack.HTTPError(description: "no id in \(record)") }
        things[id]!.origins[system] = native
        note(
            "create \(things[id]!.label) in \(system) as \(native) for customer #\(customer!), products \(products.map { "#\($0)" }.joined(separator: ",")): \(Self.short(body))"
        )
        try await recordWrite(id, system, before: nil, after: record, candidates: nil, what: "created")
        return id
    }

    /// A record in one system, seen by the link service, then one with the same natural key in
    /// a system upstream of it: the later create must find and link the first (DESIGN rule 3).
    /// With `withOrder`, an ERP order with a line for the product follows at once (the case
    /// that left two entities for one SKU).
    func twin(_ entity: CanonicalEntityType, first: SystemName, then second: SystemName, withOrder: Bool) async throws {
        let person = entity == .customer ? (first == .customwebshop || second == .customwebshop ? true : rng.chance(0.4)) : nil
        let id = try await create(entity, in: first, person: person)
        _ = try await present(id, in: first)
        _ = try await create(entity, in: second, twinOf: id, person: person)
        if withOrder && second == .customerp {
            let customers = things.values.filter { $0.entity == .customer && !$0.frozen && $0.expectedSystems.contains(.customerp) }.map(\.id)
                .sorted()
            try await createOrder(in: .customerp, customer: customers.isEmpty ? nil : rng.pick(customers), products: [id])
        }
    }

    // MARK: Edits

    /// Sends the steps of one edit; `nil` when the record changed under it (an ERP `412`, a
    /// PowerOffice Go line that is gone) and the edit should be made again from a fresh read.
    func send(_ steps: [(method: String, path: String, body: JSONValue?, headers: [String: String])], _ system: SystemName) async throws
        -> JSONObject??
    {
        var last: JSONObject?
        for step in steps {
            let (status, answer) = try await stack.request(system, step.method, step.path, step.body, headers: step.headers)
            if status == 412 || (system == .powerofficego && status == 404) { return .some(nil) }
            guard (200..<300).contains(status) else {
                throw Stack.HTTPError(
                    description:
                        "\(step.method) \(system) \(step.path) \(step.body.map(Self.short) ?? ""): HTTP \(status) \(answer.map(Self.short) ?? "")")
            }
            last = answer?.object
        }
        return .some(last)
    }

    func edit(_ id: Int, in system: SystemName, _ group: Group) async throws {
        note("edit \(things[id]!.label) \(group.rawValue) in \(system)")
        try await waitSettled(id, fields: things[id]!.needsFullSettle ? nil : group.fields)
        for _ in 0..<8 {
            let (native, before) = try await present(id, in: system)
            let steps = try await build(group, things[id]!, system, native, before)
            guard case .some(let answer) = try await send(steps, system) else { continue }
            guard let after = try await afterWrite(id, system, native, answer) else { continue }
            try await recordWrite(id, system, before: before, after: after, candidates: group.fields, what: group.rawValue)
            return
        }
        problem("\(things[id]!.label): could not edit \(group) in \(system) (the record kept changing under the edit)")
    }

    /// The record after a write: the answer when it is the whole record, else read again.
    func afterWrite(_ id: Int, _ system: SystemName, _ native: String, _ answer: JSONObject?) async throws -> JSONObject? {
        let entity = things[id]!.entity
        if let answer, !(system == .powerofficego && entity == .order), Oracle.id(of: answer, in: system) == native { return answer }
        return try await systems([system]).record(system, entity, native)
    }

    /// Two systems' users edit the same thing at the same moment: each from what it sees (the
    /// thing agrees everywhere first), both writes sent at once. The later modification wins.
    func conflict(_ id: Int, _ group: Group, _ a: SystemName, _ b: SystemName) async throws {
        note("conflict: \(things[id]!.label) \(group.rawValue) in \(a) and \(b) at once")
        try await waitSettled(id, fields: nil)
        let (nativeA, beforeA) = try await present(id, in: a)
        let (nativeB, beforeB) = try await present(id, in: b)
        let stepsA = try await build(group, things[id]!, a, nativeA, beforeA)
        let stepsB = try await build(group, things[id]!, b, nativeB, beforeB)
        async let sentA = send(stepsA, a)
        async let sentB = send(stepsB, b)
        let (answerA, answerB) = try await (sentA, sentB)
        things[id]!.needsFullSettle = true
        for (system, native, before, answer) in [(a, nativeA, beforeA, answerA), (b, nativeB, beforeB, answerB)] {
            guard case .some(let body) = answer, let after = try await afterWrite(id, system, native, body) else {
                note("  \(system): the record changed under the edit; not sent")
                continue
            }
            try await recordWrite(id, system, before: before, after: after, candidates: group.fields, what: "conflict \(group.rawValue)")
        }
    }

    /// The requests of one edit in one system, built from the record as it is now.
    func build(_ group: Group, _ thing: Thing, _ system: SystemName, _ native: String, _ before: JSONObject) async throws
        -> [(method: String, path: String, body: JSONValue?, headers: [String: String])]
    {
        let collection = Stack.collection(system, thing.entity)
        switch system {
        case .customerp:
            let body = try await erpBody(group, thing, before)
            let since = before["modifiedAt"]?.string ?? ""
            return [("PUT", "/\(collection)/\(native)", body, ["If-Unmodified-Since-Modified-At": since])]
        case .customwebshop:
            return [("PATCH", "/\(collection)/\(native)", try await shopBody(group, thing, before), [:])]
        default:
            return try await goSteps(group, thing, native, before)
        }
    }

    func nextStatus(_ thing: Thing) -> String {
        let status = thing.values["status"]?.string ?? "draft"
        let later = Array(Self.statuses.drop { $0 != status }.dropFirst())
        return later.isEmpty ? status : rng.pick(later)
    }

    func otherVat(_ current: Decimal?) -> Int {
        let now = current.map { NSDecimalNumber(decimal: $0 * 100).intValue }
        return rng.pick(FreshValues.vatPercents.filter { $0 != now })
    }

    func otherUnit(_ current: String?) -> String { rng.pick(FreshValues.units.filter { $0 != current }) }
    func otherCountry(_ current: String?) -> String { rng.pick(FreshValues.countries.filter { $0 != current }) }
    func otherCurrency(_ current: String?) -> String { rng.pick(FreshValues.currencies.filter { $0 != current }) }

    /// A line to add: a product the order does not have, with fresh numbers.
    func newLine(_ order: Thing, _ system: SystemName) async throws -> (product: Int, native: String, sku: String, vat: Int) {
        let p = rng.pick(lineProducts(for: order, in: system))
        things[p]!.usedOnLines = true
        let native = try await locate(p, in: system)
        let product = things[p]!
        let vat = product.values["vatRate"]?.decimal.map { NSDecimalNumber(decimal: $0 * 100).intValue } ?? rng.pick(FreshValues.vatPercents)
        return (p, native, product.values["sku"]?.string ?? "", vat)
    }

    func erpBody(_ group: Group, _ thing: Thing, _ before: JSONObject) async throws -> JSONValue {
        switch group {
        case .name: return ["name": .string(fresh.companyName(&rng))]
        case .personName:
            let first = rng.chance(0.5) ? fresh.firstName(&rng) : (before["contactFirstName"]?.string ?? fresh.firstName(&rng))
            let last = rng.chance(0.5) ? fresh.lastName(&rng) : (before["contactLastName"]?.string ?? fresh.lastName(&rng))
            let changed = (first == before["contactFirstName"]?.string && last == before["contactLastName"]?.string) ? fresh.lastName(&rng) : last
            return ["name": .string("\(first) \(changed)"), "contactFirstName": .string(first), "contactLastName": .string(changed)]
        case .firstName: return ["contactFirstName": .string(fresh.firstName(&rng))]
        case .lastName: return ["contactLastName": .string(fresh.lastName(&rng))]
        case .email: return ["email": .string(fresh.email(&rng))]
        case .orgNo: return ["orgNo": .string(fresh.organizationNumber())]
        case .phone: return ["phone": .string(fresh.phone())]
        case .line1: return ["address": ["line1": .string(fresh.street(&rng))]]
        case .line2: return ["address": ["line2": rng.chance(0.2) ? .null : .string(fresh.line2())]]
        case .postal: return ["address": ["postalCode": .string(fresh.postalCode())]]
        case .city: return ["address": ["city": .string(fresh.city(&rng))]]
        case .country: return ["address": ["countryCode": .string(otherCountry(before["address"]?["countryCode"]?.string))]]
        case .currency, .orderCurrency: return ["currencyCode": .string(otherCurrency(before["currencyCode"]?.string))]
        case .sku:
            things[thing.id]!.skuEdited = true
            return ["itemNo": .string(fresh.sku())]
        case .productName: return ["description": .string(fresh.productName(&rng))]
        case .description: return ["longText": .string(fresh.description())]
        case .gtin: return ["ean": .string(fresh.gtin())]
        case .unit: return ["unitCode": .string(otherUnit(before["unitCode"]?.string))]
        case .price: return ["salesPrice": .decimal(fresh.amount(&rng))]
        case .cost: return ["costPrice": .decimal(fresh.amount(&rng, upTo: 500))]
        case .vat: return ["vatPercent": .int(otherVat(thing.values["vatRate"]?.decimal))]
        case .productType:
            once.insert("\(thing.id)/productType")
            return ["itemType": .string(before["itemType"]?.string == "SERVICE" ? "STOCK" : "SERVICE")]
        case .stock: return ["quantityOnHand": .int(fresh.count(&rng))]
        case .orderNo: return ["orderNo": .string(fresh.orderNo())]
        case .orderDate: return ["orderDate": .string(fresh.date(&rng))]
        case .deliveryDate: return ["requestedDeliveryDate": .string(fresh.date(&rng))]
        case .status: return ["status": .string(Self.erpStatus[nextStatus(thing)]!)]
        case .reference: return ["yourReference": .string(fresh.reference())]
        default:
            var lines = (before["lines"]?.array ?? []).compactMap(\.object).map { line -> JSONObject in
                var l = line
                l["lineNo"] = nil
                l["lineAmount"] = nil
                return l
            }
            let k = lines.isEmpty ? 0 : rng.int(0...(lines.count - 1))
            switch group {
            case .lineQuantity: lines[k]["quantity"] = .int(fresh.quantity(&rng))
            case .linePrice: lines[k]["unitPrice"] = .decimal(fresh.amount(&rng))
            case .lineText: lines[k]["text"] = .string(fresh.lineText(&rng))
            case .lineDiscount:
                let now = lines[k]["discountPercent"]?.int
                lines[k]["discountPercent"] = .int(rng.pick(Array(1...40).filter { $0 != now }))
            case .lineVat: lines[k]["vatPercent"] = .int(otherVat(lines[k]["vatPercent"]?.decimal.map { $0 / 100 }))
            case .lineRemove: lines.remove(at: k)
            case .lineAdd:
                let add = try await newLine(thing, .customerp)
                lines.append([
                    "productId": .string(add.native), "itemNo": .string(add.sku), "text": .string(fresh.lineText(&rng)),
                    "quantity": .int(fresh.quantity(&rng)), "unitPrice": .decimal(fresh.amount(&rng)),
                    "discountPercent": .int(rng.int(0...20)), "vatPercent": .int(add.vat)
                ])
            default: break
            }
            return ["lines": .array(lines.map(JSONValue.object))]
        }
    }

    func shopBody(_ group: Group, _ thing: Thing, _ before: JSONObject) async throws -> JSONValue {
        switch group {
        case .firstName: return ["first_name": .string(fresh.firstName(&rng))]
        case .lastName: return ["last_name": .string(fresh.lastName(&rng))]
        case .email: return ["email": .string(fresh.email(&rng))]
        case .phone: return ["billing": ["phone": .string(fresh.phone())]]
        case .line1: return ["billing": ["address_1": .string(fresh.street(&rng))]]
        case .line2: return ["billing": ["address_2": rng.chance(0.2) ? .null : .string(fresh.line2())]]
        case .postal: return ["billing": ["postcode": .string(fresh.postalCode())]]
        case .city: return ["billing": ["city": .string(fresh.city(&rng))]]
        case .country:
            let current = thing.values["postalAddress.country"]?.string
            return ["billing": ["country": .string(countryName(otherCountry(current)))]]
        case .sku:
            things[thing.id]!.skuEdited = true
            return ["sku": .string(fresh.sku())]
        case .productName: return ["name": .string(fresh.productName(&rng))]
        case .description: return ["description": .string(fresh.description())]
        case .gtin: return ["gtin": .string(fresh.gtin())]
        case .unit: return ["unit": .string(unitWord(otherUnit(thing.values["unitOfMeasure"]?.string)))]
        case .price: return ["price": .string(Self.money(fresh.amount(&rng)))]
        case .vat: return ["tax_rate": .int(otherVat(thing.values["vatRate"]?.decimal))]
        case .productType:
            once.insert("\(thing.id)/productType")
            return ["type": .string(before["type"]?.string == "virtual" ? "simple" : "virtual")]
        case .stock: return ["stock_quantity": .int(fresh.count(&rng))]
        case .orderCurrency: return ["currency": .string(otherCurrency(before["currency"]?.string))]
        case .status: return ["status": .string(Self.shopStatus[nextStatus(thing)]!)]
        default:
            var lines = (before["line_items"]?.array ?? []).compactMap(\.object).map { line -> JSONObject in
                var l = line
                for readOnly in ["id", "total", "total_tax"] { l[readOnly] = nil }
                return l
            }
            let k = lines.isEmpty ? 0 : rng.int(0...(lines.count - 1))
            switch group {
            case .lineQuantity: lines[k]["quantity"] = .int(fresh.quantity(&rng))
            case .linePrice: lines[k]["price"] = .string(Self.money(fresh.amount(&rng)))
            case .lineText: lines[k]["name"] = .string(fresh.lineText(&rng))
            case .lineVat: lines[k]["tax_rate"] = .int(otherVat(lines[k]["tax_rate"]?.decimal.map { $0 / 100 }))
            case .lineRemove: lines.remove(at: k)
            case .lineAdd:
                let add = try await newLine(thing, .customwebshop)
                lines.append([
                    "product_id": .int(Int(add.native) ?? 0), "sku": .string(add.sku), "name": .string(fresh.lineText(&rng)),
                    "quantity": .int(fresh.quantity(&rng)), "price": .string(Self.money(fresh.amount(&rng))), "tax_rate": .int(add.vat)
                ])
            default: break
            }
            return ["line_items": .array(lines.map(JSONValue.object))]
        }
    }

    func goSteps(_ group: Group, _ thing: Thing, _ native: String, _ before: JSONObject) async throws
        -> [(method: String, path: String, body: JSONValue?, headers: [String: String])]
    {
        func replace(_ path: String, _ value: JSONValue) -> [(method: String, path: String, body: JSONValue?, headers: [String: String])] {
            let collection = thing.entity == .customer ? "Customers" : thing.entity == .product ? "Products" : "SalesOrders"
            return [("PATCH", "/\(collection)/\(native)", [["op": "replace", "path": .string(path), "value": value]], [:])]
        }
        switch group {
        case .name: return replace("/Name", .string(fresh.companyName(&rng)))
        case .firstName: return replace("/FirstName", .string(fresh.firstName(&rng)))
        case .lastName: return replace("/LastName", .string(fresh.lastName(&rng)))
        case .email: return replace("/EmailAddress", .string(fresh.email(&rng)))
        case .orgNo: return replace("/OrganizationNumber", .string(fresh.organizationNumber()))
        case .phone: return replace("/PhoneNumber", .string(fresh.phone()))
        case .line1: return replace("/MailAddress/AddressLine1", .string(fresh.street(&rng)))
        case .line2: return replace("/MailAddress/AddressLine2", rng.chance(0.2) ? .null : .string(fresh.line2()))
        case .postal: return replace("/MailAddress/ZipCode", .string(fresh.postalCode()))
        case .city: return replace("/MailAddress/City", .string(fresh.city(&rng)))
        case .country: return replace("/MailAddress/CountryCode", .string(otherCountry(before["MailAddress"]?["CountryCode"]?.string)))
        case .currency, .orderCurrency: return replace("/CurrencyCode", .string(otherCurrency(before["CurrencyCode"]?.string)))
        case .sku:
            things[thing.id]!.skuEdited = true
            return replace("/Code", .string(fresh.sku()))
        case .productName: return replace("/Name", .string(fresh.productName(&rng)))
        case .description: return replace("/Description", .string(fresh.description()))
        case .gtin: return replace("/Gtin", .string(fresh.gtin()))
        case .unit: return replace("/UnitOfMeasureCode", .string(otherUnit(before["UnitOfMeasureCode"]?.string)))
        case .price: return replace("/UnitPrice", .decimal(fresh.amount(&rng)))
        case .cost: return replace("/UnitCost", .decimal(fresh.amount(&rng, upTo: 500)))
        case .productType:
            once.insert("\(thing.id)/productType")
            return replace("/ProductType", .string(before["ProductType"]?.string == "Service" ? "Product" : "Service"))
        case .stock: return replace("/StockOnHand", .int(fresh.count(&rng)))
        case .orderDate: return replace("/SalesOrderDate", .string(fresh.date(&rng)))
        case .deliveryDate: return replace("/DeliveryDate", .string(fresh.date(&rng)))
        case .status: return replace("/SalesOrderStatus", "Confirmed")
        case .reference: return replace("/CustomerReference", .string(fresh.reference()))
        default:
            let lines = (before["SalesOrderLines"]?.array ?? []).compactMap(\.object)
            let k = lines.isEmpty ? 0 : rng.int(0...(lines.count - 1))
            let lineId = lines.isEmpty ? "" : (lines[k]["Id"]?.string ?? "")
            let path = "/SalesOrders/\(native)/Lines/\(lineId)"
            func patch(_ member: String, _ value: JSONValue) -> [(method: String, path: String, body: JSONValue?, headers: [String: String])] {
                [("PATCH", path, [["op": "replace", "path": .string(member), "value": value]], [:])]
            }
            switch group {
            case .lineQuantity: return patch("/Quantity", .int(fresh.quantity(&rng)))
            case .linePrice: return patch("/ProductUnitPrice", .decimal(fresh.amount(&rng)))
            case .lineText: return patch("/Description", .string(fresh.lineText(&rng)))
            case .lineDiscount:
                let now = lines.isEmpty ? nil : lines[k]["Allowance"]?.int
                return patch("/Allowance", .int(rng.pick(Array(1...40).filter { $0 != now })))
            case .lineRemove: return [("DELETE", path, nil, [:])]
            case .lineAdd:
                let add = try await newLine(thing, .powerofficego)
                return [
                    (
                        "POST", "/SalesOrders/\(native)/Lines",
                        [
                            "ProductId": .int(Int(add.native) ?? 0), "Description": .string(fresh.lineText(&rng)),
                            "Quantity": .int(fresh.quantity(&rng)), "ProductUnitPrice": .decimal(fresh.amount(&rng))
                        ], [:]
                    )
                ]
            default: throw Stuck(description: "PowerOffice Go has no edit \(group) of \(thing.label)")
            }
        }
    }

    // MARK: Archives and deletes

    /// The orders (not deleted in PowerOffice Go) whose customer or one of whose lines' product is thing `id`.
    func ordersNaming(_ id: Int) -> [Int] {
        things.values.filter { order in
            order.entity == .order && !order.deletedIn.contains(.powerofficego)
                && (Thing.thingId(order.values["customer"]) == id
                    || (order.values["lines"]?.array ?? []).contains { Thing.thingId($0.object?["product"]) == id })
        }.map(\.id).sorted()
    }

    /// Archives the thing in one system (the ERP's and the webshop's archive operation,
    /// PowerOffice Go's `IsArchived`), or deletes it in PowerOffice Go; rule 9 then archives it
    /// everywhere it is linked.
    func archive(_ id: Int, in system: SystemName) async throws {
        try await waitSettled(id, fields: nil)
        let thing = things[id]!
        let (native, before) = try await present(id, in: system)
        let collection = Stack.collection(system, thing.entity)
        switch system {
        case .customerp, .customwebshop:
            note("archive \(thing.label) in \(system)")
            let after = try await post(system, "/\(collection)/\(native)/archive", nil, "archive")
            try await recordWrite(id, system, before: before, after: after, candidates: ["archived"], what: "archived")
        default:
            let goCollection = thing.entity == .customer ? "Customers" : thing.entity == .product ? "Products" : "SalesOrders"
            if thing.entity == .order || rng.chance(0.5) {
                // An order on its way to Go that names the record would find it gone there: Go
                // refuses the create ("Product with id … not found"), a failure with Go's reason,
                // by design (docs/link-service.md, "Faults and races"). Deleted once the orders
                // naming it are in Go, it is refused as in use instead.
                for order in ordersNaming(id) { try await waitSettled(order, fields: nil) }
                note("delete \(thing.label) in \(system)")
                let (status, answer) = try await stack.request(system, "DELETE", "/\(goCollection)/\(native)")
                if (200..<300).contains(status) {
                    things[id]!.deletedIn.insert(system)
                    things[id]!.write("archived", true, by: Stamp(system: system, at: Int64(Date().timeIntervalSince1970 * 1000)))
                    note("  deleted: it must be archived everywhere else")
                    return
                }
                guard status == 409 else {
                    throw Stack.HTTPError(description: "DELETE \(goCollection)/\(native): HTTP \(status) \(answer.map(Self.short) ?? "")")
                }
                note("  refused (\(status): in use); archived instead")
            } else {
                note("archive \(thing.label) in \(system)")
            }
            guard
                case .some(let answer) = try await send(
                    [("PATCH", "/\(goCollection)/\(native)", [["op": "replace", "path": "/IsArchived", "value": true]], [:])], system),
                let after = try await afterWrite(id, system, native, answer)
            else { return }
            try await recordWrite(id, system, before: before, after: after, candidates: ["archived"], what: "archived")
        }
    }
}
