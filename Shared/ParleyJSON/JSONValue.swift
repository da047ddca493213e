import ParleyCore
import Foundation

/// Arbitrary JSON, kept exactly as it was written.
///
/// Numbers are never converted to `Double`: a ``JSONNumber`` keeps the decimal text of the
/// document (`12345678901234567.89` stays `12345678901234567.89`), so money and ids survive any
/// number of hops unchanged. Objects keep their members in insertion order (see ``JSONObject``).
///
/// Parse with ``parse(_:maxDepth:)`` (a strict RFC 8259 parser) and write with
/// ``serialized(options:)``. The `Codable` conformance exists so a `JSONValue` can sit inside
/// other `Codable` types, but it goes through Foundation's coders and is only best effort
/// (see the notes on ``init(from:)``); the envelope uses the parser and serializer directly.
///
/// Equality is JSON equality with exact numbers: object member order does not matter, but
/// number spelling does (`1.50` is not equal to `1.5`, and `1e3` is not equal to `1000`), because
/// the spelling is what travels. Strings compare as Swift strings (Unicode canonical equivalence).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

// MARK: - Numbers

/// A JSON number kept as its exact decimal text (RFC 8259 grammar:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`).
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// The number exactly as written in JSON.
    public let text: String

    /// Validates `text` against the JSON number grammar; `nil` if it is not a JSON number.
    public init?(_ text: String) {
        guard JSONNumber.isValid(Array(text.utf8)) else { return nil }
        self.text = text
    }

    /// Already validated by the parser.
    init(uncheckedText text: String) {
        self.text = text
    }

    public init<I: BinaryInteger>(_ value: I) {
        self.text = String(value)
    }

    public init(integerLiteral value: Int) {
        self.text = String(value)
    }

    /// The exact decimal value (`Decimal.description` is always valid JSON number text).
    /// `nil` for NaN.
    public init?(_ value: Decimal) {
        guard !value.isNaN else { return nil }
        self.text = value.description
    }

    /// Shortest text that reads back as the same `Double`. `nil` for infinities and NaN.
    /// Prefer ``init(_:)-(String)`` or `Decimal` for money: a `Double` is already inexact.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        var text = value.description  // "1.0", "1e-07", "1.2e+20": all valid JSON numbers
        if text.hasSuffix(".0") { text.removeLast(2) }
        self.text = text
    }

    public var description: String { text }

    /// Whether the text has neither a fraction nor an exponent.
    public var isInteger: Bool {
        !text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") })
    }

    /// The exact value as a Foundation `Decimal`, or `nil` when `Decimal` cannot hold it exactly
    /// (more than 38 significant digits, or an exponent outside `Decimal`'s range).
    public var decimal: Decimal? {
        guard JSONNumber.significantDigits(text) <= 38 else { return nil }
        // Decimal(string:) silently saturates or drops digits when the exponent is out of its
        // range, so check that the value it produced spells the same number.
        guard let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")),
            !value.isNaN, JSONNumber.sameValue(value.description, text)
        else { return nil }
        return value
    }

    /// The value as `Int` when the number is an integer that fits (`2`, `-7`, also `2.0`, `2e3`).
    public var int: Int? {
        if isInteger { return Int(text) }
        guard let d = decimal, d == d.roundedHalfAwayFromZero(scale: 0) else { return nil }
        return Int(d.description)
    }

    // MARK: grammar

    static func isValid(_ b: [UInt8]) -> Bool {
        var i = 0
        let n = b.count
        func digit(_ i: Int) -> Bool { i < n && b[i] >= 0x30 && b[i] <= 0x39 }
        if i < n && b[i] == UInt8(ascii: "-") { i += 1 }
        guard digit(i) else { return false }
        if b[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while digit(i) { i += 1 }
        }
        if i < n && b[i] == UInt8(ascii: ".") {
            i += 1
            guard digit(i) else { return false }
            while digit(i) { i += 1 }
        }
        if i < n && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
            i += 1
            if i < n && (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) { i += 1 }
            guard digit(i) else { return false }
            while digit(i) { i += 1 }
        }
        return i == n
    }

    /// Digits of the significand without leading and trailing zeros.
    static func significantDigits(_ text: String) -> Int {
        let mantissa = text.utf8.prefix(while: { $0 != UInt8(ascii: "e") && $0 != UInt8(ascii: "E") })
        let digits = mantissa.filter { $0 >= 0x30 && $0 <= 0x39 }
        guard let first = digits.firstIndex(where: { $0 != 0x30 }),
            let last = digits.lastIndex(where: { $0 != 0x30 })
        else { return 0 }
        return last - first + 1
    }

    /// Compares two number texts by value, without leaving decimal arithmetic: normalises both
    /// to (sign, significant digits, exponent of the last digit).
    static func sameValue(_ a: String, _ b: String) -> Bool {
        normalized(a) == normalized(b)
    }

    private struct Normal: Equatable {
        var negative: Bool
        var digits: [UInt8]
        var exponent: Int
    }

    private static func normalized(_ text: String) -> Normal? {
        let bytes = Array(text.utf8)
        var i = 0
        var negative = false
        if i < bytes.count && bytes[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var digits: [UInt8] = []
        var exponent = 0
        var afterPoint = false
        while i < bytes.count, bytes[i] != UInt8(ascii: "e"), bytes[i] != UInt8(ascii: "E") {
            if bytes[i] == UInt8(ascii: ".") {
                afterPoint = true
            } else {
                digits.append(bytes[i])
                if afterPoint { exponent -= 1 }
            }
            i += 1
        }
        if i < bytes.count {
            guard let e = Int(String(decoding: bytes[(i + 1)...], as: UTF8.self)) else { return nil }
            exponent += e
        }
        while let f = digits.first, f == 0x30 { digits.removeFirst() }
        while let l = digits.last, l == 0x30 {
            digits.removeLast()
            exponent += 1
        }
        if digits.isEmpty { return Normal(negative: false, digits: [], exponent: 0) }
        return Normal(negative: negative, digits: digits, exponent: exponent)
    }
}

