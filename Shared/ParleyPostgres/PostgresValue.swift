import ParleyCore
import Foundation

/// A PostgreSQL type OID (only the ones this layer knows by name are listed).
public struct PostgresDataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ oid: UInt32) { self.rawValue = oid }

    public static let bool = Self(16)
    public static let bytea = Self(17)
    public static let char = Self(18)
    public static let name = Self(19)
    public static let int8 = Self(20)
    public static let int2 = Self(21)
    public static let int4 = Self(23)
    public static let text = Self(25)
    public static let oid = Self(26)
    public static let json = Self(114)
    public static let float4 = Self(700)
    public static let float8 = Self(701)
    public static let unknown = Self(705)
    public static let bpchar = Self(1042)
    public static let varchar = Self(1043)
    public static let timestamp = Self(1114)
    public static let timestamptz = Self(1184)
    public static let numeric = Self(1700)
    public static let uuid = Self(2950)
    public static let jsonb = Self(3802)

    public var description: String {
        switch self {
        case .bool: "bool"
        case .bytea: "bytea"
        case .char: "char"
        case .name: "name"
        case .int8: "int8"
        case .int2: "int2"
        case .int4: "int4"
        case .text: "text"
        case .oid: "oid"
        case .json: "json"
        case .float4: "float4"
        case .float8: "float8"
        case .unknown: "unknown"
        case .bpchar: "bpchar"
        case .varchar: "varchar"
        case .timestamp: "timestamp"
        case .timestamptz: "timestamptz"
        case .numeric: "numeric"
        case .uuid: "uuid"
        case .jsonb: "jsonb"
        default: "oid \(rawValue)"
        }
    }
}

/// The wire form of one parameter: text (server input syntax) or raw binary (bytea only).
public enum PostgresEncodedValue: Sendable, Equatable {
    case text(String)
    case binary([UInt8])
}

/// A Swift value that can be sent as a statement parameter.
///
/// `postgresDataType` is declared to the server with the statement (so it never has to
/// guess); `nil` from `postgresEncode()` means SQL NULL (that is what `Optional` does).
public protocol PostgresEncodable: Sendable {
    static var postgresDataType: PostgresDataType { get }
    func postgresEncode() throws -> PostgresEncodedValue?
}

/// A Swift value that can be read from a result column (results are always in text format).
public protocol PostgresDecodable {
    /// `text` is nil for SQL NULL. Throw `PostgresDecodingFailure` on mismatch: the row
    /// turns it into a `PostgresError` naming the column and types.
    static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Self
}

public typealias PostgresCodable = PostgresEncodable & PostgresDecodable

/// Why one value could not be decoded (wrapped into `PostgresError(kind: .decoding)`).
public struct PostgresDecodingFailure: Error, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

@inline(__always)
func requireValue(_ text: String?, _ type: PostgresDataType, accepted: Set<PostgresDataType>) throws -> String {
    guard let text else { throw PostgresDecodingFailure("value is NULL (decode as an Optional)") }
    guard accepted.contains(type) else { throw PostgresDecodingFailure("type mismatch") }
    return text
}

private let stringTypes: Set<PostgresDataType> = [.text, .varchar, .bpchar, .name, .char, .unknown]
private let intTypes: Set<PostgresDataType> = [.int2, .int4, .int8]

// MARK: Optional = NULL

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresDataType: PostgresDataType { Wrapped.postgresDataType }
    public func postgresEncode() throws -> PostgresEncodedValue? {
        switch self {
        case .none: nil
        case .some(let w): try w.postgresEncode()
        }
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Self {
        guard let text else { return nil }
        return try Wrapped.postgresDecode(text, type: type)
    }
}

// MARK: Scalars

extension String: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .text }
    public func postgresEncode() throws -> PostgresEncodedValue? {
        if utf8.contains(0) { throw PostgresError(kind: .encoding, message: "text cannot contain NUL characters") }
        return .text(self)
    }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> String {
        try requireValue(text, type, accepted: stringTypes)
    }
}

