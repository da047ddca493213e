/// PowerOffice Go's customers, products and sales orders in memory, with the rules the
/// simulator enforces. Pure (no I/O); the clock and the uuid source are injected.
///
/// Records are kept as their response DTO (`CustomerDto`, `ProductDto`, the header of
/// `SalesOrderCompleteDto` plus its `SalesOrderLineDto`s) without `null` members.
public struct GoStore: Sendable {
    public struct StoredOrder: Sendable, Equatable {
        public var header: JSONObject
        public var lines: [JSONObject]
    }

    public private(set) var customers: [Int64: JSONObject] = [:]
    public private(set) var products: [Int64: JSONObject] = [:]
    public private(set) var orders: [String: StoredOrder] = [:]
    private var orderIds: [String] = []

    public var clock: MonotonicClock
    private var random: SeededRandom

    // Go's own sequences: contact ids are shared by customers, suppliers and employees, so they
    // are large; customer numbers start at 10000 (the customer ledger range); order numbers at 1.
    private var nextContactId: Int64 = 1_000_001
    private var nextCustomerNumber: Int64 = 10_000
    private var nextProductId: Int64 = 2_000_001
    private var nextAddressId: Int64 = 3_000_001
    private var nextSalesOrderNo: Int64 = 1

    /// The VAT the simulator puts on every sales order line: Go takes it from the product's sales
    /// account; every simulated product is on the standard account (25 %, SAF-T code 3).
    public static let standardVatRate = 0.25
    public static let standardVatCode = "3"

    public init(clock: MonotonicClock = MonotonicClock(), uuidSeed: UInt64 = 0x5EED) {
        self.clock = clock
        self.random = SeededRandom(seed: uuidSeed)
    }

    // MARK: Customers

    public mutating func createCustomer(_ body: JSONValue) throws(GoError) -> JSONObject {
        let post = try GoSchema.validate(body, as: "CustomerPostDto")
        try checkUnique(
            reference: post["ExternalImportReference"], among: customers.values.map { $0 }, idKey: "Id", kind: "contact", schema: "CustomerPostDto")
        var record = GoSchema.project(post, onto: "CustomerDto")
        if let number = post["Number"]?.int64Value {
            try checkCustomerNumber(number, except: nil)
        } else {
            while customers.values.contains(where: { $0["Number"]?.int64Value == nextCustomerNumber }) { nextCustomerNumber += 1 }
            record["Number"] = .int(nextCustomerNumber)
            nextCustomerNumber += 1
        }
        try checkCustomerName(record)
        let now = clock.next()
        let id = nextContactId
        nextContactId += 1
        record["Id"] = .int(id)
        record["ContactCreatedDateTimeOffset"] = .string(now.formatted)
        record["CustomerCreatedDateTimeOffset"] = .string(now.formatted)
        record["LastChangedDateTimeOffset"] = .string(now.formatted)
        record["SubledgerAccountId"] = .int(id + 500_000_000)
        record["IsArchived"] = record["IsArchived"] ?? .bool(false)
        record["IsPerson"] = record["IsPerson"] ?? .bool(false)
        record["IsActive"] = .bool(record["IsArchived"] != .bool(true))
        record["MailAddress"] = address(record["MailAddress"], previous: nil, now: now)
        record = record.withoutNulls()
        customers[id] = record
        return record
    }

    public func customer(_ id: Int64) throws(GoError) -> JSONObject {
        guard let c = customers[id] else { throw .notFound("Customer with id = \(id) not found.") }
        return c
    }

    public func listCustomers(_ query: ListQuery) throws(GoError) -> [JSONObject] {
        let changed = try query.timestamp("lastChangedDateTimeOffsetGreaterThan")
        let created = try query.timestamp("customerCreatedDateTimeOffsetGreaterThan")
        let numbers = try query.numberRanges("customerNos")
        let externalNos = try query.numberRanges("externalNos")
        let reference = query["externalImportReference"]
        let all = customers.keys.sorted().map { customers[$0]! }.filter { c in
            if let changed, !(Self.timestamp(c, "LastChangedDateTimeOffset") > changed) { return false }
            if let created, !(Self.timestamp(c, "CustomerCreatedDateTimeOffset") > created) { return false }
            if let numbers, !Self.inRanges(c["Number"]?.int64Value, numbers) { return false }
            if let externalNos, !Self.inRanges(c["ExternalNumber"]?.int64Value, externalNos) { return false }
            if let reference, c["ExternalImportReference"]?.stringValue != reference { return false }
            return true
        }
        return try query.page(all)
    }

