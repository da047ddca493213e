import Foundation

/// What a system's contract says about one native field: its JSON type and the limits the
/// target enforces. Read from the OpenAPI write schema when the tables are loaded, so a payload
/// is checked before it is written (see ``TargetValidator``) without the YAML at run time.
public struct FieldConstraint: Sendable, Hashable {
    public enum JSONType: String, Sendable, Hashable {
        case string, integer, number, boolean, object, array
    }

    public var type: JSONType?
    /// `format` (`int64`, `date`, `date-time`, `uuid`, `email`, …).
    public var format: String?
    public var nullable: Bool
    public var maxLength: Int?
    public var minLength: Int?
    public var minimum: Decimal?
    public var maximum: Decimal?
    /// Allowed values of a string enum, empty when any value goes.
    public var allowed: [String]
    /// A regular expression a string must match (ECMA-262 in OpenAPI; the contracts keep to
    /// the subset NSRegularExpression reads the same way).
    public var pattern: String?
    public var readOnly: Bool

    public init(
        type: JSONType? = nil, format: String? = nil, nullable: Bool = true, maxLength: Int? = nil,
        minLength: Int? = nil, minimum: Decimal? = nil, maximum: Decimal? = nil, allowed: [String] = [],
        pattern: String? = nil, readOnly: Bool = false
    ) {
        self.type = type
        self.format = format
        self.nullable = nullable
        self.maxLength = maxLength
        self.minLength = minLength
        self.minimum = minimum
        self.maximum = maximum
        self.allowed = allowed
        self.pattern = pattern
        self.readOnly = readOnly
    }
}

extension OpenAPISchemas {
    /// The constraint of the property at `path` (same path syntax as ``contains(path:in:)``) in
    /// schema `name`, merged over `$ref`/`allOf`; `nil` when there is no such property.
    public func constraint(path: String, in name: String) -> FieldConstraint? {
        guard let property = propertySchemas(path: path, in: name) else { return nil }
        var c = FieldConstraint(nullable: false)
        var sawNullable = false
        for part in property.flatMap({ expand($0) }) {
            if let t = part["type"] as? String, let type = FieldConstraint.JSONType(rawValue: t) { c.type = type }
            if let f = part["format"] as? String { c.format = f }
            if part["nullable"] as? Bool == true { sawNullable = true }
            if let n = part["maxLength"] as? Int { c.maxLength = n }
            if let n = part["minLength"] as? Int { c.minLength = n }
            if let n = Self.decimal(part["minimum"]) { c.minimum = n }
            if let n = Self.decimal(part["maximum"]) { c.maximum = n }
            if let values = part["enum"] as? [Any] { c.allowed = values.map { "\($0)" } }
            if let p = part["pattern"] as? String { c.pattern = p }
            if part["readOnly"] as? Bool == true { c.readOnly = true }
        }
        // OpenAPI 3.0: a property without `nullable: true` must not be null. Several contracts
        // put a `$ref` to an enum next to nothing else; .NET-generated ones (PowerOffice) mark
        // every optional property nullable.
        c.nullable = sawNullable
        return c
    }

    /// The `required` list of the object at `arrayPath` in schema `name`: the schema itself for
    /// an empty path, the items of the array for `["SalesOrderLines"]`.
    public func required(in name: String, arrayPath: [String] = []) -> [String] {
        let objects: [[String: Any]]
        if arrayPath.isEmpty {
            guard let schema = schemas[name] as? [String: Any] else { return [] }
            objects = expand(schema)
        } else {
            guard let property = propertySchemas(path: arrayPath.joined(separator: "."), in: name) else { return [] }
            objects = property.flatMap { expand($0) }.compactMap { $0["items"] as? [String: Any] }.flatMap { expand($0) }
        }
        return Array(Set(objects.flatMap { $0["required"] as? [String] ?? [] })).sorted()
    }

    /// The property schemas (unexpanded) at `path`, `nil` when the path does not exist.
    func propertySchemas(path: String, in name: String) -> [[String: Any]]? {
        guard let schema = schemas[name] as? [String: Any] else { return nil }
        var current: [[String: Any]] = [schema]
        for var component in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
            let isArray = component.hasSuffix("[]")
            if isArray { component.removeLast(2) }
            var next: [[String: Any]] = []
            for s in current.flatMap({ expand($0) }) {
                guard let props = s["properties"] as? [String: Any], let p = props[component] as? [String: Any] else { continue }
                if isArray {
                    next += expand(p).compactMap { $0["items"] as? [String: Any] }
                } else {
                    next.append(p)
                }
            }
            guard !next.isEmpty else { return nil }
            current = next
        }
        return current
    }

    private static func decimal(_ value: Any?) -> Decimal? {
        switch value {
        case let i as Int: Decimal(i)
        case let d as Double: Decimal(string: String(d))
        case let s as String: Decimal(string: s)
        default: nil
        }
    }
}