extension Int: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .int8 }
    public func postgresEncode() throws -> PostgresEncodedValue? { .text(String(self)) }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Int {
        guard let v = Int(try requireValue(text, type, accepted: intTypes)) else { throw PostgresDecodingFailure("not an integer") }
        return v
    }
}

extension Int64: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .int8 }
    public func postgresEncode() throws -> PostgresEncodedValue? { .text(String(self)) }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Int64 {
        guard let v = Int64(try requireValue(text, type, accepted: intTypes)) else { throw PostgresDecodingFailure("not an integer") }
        return v
    }
}

extension Int32: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .int4 }
    public func postgresEncode() throws -> PostgresEncodedValue? { .text(String(self)) }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Int32 {
        guard let v = Int32(try requireValue(text, type, accepted: [.int2, .int4])) else { throw PostgresDecodingFailure("not an int4") }
        return v
    }
}

extension Bool: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .bool }
    public func postgresEncode() throws -> PostgresEncodedValue? { .text(self ? "t" : "f") }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Bool {
        switch try requireValue(text, type, accepted: [.bool]) {
        case "t": return true
        case "f": return false
        default: throw PostgresDecodingFailure("not a boolean")
        }
    }
}

extension Double: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .float8 }
    public func postgresEncode() throws -> PostgresEncodedValue? {
        if isNaN { return .text("NaN") }
        if isInfinite { return .text(self < 0 ? "-Infinity" : "Infinity") }
        return .text(String(self))  // shortest representation that round-trips
    }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Double {
        guard let v = Double(try requireValue(text, type, accepted: [.float4, .float8])) else { throw PostgresDecodingFailure("not a float") }
        return v
    }
}

// MARK: numeric <-> Decimal (exact, through text)

extension Decimal: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .numeric }
    public func postgresEncode() throws -> PostgresEncodedValue? {
        .text(PostgresNumeric.format(self))
    }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Decimal {
        let t = try requireValue(text, type, accepted: intTypes.union([.numeric]))
        do { return try PostgresNumeric.parse(t) } catch let e as PostgresError { throw PostgresDecodingFailure(e.message) }
    }
}

/// Exact conversions between PostgreSQL `numeric` text and `Foundation.Decimal`.
/// No `Double` is involved; values that `Decimal` cannot hold exactly (more than 38
/// significant digits, ±Infinity) are errors instead of being rounded.
public enum PostgresNumeric {
    /// Parses numeric text such as `-12.50`, `0`, `1e-3`, `NaN`.
    public static func parse(_ text: String) throws -> Decimal {
        func bad(_ why: String) -> PostgresError {
            PostgresError(kind: .decoding, message: "invalid numeric '\(text.prefix(60))': \(why)")
        }
        let s = Array(text.utf8)
        if text == "NaN" { return .nan }
        var i = 0
        var negative = false
        if i < s.count, s[i] == UInt8(ascii: "-") || s[i] == UInt8(ascii: "+") {
            negative = s[i] == UInt8(ascii: "-")
            i += 1
        }
        var digits: [UInt8] = []
        var fractionDigits = 0
        var seenPoint = false
        var seenDigit = false
        while i < s.count {
            let c = s[i]
            if c >= 48 && c <= 57 {
                seenDigit = true
                if !(digits.isEmpty && c == 48) { digits.append(c - 48) }  // skip leading zeros
                if seenPoint { fractionDigits += 1 }
            } else if c == UInt8(ascii: ".") && !seenPoint {
                seenPoint = true
            } else {
                break
            }
            i += 1
        }
        guard seenDigit else { throw bad("no digits") }
        var exponent = 0
        if i < s.count, s[i] == UInt8(ascii: "e") || s[i] == UInt8(ascii: "E") {
            i += 1
            let rest = String(decoding: s[i...], as: UTF8.self)
            guard let e = Int(rest), abs(e) < 1000 else { throw bad("bad exponent") }
            exponent = e
            i = s.count
        }
        guard i == s.count else { throw bad("unexpected character") }
        exponent -= fractionDigits
        // Trailing zeros carry no value: fold them into the exponent.
        while let last = digits.last, last == 0 {
            digits.removeLast()
            exponent += 1
        }
        if digits.isEmpty { return Decimal(0) }
        guard digits.count <= 38 else { throw bad("more than 38 significant digits cannot be held exactly by Decimal") }
        guard exponent >= -128, exponent <= 127 else { throw bad("exponent out of Decimal's range") }
        var mantissa = Decimal(0)
        for d in digits { mantissa = mantissa * 10 + Decimal(Int(d)) }
        return Decimal(sign: negative ? .minus : .plus, exponent: exponent, significand: mantissa)
    }

