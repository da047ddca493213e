import Foundation
import ParleyEnvelope
import ParleyJSON

/// `personName`: the name group of a PowerOffice Go customer ⇄ the canonical name group.
///
/// Unlike the other converters this one converts a group of fields at once: the mapping row
/// gathers them into one object on each side.
///
/// - native (PowerOffice Go v2 Customer): `{"IsPerson": Bool?, "FirstName": String?,
///   "LastName": String?, "Name": String?}`
/// - canonical: `{"kind": "person" | "company", "name": String, "firstName"?: String,
///   "lastName"?: String}`; for a person `name` is `"<firstName> <lastName>"`.
///
/// To canonical: `IsPerson` true → a person. First and last name come from `FirstName` /
/// `LastName`; if both are missing but `Name` is set, `Name` is split (see ``split(_:)``).
/// `IsPerson` false, null or absent (Go's default is false) → a company named `Name`.
///
/// To native (without a canonical `kind`, first and last name make a person and a name alone a
/// company): a person → `IsPerson: true` with `FirstName`, `LastName` (split from `name` when
/// the canonical record only has a full name) and `Name` omitted; a company → `IsPerson: false`
/// with `Name`. A person whose name is a single word cannot be written (Go requires both names).
public struct PersonNameConverter: Converter {
    public let name = "personName"
    public init() {}

    /// Splits a full name: the last word is the last name, everything before it the first name
    /// (`"Ola Johan Nordmann"` → (`"Ola Johan"`, `"Nordmann"`)). Words are separated by
    /// whitespace, runs of which count as one. `nil` for fewer than two words. Particles
    /// (`"van der Berg"`) are not recognised: that is the documented limit of the rule.
    public static func split(_ fullName: String) -> (first: String, last: String)? {
        let words = fullName.split(whereSeparator: { $0.isWhitespace })
        guard words.count >= 2 else { return nil }
        return (words.dropLast().joined(separator: " "), String(words.last!))
    }

    static func text(_ object: JSONObject, _ key: String) throws(ConversionError) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard case .string(let s) = value else {
            throw ConversionError("\(key) must be a string, got \(value.typeName)")
        }
        let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    static func object(_ value: JSONValue, _ what: String) throws(ConversionError) -> JSONObject {
        guard case .object(let object) = value else {
            throw ConversionError("expected \(what) as an object, got \(value.typeName)")
        }
        return object
    }

    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            let o = try Self.object(v, "the customer name fields")
            let isPerson: Bool
            switch o["IsPerson"] {
            case nil, .null?: isPerson = false
            case .bool(let b)?: isPerson = b
            case let other?: throw ConversionError("IsPerson must be a boolean, got \(other.typeName)")
            }
            let name = try Self.text(o, "Name")
            if !isPerson {
                guard let name else { throw ConversionError("a company needs a Name") }
                return ["kind": "company", "name": .string(name)]
            }
            var first = try Self.text(o, "FirstName")
            var last = try Self.text(o, "LastName")
            if first == nil, last == nil, let name {
                guard let parts = Self.split(name) else {
                    throw ConversionError("person name \"\(name)\" has one word; a first and a last name are needed")
                }
                (first, last) = parts
            }
            guard let first, let last, let full = DerivedField.personFullName(firstName: first, lastName: last) else {
                throw ConversionError("a person needs FirstName and LastName")
            }
            // The canonical model's full name of a person (DerivedField.personName).
            return ["kind": "person", "name": .string(full), "firstName": .string(first), "lastName": .string(last)]
        }
    }

    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in
            let o = try Self.object(v, "the canonical name")
            let name = try Self.text(o, "name")
            // A system that has no kind (the webshop has a first and last name) leaves it to
            // the names: both names make a person, a name alone a company.
            let kind = try Self.text(o, "kind") ?? (o["firstName"] != nil && o["lastName"] != nil ? "person" : (name != nil ? "company" : nil))
            switch kind {
            case "company":
                guard let name else { throw ConversionError("a company needs a name") }
                return ["IsPerson": false, "Name": .string(name)]
            case "person":
                var first = try Self.text(o, "firstName")
                var last = try Self.text(o, "lastName")
                if first == nil || last == nil, let name {
                    guard let parts = Self.split(name) else {
                        throw ConversionError("person name \"\(name)\" has one word; PowerOffice needs a first and a last name")
                    }
                    first = first ?? parts.first
                    last = last ?? parts.last
                }
                guard let first, let last else { throw ConversionError("a person needs a first and a last name") }
                return ["IsPerson": true, "FirstName": .string(first), "LastName": .string(last)]
            default:
                throw ConversionError("kind must be \"person\" or \"company\", got \(kind.map { "\"\($0)\"" } ?? "nothing")")
            }
        }
    }
}
