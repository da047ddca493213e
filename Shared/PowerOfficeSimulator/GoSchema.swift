/// The property tables of PowerOffice Go's DTOs (generated from the spec into
/// `GoSchema+Generated.swift`) and the validation the simulator applies with them.
public enum GoSchema {
    public indirect enum Kind: Sendable, Equatable {
        case string, date, dateTime, uuid, integer, number, boolean, anyObject
        case enumeration(String, [String])
        case object(String)
        case array(Kind)
    }

    public struct PropertySchema: Sendable, Equatable {
        public var kind: Kind
        public var nullable: Bool
        public var readOnly: Bool
        public var maxLength: Int?
        public init(kind: Kind, nullable: Bool, readOnly: Bool, maxLength: Int? = nil) {
            self.kind = kind
            self.nullable = nullable
            self.readOnly = readOnly
            self.maxLength = maxLength
        }
    }

    public struct ObjectSchema: Sendable, Equatable {
        public var name: String
        public var required: Set<String>
        public var properties: [String: PropertySchema]
        public init(name: String, required: Set<String>, properties: [String: PropertySchema]) {
            self.name = name
            self.required = required
            self.properties = properties
        }

        /// The property's name as the schema spells it, matched case-insensitively (ASP.NET
        /// binds JSON and JSON Patch paths without regard to case).
        public func canonicalName(_ name: String) -> String? {
            if properties[name] != nil { return name }
            let lower = name.lowercased()
            return properties.keys.first { $0.lowercased() == lower }
        }
    }

    public static func schema(_ name: String) -> ObjectSchema {
        guard let schema = generated[name] else { preconditionFailure("no schema \(name) in GoSchema.generated") }
        return schema
    }

    /// Validates `value` as an instance of `schemaName`, returning it with property names in
    /// the schema's spelling and integral doubles as integers. Unknown properties are refused
    /// (the real API would ignore them; refusing catches a misspelt field in an adapter).
    public static func validate(_ value: JSONValue, as schemaName: String, at path: String = "") throws(GoError) -> JSONObject {
        let schema = Self.schema(schemaName)
        guard case .object(let object) = value else {
            throw .validation(schemaName, "\(path.isEmpty ? "The request body" : path) must be a JSON object.")
        }
        var out = JSONObject()
        for (rawKey, member) in object {
            guard let key = schema.canonicalName(rawKey) else {
                throw .validation(schemaName, "Unknown property '\(path)\(rawKey)' for \(schemaName).")
            }
            out[key] = try validate(member, property: schema.properties[key]!, name: "\(path)\(key)", in: schemaName)
        }
        for key in schema.required.sorted() where (out[key] ?? .null) == .null {
            throw .validation(schemaName, "The \(path)\(key) field is required.")
        }
        return out
    }

    static func validate(_ value: JSONValue, property: PropertySchema, name: String, in schemaName: String) throws(GoError) -> JSONValue {
        if value == .null {
            if property.nullable { return .null }
            throw .validation(schemaName, "\(name) cannot be null.")
        }
        switch property.kind {
        case .string, .date, .dateTime, .uuid:
            guard let s = value.stringValue else { throw .validation(schemaName, "\(name) must be a string.") }
            if let max = property.maxLength, s.count > max {
                throw .validation(schemaName, "The field \(name) must be a string with a maximum length of \(max).")
            }
            if property.kind == .date, !GoDate.isValid(s) {
                throw .validation(schemaName, "\(name) must be a date (yyyy-MM-dd), got '\(s)'.")
            }
            if property.kind == .dateTime, GoTimestamp(parsing: s) == nil {
                throw .validation(schemaName, "\(name) must be a date-time, got '\(s)'.")
            }
            if property.kind == .uuid, UUIDText.normalised(s) == nil {
                throw .validation(schemaName, "\(name) must be a uuid, got '\(s)'.")
            }
            return .string(property.kind == .uuid ? UUIDText.normalised(s)! : s)
        case .integer:
            guard let i = value.int64Value else { throw .validation(schemaName, "\(name) must be an integer.") }
            return .int(i)
        case .number:
            guard let d = value.doubleValue, d.isFinite else { throw .validation(schemaName, "\(name) must be a number.") }
            return value
        case .boolean:
            guard value.boolValue != nil else { throw .validation(schemaName, "\(name) must be true or false.") }
            return value
        case .anyObject:
            return value
        case .enumeration(let enumName, let values):
            guard let s = value.stringValue, let match = values.first(where: { $0.lowercased() == s.lowercased() }) else {
                throw .validation(
                    schemaName,
                    "\(name) must be one of the \(enumName) values (\(values.prefix(8).joined(separator: ", "))\(values.count > 8 ? ", …" : "")).")
            }
            return .string(match)
        case .object(let inner):
            return .object(try validate(value, as: inner, at: "\(name)."))
        case .array(let itemKind):
            guard case .array(let items) = value else { throw .validation(schemaName, "\(name) must be an array.") }
            var out: [JSONValue] = []
            for (index, item) in items.enumerated() {
                if case .object(let inner) = itemKind {
                    out.append(.object(try validate(item, as: inner, at: "\(name)[\(index)].")))
                } else {
                    out.append(
                        try validate(
                            item, property: PropertySchema(kind: itemKind, nullable: false, readOnly: false), name: "\(name)[\(index)]",
                            in: schemaName))
                }
            }
            return .array(out)
        }
    }

    /// `object` restricted to the properties `schemaName` has, recursively for nested objects:
    /// the DTO a stored record is returned as (additionalProperties is false in the spec).
    public static func project(_ object: JSONObject, onto schemaName: String) -> JSONObject {
        let schema = Self.schema(schemaName)
        var out = JSONObject()
        for (key, value) in object {
            guard let property = schema.properties[key] else { continue }
            switch (property.kind, value) {
            case (.object(let inner), .object(let nested)):
                out[key] = .object(project(nested, onto: inner))
            case (.array(.object(let inner)), .array(let items)):
                out[key] = .array(items.map { item in item.objectValue.map { .object(project($0, onto: inner)) } ?? item })
            default:
                out[key] = value
            }
        }
        return out
    }
}

/// `yyyy-MM-dd` as the spec's `format: date`.
enum GoDate {
    static func isValid(_ s: String) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1...12).contains(m)
        else { return false }
        return d >= 1 && d <= GoTimestamp.daysInMonth(year: y, month: m)
    }
}

enum UUIDText {
    /// Lower-case canonical form, or nil.
    static func normalised(_ s: String) -> String? {
        guard s.count == 36 else { return nil }
        for (i, c) in s.enumerated() {
            if [8, 13, 18, 23].contains(i) { if c != "-" { return nil } } else if !c.isHexDigit { return nil }
        }
        return s.lowercased()
    }
}
