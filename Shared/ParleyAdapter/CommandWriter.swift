import Foundation
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyMapping
import ParleyMessaging

/// Carries out the commands for one system (`<system>-adapter.commands`, competing consumers:
/// every replica writes): create, update or archive through the connector, then report to the
/// link service — `written` with the record's native id and the command's expected echo, or
/// `failed` with the system's message.
///
/// Transient errors (5xx, 429, timeouts) are retried here with backoff that honours
/// `Retry-After`; when the schedule runs out the failure is reported as transient and the link
/// service tries again later. A create that may already have happened (a redelivered command)
/// first asks the system for a record with its idempotency key, where the system can say. A
/// create refused because a record with the same natural key exists ends in that record being
/// linked, never in a permanent failure (``linkExisting(_:key:refusal:command:mapper:cause:)``).
public struct CommandWriter: Sendable {
    let connector: any SystemConnector
    let mappings: Mappings
    let publisher: AMQPPublisher
    let schedule: RetrySchedule
    /// Marks writes that take several requests, so the feed does not report their steps
    /// (``WriteMarkers``); needed where the connector ``SystemConnector/writesInSteps(_:)``.
    let markers: WriteMarkers?
    let logger: Logger

    public init(connector: any SystemConnector, mappings: Mappings, publisher: AMQPPublisher,
                schedule: RetrySchedule = RetrySchedule(), markers: WriteMarkers? = nil, logger: Logger) {
        self.connector = connector
        self.mappings = mappings
        self.publisher = publisher
        self.schedule = schedule
        self.markers = markers
        self.logger = logger
    }

    /// The `ConsumerService` handler.
    public func handle(_ delivery: AMQPDelivery) async throws {
        let envelope: Envelope
        let command: CommandPayload
        do {
            envelope = try delivery.envelope()
            command = try CommandPayload(json: envelope.payload)
        } catch {
            throw HandlerFailure.permanent("malformed command: \(error)", .malformed)
        }
        guard envelope.kind == .command, envelope.system == connector.system,
              let entity = CanonicalEntityType(rawValue: envelope.entityType.rawValue),
              let mapper = mappings.mapper(system: connector.system, entity: entity)
        else { throw HandlerFailure.permanent("not a \(connector.system) command: \(envelope.kind) \(envelope.system) \(envelope.entityType)", .malformed) }
        let retried = delivery.redelivered || delivery.properties.headers[ParleyHeaders.retries] != nil
        let event = try await write(command, entity: entity, mapper: mapper, retried: retried, cause: envelope)
        try await publisher.publish(OutgoingMessage(
            envelope: event, exchange: ParleyTopology.Exchanges.events,
            routingKey: ParleyTopology.routingKey(system: connector.system, entityType: event.entityType, kind: event.kind)))
    }

