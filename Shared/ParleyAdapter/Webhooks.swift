import Foundation
import ParleyCanonical
import ParleyCore
import ParleyMessaging
import ParleyJSON

/// A webhook's event: which record changed and how.
public struct WebhookEvent: Sendable, Hashable {
    public var event: String
    public var entity: CanonicalEntityType
    public var id: String

    public init(json: JSONValue) throws(PayloadError) {
        guard let event = json["event"]?.string, ["created", "updated", "archived", "deleted"].contains(event) else {
            throw PayloadError(field: "event", reason: "expected created, updated, archived or deleted")
        }
        guard let resource = json["resource"]?.string, let entity = CanonicalEntityType(rawValue: resource) else {
            throw PayloadError(field: "resource", reason: "expected customer, product or order")
        }
        switch json["id"] {
        case .number(let n)? where n.isInteger: id = n.text
        case .string(let s)? where !s.isEmpty: id = s
        default: throw PayloadError(field: "id", reason: "expected the record's id")
        }
        self.event = event
        self.entity = entity
    }
}
