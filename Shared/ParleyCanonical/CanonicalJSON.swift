import Foundation
import ParleyEnvelope
import ParleyJSON

/// Why canonical JSON could not be read: the field path (`postalAddress.city`,
/// `lines[2].quantity`, or empty for the document itself) and the reason.
public struct CanonicalDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public let entity: CanonicalEntityType
    public let path: String
    public let reason: String

    public init(entity: CanonicalEntityType, path: String, reason: String) {
        self.entity = entity
        self.path = path
        self.reason = reason
    }

    public var description: String {
        path.isEmpty ? "\(entity.rawValue): \(reason)" : "\(entity.rawValue) field \(path): \(reason)"
    }
}

/// A canonical entity: ``Customer``, ``Product`` or ``Order``.
///
/// Canonical JSON is an object keyed by the field paths of ``CanonicalField``: a nested
/// object for `postalAddress`, an array of line objects for `lines`. Only carried (non-nil)
/// fields are present. Decimals are exact JSON numbers, dates `YYYY-MM-DD`, references
/// `<entity>/<uuid>`, enumerations their canonical string. When reading, `null` counts as not
/// carried; unknown members are an error (a misspelt path must not silently drop data).
public protocol CanonicalEntity: Sendable, Hashable {
    static var entityType: CanonicalEntityType { get }

    /// The carried merge fields, keyed by path, as canonical JSON values (flat: the key of the
    /// postal code is `postalAddress.postalCode`; `lines` holds the array of line objects).
    var canonicalFieldValues: [String: JSONValue] { get }

    /// Reads the flat form of ``canonicalFieldValues``; unknown paths are an error.
    init(canonicalFieldValues: [String: JSONValue]) throws(CanonicalDecodingError)
}

extension CanonicalEntity {
    /// The canonical JSON object (members in registry order).
    public var canonicalJSON: JSONValue {
        CanonicalJSON.nest(canonicalFieldValues, entity: Self.entityType)
    }

    public init(canonicalJSON: JSONValue) throws(CanonicalDecodingError) {
        try self.init(canonicalFieldValues: CanonicalJSON.flatten(canonicalJSON, entity: Self.entityType))
    }

    /// Parses JSON text first; a syntax error is reported with an empty path.
    public init(canonicalJSONText text: String) throws(CanonicalDecodingError) {
        let json: JSONValue
        do {
            json = try JSONValue.parse(text)
        } catch {
            throw CanonicalDecodingError(entity: Self.entityType, path: "", reason: error.description)
        }
        try self.init(canonicalJSON: json)
    }

    /// The canonical JSON value of one merge field, `nil` when not carried.
    public func value(of field: CanonicalField) -> JSONValue? {
        precondition(field.entity == Self.entityType, "\(field) is not a field of \(Self.entityType)")
        return canonicalFieldValues[field.path]
    }
}

/// Moving between the nested canonical JSON object and the flat path → value map.
public enum CanonicalJSON {
    /// First components of nested merge-field paths (`postalAddress`).
    static func groups(_ entity: CanonicalEntityType) -> Set<String> { groupsByEntity[entity] ?? [] }

    private static let groupsByEntity: [CanonicalEntityType: Set<String>] = Dictionary(
        uniqueKeysWithValues:
            CanonicalEntityType.allCases.map { entity in
                (entity, Set(CanonicalField.fields(of: entity).compactMap { f in f.components.count > 1 ? f.components[0] : nil }))
            })

    /// Nests flat path → value pairs into an object, members in registry order.
    public static func nest(_ flat: [String: JSONValue], entity: CanonicalEntityType) -> JSONValue {
        var root = JSONObject()
        for field in CanonicalField.fields(of: entity) {
            guard let value = flat[field.path] else { continue }
            let parts = field.components
            if parts.count == 1 {
                root[field.path] = value
            } else {
                var group = root[parts[0]]?.object ?? JSONObject()
                group[parts[1]] = value
                root[parts[0]] = .object(group)
            }
        }
        return .object(root)
    }