    /// Writes and returns the event to report.
    func write(_ command: CommandPayload, entity: CanonicalEntityType, mapper: Mapper, retried: Bool, cause: Envelope) async throws -> Envelope {
        let connector = self.connector
        // A write in steps is marked before its first request and settled after its last.
        var marked: String? = nil
        if command.operation != .create, connector.writesInSteps(entity), let id = command.targetId, let markers {
            do {
                try await markers.begin(entity, id: id)
            } catch {
                throw HandlerFailure.transient("cannot mark the write of \(connector.system) \(entity) \(id) in the adapter's database: \(error)")
            }
            marked = id
        }
        do {
            let result: JSONObject = try await schedule.run { () async throws(SystemError) -> JSONObject in
                switch command.operation {
                case .create:
                    if retried, let found = try await connector.find(entity, idempotencyKey: command.idempotencyKey) { return found }
                    return try await connector.create(entity, record: command.record, idempotencyKey: command.idempotencyKey)
                case .update:
                    guard let id = command.targetId else { throw .permanent(status: 400, "an update without the target's id") }
                    return try await connector.update(entity, id: id, record: command.record, cleared: command.cleared)
                case .archive:
                    guard let id = command.targetId else { throw .permanent(status: 400, "an archive without the target's id") }
                    return try await connector.archive(entity, id: id, record: command.record)
                }
            }
            let identity = mapper.identity(of: result)
            if let marked { await settle(entity, id: marked, modifiedAt: identity.modifiedAt) }
            guard let nativeId = identity.id ?? command.targetId else {
                throw SystemError.permanent(status: 502, "\(connector.system) answered without the record's id")
            }
            AdapterMetrics.command(connector.system, .written)
            return try Envelope.caused(by: cause, kind: .written, entityId: nativeId, payload: WrittenPayload(command: command).json)
        } catch {
            // Half done, maybe: what the write left is not reported either (its retry, or the
            // next change, writes the whole record again).
            if let marked { await settle(entity, id: marked, modifiedAt: nil) }
            var failure = error as? SystemError ?? .transient("\(error)", retryAfter: nil)
            if command.operation == .create, case .keyInUse(_, _, let key) = failure {
                do {
                    if let event = try await linkExisting(entity, key: key, refusal: failure, command: command, mapper: mapper, cause: cause) {
                        return event
                    }
                    // Not found by its key: the refusal was something else; reported as it is.
                } catch let lookup as SystemError {
                    failure = lookup  // the look-up failed: reported as its own failure (transient: the create is sent again)
                }
            }
            let kind = failure.status.map { "http\($0)" } ?? "transient"
            AdapterMetrics.command(connector.system, failure.isTransient ? .failedTransient : .failedPermanent)
            MessagingMetrics.failure(failure.isTransient ? .transient : .apiError)
            logger.warning("write failed", metadata: ["system": "\(connector.system)", "entity": "\(entity)",
                                                      "operation": "\(command.operation)", "error": "\(failure)"])
            let payload = FailedPayload(stage: "adapter", writeId: command.writeId, globalId: command.idempotencyKey, operation: command.operation,
                                        kind: kind, reason: failure.description, transient: failure.isTransient, targetId: command.targetId)
            return try Envelope.caused(by: cause, kind: .failed, entityId: command.targetId ?? command.idempotencyKey, payload: payload.json)
        }
    }

    /// A create refused because a record with the same natural key exists: that record, looked
    /// up by its key, is published as a change — exactly as the feed would report it — so it
    /// goes through the mapping service to the link service, which links it by its natural key;
    /// the command is reported `failed` with kind `exists`, `transient` (the link service sends
    /// it again after a short backoff, by when the record is linked and the create became an
    /// update) and the record's id as `existingId`. `nil` when no record has the key.
    func linkExisting(_ entity: CanonicalEntityType, key: NaturalKey, refusal: SystemError, command: CommandPayload, mapper: Mapper,
                      cause: Envelope) async throws -> Envelope? {
        let connector = self.connector
        let found = try await schedule.run { () async throws(SystemError) -> JSONObject? in try await connector.existing(entity, key: key) }
        guard let found, case let (id?, modifiedAt) = mapper.identity(of: found) else { return nil }
        do {
            try await publisher.publish(try ChangeMessage.upsert(system: connector.system, entity: entity, id: id, modifiedAt: modifiedAt, record: found))
        } catch {
            throw HandlerFailure.transient("cannot publish the existing \(connector.system) \(entity) \(id) as a change: \(error)")
        }
        AdapterMetrics.command(connector.system, .failedTransient)
        MessagingMetrics.failure(.transient)
        logger.info("create refused: the record exists; published it to be linked",
                    metadata: ["system": "\(connector.system)", "entity": "\(entity)", "key": "\(key.field)", "existingId": "\(id)"])
        let reason = "\(connector.system) already has a \(entity) with \(key): id \(id) (\(refusal)); "
            + "published it as a change to be linked; the create is to be sent again"
        let payload = FailedPayload(stage: "adapter", writeId: command.writeId, globalId: command.idempotencyKey, operation: command.operation,
                                    kind: "exists", reason: reason, transient: true, existingId: id)
        return try Envelope.caused(by: cause, kind: .failed, entityId: command.idempotencyKey, payload: payload.json)
    }

    func settle(_ entity: CanonicalEntityType, id: String, modifiedAt: Int64?) async {
        do {
            try await markers?.settle(entity, id: id, modifiedAt: modifiedAt)
        } catch {
            // The mark stays "running" until it expires: the feed leaves the record out until
            // then, and reports its state after that.
            logger.warning("could not settle a write's mark", metadata: ["system": "\(connector.system)", "entity": "\(entity)", "id": "\(id)", "error": "\(error)"])
        }
    }
}