    /// Plain decimal notation accepted by `numeric` input (never scientific notation).
    public static func format(_ value: Decimal) -> String {
        if value.isNaN { return "NaN" }
        return value.description
    }
}

// MARK: timestamptz <-> Date (microseconds, UTC)

extension Date: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .timestamptz }
    public func postgresEncode() throws -> PostgresEncodedValue? {
        .text(PostgresTimestamp.format(self))
    }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Date {
        let t = try requireValue(text, type, accepted: [.timestamptz, .timestamp])
        do { return try PostgresTimestamp.parse(t) } catch let e as PostgresError { throw PostgresDecodingFailure(e.message) }
    }
}

/// Conversions between `Date` and PostgreSQL's ISO timestamp text, with microsecond
/// precision (PostgreSQL's own). Integer arithmetic only; no DateFormatter.
public enum PostgresTimestamp {
    /// Microseconds between 1970-01-01 and 2001-01-01 (Date's reference date).
    static let referenceOffsetMicros: Int64 = 978_307_200 * 1_000_000

    /// `2024-05-06 07:08:09.123456+00` (UTC), ` BC` suffix for years before 1.
    public static func format(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSinceReferenceDate * 1_000_000).rounded()) + referenceOffsetMicros
        let (secs, frac) = floorDivMod(micros, 1_000_000)
        let (days, secOfDay) = floorDivMod(secs, 86_400)
        let (y, m, d) = CivilCalendar.civilFromDays(days)
        let year = y <= 0 ? 1 - y : y
        var s = pad(year, 4) + "-" + pad(m, 2) + "-" + pad(d, 2) + " "
        s += pad(secOfDay / 3600, 2) + ":" + pad(secOfDay % 3600 / 60, 2) + ":" + pad(secOfDay % 60, 2)
        s += "." + pad(frac, 6) + "+00"
        if y <= 0 { s += " BC" }
        return s
    }

    /// Parses `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]` (the ISO DateStyle output).
    /// Without an offset the value is taken as UTC (plain `timestamp`).
    public static func parse(_ text: String) throws -> Date {
        func bad(_ why: String) -> PostgresError {
            PostgresError(kind: .decoding, message: "invalid timestamp '\(text.prefix(60))': \(why)")
        }
        var s = Substring(text)
        var bc = false
        if s.hasSuffix(" BC") { bc = true; s = s.dropLast(3) }
        if s == "infinity" || s == "-infinity" { throw bad("infinite timestamps have no Date") }
        let b = Array(s.utf8)
        var i = 0
        func number(maxDigits: Int = 9, minDigits: Int = 1) throws -> Int64 {
            var v: Int64 = 0
            let start = i
            while i < b.count, i - start < maxDigits, b[i] >= 48, b[i] <= 57 {
                v = v * 10 + Int64(b[i] - 48)
                i += 1
            }
            guard i - start >= minDigits else { throw bad("expected a number at offset \(start)") }
            return v
        }
        func expect(_ c: Character) throws {
            guard i < b.count, b[i] == c.asciiValue! else { throw bad("expected '\(c)' at offset \(i)") }
            i += 1
        }
        var year = try number(minDigits: 4)
        try expect("-")
        let month = try number(maxDigits: 2, minDigits: 2)
        try expect("-")
        let day = try number(maxDigits: 2, minDigits: 2)
        guard i < b.count, b[i] == UInt8(ascii: " ") || b[i] == UInt8(ascii: "T") else { throw bad("expected time") }
        i += 1
        let hour = try number(maxDigits: 2, minDigits: 2)
        try expect(":")
        let minute = try number(maxDigits: 2, minDigits: 2)
        try expect(":")
        let second = try number(maxDigits: 2, minDigits: 2)
        var micros: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            let f = try number(maxDigits: 6)
            var scale = 6 - (i - start)
            micros = f
            while scale > 0 { micros *= 10; scale -= 1 }
            guard i == b.count || b[i] < 48 || b[i] > 57 else { throw bad("more than 6 fractional digits") }
        }
        var offsetSeconds: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign: Int64 = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            var off = try number(maxDigits: 2, minDigits: 2) * 3600
            if i < b.count, b[i] == UInt8(ascii: ":") {
                i += 1
                off += try number(maxDigits: 2, minDigits: 2) * 60
                if i < b.count, b[i] == UInt8(ascii: ":") {
                    i += 1
                    off += try number(maxDigits: 2, minDigits: 2)
                }
            }
            offsetSeconds = sign * off
        }
        guard i == b.count else { throw bad("unexpected trailing characters") }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else {
            throw bad("field out of range")
        }
        if bc { year = 1 - year }
        let days = CivilCalendar.daysFromCivil(year, month, day)
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        let epochMicros = secs * 1_000_000 + micros
        return Date(timeIntervalSinceReferenceDate: Double(epochMicros - referenceOffsetMicros) / 1_000_000)
    }

    private static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    private static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        var q = a / b
        var r = a % b
        if r < 0 { q -= 1; r += b }
        return (q, r)
    }

}