    /// Flattens a canonical JSON object into path → value (nulls dropped), rejecting unknown
    /// members and mis-shaped groups. Values are not checked against their kinds here.
    public static func flatten(
        _ json: JSONValue, entity: CanonicalEntityType
    ) throws(CanonicalDecodingError) -> [String: JSONValue] {
        guard case .object(let root) = json else {
            throw CanonicalDecodingError(
                entity: entity, path: "", reason: "expected an object, found \(json.typeName)")
        }
        let groups = groups(entity)
        var flat: [String: JSONValue] = [:]
        for (key, value) in root {
            if value.isNull { continue }
            if groups.contains(key) {
                guard case .object(let members) = value else {
                    throw CanonicalDecodingError(
                        entity: entity, path: key, reason: "expected an object, found \(value.typeName)")
                }
                for (member, memberValue) in members {
                    let path = "\(key).\(member)"
                    guard CanonicalField.named(path, entity: entity) != nil else {
                        throw CanonicalDecodingError(entity: entity, path: path, reason: "unknown field")
                    }
                    if !memberValue.isNull { flat[path] = memberValue }
                }
            } else {
                guard let field = CanonicalField.named(key, entity: entity), !field.isLineField else {
                    throw CanonicalDecodingError(entity: entity, path: key, reason: "unknown field")
                }
                flat[key] = value
            }
        }
        return flat
    }

    /// Puts `value` at a reference's path in flat values: `customer`, or a line member such as
    /// `lines[2].product` (ignored when that line does not exist).
    public static func set(_ value: String, atReference path: String, in values: inout [String: JSONValue]) {
        guard path.hasPrefix("lines["), let close = path.firstIndex(of: "]"),
            let index = Int(path[path.index(path.startIndex, offsetBy: 6)..<close])
        else {
            values[path] = .string(value)
            return
        }
        let member = String(path[path.index(close, offsetBy: 2)...])
        guard case .array(var lines)? = values["lines"], lines.indices.contains(index), case .object(var line) = lines[index] else { return }
        line[member] = .string(value)
        lines[index] = .object(line)
        values["lines"] = .array(lines)
    }
}

// MARK: - Reading and writing field values

/// Builds the flat path → value map.
struct FieldWriter {
    var values: [String: JSONValue] = [:]

    mutating func set(_ path: String, _ value: String?) {
        if let value { values[path] = .string(value) }
    }
    mutating func set(_ path: String, _ value: Decimal?) {
        if let value, let json = JSONValue(value) { values[path] = json }
    }
    mutating func set(_ path: String, _ value: Bool?) {
        if let value { values[path] = .bool(value) }
    }
    mutating func set(_ path: String, _ value: CalendarDate?) {
        if let value { values[path] = .string(value.description) }
    }
    mutating func set(_ path: String, _ value: GlobalRef?) {
        if let value { values[path] = .string(value.description) }
    }
    mutating func set<E: RawRepresentable<String>>(_ path: String, _ value: E?) {
        if let value { values[path] = .string(value.rawValue) }
    }
}

/// Reads typed values out of a flat path → value map, naming the path in every error.
/// `prefix` names the enclosing element in errors (`lines[2].`).
struct FieldReader {
    let entity: CanonicalEntityType
    let values: [String: JSONValue]
    var prefix: String = ""

    func fail(_ path: String, _ reason: String) -> CanonicalDecodingError {
        CanonicalDecodingError(entity: entity, path: prefix + path, reason: reason)
    }

    /// Every key must be one of `known`.
    func rejectUnknown(_ known: [String]) throws(CanonicalDecodingError) {
        for key in values.keys.sorted() where !known.contains(key) {
            throw fail(key, "unknown field")
        }
    }

    func raw(_ path: String) -> JSONValue? {
        guard let value = values[path], !value.isNull else { return nil }
        return value
    }

    func text(_ path: String) throws(CanonicalDecodingError) -> String? {
        guard let value = raw(path) else { return nil }
        guard case .string(let s) = value else { throw fail(path, "expected a string, found \(value.typeName)") }
        return s
    }