// MARK: - Objects

/// A JSON object: members in insertion order, with keyed look-up.
///
/// Keys are unique. Swift compares strings by Unicode canonical equivalence, so two keys that
/// differ only in normalisation (`"é"` precomposed and decomposed) count as the same key; the
/// parser rejects such a document as having a duplicate key, which no Swift consumer could read
/// unambiguously anyway.
public struct JSONObject: Sendable, Hashable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    public typealias Member = (key: String, value: JSONValue)

    /// The members in order. Small objects (almost all of Parley's) are searched linearly, which
    /// costs less than hashing the key; an index by key is kept only beyond ``indexed`` members.
    private var members: [Member] = []
    private var index: [String: Int]? = nil
    private static let indexed = 16

    public init() {}

    /// Members in the given order. A repeated key keeps its first position and its last value.
    public init<S: Sequence>(_ members: S) where S.Element == (String, JSONValue) {
        self.members.reserveCapacity(members.underestimatedCount)
        for (key, value) in members { self[key] = value }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    /// The keys in member order.
    public var keys: [String] { members.map(\.key) }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return members.firstIndex { $0.key == key }
    }

    /// Get, replace (keeping the position), append (new key), or remove (`nil`) a member.
    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { members[$0].value } }
        set {
            if let newValue {
                if let at = position(of: key) {
                    members[at].value = newValue
                } else {
                    append(key, newValue)
                }
            } else if let at = position(of: key) {
                members.remove(at: at)
                if index != nil { rebuildIndex() }
            }
        }
    }

    /// Appends a member; returns `false` (and changes nothing) when the key is already present.
    @discardableResult
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        guard position(of: key) == nil else { return false }
        append(key, value)
        return true
    }

    private mutating func append(_ key: String, _ value: JSONValue) {
        members.append((key, value))
        if index != nil {
            index![key] = members.count - 1
        } else if members.count > Self.indexed {
            rebuildIndex()
        }
    }

    private mutating func rebuildIndex() {
        guard members.count > Self.indexed else {
            index = nil
            return
        }
        var built: [String: Int] = [:]
        built.reserveCapacity(members.count)
        for (offset, member) in members.enumerated() { built[member.key] = offset }
        index = built
    }

    // RandomAccessCollection over members, in order.
    public var startIndex: Int { 0 }
    public var endIndex: Int { members.count }
    public subscript(position: Int) -> Member { members[position] }

    /// Members sorted by key, compared by Unicode code points (the UTF-8 byte order), which is
    /// locale independent and stable: the order used for canonical serialization.
    public var membersSortedByKey: [Member] {
        members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    /// Order-insensitive: objects are equal when they have the same members.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.members.count == rhs.members.count else { return false }
        for member in lhs.members {
            guard let other = rhs[member.key], other == member.value else { return false }
        }
        return true
    }

    /// Order-insensitive, like ``==``: the members' hashes are combined commutatively.
    public func hash(into hasher: inout Hasher) {
        var combined = 0
        for member in members {
            var one = Hasher()
            one.combine(member.key)
            one.combine(member.value)
            combined = combined &+ one.finalize()
        }
        hasher.combine(members.count)
        hasher.combine(combined)
    }
}

