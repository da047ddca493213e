import ParleyCanonical
import ParleyEnvelope
import ParleyJSON

/// Why a record could not be mapped or may not be written: the system, the entity, the field
/// and the reason, e.g.
/// `customwebshop product field regular_price (salesPriceExclVat): "12,5" is not a decimal number (use a dot)`.
///
/// Every mapping failure is permanent for the message at hand (the same input fails the same
/// way), so the mapping service dead-letters the message or reports the entity as failed; it is
/// never retried on its own.
public struct MappingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The native record is not an object, or lacks its id.
        case invalidRecord
        /// A converter rejected a value (`"12,5"` as a price, an unknown country).
        case conversion
        /// The canonical values are not valid canonical JSON (wrong kind, unknown field).
        case invalidCanonical
        /// A reference has no record in the target yet (the link service parks such entities;
        /// the mapping service never writes a dangling reference).
        case unresolvedReference
        /// The native payload breaks the target's contract or rules (`Name` missing, too long,
        /// `Allowance` out of range).
        case validation
    }

    public var kind: Kind
    public var system: SystemName
    public var entity: CanonicalEntityType
    /// The native path (with the line index, `line_items[2].price`) or, for canonical
    /// problems, the canonical path; empty for the record as a whole.
    public var field: String
    /// The canonical field the native one maps to, when that helps (`salesPriceExclVat`).
    public var canonicalField: String?
    public var reason: String

    public init(
        _ kind: Kind, system: SystemName, entity: CanonicalEntityType, field: String,
        canonicalField: String? = nil, reason: String
    ) {
        self.kind = kind
        self.system = system
        self.entity = entity
        self.field = field
        self.canonicalField = canonicalField
        self.reason = reason
    }

    public var description: String {
        var text = "\(system) \(entity.rawValue)"
        if !field.isEmpty {
            text += " field \(field)"
            if let canonicalField, canonicalField != field { text += " (\(canonicalField))" }
        }
        return text + ": " + reason
    }
}