    func decimal(_ path: String) throws(CanonicalDecodingError) -> Decimal? {
        guard let value = raw(path) else { return nil }
        guard case .number(let n) = value else { throw fail(path, "expected a number, found \(value.typeName)") }
        guard let d = n.decimal else { throw fail(path, "\(n.text) cannot be held exactly as a decimal") }
        return d
    }

    func bool(_ path: String) throws(CanonicalDecodingError) -> Bool? {
        guard let value = raw(path) else { return nil }
        guard case .bool(let b) = value else { throw fail(path, "expected a boolean, found \(value.typeName)") }
        return b
    }

    func date(_ path: String) throws(CanonicalDecodingError) -> CalendarDate? {
        guard let s = try text(path) else { return nil }
        guard let d = CalendarDate(s) else { throw fail(path, "\"\(s)\" is not a date of the form YYYY-MM-DD") }
        return d
    }

    func reference(_ path: String, to entity: CanonicalEntityType) throws(CanonicalDecodingError) -> GlobalRef? {
        guard let s = try text(path) else { return nil }
        guard let ref = GlobalRef(s), ref.entity == entity else {
            throw fail(path, "\"\(s)\" is not a reference of the form \(entity.rawValue)/<uuid>")
        }
        return ref
    }

    func enumeration<E: RawRepresentable<String> & CaseIterable>(
        _ path: String, as: E.Type
    ) throws(CanonicalDecodingError) -> E? {
        guard let s = try text(path) else { return nil }
        guard let e = E(rawValue: s) else {
            throw fail(path, "\"\(s)\" is not one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return e
    }
}

// MARK: - Customer

extension Customer: CanonicalEntity {
    public static var entityType: CanonicalEntityType { .customer }

    public var canonicalFieldValues: [String: JSONValue] {
        var w = FieldWriter()
        w.set("kind", kind)
        w.set("name", name)
        w.set("firstName", firstName)
        w.set("lastName", lastName)
        w.set("email", email)
        w.set("organizationNumber", organizationNumber)
        w.set("phone", phone)
        w.set("postalAddress.addressLine1", postalAddress?.addressLine1)
        w.set("postalAddress.addressLine2", postalAddress?.addressLine2)
        w.set("postalAddress.postalCode", postalAddress?.postalCode)
        w.set("postalAddress.city", postalAddress?.city)
        w.set("postalAddress.country", postalAddress?.country)
        w.set("currency", currency)
        w.set("archived", archived)
        return w.values
    }

    public init(canonicalFieldValues values: [String: JSONValue]) throws(CanonicalDecodingError) {
        let r = FieldReader(entity: .customer, values: values)
        try r.rejectUnknown(CanonicalField.customer.map(\.path))
        self.init(
            kind: try r.enumeration("kind", as: CustomerKind.self),
            name: try r.text("name"),
            firstName: try r.text("firstName"),
            lastName: try r.text("lastName"),
            email: try r.text("email"),
            organizationNumber: try r.text("organizationNumber"),
            phone: try r.text("phone"),
            currency: try r.text("currency"),
            archived: try r.bool("archived"))
        let address = PostalAddress(
            addressLine1: try r.text("postalAddress.addressLine1"),
            addressLine2: try r.text("postalAddress.addressLine2"),
            postalCode: try r.text("postalAddress.postalCode"),
            city: try r.text("postalAddress.city"),
            country: try r.text("postalAddress.country"))
        // An address with no carried field is the same as no address.
        self.postalAddress = address.isEmpty ? nil : address
    }
}

// MARK: - Product

extension Product: CanonicalEntity {
    public static var entityType: CanonicalEntityType { .product }

    public var canonicalFieldValues: [String: JSONValue] {
        var w = FieldWriter()
        w.set("sku", sku)
        w.set("name", name)
        w.set("description", description)
        w.set("gtin", gtin)
        w.set("unitOfMeasure", unitOfMeasure)
        w.set("salesPriceExclVat", salesPriceExclVat)
        w.set("costPrice", costPrice)
        w.set("vatRate", vatRate)
        w.set("productType", productType)
        w.set("stock", stock)
        w.set("archived", archived)
        return w.values
    }

    public init(canonicalFieldValues values: [String: JSONValue]) throws(CanonicalDecodingError) {
        let r = FieldReader(entity: .product, values: values)
        try r.rejectUnknown(CanonicalField.product.map(\.path))
        self.init(
            sku: try r.text("sku"),
            name: try r.text("name"),
            description: try r.text("description"),
            gtin: try r.text("gtin"),
            unitOfMeasure: try r.text("unitOfMeasure"),
            salesPriceExclVat: try r.decimal("salesPriceExclVat"),
            costPrice: try r.decimal("costPrice"),
            vatRate: try r.decimal("vatRate"),
            productType: try r.enumeration("productType", as: ProductType.self),
            stock: try r.decimal("stock"),
            archived: try r.bool("archived"))
    }
}

// MARK: - Order

extension OrderLine {
    /// A line as a canonical JSON object (members in registry order).
    public var canonicalJSON: JSONValue {
        var w = FieldWriter()
        w.set("product", product)
        w.set("sku", sku)
        w.set("description", description)
        w.set("quantity", quantity)
        w.set("unitPriceExclVat", unitPriceExclVat)
        w.set("discountPercent", discountPercent)
        w.set("vatRate", vatRate)
        var object = JSONObject()
        for field in CanonicalField.orderLine {
            let member = field.lineMember!
            if let value = w.values[member] { object[member] = value }
        }
        return .object(object)
    }

    /// Reads line `index` of `lines`; errors name `lines[index].member`.
    init(canonicalJSON json: JSONValue, index: Int) throws(CanonicalDecodingError) {
        guard case .object(let object) = json else {
            throw CanonicalDecodingError(
                entity: .order, path: "lines[\(index)]", reason: "expected an object, found \(json.typeName)")
        }
        var values: [String: JSONValue] = [:]
        for (key, value) in object { values[key] = value }
        let r = FieldReader(entity: .order, values: values, prefix: "lines[\(index)].")
        try r.rejectUnknown(CanonicalField.orderLine.map { $0.lineMember! })
        self.init(
            product: try r.reference("product", to: .product),
            sku: try r.text("sku"),
            description: try r.text("description"),
            quantity: try r.decimal("quantity"),
            unitPriceExclVat: try r.decimal("unitPriceExclVat"),
            discountPercent: try r.decimal("discountPercent"),
            vatRate: try r.decimal("vatRate"))
    }
}

extension Order: CanonicalEntity {
    public static var entityType: CanonicalEntityType { .order }

    public var canonicalFieldValues: [String: JSONValue] {
        var w = FieldWriter()
        w.set("orderNumber", orderNumber)
        w.set("customer", customer)
        w.set("orderDate", orderDate)
        w.set("deliveryDate", deliveryDate)
        w.set("currency", currency)
        w.set("status", status)
        w.set("customerReference", customerReference)
        if let lines { w.values["lines"] = .array(lines.map(\.canonicalJSON)) }
        w.set("archived", archived)
        return w.values
    }

    public init(canonicalFieldValues values: [String: JSONValue]) throws(CanonicalDecodingError) {
        let r = FieldReader(entity: .order, values: values)
        try r.rejectUnknown(CanonicalField.order.map(\.path))
        var lines: [OrderLine]? = nil
        if let value = r.raw("lines") {
            guard case .array(let elements) = value else {
                throw r.fail("lines", "expected an array, found \(value.typeName)")
            }
            var decoded: [OrderLine] = []
            for (index, element) in elements.enumerated() {
                decoded.append(try OrderLine(canonicalJSON: element, index: index))
            }
            lines = decoded
        }
        self.init(
            orderNumber: try r.text("orderNumber"),
            customer: try r.reference("customer", to: .customer),
            orderDate: try r.date("orderDate"),
            deliveryDate: try r.date("deliveryDate"),
            currency: try r.text("currency"),
            status: try r.enumeration("status", as: OrderStatus.self),
            customerReference: try r.text("customerReference"),
            lines: lines,
            archived: try r.bool("archived"))
    }
}
