import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON

/// What the mapping service does with one message, without any I/O: a `change` becomes a
/// `canonical` message for the link service; a `syncRequest` becomes a `command` for the
/// target's adapter, or a `failed` event when the entity cannot be written (docs/mapping-service.md).
///
/// A message that cannot be read or mapped at all throws ``MappingRejection``: the service
/// dead-letters it with the reason and goes on.
public struct MappingProcessor: Sendable {
    public let mappings: Mappings

    public init(mappings: Mappings) {
        self.mappings = mappings
    }

    /// One message to publish.
    public struct Output: Sendable {
        public var envelope: Envelope
        public var exchange: String
        public var routingKey: String
    }

    // MARK: change → canonical

    public func process(change envelope: Envelope) throws(MappingRejection) -> Output {
        guard envelope.kind == .change else { throw .init("expected a change message, got kind \(envelope.kind)") }
        let (mapper, entity) = try mapper(for: envelope)
        let change: ChangePayload
        do {
            change = try ChangePayload(json: envelope.payload)
        } catch {
            throw .init("\(envelope.system) \(entity.rawValue) \(envelope.entityId): \(error)")
        }
        let canonical: CanonicalPayload
        switch (change.operation, change.record) {
        case (.delete, _):
            // DESIGN rule 9: a delete archives the linked records; nothing else is known.
            canonical = CanonicalPayload(operation: .delete, entity: ["archived": true], carried: ["archived"], references: [], modifiedAt: nil)
        case (.upsert, let record?):
            let normalised: NormalisedRecord
            do {
                normalised = try mapper.toCanonical(record)
            } catch {
                throw .init(error.description)
            }
            if let id = normalised.nativeId, id != envelope.entityId {
                throw .init("\(envelope.system) \(entity.rawValue): the record's id \(id) is not the message's entityId \(envelope.entityId)")
            }
            canonical = CanonicalPayload(
                operation: .upsert, entity: normalised.canonicalJSON, carried: normalised.carried,
                assigned: normalised.assigned, references: normalised.references,
                modifiedAt: normalised.modifiedAt, origin: normalised.origin)
        case (.upsert, nil):
            throw .init("an upsert without a record")  // ChangePayload already refuses this
        }
        return try output(
            caused: envelope, kind: .canonical, time: envelope.time, payload: canonical.json,
            exchange: ParleyTopology.Exchanges.canonical)
    }

    // MARK: syncRequest → command (or failed)

    public func process(syncRequest envelope: Envelope) throws(MappingRejection) -> Output {
        guard envelope.kind == .syncRequest else { throw .init("expected a syncRequest message, got kind \(envelope.kind)") }
        let (mapper, entity) = try mapper(for: envelope)
        let request: SyncRequestPayload
        do {
            request = try SyncRequestPayload(json: envelope.payload)
        } catch {
            throw .init("\(envelope.system) \(entity.rawValue) \(envelope.entityId): \(error)")
        }
        let values: [String: JSONValue]
        do {
            values = try CanonicalJSON.flatten(request.entity, entity: entity)
        } catch {
            throw .init("\(envelope.system) \(envelope.entityId): \(error)")
        }
        let mapped: Result<(NativeWrite, NormalisedRecord), MappingError>
        do {
            let write = try mapper.toNative(values, targetIds: request.targetIds)
            mapped = .success((write, try mapper.expectedEcho(of: write)))
        } catch {
            mapped = .failure(error)
        }
        switch mapped {
        case .success(let (write, echo)):
            let command = CommandPayload(
                operation: request.operation, targetId: request.targetId, idempotencyKey: envelope.entityId,
                record: write.record, cleared: request.operation == .create ? [] : write.cleared,
                expected: CanonicalPayload(
                    operation: .upsert, entity: echo.canonicalJSON, carried: echo.carried,
                    references: echo.references, modifiedAt: nil),
                writeId: request.writeId, baseModifiedAt: request.operation == .create ? nil : request.baseModifiedAt)
            return try output(
                caused: envelope, kind: .command, entityId: request.targetId ?? envelope.entityId,
                payload: command.json, exchange: ParleyTopology.Exchanges.commands)
        case .failure(let error):
            // Bad data never blocks good data (DESIGN rule 10): the link service records why
            // this entity cannot be written to this target and releases the write slot.
            let failed = FailedPayload(
                stage: "mapping", writeId: request.writeId, globalId: envelope.entityId, operation: request.operation,
                kind: error.kind.rawValue, reason: error.description, transient: false, field: error.field,
                targetId: request.targetId)
            return try output(caused: envelope, kind: .failed, payload: failed.json, exchange: ParleyTopology.Exchanges.events)
        }
    }

    // MARK: Helpers

    func mapper(for envelope: Envelope) throws(MappingRejection) -> (Mapper, CanonicalEntityType) {
        guard let entity = CanonicalEntityType(rawValue: envelope.entityType.rawValue) else {
            throw .init("unknown entity type \(envelope.entityType)")
        }
        guard let mapper = mappings.mapper(system: envelope.system, entity: entity) else {
            throw .init("no mapping table for \(envelope.system) \(entity.rawValue)")
        }
        return (mapper, entity)
    }

    func output(
        caused cause: Envelope, kind: MessageKind, entityId: String? = nil, time: Date = Date(), payload: JSONValue,
        exchange: String
    ) throws(MappingRejection) -> Output {
        do {
            let envelope = try Envelope.caused(by: cause, kind: kind, entityId: entityId, time: time, payload: payload)
            return Output(
                envelope: envelope, exchange: exchange,
                routingKey: ParleyTopology.routingKey(system: envelope.system, entityType: envelope.entityType, kind: kind))
        } catch {
            throw .init("cannot build the \(kind) message: \(error)")
        }
    }
}

/// A message the mapping service cannot process at all (malformed, unknown kind or entity, or
/// a record that does not map): it goes to the dead-letter queue with this reason.
public struct MappingRejection: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
