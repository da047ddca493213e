import Foundation
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

/// A captured change, built the one way every capture path publishes it — the poller, the
/// webshop's webhooks, the id reconciliation's deletes (``DeleteDetector``) and the writer's
/// look-up of a record that already exists (``CommandWriter``): kind `change` on
/// `parley.changes` with routing key `<system>.<entityType>.change`, the record's native id as
/// `entityId`, and the source's modification time as the envelope's time (now when it has none).
public enum ChangeMessage {
    /// A record as the system reports it (`operation: upsert`).
    public static func upsert(
        system: SystemName, entity: CanonicalEntityType, id: String, modifiedAt: Int64?,
        record: JSONObject
    ) throws -> OutgoingMessage {
        let time = modifiedAt.map { Date(timeIntervalSince1970: Double($0) / 1000) } ?? Date()
        return try make(system: system, entity: entity, id: id, time: time, payload: ChangePayload(record: .object(record)))
    }

    /// A record that no longer exists (`operation: delete`, no record): the mapping service
    /// turns it into an archive of the linked records (DESIGN rule 9).
    public static func delete(system: SystemName, entity: CanonicalEntityType, id: String, at time: Date = Date()) throws -> OutgoingMessage {
        try make(system: system, entity: entity, id: id, time: time, payload: ChangePayload(operation: .delete, record: nil))
    }

    static func make(system: SystemName, entity: CanonicalEntityType, id: String, time: Date, payload: ChangePayload) throws -> OutgoingMessage {
        let envelope = try Envelope(
            kind: .change, system: system, entityType: entity.messagingEntityType, entityId: id,
            time: time, payload: payload.json)
        return OutgoingMessage(
            envelope: envelope, exchange: ParleyTopology.Exchanges.changes,
            routingKey: ParleyTopology.routingKey(system: system, entityType: envelope.entityType, kind: .change))
    }
}