    public mutating func patchCustomer(_ id: Int64, _ document: JSONValue) throws(GoError) -> JSONObject {
        let current = try customer(id)
        var patched = try patch(current, with: document, dto: "CustomerDto", post: "CustomerPostDto")
        guard patched != current else { return current }
        if patched["ExternalImportReference"] != current["ExternalImportReference"] {
            try checkUnique(
                reference: patched["ExternalImportReference"], among: customers.values.filter { $0["Id"] != .int(id) }, idKey: "Id", kind: "contact",
                schema: "CustomerPostDto")
        }
        if let number = patched["Number"]?.int64Value, patched["Number"] != current["Number"] { try checkCustomerNumber(number, except: id) }
        if patched["Number"] == nil { patched["Number"] = current["Number"] }
        try checkCustomerName(patched)
        let now = clock.next()
        patched["IsActive"] = .bool(patched["IsArchived"] != .bool(true))
        patched["MailAddress"] = address(patched["MailAddress"], previous: current["MailAddress"], now: now)
        patched["LastChangedDateTimeOffset"] = .string(now.formatted)
        patched = patched.withoutNulls()
        customers[id] = patched
        return patched
    }

    public mutating func deleteCustomer(_ id: Int64) throws(GoError) {
        _ = try customer(id)
        if orders.values.contains(where: { $0.header["CustomerId"] == .int(id) }) {
            throw GoError(
                status: 409, title: "Conflict", detail: "Customer with id = \(id) is used on sales orders and cannot be deleted; archive it instead.")
        }
        customers[id] = nil
    }

    private func checkCustomerNumber(_ number: Int64, except id: Int64?) throws(GoError) {
        if customers.values.contains(where: { $0["Number"]?.int64Value == number && $0["Id"] != id.map { .int($0) } }) {
            throw .validation("CustomerPostDto", "Customer number \(number) is already in use.")
        }
    }

    /// A customer needs a name: `Name`, or for a person `FirstName`/`LastName` (Go shows the
    /// person's full name as the customer name, so the simulator fills `Name` in from them).
    private func checkCustomerName(_ record: JSONObject) throws(GoError) {
        let name = record["Name"]?.stringValue?.trimmingCharacters(in: .whitespaces) ?? ""
        let first = record["FirstName"]?.stringValue ?? "", last = record["LastName"]?.stringValue ?? ""
        if name.isEmpty && (record["IsPerson"] != .bool(true) || (first + last).trimmingCharacters(in: .whitespaces).isEmpty) {
            throw .validation("CustomerPostDto", "The Name field is required (or FirstName/LastName for a person).")
        }
    }

    private mutating func address(_ value: JSONValue?, previous: JSONValue?, now: GoTimestamp) -> JSONValue? {
        guard case .object(var a)? = value else { return nil }
        if let previous = previous?.objectValue, let id = previous["Id"] {
            let before = previous.filter { $0.key != "Id" && $0.key != "LastChangedDateTimeOffset" }
            let after = a.filter { $0.key != "Id" && $0.key != "LastChangedDateTimeOffset" }.withoutNulls()
            a["Id"] = id
            a["LastChangedDateTimeOffset"] = before == after ? previous["LastChangedDateTimeOffset"] : .string(now.formatted)
        } else {
            a["Id"] = .int(nextAddressId)
            nextAddressId += 1
            a["LastChangedDateTimeOffset"] = .string(now.formatted)
        }
        return .object(a.withoutNulls())
    }

    // MARK: Products

    public mutating func createProduct(_ body: JSONValue) throws(GoError) -> JSONObject {
        let post = try GoSchema.validate(body, as: "ProductPostDto")
        try checkProductCode(post["Code"], except: nil)
        var record = GoSchema.project(post, onto: "ProductDto")
        let now = clock.next()
        let id = nextProductId
        nextProductId += 1
        record["Id"] = .int(id)
        record["CreatedDateTimeOffset"] = .string(now.formatted)
        record["LastChangedDateTimeOffset"] = .string(now.formatted)
        record["ProductType"] = record["ProductType"] ?? .string("Product")
        record["IsArchived"] = record["IsArchived"] ?? .bool(false)
        if record["StockOnHand"] != nil { record["StockOnHandLastChangedDatetimeOffset"] = .string(now.formatted) }
        record = record.withoutNulls()
        products[id] = record
        return record
    }

