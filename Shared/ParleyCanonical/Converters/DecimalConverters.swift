import ParleyCore
import Foundation
import ParleyEnvelope
import ParleyJSON

// Numbers. Canonical numbers are always JSON numbers spelt as `Decimal.description` (shortest
// exact text: `12.5`, never `12.50` or `1.25e1`), so the canonical hash does not depend on how
// a system happened to spell a value. Money never goes through `Double`.

// MARK: - Decimal helpers

extension Decimal {
    /// Number of decimals after the point in the shortest spelling (`12.5` → 1, `12` → 0).
    var decimalPlaces: Int {
        let text = description
        guard let dot = text.firstIndex(of: ".") else { return 0 }
        return text.distance(from: text.index(after: dot), to: text.endIndex)
    }
}

enum DecimalText {
    /// The canonical JSON number for a decimal value.
    static func canonical(_ value: Decimal) -> JSONValue {
        .number(JSONNumber(value)!)  // Decimal values here are never NaN
    }

    /// `value` rounded to two decimals (half away from zero) and written with exactly two
    /// decimals: `12.5` → `"12.50"`, `-0.125` → `"-0.13"`.
    static func twoDecimals(_ value: Decimal) -> String {
        var text = value.roundedHalfAwayFromZero(scale: 2).description
        if text == "-0" { text = "0" }
        guard let dot = text.firstIndex(of: ".") else { return text + ".00" }
        let fraction = text.distance(from: text.index(after: dot), to: text.endIndex)
        return text + String(repeating: "0", count: max(0, 2 - fraction))
    }

    /// Parses decimal text as ERPs and webshops write it: plain notation `-?digits[.digits]`,
    /// surrounding whitespace ignored (`" 12.5 "` is `12.5`), leading zeros allowed (`007.50`).
    /// Rejected: empty text, a decimal comma (`12,5`), exponents (`1e3`), a sign `+`, a bare
    /// point (`.5`, `5.`), thousands separators, and values `Decimal` cannot hold exactly
    /// (more than 38 significant digits).
    static func parse(_ raw: String) throws(ConversionError) -> Decimal {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ConversionError("\"\(raw)\" is not a decimal number (it is empty)") }
        let bytes = Array(text.utf8)
        var i = 0
        if bytes[0] == UInt8(ascii: "-") { i = 1 }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        let intStart = i
        while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        let intDigits = i - intStart
        var fractionDigits = 0
        var separator: UInt8?
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: ",") {
            separator = bytes[i]
            i += 1
            let start = i
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
            fractionDigits = i - start
        }
        let wellFormed = i == bytes.count && intDigits > 0 && (separator == nil || fractionDigits > 0)
        if wellFormed, separator == UInt8(ascii: ",") {
            throw ConversionError("\"\(raw)\" is not a decimal number (use a dot)")
        }
        guard wellFormed else {
            if text.contains(where: { $0 == "e" || $0 == "E" }), JSONNumber(text) != nil {
                throw ConversionError("\"\(raw)\" is not a decimal number (write it without an exponent)")
            }
            throw ConversionError("\"\(raw)\" is not a decimal number")
        }
        // Strip leading zeros so the text is a JSON number, then let JSONNumber check that
        // Decimal holds it exactly.
        var body = Substring(text)
        let negative = body.hasPrefix("-")
        if negative { body = body.dropFirst() }
        while body.count > 1, body.first == "0", body.dropFirst().first != "." { body = body.dropFirst() }
        guard let value = JSONNumber((negative ? "-" : "") + body)?.decimal else {
            throw ConversionError("\"\(raw)\" has more digits than a decimal can hold exactly (38 significant digits)")
        }
        return value
    }

    /// The exact value of a JSON number value; errors name what was there instead.
    static func number(_ value: JSONValue, _ what: String = "a number") throws(ConversionError) -> Decimal {
        guard case .number(let number) = value else {
            if case .string = value {
                throw ConversionError("expected \(what), got the string \(quoted(value)) (numbers in strings need decimalString)")
            }
            throw ConversionError("expected \(what), got \(value.typeName) \(quoted(value))")
        }
        guard let decimal = number.decimal else {
            throw ConversionError("\(number.text) cannot be held exactly as a decimal (more than 38 significant digits or out of range)")
        }
        return decimal
    }
}

// MARK: - Converters

/// `decimal`: native JSON number ⇄ canonical JSON number, exact both ways. Rejects strings and
/// numbers `Decimal` cannot hold exactly (`1e400`).
public struct DecimalConverter: Converter {
    public let name = "decimal"
    public init() {}
    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in DecimalText.canonical(try DecimalText.number(v)) }
    }
    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in DecimalText.canonical(try DecimalText.number(v)) }
    }
}

/// `decimalString`: native decimal text (`"12.50"`, `" 12.5 "`) ⇄ canonical JSON number.
/// See ``DecimalText/parse(_:)`` for what is accepted. Writes the shortest exact text (`"12.5"`).
public struct DecimalStringConverter: Converter {
    public let name = "decimalString"
    public init() {}
    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            DecimalText.canonical(try DecimalText.parse(try expectString(v, "a decimal number")))
        }
    }
    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in .string(try DecimalText.number(v).description) }
    }
}

