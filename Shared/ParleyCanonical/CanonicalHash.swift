import Foundation
import ParleyCore
import ParleyEnvelope
import ParleyJSON

/// A stable SHA-256 (lower-case hex) of a set of canonical fields of an entity: the fields a
/// system carries. The link service keeps one per member to tell a real change from an echo
/// (DESIGN rule 5), so the hash must not move when nothing meaningful changed.
///
/// The hashed document is a flat JSON object: field path → normalised value, for every field
/// of the set that is carried; serialised with sorted keys (UTF-8 byte order), no white space.
///
/// Normalisation:
/// - **Text** is trimmed of leading and trailing Unicode white space. **An absent field and an
///   empty (or all-blank) text hash the same**: both mean "no value", and systems differ in
///   which one they report for an empty input box.
/// - **Decimals** are written in one form: no exponent, no leading zeros, no trailing
///   fractional zeros, `-0` as `0` (`10`, `10.0`, `1e1` and `10.00` are all `10`).
///   (Exponents beyond ±64 keep the form `<digits>e<exponent>` so a hostile number cannot
///   blow up the document.)
/// - **References** are lower-cased (`<entity>/<uuid>`).
/// - `null` is the same as absent. Key order never matters.
/// - **Lines**: the array keeps its order (line order is meaningful); each line object is
///   normalised the same way. When the set names line fields (`lines.sku`, ...), with or
///   without `lines`, each line keeps only those members; `lines` alone means every member.
///   An empty array is kept: "no lines" differs from "lines not carried".
///
/// Fields outside the set never affect the hash.
public enum CanonicalHash {
    /// The hash of `fields` of `entity`.
    public static func hex<E: CanonicalEntity>(of entity: E, fields: some Sequence<CanonicalField>) -> String {
        hex(flat: entity.canonicalFieldValues, entity: E.entityType, fields: fields)
    }

    /// The hash of `fields` of a canonical JSON object (see ``CanonicalEntity``).
    public static func hex(
        ofCanonicalJSON json: JSONValue, entity: CanonicalEntityType, fields: some Sequence<CanonicalField>
    ) throws(CanonicalDecodingError) -> String {
        hex(flat: try CanonicalJSON.flatten(json, entity: entity), entity: entity, fields: fields)
    }

    /// The hash of fields named by path; `nil` when a path is unknown for the entity.
    public static func hex<E: CanonicalEntity>(of entity: E, paths: some Sequence<String>) -> String? {
        var fields: [CanonicalField] = []
        for path in paths {
            guard let field = CanonicalField.named(path, entity: E.entityType) else { return nil }
            fields.append(field)
        }
        return hex(of: entity, fields: fields)
    }

    /// The normalised document that is hashed, for tests and debugging.
    public static func document(
        flat: [String: JSONValue], entity: CanonicalEntityType, fields: some Sequence<CanonicalField>
    ) -> JSONValue {
        var selected: Set<String> = []
        var lineMembers: Set<String>? = nil  // nil: no line field named
        var allLineMembers = false
        for field in fields {
            precondition(field.entity == entity, "\(field) is not a field of \(entity)")
            if let member = field.lineMember {
                lineMembers = (lineMembers ?? []).union([member])
            } else if field.kind == .lines {
                allLineMembers = true
            } else {
                selected.insert(field.path)
            }
        }
        var doc = JSONObject()
        for path in selected.sorted() {
            guard let value = flat[path], let field = CanonicalField.named(path, entity: entity),
                let normal = normalize(value, kind: field.kind)
            else { continue }
            doc[path] = normal
        }
        if allLineMembers || lineMembers != nil, let lines = flat["lines"] {
            let keep: Set<String>? = lineMembers  // named members, else (only `lines` named) all
            if case .array(let elements) = lines {
                doc["lines"] = .array(elements.map { normalizeLine($0, keep: keep) })
            } else if let normal = normalize(lines, kind: .text) {
                doc["lines"] = normal  // not canonical; still hash something stable
            }
        }
        return .object(doc)
    }