    public func product(_ id: Int64) throws(GoError) -> JSONObject {
        guard let p = products[id] else { throw .notFound("Product with id = \(id) not found.") }
        return p
    }

    public func listProducts(_ query: ListQuery) throws(GoError) -> [JSONObject] {
        let changed = try query.timestamp("lastChangedDateTimeOffsetGreaterThan")
        let created = try query.timestamp("createdDateTimeOffsetGreaterThan")
        let stockChanged = try query.timestamp("stockOnHandLastChangedDatetimeOffsetGreaterThan")
        let archived = try query.bool("isArchived")
        let codes = query.list("codes").map { Set($0.map { $0.lowercased() }) }
        let names = query.list("names").map { Set($0.map { $0.lowercased() }) }
        let type = query["type"]?.lowercased()
        let all = products.keys.sorted().map { products[$0]! }.filter { p in
            if let changed, !(Self.timestamp(p, "LastChangedDateTimeOffset") > changed) { return false }
            if let created, !(Self.timestamp(p, "CreatedDateTimeOffset") > created) { return false }
            if let stockChanged, !(Self.timestamp(p, "StockOnHandLastChangedDatetimeOffset") > stockChanged) { return false }
            if let archived, (p["IsArchived"]?.boolValue ?? false) != archived { return false }
            if let codes, !codes.contains(p["Code"]?.stringValue?.lowercased() ?? "\u{0}") { return false }
            if let names, !names.contains(p["Name"]?.stringValue?.lowercased() ?? "\u{0}") { return false }
            if let type, p["ProductType"]?.stringValue?.lowercased() != type { return false }
            return true
        }
        return try query.page(all)
    }

    public mutating func patchProduct(_ id: Int64, _ document: JSONValue) throws(GoError) -> JSONObject {
        let current = try product(id)
        var patched = try patch(current, with: document, dto: "ProductDto", post: "ProductPostDto")
        guard patched != current else { return current }
        if patched["Code"] != current["Code"] { try checkProductCode(patched["Code"], except: id) }
        let now = clock.next()
        if patched["StockOnHand"] != current["StockOnHand"] { patched["StockOnHandLastChangedDatetimeOffset"] = .string(now.formatted) }
        patched["LastChangedDateTimeOffset"] = .string(now.formatted)
        patched = patched.withoutNulls()
        products[id] = patched
        return patched
    }

    public mutating func deleteProduct(_ id: Int64) throws(GoError) {
        _ = try product(id)
        if orders.values.contains(where: { $0.lines.contains { $0["ProductId"] == .int(id) } }) {
            throw GoError(
                status: 409, title: "Conflict",
                detail: "Product with id = \(id) is used on sales order lines and cannot be deleted; archive it instead.")
        }
        products[id] = nil
    }

    /// Product codes are unique (case-insensitively) among all products, archived ones included.
    private func checkProductCode(_ code: JSONValue?, except id: Int64?) throws(GoError) {
        guard let code = code?.stringValue?.lowercased(), !code.isEmpty else { return }
        if let other = products.values.first(where: { $0["Code"]?.stringValue?.lowercased() == code && $0["Id"] != id.map { .int($0) } }) {
            throw .validation("ProductPostDto", "Product code '\(code)' is already in use on product Id = \(other["Id"]?.int64Value ?? 0).")
        }
    }

    // MARK: Sales orders