/// `money` / `moneyString`: a native amount in kroner/euros (JSON number, or decimal text for
/// `moneyString`) ⇄ canonical JSON number. Reading is exact; writing rounds to two decimals,
/// halves away from zero, and always writes two decimals (`12.5` → `12.50`): the native boundary
/// is where øre rounding happens.
public struct MoneyConverter: Converter {
    public enum NativeForm: Sendable { case number, string }
    public let name: String
    public let form: NativeForm
    public init(form: NativeForm) {
        self.form = form
        self.name = form == .number ? "money" : "moneyString"
    }
    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in DecimalText.canonical(try readNativeMoney(v, form)) }
    }
    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in writeNativeMoney(try DecimalText.number(v), form) }
    }
}

func readNativeMoney(_ value: JSONValue, _ form: MoneyConverter.NativeForm) throws(ConversionError) -> Decimal {
    switch form {
    case .number: try DecimalText.number(value, "an amount as a number")
    case .string: try DecimalText.parse(try expectString(value, "an amount"))
    }
}

func writeNativeMoney(_ value: Decimal, _ form: MoneyConverter.NativeForm) -> JSONValue {
    let text = DecimalText.twoDecimals(value)
    switch form {
    case .number: return .number(JSONNumber(text)!)
    case .string: return .string(text)
    }
}

/// `minorUnits`: native integer amount in minor units (øre, cents: `1250`) ⇄ canonical amount
/// (`12.5`). Reading rejects fractions of a minor unit (`12.5`); writing rounds the canonical
/// amount to two decimals, halves away from zero, first (`12.345` → `1235`).
public struct MinorUnitsConverter: Converter {
    public let name = "minorUnits"
    public init() {}
    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            let units = try DecimalText.number(v, "an integer amount in minor units")
            guard units == units.roundedHalfAwayFromZero(scale: 0) else {
                throw ConversionError("\(quoted(v)) is not a whole number of minor units")
            }
            return DecimalText.canonical(units / 100)
        }
    }
    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in
            let amount = try DecimalText.number(v).roundedHalfAwayFromZero(scale: 2)
            return DecimalText.canonical(amount * 100)
        }
    }
}

/// `percent`: native percent (`25`, `12.5`) ⇄ canonical fraction (`0.25`, `0.125`), exact.
/// VAT rates are canonical fractions; use this for systems that write percents.
public struct PercentConverter: Converter {
    public let name = "percent"
    public init() {}
    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in DecimalText.canonical(try DecimalText.number(v, "a percent") / 100) }
    }
    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in DecimalText.canonical(try DecimalText.number(v) * 100) }
    }
}

/// `integerString`: native JSON integer (PowerOffice Go `SalesOrderNo`, int64) ⇄ canonical
/// text of its decimal digits (`6065` ⇄ `"6065"`), for canonical text fields that some systems
/// hold as numbers (`orderNumber`).
///
/// - to canonical: a JSON number with a whole value that fits a 64-bit integer, written in
///   plain decimal digits, `-` for a negative value, no leading zeros (`6065`, `6065.0` and
///   `6.065e3` all read as `"6065"`). A fraction (`12.5`), a string, or a value outside the
///   64-bit range is an error.
/// - to native: only text in exactly that form, so every value written reads back as the same
///   text. Leading zeros (`"007"`), a `+`, surrounding whitespace, `"-0"` and any non-digit
///   (`"WEB-1001"`, `"12.5"`, `""`) are errors, never stripped or guessed at: `"007"` written as
///   7 would come back as `"7"`, a different order number.
public struct IntegerStringConverter: Converter {
    public let name = "integerString"
    public init() {}

    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            let value = try DecimalText.number(v, "an integer as a JSON number")
            guard value == value.roundedHalfAwayFromZero(scale: 0) else {
                throw ConversionError("\(quoted(v)) is not a whole number")
            }
            guard let integer = Int64(value.description) else {
                throw ConversionError("\(quoted(v)) does not fit a 64-bit integer")
            }
            return .string(String(integer))
        }
    }

    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in
            let text = try expectString(v, "integer text")
            let digits = text.hasPrefix("-") ? text.utf8.dropFirst() : text.utf8[...]
            guard !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw ConversionError("\"\(text)\" is not an integer (only the digits 0-9, with - for a negative number, can be written as a number)")
            }
            guard digits.count == 1 || digits.first != 0x30 else {
                throw ConversionError("\"\(text)\" has a leading zero, which a number cannot keep")
            }
            guard text != "-0" else { throw ConversionError("\"-0\" would be written as 0 and read back as \"0\"") }
            guard let integer = Int64(text) else {
                throw ConversionError("\"\(text)\" does not fit a 64-bit integer")
            }
            return .number(JSONNumber(integer))
        }
    }
}