// MARK: uuid, jsonb, bytea

extension UUID: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .uuid }
    public func postgresEncode() throws -> PostgresEncodedValue? { .text(uuidString.lowercased()) }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> UUID {
        guard let u = UUID(text: try requireValue(text, type, accepted: [.uuid])) else { throw PostgresDecodingFailure("not a UUID") }
        return u
    }
}

/// A JSON document stored as `jsonb`, kept as its raw text. Note that `jsonb` normalises
/// what it stores (whitespace, key order, duplicate keys), so compare decoded values, not text.
public struct PostgresJSON: PostgresCodable, Hashable, CustomStringConvertible {
    public var raw: String
    public init(_ raw: String) { self.raw = raw }
    public init(encoding value: some Encodable) throws {
        self.raw = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(raw.utf8))
    }
    public var data: Data { Data(raw.utf8) }
    public var description: String { raw }

    public static var postgresDataType: PostgresDataType { .jsonb }
    public func postgresEncode() throws -> PostgresEncodedValue? { .text(raw) }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> PostgresJSON {
        PostgresJSON(try requireValue(text, type, accepted: [.jsonb, .json]))
    }
}

enum PostgresBytea {
    /// Decodes the hex output format `\x0a1b...`.
    static func decodeHex(_ text: String) throws -> [UInt8] {
        let b = Array(text.utf8)
        guard b.count >= 2, b[0] == UInt8(ascii: "\\"), b[1] == UInt8(ascii: "x"), b.count % 2 == 0 else {
            throw PostgresDecodingFailure("bytea is not in hex format")
        }
        func nibble(_ c: UInt8) throws -> UInt8 {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: throw PostgresDecodingFailure("bad hex digit in bytea")
            }
        }
        var out = [UInt8]()
        out.reserveCapacity((b.count - 2) / 2)
        var i = 2
        while i < b.count {
            out.append(try nibble(b[i]) << 4 | nibble(b[i + 1]))
            i += 2
        }
        return out
    }
}

extension Array: PostgresEncodable where Element == UInt8 {
    public static var postgresDataType: PostgresDataType { .bytea }
    public func postgresEncode() throws -> PostgresEncodedValue? { .binary(self) }
}

extension Array: PostgresDecodable where Element == UInt8 {
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> [UInt8] {
        try PostgresBytea.decodeHex(try requireValue(text, type, accepted: [.bytea]))
    }
}

extension Data: PostgresCodable {
    public static var postgresDataType: PostgresDataType { .bytea }
    public func postgresEncode() throws -> PostgresEncodedValue? { .binary([UInt8](self)) }
    public static func postgresDecode(_ text: String?, type: PostgresDataType) throws -> Data {
        Data(try PostgresBytea.decodeHex(try requireValue(text, type, accepted: [.bytea])))
    }
}