    public mutating func createSalesOrder(_ body: JSONValue) throws(GoError) -> JSONObject {
        let post = try GoSchema.validate(body, as: "SalesOrderCompletePostDto")
        try checkUnique(
            reference: post["ExternalImportReference"], among: orders.values.map(\.header), idKey: "Id", kind: "sales order",
            schema: "SalesOrderCompletePostDto")
        var header = GoSchema.project(post, onto: "SalesOrderCompleteDto")
        header["SalesOrderLines"] = nil
        try resolveCustomer(&header, post: post)
        let now = clock.next()
        let id = random.uuid()
        header["Id"] = .string(id)
        header["SalesOrderNo"] = .int(nextSalesOrderNo)
        nextSalesOrderNo += 1
        header["CreatedDateTimeOffset"] = .string(now.formatted)
        header["LastChangedDateTimeOffset"] = .string(now.formatted)
        header["SalesOrderStatus"] = header["SalesOrderStatus"] ?? .string("Draft")
        header["CurrencyCode"] = header["CurrencyCode"] ?? .string("NOK")
        header["SalesOrderDate"] = header["SalesOrderDate"] ?? .string(now.dateString)
        header["IsCreatedByCurrentIntegration"] = .bool(true)
        var lines: [JSONObject] = []
        var seen = Set<String>()
        var postedLines: [JSONValue] = []
        if case .array(let items)? = post["SalesOrderLines"] { postedLines = items }
        for (index, item) in postedLines.enumerated() {
            let line = try makeLine(item.objectValue ?? [:], orderId: id, sortOrder: index + 1)
            if let ref = line["ExternalImportReference"]?.stringValue {
                guard seen.insert(ref).inserted else {
                    throw .validation(
                        "SalesOrderLinePostDto", "ExternalImportReference is already in use. '\(ref)' is used on another line of this sales order.")
                }
            }
            lines.append(line)
        }
        var order = StoredOrder(header: header.withoutNulls(), lines: lines)
        Self.total(&order)
        orders[id] = order
        orderIds.append(id)
        return Self.complete(order)
    }

    public func salesOrderComplete(_ id: String) throws(GoError) -> JSONObject {
        Self.complete(try order(id))
    }

    public func salesOrder(_ id: String) throws(GoError) -> JSONObject {
        GoSchema.project(try order(id).header, onto: "SalesOrderDto")
    }

    public func listSalesOrders(_ query: ListQuery) throws(GoError) -> [JSONObject] {
        let changed = try query.timestamp("lastChangedDateTimeOffsetGreaterThan")
        let numbers = try query.numberRanges("customerNos")
        let status = query["orderStatus"]?.lowercased()
        let onlyOurs = try query.bool("onlyCreatedByCurrentIntegration") ?? false
        let all = orderIds.compactMap { orders[$0]?.header }.filter { h in
            if let changed, !(Self.timestamp(h, "LastChangedDateTimeOffset") > changed) { return false }
            if let numbers, !Self.inRanges(h["CustomerNo"]?.int64Value, numbers) { return false }
            if let status, h["SalesOrderStatus"]?.stringValue?.lowercased() != status { return false }
            if onlyOurs, h["IsCreatedByCurrentIntegration"] != .bool(true) { return false }
            return true
        }.map { GoSchema.project($0, onto: "SalesOrderDto") }
        return try query.page(all)
    }

    public mutating func patchSalesOrder(_ id: String, _ document: JSONValue) throws(GoError) -> JSONObject {
        var stored = try order(id)
        let current = GoSchema.project(stored.header, onto: "SalesOrderDto")
        var patched = try patch(current, with: document, dto: "SalesOrderDto", post: "SalesOrderCompletePostDto")
        guard patched != current else { return current }
        if current["SalesOrderStatus"] == .string("Confirmed") && patched["SalesOrderStatus"] == .string("Confirmed") {
            throw .validation(
                "SalesOrderCompletePostDto", "Sales order \(id) is confirmed and locked from edit; set SalesOrderStatus to Draft first.")
        }
        if patched["ExternalImportReference"] != current["ExternalImportReference"] {
            try checkUnique(
                reference: patched["ExternalImportReference"], among: orders.values.map(\.header).filter { $0["Id"] != .string(id) }, idKey: "Id",
                kind: "sales order", schema: "SalesOrderCompletePostDto")
        }
        if patched["CustomerId"] != current["CustomerId"] {
            patched["CustomerNo"] = nil
            try resolveCustomer(&patched, post: patched)
        }
        patched["LastChangedDateTimeOffset"] = .string(clock.next().formatted)
        for (key, value) in patched { stored.header[key] = value }
        for key in stored.header.keys where patched[key] == nil && GoSchema.schema("SalesOrderDto").properties[key] != nil {
            stored.header[key] = nil
        }
        stored.header = stored.header.withoutNulls()
        Self.total(&stored)
        orders[id] = stored
        return GoSchema.project(stored.header, onto: "SalesOrderDto")
    }

