import Foundation
import ParleyCore

/// A JSON value as the simulators store and serve it. Records are JSON objects so each
/// simulator keeps exactly the members its contract names, in its own spelling.
///
/// Integers stay integers (`.int`), so ids and quantities never come back as `5.0`.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .number(let d):
            // Whole numbers as integers: `25`, not `25.0`.
            if d == d.rounded(), abs(d) < 1e15 { try c.encode(Int64(d)) } else { try c.encode(d) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var isNull: Bool { self == .null }

    /// Any JSON number as a Double.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .number(let d): d
        default: nil
        }
    }

    /// A JSON number that is a whole number.
    public var intValue: Int64? {
        switch self {
        case .int(let i): i
        case .number(let d) where d == d.rounded() && abs(d) < 9e15: Int64(d)
        default: nil
        }
    }

    /// A JSON number as an exact decimal (through its shortest text, so `0.1` is `0.1`).
    public var decimalValue: Decimal? {
        switch self {
        case .int(let i): Decimal(i)
        case .number(let d): Decimal(string: "\(d)")
        default: nil
        }
    }

    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// A money or rate value as a JSON number (two or fewer decimals after rounding).
    public static func decimal(_ d: Decimal) -> JSONValue {
        // Through the decimal's text: NSDecimalNumber.doubleValue is off in the last bit on
        // Linux (123.45 became 123.45000000000002, which then fails the two-decimals rule).
        let text = "\(d)"
        if d == d.roundedHalfAwayFromZero(scale: 0), let i = Int64(text) { return .int(i) }
        return .number(Double(text) ?? NSDecimalNumber(decimal: d).doubleValue)
    }
}

extension Decimal {
    /// Two decimals, as a plain string: `124.5` → `"124.50"`.
    public var moneyString: String {
        let r = roundedHalfAwayFromZero(scale: 2)
        let negative = r < 0
        let cents = NSDecimalNumber(decimal: (negative ? -r : r) * 100).int64Value
        let text = "\(cents / 100).\(String(format: "%02lld", cents % 100))"
        return negative ? "-" + text : text
    }
}

public enum JSONCoding {
    /// Stable output: sorted keys, no escaped slashes.
    public static func encode(_ value: some Encodable) -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? e.encode(value)) ?? Data("null".utf8)
    }

    public static func decode(_ data: Data) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: data)
    }
}