// MARK: - Conveniences

extension JSONObject {
    /// Sets the value at a member path (`["MailAddress", "City"]`), creating objects on the way.
    public mutating func set(_ value: JSONValue, at path: some Collection<String>) {
        guard let first = path.first else { return }
        if path.count == 1 {
            self[first] = value
            return
        }
        var child = self[first]?.object ?? JSONObject()
        child.set(value, at: path.dropFirst())
        self[first] = .object(child)
    }
}

extension JSONValue {
    public subscript(key: String) -> JSONValue? {
        get {
            guard case .object(let object) = self else { return nil }
            return object[key]
        }
        set {
            guard case .object(var object) = self else { return }
            object[key] = newValue
            self = .object(object)
        }
    }

    public subscript(index: Int) -> JSONValue? {
        guard case .array(let array) = self, array.indices.contains(index) else { return nil }
        return array[index]
    }

    public var isNull: Bool { self == .null }

    public var bool: Bool? {
        guard case .bool(let value) = self else { return nil }
        return value
    }

    public var string: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    public var number: JSONNumber? {
        guard case .number(let value) = self else { return nil }
        return value
    }

    /// The exact value of a number (see ``JSONNumber/decimal``). Strings are not converted.
    public var decimal: Decimal? { number?.decimal }

    /// A number that is an integer fitting `Int`.
    public var int: Int? { number?.int }

    public var array: [JSONValue]? {
        guard case .array(let value) = self else { return nil }
        return value
    }

    public var object: JSONObject? {
        guard case .object(let value) = self else { return nil }
        return value
    }

    /// A short name for the kind of value, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// An exact number; `nil` for NaN.
    public init?(_ decimal: Decimal) {
        guard let number = JSONNumber(decimal) else { return nil }
        self = .number(number)
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    /// Float literals go through `Double` (the compiler gives nothing else), so they are only
    /// exact up to about 15 significant digits. For money write `.number(JSONNumber("12.30")!)`
    /// or use a `Decimal`.
    public init(floatLiteral value: Double) { self = JSONNumber(value).map(JSONValue.number) ?? .null }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}

// MARK: - Text

extension JSONValue: CustomStringConvertible {
    /// Compact JSON text.
    public var description: String { serializedString() }
}

// MARK: - Codable (best effort)

extension JSONValue: Codable {
    /// Best effort through Foundation's decoders: numbers arrive as `Decimal` (exact up to 38
    /// significant digits, but re-spelled: `1e3` becomes `1000`), and object member order is
    /// whatever the decoder reports. Use ``parse(_:maxDepth:)`` when exactness matters.
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.singleValueContainer() {
            if container.decodeNil() {
                self = .null
                return
            }
            if let value = try? container.decode(Bool.self) {
                self = .bool(value)
                return
            }
            if let value = try? container.decode(String.self) {
                self = .string(value)
                return
            }
            if let value = try? container.decode(Decimal.self), let number = JSONNumber(value) {
                self = .number(number)
                return
            }
            if let value = try? container.decode([JSONValue].self) {
                self = .array(value)
                return
            }
        }
        if let container = try? decoder.container(keyedBy: AnyKey.self) {
            var object = JSONObject()
            for key in container.allKeys {
                object[key.stringValue] = try container.decode(JSONValue.self, forKey: key)
            }
            self = .object(object)
            return
        }
        throw DecodingError.dataCorrupted(
            .init(codingPath: decoder.codingPath, debugDescription: "Not a JSON value"))
    }

    /// Best effort through Foundation's encoders: numbers are written as `Decimal`; a number that
    /// `Decimal` cannot hold exactly is an encoding error rather than a silent rounding.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .number(let number):
            guard let value = number.decimal else {
                throw EncodingError.invalidValue(
                    self,
                    .init(
                        codingPath: encoder.codingPath,
                        debugDescription:
                            "JSON number \(number.text) cannot be represented exactly as Decimal; serialize with JSONValue.serialized() instead"
                    ))
            }
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let values):
            var container = encoder.unkeyedContainer()
            for value in values { try container.encode(value) }
        case .object(let object):
            var container = encoder.container(keyedBy: AnyKey.self)
            for (key, value) in object { try container.encode(value, forKey: AnyKey(key)) }
        }
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