    public mutating func deleteSalesOrder(_ id: String) throws(GoError) {
        let stored = try order(id)
        if stored.header["SalesOrderStatus"] == .string("Confirmed") {
            throw GoError(status: 409, title: "Conflict", detail: "Sales order \(id) is confirmed and cannot be deleted.")
        }
        orders[id] = nil
        orderIds.removeAll { $0 == id }
    }

    // MARK: Sales order lines

    public func salesOrderLines(_ orderId: String, _ query: ListQuery) throws(GoError) -> [JSONObject] {
        try query.page(try order(orderId).lines)
    }

    public func salesOrderLine(_ orderId: String, _ lineId: String) throws(GoError) -> JSONObject {
        let stored = try order(orderId)
        guard let line = stored.lines.first(where: { $0["Id"] == .string(lineId.lowercased()) }) else {
            throw .notFound("Sales order line with id = \(lineId) not found on sales order \(orderId).")
        }
        return line
    }

    public mutating func addSalesOrderLine(_ orderId: String, _ body: JSONValue) throws(GoError) -> JSONObject {
        var stored = try editableOrder(orderId)
        let post = try GoSchema.validate(body, as: "SalesOrderLinePostDto")
        if let ref = post["ExternalImportReference"]?.stringValue, stored.lines.contains(where: { $0["ExternalImportReference"]?.stringValue == ref })
        {
            throw .validation(
                "SalesOrderLinePostDto", "ExternalImportReference is already in use. '\(ref)' is used on another line of sales order \(orderId).")
        }
        let sortOrder = (stored.lines.compactMap { $0["SortOrder"]?.int64Value }.max() ?? 0) + 1
        let line = try makeLine(post, orderId: stored.header["Id"]!.stringValue!, sortOrder: Int(sortOrder))
        stored.lines.append(line)
        stored.header["LastChangedDateTimeOffset"] = .string(clock.next().formatted)
        Self.total(&stored)
        orders[stored.header["Id"]!.stringValue!] = stored
        return line
    }

    public mutating func patchSalesOrderLine(_ orderId: String, _ lineId: String, _ document: JSONValue) throws(GoError) -> JSONObject {
        var stored = try editableOrder(orderId)
        let current = try salesOrderLine(orderId, lineId)
        var patched = try patch(current, with: document, dto: "SalesOrderLineDto", post: "SalesOrderLinePostDto")
        guard patched != current else { return current }
        if patched["ProductId"] != current["ProductId"] {
            patched["ProductCode"] = nil
            if let pid = patched["ProductId"]?.int64Value { patched["ProductCode"] = try product(pid)["Code"] }
        }
        Self.amounts(&patched)
        patched = patched.withoutNulls()
        let index = stored.lines.firstIndex { $0["Id"] == current["Id"] }!
        stored.lines[index] = patched
        stored.header["LastChangedDateTimeOffset"] = .string(clock.next().formatted)
        Self.total(&stored)
        orders[stored.header["Id"]!.stringValue!] = stored
        return patched
    }

    public mutating func deleteSalesOrderLine(_ orderId: String, _ lineId: String) throws(GoError) {
        var stored = try editableOrder(orderId)
        let current = try salesOrderLine(orderId, lineId)
        stored.lines.removeAll { $0["Id"] == current["Id"] }
        stored.header["LastChangedDateTimeOffset"] = .string(clock.next().formatted)
        Self.total(&stored)
        orders[stored.header["Id"]!.stringValue!] = stored
    }

    private func order(_ id: String) throws(GoError) -> StoredOrder {
        guard let normalised = UUIDText.normalised(id) else { throw .badRequest("The value '\(id)' is not a valid sales order id (a uuid).") }
        guard let o = orders[normalised] else { throw .notFound("Sales order with id = \(id) not found.") }
        return o
    }

    private func editableOrder(_ id: String) throws(GoError) -> StoredOrder {
        let o = try order(id)
        if o.header["SalesOrderStatus"] == .string("Confirmed") {
            throw .validation("SalesOrderLinePostDto", "Sales order \(id) is confirmed and locked from edit; set SalesOrderStatus to Draft first.")
        }
        return o
    }

