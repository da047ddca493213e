import Foundation
import ParleyEnvelope
import ParleyJSON

/// A canonical field whose value follows from other fields of the same entity
/// (docs/canonical-model.md, "Derived fields").
///
/// The model keeps one such field: a **person's full name**. For a customer of kind `person`,
/// `name` is `"<firstName> <lastName>"` — what PowerOffice Go's `personName` converter reads,
/// and what the ERP keeps in `name`. A system that carries the first and last name but not the
/// full name (the webshop) cannot change `name` itself, so when its change moves a person's
/// first or last name the link service sets `name` to follow (``FieldMerge``); a system that
/// carries `name` says what it is itself. Without the rule the webshop's first-name edit
/// reached the ERP's contact names and left its `name` as it was.
public struct DerivedField: Sendable {
    /// The derived field's path.
    public let path: String
    /// The fields it follows: a change of one of them (by a source that does not carry
    /// ``path``) derives it again.
    public let inputs: [String]
    /// The derived value from the entity's flat canonical values, `nil` when the rule does not
    /// apply (not a person, a name missing): the field is then left as it is.
    public let derive: @Sendable ([String: JSONValue]) -> JSONValue?

    /// The derived fields of an entity.
    public static func fields(of entity: CanonicalEntityType) -> [DerivedField] {
        entity == .customer ? [personName] : []
    }

    /// A person's `name`: the first and the last name, trimmed, with one space between.
    public static let personName = DerivedField(path: "name", inputs: ["firstName", "lastName"]) { values in
        guard values["kind"]?.string == CustomerKind.person.rawValue else { return nil }
        return personFullName(firstName: values["firstName"]?.string, lastName: values["lastName"]?.string).map(JSONValue.string)
    }

    /// `"<first> <last>"`, or `nil` unless both have text.
    public static func personFullName(firstName: String?, lastName: String?) -> String? {
        guard let first = firstName?.trimmingWhitespace(), !first.isEmpty,
            let last = lastName?.trimmingWhitespace(), !last.isEmpty
        else { return nil }
        return "\(first) \(last)"
    }
}
