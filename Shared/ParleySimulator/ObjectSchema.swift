import Foundation

/// The members a contract schema allows, enough to validate a request body the way the
/// contract describes it and to name the failing member (`address.postalCode`,
/// `lines[2].quantity`) in a 422. Read-only members in a request are ignored (OpenAPI's
/// `readOnly`); members the contract does not name are refused, so a misspelt member is an
/// error, not silently lost data.
public struct ObjectSchema: Sendable {
    public indirect enum Kind: Sendable {
        case string(format: StringFormat = .plain, values: [String]? = nil)
        case number(min: Double? = nil, max: Double? = nil, values: [Double]? = nil)
        case integer(min: Int64? = nil, max: Int64? = nil)
        case bool
        case object(ObjectSchema)
        case array(Kind)
        /// Free string → string pairs (`meta_data`).
        case stringMap
    }

    public enum StringFormat: Sendable {
        case plain, email, date, dateTime, decimalString
        case pattern(String)
    }

    public struct Field: Sendable {
        public var name: String
        public var kind: Kind
        public var required: Bool
        public var nullable: Bool
        public var readOnly: Bool

        public init(_ name: String, _ kind: Kind, required: Bool = false, nullable: Bool = false, readOnly: Bool = false) {
            self.name = name
            self.kind = kind
            self.required = required
            self.nullable = nullable
            self.readOnly = readOnly
        }
    }

    public var fields: [Field]

    public init(_ fields: [Field]) { self.fields = fields }

    /// The body's writable members, checked. `partial`: required members may be missing (an
    /// update); they still may not be `null`.
    public func validate(_ value: JSONValue, partial: Bool, path: String = "") -> ([String: JSONValue], [Problem.FieldError]) {
        guard let object = value.objectValue else {
            return ([:], [.init(field: path.isEmpty ? "(body)" : path, message: "must be an object")])
        }
        var out: [String: JSONValue] = [:]
        var errors: [Problem.FieldError] = []
        let byName = Dictionary(uniqueKeysWithValues: fields.map { ($0.name, $0) })
        for key in object.keys.sorted() where byName[key] == nil {
            errors.append(.init(field: Self.join(path, key), message: "is not a member of this resource"))
        }
        for field in fields {
            let fieldPath = Self.join(path, field.name)
            guard let v = object[field.name] else {
                if field.required && !partial && !field.readOnly { errors.append(.init(field: fieldPath, message: "is required")) }
                continue
            }
            if field.readOnly { continue }
            if v.isNull {
                if field.nullable {
                    out[field.name] = .null
                } else {
                    errors.append(.init(field: fieldPath, message: field.required ? "is required" : "may not be null"))
                }
                continue
            }
            let (checked, e) = Self.check(v, field.kind, path: fieldPath, partial: partial)
            errors += e
            if e.isEmpty { out[field.name] = checked }
        }
        return (out, errors)
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    static func check(_ v: JSONValue, _ kind: Kind, path: String, partial: Bool) -> (JSONValue, [Problem.FieldError]) {
        func fail(_ message: String) -> (JSONValue, [Problem.FieldError]) { (v, [.init(field: path, message: message)]) }
        switch kind {
        case .string(let format, let values):
            guard let s = v.stringValue else { return fail("must be a string") }
            if let values, !values.contains(s) { return fail("must be one of \(values.joined(separator: ", "))") }
            switch format {
            case .plain: break
            case .email:
                let parts = s.split(separator: "@", omittingEmptySubsequences: false)
                if parts.count != 2 || parts[0].isEmpty || !parts[1].contains(".") || s.contains(" ") {
                    return fail("must be an e-mail address")
                }
            case .date:
                if !Self.isDate(s) { return fail("must be a date (YYYY-MM-DD)") }
            case .dateTime:
                if Timestamp.parse(s) == nil { return fail("must be an RFC 3339 date-time") }
            case .decimalString:
                if s.range(of: #"^-?\d+(\.\d+)?$"#, options: .regularExpression) == nil {
                    return fail("must be a decimal string like \"124.50\"")
                }
            case .pattern(let p):
                if s.range(of: p, options: .regularExpression) == nil { return fail("must match \(p)") }
            }
            return (v, [])
        case .number(let min, let max, let values):
            guard let d = v.doubleValue else { return fail("must be a number") }
            if let min, d < min { return fail("must be at least \(Self.show(min))") }
            if let max, d > max { return fail("must be at most \(Self.show(max))") }
            if let values, !values.contains(d) { return fail("must be one of \(values.map(Self.show).joined(separator: ", "))") }
            return (v, [])
        case .integer(let min, let max):
            guard let i = v.intValue else { return fail("must be an integer") }
            if let min, i < min { return fail("must be at least \(min)") }
            if let max, i > max { return fail("must be at most \(max)") }
            return (.int(i), [])
        case .bool:
            return v.boolValue == nil ? fail("must be true or false") : (v, [])
        case .object(let schema):
            let (o, e) = schema.validate(v, partial: partial, path: path)
            return (.object(o), e)
        case .array(let item):
            guard let a = v.arrayValue else { return fail("must be an array") }
            var out: [JSONValue] = []
            var errors: [Problem.FieldError] = []
            // Items are whole: an array replaces the stored one, so its items are never partial.
            for (i, element) in a.enumerated() {
                let (c, e) = check(element, item, path: "\(path)[\(i)]", partial: false)
                out.append(c)
                errors += e
            }
            return (.array(out), errors)
        case .stringMap:
            guard let o = v.objectValue else { return fail("must be an object") }
            for (k, value) in o where value.stringValue == nil && !value.isNull {
                return (v, [.init(field: "\(path).\(k)", message: "must be a string")])
            }
            return (v, [])
        }
    }

    static func show(_ d: Double) -> String { d == d.rounded() ? String(Int64(d)) : String(d) }

    public static func isDate(_ s: String) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard s.count == 10, parts.count == 3, let y = Int64(parts[0]), let m = Int64(parts[1]), let d = Int64(parts[2]) else {
            return false
        }
        return Timestamp.parse("\(s)T00:00:00Z") != nil && y > 0 && m > 0 && d > 0
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    /// `patch` applied over these members: members present replace, `null` clears, nested
    /// objects merge member by member, arrays replace.
    public func merging(patch: [String: JSONValue]) -> [String: JSONValue] {
        var out = self
        for (k, v) in patch {
            if case .object(let p) = v, case .object(let current)? = out[k] {
                out[k] = .object(current.merging(patch: p))
            } else {
                out[k] = v
            }
        }
        return out
    }
}