    private func resolveCustomer(_ header: inout JSONObject, post: JSONObject) throws(GoError) {
        if let id = post["CustomerId"]?.int64Value {
            let c = try customer(id)
            header["CustomerNo"] = c["Number"]
        } else if let number = post["CustomerNo"]?.int64Value {
            guard let c = customers.values.first(where: { $0["Number"]?.int64Value == number }) else {
                throw .notFound("Customer with number = \(number) not found.")
            }
            header["CustomerId"] = c["Id"]
            header["CustomerNo"] = c["Number"]
        } else {
            throw .validation("SalesOrderCompletePostDto", "A sales order needs a customer: CustomerId or CustomerNo.")
        }
    }

    private mutating func makeLine(_ post: JSONObject, orderId: String, sortOrder: Int) throws(GoError) -> JSONObject {
        var line = GoSchema.project(post, onto: "SalesOrderLineDto")
        if let pid = post["ProductId"]?.int64Value {
            let p = try product(pid)
            line["ProductCode"] = p["Code"]
            line["ProductUnitPrice"] = line["ProductUnitPrice"] ?? p["UnitPrice"]
            line["Description"] = line["Description"] ?? p["Name"]
        } else if let code = post["ProductCode"]?.stringValue {
            guard let p = products.values.first(where: { $0["Code"]?.stringValue?.lowercased() == code.lowercased() }) else {
                throw .notFound("Product with code = '\(code)' not found.")
            }
            line["ProductId"] = p["Id"]
            line["ProductCode"] = p["Code"]
            line["ProductUnitPrice"] = line["ProductUnitPrice"] ?? p["UnitPrice"]
            line["Description"] = line["Description"] ?? p["Name"]
        }
        if let allowance = line["Allowance"]?.doubleValue, !(-1000...100).contains(allowance) {
            throw .validation("SalesOrderLinePostDto", "Allowance must be between -1000 and 100 (percent), got \(allowance).")
        }
        line["Id"] = .string(random.uuid())
        line["SalesOrderId"] = .string(orderId)
        line["LineType"] = line["LineType"] ?? .string("Normal")
        line["SortOrder"] = line["SortOrder"] ?? .int(Int64(sortOrder))
        Self.amounts(&line)
        return line.withoutNulls()
    }

    /// Net = quantity × unit price × (1 − allowance %), VAT at the standard rate, rounded to øre.
    static func amounts(_ line: inout JSONObject) {
        let quantity = line["Quantity"]?.doubleValue ?? 0
        let price = line["ProductUnitPrice"]?.doubleValue ?? 0
        let allowance = line["Allowance"]?.doubleValue ?? 0
        let net = round2(quantity * price * (1 - allowance / 100))
        let vat = round2(net * standardVatRate)
        line["VatRate"] = .double(standardVatRate)
        line["VatCode"] = .string(standardVatCode)
        line["VatId"] = .int(3)
        line["NetAmount"] = .double(net)
        line["VatAmount"] = .double(vat)
        line["TotalAmount"] = .double(round2(net + vat))
    }

    static func total(_ order: inout StoredOrder) {
        let net = order.lines.compactMap { $0["NetAmount"]?.doubleValue }.reduce(0, +)
        let total = order.lines.compactMap { $0["TotalAmount"]?.doubleValue }.reduce(0, +)
        order.header["NetAmount"] = .double(round2(net))
        order.header["TotalAmount"] = .double(round2(total))
        order.header["LineCount"] = .int(Int64(order.lines.count))
    }

    static func complete(_ order: StoredOrder) -> JSONObject {
        var dto = GoSchema.project(order.header, onto: "SalesOrderCompleteDto")
        dto["SalesOrderLines"] = .array(order.lines.map { .object(GoSchema.project($0, onto: "SalesOrderLineDto")) })
        return dto
    }

    // MARK: Shared rules

    /// `ExternalImportReference` is a duplicate check: "only one instance of the reference can
    /// exist for the object type" (spec). A second create with a reference in use is refused
    /// with 400 and the message the spec's example shows, naming the record that has it, so a
    /// retrying client can look it up (`GET /Customers?externalImportReference=…`).
    private func checkUnique(reference: JSONValue?, among records: [JSONObject], idKey: String, kind: String, schema: String) throws(GoError) {
        guard let ref = reference?.stringValue, !ref.isEmpty else { return }
        if let other = records.first(where: { $0["ExternalImportReference"]?.stringValue == ref }) {
            let id: String =
                switch other[idKey] {
                case .int(let i): String(i)
                case .string(let s): s
                default: "?"
                }
            throw .validation(schema, "ExternalImportReference is already in use. '\(ref)' is used on (\(kind)) Id = \(id).")
        }
    }

