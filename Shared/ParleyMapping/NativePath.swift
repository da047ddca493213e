import ParleyEnvelope
import ParleyJSON

/// A native field path from a mapping table, parsed once: `billing.city`, `MailAddress.ZipCode`,
/// or a line member `line_items[].sku` (the array `line_items`, then `sku` inside each element).
struct NativePath: Sendable, Hashable, CustomStringConvertible {
    /// The path to the array of lines (`["line_items"]`), `nil` for a path outside the lines.
    let array: [String]?
    /// The object path: from the record for a plain path, from the line element for a line path.
    let components: [String]
    let text: String

    init(_ text: String) {
        self.text = text
        if let range = text.range(of: "[].") {
            array = text[..<range.lowerBound].split(separator: ".").map(String.init)
            components = text[range.upperBound...].split(separator: ".").map(String.init)
        } else {
            array = nil
            components = text.split(separator: ".").map(String.init)
        }
    }

    var description: String { text }

    /// The text of a line member path for line `index`: `line_items[2].sku`.
    func text(line index: Int) -> String {
        guard let array else { return text }
        return "\(array.joined(separator: "."))[\(index)].\(components.joined(separator: "."))"
    }

    /// The value at `components` in `object`: `nil` when a member on the way is missing,
    /// `.null` when one on the way is `null` (an empty address means every member is empty).
    static func value(at components: [String], in object: JSONObject) -> JSONValue? {
        var current = JSONValue.object(object)
        for component in components {
            switch current {
            case .object(let o):
                guard let next = o[component] else { return nil }
                current = next
            case .null:
                return .null
            default:
                return nil
            }
        }
        return current
    }
}