    /// The hash of `fields` of flat canonical values (``CanonicalJSON/flatten(_:entity:)``).
    public static func hex(flat: [String: JSONValue], entity: CanonicalEntityType, fields: some Sequence<CanonicalField>) -> String {
        SHA256.hex(document(flat: flat, entity: entity, fields: fields).serialized(options: [.sortedKeys]))
    }

    static func normalizeLine(_ line: JSONValue, keep: Set<String>?) -> JSONValue {
        guard case .object(let object) = line else { return normalize(line, kind: .text) ?? .null }
        var out = JSONObject()
        for (key, value) in object.membersSortedByKey {
            if let keep, !keep.contains(key) { continue }
            let kind = CanonicalField.named("lines.\(key)", entity: .order)?.kind ?? .text
            if let normal = normalize(value, kind: kind) { out[key] = normal }
        }
        return .object(out)
    }

    /// The normalised value, `nil` for "no value" (null, empty text).
    public static func normalize(_ value: JSONValue, kind: CanonicalField.Kind) -> JSONValue? {
        switch value {
        case .null:
            return nil
        case .bool:
            return value
        case .number(let n):
            return .number(JSONNumber(uncheckedCanonical: canonicalDecimalText(n.text)))
        case .string(let s):
            let trimmed = s.trimmingWhitespace()
            if trimmed.isEmpty { return nil }
            return .string(kind == .reference ? trimmed.lowercased() : trimmed)
        case .array(let elements):
            return .array(elements.map { normalize($0, kind: kind) ?? .null })
        case .object(let object):
            var out = JSONObject()
            for (key, member) in object.membersSortedByKey {
                if let normal = normalize(member, kind: kind) { out[key] = normal }
            }
            return .object(out)
        }
    }

    /// One spelling per value for JSON number text (see the type's notes).
    public static func canonicalDecimalText(_ text: String) -> String {
        var bytes = Array(text.utf8)[...]
        var negative = false
        if bytes.first == UInt8(ascii: "-") {
            negative = true
            bytes = bytes.dropFirst()
        }
        var digits: [UInt8] = []
        var exponent = 0
        var afterPoint = false
        var index = bytes.startIndex
        while index < bytes.endIndex, bytes[index] != UInt8(ascii: "e"), bytes[index] != UInt8(ascii: "E") {
            let b = bytes[index]
            if b == UInt8(ascii: ".") {
                afterPoint = true
            } else {
                digits.append(b)
                if afterPoint { exponent -= 1 }
            }
            index += 1
        }
        if index < bytes.endIndex {
            let expText = String(decoding: bytes[(index + 1)...], as: UTF8.self)
            // Absurd exponents: clamp so the arithmetic cannot overflow (no real value has them).
            let e = Int(expText.hasPrefix("+") ? String(expText.dropFirst()) : expText) ?? (expText.hasPrefix("-") ? -1_000_000 : 1_000_000)
            exponent += max(-1_000_000, min(1_000_000, e))
        }
        while let f = digits.first, f == UInt8(ascii: "0") { digits.removeFirst() }
        while let l = digits.last, l == UInt8(ascii: "0") {
            digits.removeLast()
            exponent += 1
        }
        if digits.isEmpty { return "0" }
        let sign = negative ? "-" : ""
        let digitText = String(decoding: digits, as: UTF8.self)
        // value = digits × 10^exponent
        if exponent >= 0 {
            if exponent > 64 { return "\(sign)\(digitText)e\(exponent)" }
            return sign + digitText + String(repeating: "0", count: exponent)
        }
        let fractionLength = -exponent
        if fractionLength > 64 + digits.count { return "\(sign)\(digitText)e\(exponent)" }
        if fractionLength >= digits.count {
            return sign + "0." + String(repeating: "0", count: fractionLength - digits.count) + digitText
        }
        let split = digits.count - fractionLength
        return sign + String(decoding: digits[..<split], as: UTF8.self) + "."
            + String(decoding: digits[split...], as: UTF8.self)
    }
}

extension JSONNumber {
    /// Text produced by ``CanonicalHash/canonicalDecimalText(_:)`` is valid JSON number text.
    init(uncheckedCanonical text: String) {
        self = JSONNumber(text)!
    }
}