    /// Applies a JSON Patch document to a stored record as ASP.NET does to a typed DTO: every
    /// property of the DTO exists (null when unset), paths are matched case-insensitively, and a
    /// path to a readOnly or unknown property is refused. The result is validated as the
    /// post DTO (types, maxLength, required), then merged over the record's server fields.
    func patch(_ record: JSONObject, with document: JSONValue, dto: String, post: String) throws(GoError) -> JSONObject {
        let dtoSchema = GoSchema.schema(dto), postSchema = GoSchema.schema(post)
        var patch: JSONPatch
        do { patch = try JSONPatch(parsing: document) } catch { throw .badRequest("\(error)") }
        func canonical(_ path: [String]) throws(GoError) -> [String] {
            guard let first = path.first else { throw .badRequest("A patch cannot replace the whole \(dto).") }
            guard let name = dtoSchema.canonicalName(first), let property = dtoSchema.properties[name] else {
                throw .badRequest("The target location specified by path segment '\(first)' was not found.")
            }
            if property.readOnly || postSchema.properties[name] == nil {
                throw .badRequest("The property '\(name)' of \(dto) is read-only and cannot be changed.")
            }
            var out = [name]
            if path.count > 1, case .object(let innerName) = property.kind {
                let inner = GoSchema.schema(innerName)
                guard let sub = inner.canonicalName(path[1]), let subProperty = inner.properties[sub] else {
                    throw .badRequest("The target location specified by path segment '\(path[1])' was not found.")
                }
                if subProperty.readOnly { throw .badRequest("The property '\(name)/\(sub)' of \(dto) is read-only and cannot be changed.") }
                out.append(sub)
                out += path.dropFirst(2)
            } else {
                out += path.dropFirst()
            }
            return out
        }
        for index in patch.operations.indices {
            patch.operations[index].path = try canonical(patch.operations[index].path)
            if let from = patch.operations[index].from { patch.operations[index].from = try canonical(from) }
        }
        // The typed view: every DTO property present, null when unset.
        var view = GoSchema.project(record, onto: dto)
        for (name, property) in dtoSchema.properties where view[name] == nil {
            view[name] = .null
            _ = property
        }
        for (name, property) in dtoSchema.properties {
            if case .object(let innerName) = property.kind, case .object(var inner)? = view[name] {
                for key in GoSchema.schema(innerName).properties.keys where inner[key] == nil { inner[key] = .null }
                view[name] = .object(inner)
            }
        }
        let result: JSONValue
        do { result = try patch.apply(to: .object(view)) } catch { throw .badRequest("\(error)") }
        guard case .object(let patched) = result else { throw .badRequest("A patch must leave an object.") }
        let writable = GoSchema.project(patched.withoutNulls(), onto: post)
        let validated = try GoSchema.validate(.object(writable), as: post)
        var out = record.filter { key, _ in
            guard let p = dtoSchema.properties[key] else { return true }
            return p.readOnly || postSchema.properties[key] == nil
        }
        for (key, value) in GoSchema.project(validated, onto: dto) { out[key] = value }
        // Keep the server fields of a nested address (Id, LastChangedDateTimeOffset) for `address(…)`.
        if case .object(var a)? = out["MailAddress"], case .object(let before)? = record["MailAddress"] {
            a["Id"] = before["Id"]
            a["LastChangedDateTimeOffset"] = before["LastChangedDateTimeOffset"]
            out["MailAddress"] = .object(a.withoutNulls())
        }
        return out.withoutNulls()
    }

    static func timestamp(_ record: JSONObject, _ key: String) -> GoTimestamp {
        record[key]?.stringValue.flatMap(GoTimestamp.init(parsing:)) ?? GoTimestamp(microseconds: .min)
    }

    static func inRanges(_ value: Int64?, _ ranges: [ClosedRange<Int64>]) -> Bool {
        guard let value else { return false }
        return ranges.contains { $0.contains(value) }
    }
}

func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }

import Foundation
import ParleySimulator
