/// A natural key: what matches a record in a target system to an existing global entity
/// before Parley creates one (DESIGN rule 3). Values are already normalised; empty or invalid
/// values never become keys, so they never match.
public enum NaturalKey: Sendable, Hashable, CustomStringConvertible {
    /// A Norwegian organisation number, 9 digits with a valid mod-11 check digit.
    case organizationNumber(String)
    /// An e-mail address, trimmed and lower-cased.
    case email(String)
    /// A product SKU (PowerOffice Go `Code`), trimmed, case kept.
    case sku(String)

    public var value: String {
        switch self {
        case .organizationNumber(let v), .email(let v), .sku(let v): v
        }
    }

    public var description: String {
        switch self {
        case .organizationNumber(let v): "organizationNumber:\(v)"
        case .email(let v): "email:\(v)"
        case .sku(let v): "sku:\(v)"
        }
    }
}

/// Normalisation of natural-key values.
public enum NaturalKeys {
    /// The organisation number as 9 digits, or `nil` when it is not a valid Norwegian one.
    ///
    /// Everything but the digits is dropped first, so `"NO 923 609 016 MVA"` (the VAT
    /// register form) and `"923 609 016"` both give `923609016`. Then it must be 9 digits
    /// whose check digit passes mod 11 (weights 3 2 7 6 5 4 3 2; check digit = 11 − sum mod 11,
    /// where 11 means 0 and 10 means no valid number exists). Foreign organisation numbers are
    /// not keys (yet): customers without a valid Norwegian number match by e-mail.
    public static func organizationNumber(_ raw: String?) -> String? {
        guard let raw else { return nil }
        let digits = raw.unicodeScalars.filter { $0.value >= 0x30 && $0.value <= 0x39 }
        let text = String(String.UnicodeScalarView(digits))
        return isValidNorwegianOrganizationNumber(text) ? text : nil
    }

    /// Whether `digits` is exactly 9 ASCII digits with a valid mod-11 check digit.
    public static func isValidNorwegianOrganizationNumber(_ digits: String) -> Bool {
        let d = digits.utf8.map { Int($0) - 0x30 }
        guard d.count == 9, d.allSatisfy({ (0...9).contains($0) }) else { return false }
        let weights = [3, 2, 7, 6, 5, 4, 3, 2]
        let sum = zip(d, weights).reduce(0) { $0 + $1.0 * $1.1 }
        var check = 11 - sum % 11
        if check == 11 { check = 0 }
        guard check != 10 else { return false }
        return check == d[8]
    }

    /// The e-mail address trimmed and lower-cased, or `nil` unless it has exactly one `@`
    /// with text on both sides and no white space inside.
    public static func email(_ raw: String?) -> String? {
        guard let raw else { return nil }
        let value = raw.trimmingWhitespace().lowercased()
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
            !value.unicodeScalars.contains(where: \.isWhitespace)
        else { return nil }
        return value
    }

    /// The SKU trimmed (case is significant, as in PowerOffice Go's `Code`), `nil` when empty.
    public static func sku(_ raw: String?) -> String? {
        guard let value = raw?.trimmingWhitespace(), !value.isEmpty else { return nil }
        return value
    }
}

extension Customer {
    /// Candidate keys in matching order: organisation number first, then e-mail. Empty when
    /// neither is a valid key.
    public var naturalKeys: [NaturalKey] {
        var keys: [NaturalKey] = []
        if let org = NaturalKeys.organizationNumber(organizationNumber) { keys.append(.organizationNumber(org)) }
        if let email = NaturalKeys.email(email) { keys.append(.email(email)) }
        return keys
    }
}

extension Product {
    /// The SKU, when there is one. (Orders have no natural key: they are never matched.)
    public var naturalKey: NaturalKey? {
        NaturalKeys.sku(sku).map(NaturalKey.sku)
    }
}

extension StringProtocol {
    /// Without leading and trailing white space and newlines (Unicode white space).
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        var start = scalars.startIndex
        var end = scalars.endIndex
        while start < end, scalars[start].isWhitespace { start = scalars.index(after: start) }
        while start < end {
            let last = scalars.index(before: end)
            guard scalars[last].isWhitespace else { break }
            end = last
        }
        // Most text has nothing to trim: no copy of the scalars then.
        if start == scalars.startIndex && end == scalars.endIndex { return String(self) }
        return String(String.UnicodeScalarView(scalars[start..<end]))
    }
}

extension Unicode.Scalar {
    /// Unicode white space (`White_Space`), with ASCII answered without the property tables:
    /// tab, line feed, vertical tab, form feed, carriage return and space.
    var isWhitespace: Bool {
        isASCII ? value == 0x20 || (0x09...0x0D).contains(value) : properties.isWhitespace
    }
}
