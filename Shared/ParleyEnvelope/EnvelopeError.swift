import ParleyJSON
/// Why bytes are not a valid envelope, or why envelope fields are invalid. Every case names
/// the field (dotted path for nested fields, e.g. `trace.traceparent`) and the reason.
public enum EnvelopeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes are not strict JSON; the parse error carries the byte offset.
    case malformedJSON(JSONParseError)
    /// The document is JSON but not an object.
    case notAnObject(found: String)
    /// A required field is absent.
    case missingField(String)
    /// A field has the wrong JSON type.
    case wrongType(field: String, expected: String, found: String)
    /// A field has the right type but a value that is not allowed.
    case invalidValue(field: String, reason: String)
    /// A well-formed `version` this build cannot read (another major version).
    case unsupportedVersion(Int)

    /// The field the error is about, if any.
    public var field: String? {
        switch self {
        case .malformedJSON, .notAnObject: nil
        case .missingField(let field): field
        case .wrongType(let field, _, _): field
        case .invalidValue(let field, _): field
        case .unsupportedVersion: "version"
        }
    }

    public var description: String {
        switch self {
        case .malformedJSON(let error): "envelope: \(error)"
        case .notAnObject(let found): "envelope: expected a JSON object, found \(found)"
        case .missingField(let field): "envelope: missing required field \"\(field)\""
        case .wrongType(let field, let expected, let found):
            "envelope: field \"\(field)\" must be \(expected), found \(found)"
        case .invalidValue(let field, let reason): "envelope: field \"\(field)\" \(reason)"
        case .unsupportedVersion(let version):
            "envelope: unsupported version \(version) (this build reads version \(Envelope.currentVersion))"
        }
    }

    /// A value quoted for an error message, shortened so a hostile message cannot blow up logs.
    static func quote(_ text: String, limit: Int = 80) -> String {
        let shown = text.count > limit ? text.prefix(limit) + "…" : Substring(text)
        var out = "\""
        for scalar in shown.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
