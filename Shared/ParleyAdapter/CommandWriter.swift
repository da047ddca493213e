import Foundation
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

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
/// An update or archive is conditional: it is not made over a record modified since the state
/// was merged, which is merged first (``checkBase(_:entity:mapper:resumes:cause:)``), nor to a record
/// that is gone.
public struct CommandWriter: Sendable {
    let connector: any SystemConnector
    let mappings: Mappings
    let publisher: AMQPPublisher
    let schedule: RetrySchedule
    /// Marks writes that take several requests, so the feed does not report their steps
    /// (``WriteMarkers``); needed where the connector ``SystemConnector/writesInSteps(_:)``.
    let markers: WriteMarkers?
    /// Writes in steps of one record, one at a time.
    let turns = RecordTurns()
    let logger: Logger

    public init(
        connector: any SystemConnector, mappings: Mappings, publisher: AMQPPublisher,
        schedule: RetrySchedule = RetrySchedule(), markers: WriteMarkers? = nil, logger: Logger
    ) {
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
        else {
            throw HandlerFailure.permanent(
                "not a \(connector.system) command: \(envelope.kind) \(envelope.system) \(envelope.entityType)", .malformed)
        }
        let retried = delivery.redelivered || delivery.properties.headers[ParleyHeaders.retries] != nil
        let event = try await write(command, entity: entity, mapper: mapper, retried: retried, cause: envelope)
        try await publisher.publish(
            OutgoingMessage(
                envelope: event, exchange: ParleyTopology.Exchanges.events,
                routingKey: ParleyTopology.routingKey(system: connector.system, entityType: event.entityType, kind: event.kind)))
    }

    /// Writes and returns the event to report. Writes in steps of one record are made one at a
    /// time in this process (``RecordTurns``): the link service sends one write per record and
    /// target at a time (rule 8), but a command redelivered after a broker restart — its write
    /// long landed and reported — can arrive beside the record's next command. Run at once,
    /// their steps interleaved (one confirmed the order while the other posted its lines, which
    /// Go refused), and each took the other's running mark for a write that died half-way.
    func write(_ command: CommandPayload, entity: CanonicalEntityType, mapper: Mapper, retried: Bool, cause: Envelope) async throws -> Envelope {
        guard command.operation != .create, connector.writesInSteps(entity), let id = command.targetId else {
            return try await writeNow(command, entity: entity, mapper: mapper, retried: retried, cause: cause)
        }
        let key = "\(entity.rawValue)/\(id)"
        await turns.wait(key)
        do {
            let event = try await writeNow(command, entity: entity, mapper: mapper, retried: retried, cause: cause)
            await turns.done(key)
            return event
        } catch {
            await turns.done(key)
            throw error
        }
    }

    func writeNow(_ command: CommandPayload, entity: CanonicalEntityType, mapper: Mapper, retried: Bool, cause: Envelope) async throws -> Envelope {
        let connector = self.connector
        // A write in steps is marked before its first request and settled after its last.
        var marked: String? = nil
        var resumes = false
        if command.operation != .create, connector.writesInSteps(entity), let id = command.targetId, let markers {
            do {
                resumes = try await markers.begin(entity, id: id)
            } catch {
                throw HandlerFailure.transient("cannot mark the write of \(connector.system) \(entity) \(id) in the adapter's database: \(error)")
            }
            marked = id
        }
        var requested = false
        do {
            // A conditional write: a record modified since the state was merged is not overwritten.
            var current: JSONObject? = nil
            switch try await checkBase(command, entity: entity, mapper: mapper, resumes: resumes, cause: cause) {
            case .write(let read): current = read
            case .stop(let event):
                if let marked { await settle(entity, id: marked, modifiedAt: nil) }
                return event
            }
            requested = true
            let result: JSONObject = try await schedule.run { () async throws(SystemError) -> JSONObject in
                switch command.operation {
                case .create:
                    if retried, let found = try await connector.find(entity, idempotencyKey: command.idempotencyKey) { return found }
                    return try await connector.create(entity, record: command.record, idempotencyKey: command.idempotencyKey)
                case .update:
                    guard let id = command.targetId else { throw .permanent(status: 400, "an update without the target's id") }
                    return try await connector.update(entity, id: id, record: command.record, cleared: command.cleared, current: current)
                case .archive:
                    guard let id = command.targetId else { throw .permanent(status: 400, "an archive without the target's id") }
                    return try await connector.archive(entity, id: id, record: command.record, current: current)
                }
            }
            if let marked {
                await settle(entity, id: marked, modifiedAt: mapper.identity(of: result).modifiedAt)
                if !Self.holds(.object(result), .object(command.record), cleared: command.cleared) {
                    return try await interleaved(result, entity: entity, id: marked, command: command, mapper: mapper, cause: cause)
                }
            }
            return try written(result, command: command, mapper: mapper, cause: cause)
        } catch {
            var failure = error as? SystemError ?? .transient("\(error)", retryAfter: nil)
            if let marked {
                // Half done, maybe. To be retried: the mark stays running, so the feed keeps
                // leaving out what the write left and the retry finishes it (a process killed
                // mid-write leaves its mark so too). Not retried: what it left is not reported
                // either; the next change writes the whole record again.
                let retried = requested && (error is HandlerFailure || failure.isTransient)
                if retried {
                    logger.warning(
                        "a write in steps failed half-way; its mark stays until a retry finishes it",
                        metadata: ["system": "\(connector.system)", "entity": "\(entity)", "id": "\(marked)"])
                } else {
                    await settle(entity, id: marked, modifiedAt: nil)
                }
            }
            if let handler = error as? HandlerFailure { throw handler }
            do {
                if let event = try await recover(from: failure, command: command, entity: entity, mapper: mapper, cause: cause) { return event }
            } catch let lookup as SystemError {
                failure = lookup  // the look-up failed: reported as its own failure
            }
            return try failed(failure, command: command, entity: entity, cause: cause)
        }
    }

    /// What a refusal ends in when it is no failure: a create refused because a record with its
    /// key exists → that record linked (`exists`, ``linkExisting(_:key:refusal:command:mapper:cause:)``);
    /// a write refused because the record changed since it was read → the record merged first
    /// (`changed`); an update or archive of a record that is not there any more → `gone`. `nil`:
    /// the refusal is reported as it is. A look-up that fails throws its own ``SystemError``
    /// (a transient one: the command is sent again and the look-up retried).
    func recover(
        from failure: SystemError, command: CommandPayload, entity: CanonicalEntityType, mapper: Mapper,
        cause: Envelope
    ) async throws -> Envelope? {
        switch failure {
        case .keyInUse(_, _, let key) where command.operation == .create:
            // Not found by its key: the refusal was something else (`nil`).
            return try await linkExisting(entity, key: key, refusal: failure, command: command, mapper: mapper, cause: cause)
        case .modified:
            guard let id = command.targetId else { return nil }
            guard let current = try await read(entity, id: id) else { return try await gone(entity, id: id, command: command, cause: cause) }
            return try await changed(current, entity: entity, id: id, command: command, mapper: mapper, cause: cause)
        case .permanent(404, _) where command.operation != .create:
            guard let id = command.targetId, try await read(entity, id: id) == nil else { return nil }
            return try await gone(entity, id: id, command: command, cause: cause)
        default:
            return nil
        }
    }

    /// The record as the system has it now (`nil`: it has none), transient failures retried.
    func read(_ entity: CanonicalEntityType, id: String) async throws(SystemError) -> JSONObject? {
        let connector = self.connector
        return try await schedule.run { () async throws(SystemError) -> JSONObject? in try await connector.record(entity, id: id) }
    }

    /// The `failed` event for a refusal or an error, with the system's message.
    func failed(_ failure: SystemError, command: CommandPayload, entity: CanonicalEntityType, cause: Envelope) throws -> Envelope {
        let kind = failure.status.map { "http\($0)" } ?? "transient"
        AdapterMetrics.command(connector.system, failure.isTransient ? .failedTransient : .failedPermanent)
        MessagingMetrics.failure(failure.isTransient ? .transient : .apiError)
        logger.warning(
            "write failed",
            metadata: [
                "system": "\(connector.system)", "entity": "\(entity)",
                "operation": "\(command.operation)", "error": "\(failure)"
            ])
        let payload = FailedPayload(
            stage: "adapter", writeId: command.writeId, globalId: command.idempotencyKey, operation: command.operation,
            kind: kind, reason: failure.description, transient: failure.isTransient, targetId: command.targetId)
        return try Envelope.caused(by: cause, kind: .failed, entityId: command.targetId ?? command.idempotencyKey, payload: payload.json)
    }

    /// A create refused because a record with the same natural key exists: that record, looked
    /// up by its key, is published as a change — exactly as the feed would report it — so it
    /// goes through the mapping service to the link service, which links it by its natural key;
    /// the command is reported `failed` with kind `exists`, `transient` (the link service sends
    /// it again after a short backoff, by when the record is linked and the create became an
    /// update) and the record's id as `existingId`. `nil` when no record has the key.
    func linkExisting(
        _ entity: CanonicalEntityType, key: NaturalKey, refusal: SystemError, command: CommandPayload, mapper: Mapper,
        cause: Envelope
    ) async throws -> Envelope? {
        let connector = self.connector
        let found = try await schedule.run { () async throws(SystemError) -> JSONObject? in try await connector.existing(entity, key: key) }
        guard let found, case let (id?, modifiedAt) = mapper.identity(of: found) else { return nil }
        do {
            try await publisher.publish(
                try ChangeMessage.upsert(system: connector.system, entity: entity, id: id, modifiedAt: modifiedAt, record: found))
        } catch {
            throw HandlerFailure.transient("cannot publish the existing \(connector.system) \(entity) \(id) as a change: \(error)")
        }
        AdapterMetrics.command(connector.system, .failedTransient)
        MessagingMetrics.failure(.transient)
        logger.info(
            "create refused: the record exists; published it to be linked",
            metadata: ["system": "\(connector.system)", "entity": "\(entity)", "key": "\(key.field)", "existingId": "\(id)"])
        let reason =
            "\(connector.system) already has a \(entity) with \(key): id \(id) (\(refusal)); "
            + "published it as a change to be linked; the create is to be sent again"
        let payload = FailedPayload(
            stage: "adapter", writeId: command.writeId, globalId: command.idempotencyKey, operation: command.operation,
            kind: "exists", reason: reason, transient: true, existingId: id)
        return try Envelope.caused(by: cause, kind: .failed, entityId: command.idempotencyKey, payload: payload.json)
    }

    /// The `written` event for the record as the write left it; `timed: false` leaves out its
    /// modification time (``interleaved(_:entity:id:command:mapper:cause:)``).
    func written(_ record: JSONObject, command: CommandPayload, mapper: Mapper, cause: Envelope, timed: Bool = true) throws -> Envelope {
        let identity = mapper.identity(of: record)
        guard let nativeId = identity.id ?? command.targetId else {
            throw SystemError.permanent(status: 502, "\(connector.system) answered without the record's id")
        }
        AdapterMetrics.command(connector.system, .written)
        let modifiedAt = timed ? identity.modifiedAt.map { CivilTime.formatInstant(ms: $0) } : nil
        let written = WrittenPayload(command: command, modifiedAt: modifiedAt)
        return try Envelope.caused(by: cause, kind: .written, entityId: nativeId, payload: written.json)
    }

    /// A write in steps is not atomic: an edit someone made between its steps and the read that
    /// ends it shows in that read (`result`), which then does not hold what the command wrote.
    /// Reported as plainly `written` at the read's time, the edit would be lost: the link service
    /// would take what was written as the record's state at that time, the feed leaves the
    /// record's states up to it out, and the next conditional write would find nothing
    /// modified since. So the record as read is published as a change, exactly as the feed
    /// would report it (merged against what was written, only the edit differs), and the write
    /// is reported `written` without a time: the record's base stays the one before the write,
    /// so should that change be lost, the next write to the record finds it modified since and
    /// merges it first (``checkBase(_:entity:mapper:resumes:cause:)``). An edit that lands
    /// before a step which replaces it (a line deleted and posted again) is beyond this: it is
    /// overwritten — the window of a write without a condition (docs/adapters.md).
    func interleaved(
        _ result: JSONObject, entity: CanonicalEntityType, id: String, command: CommandPayload, mapper: Mapper,
        cause: Envelope
    ) async throws -> Envelope {
        let modifiedAt = mapper.identity(of: result).modifiedAt
        logger.info(
            "an edit landed during a write in steps; publishing the record as a change",
            metadata: [
                "system": "\(connector.system)", "entity": "\(entity)", "id": "\(id)",
                "modifiedAt": "\(modifiedAt.map { CivilTime.formatInstant(ms: $0) } ?? "unknown")"
            ])
        do {
            try await publisher.publish(
                try ChangeMessage.upsert(system: connector.system, entity: entity, id: id, modifiedAt: modifiedAt, record: result))
        } catch {
            logger.warning(
                "could not publish the record edited during a write; the next write to it merges the edit first",
                metadata: ["system": "\(connector.system)", "entity": "\(entity)", "id": "\(id)", "error": "\(error)"])
        }
        return try written(result, command: command, mapper: mapper, cause: cause, timed: false)
    }

    /// The precondition of an update or archive that names its base (`baseModifiedAt`, the
    /// record's modification time the link service merged the state with): the record is read
    /// first, and written only if it has not been modified since. Otherwise the write would
    /// overwrite an edit the link service has not seen — a polled system reports it only on its
    /// next poll, and would then report Parley's write instead, the edit lost. A modified record
    /// is published as a change, exactly as the feed would report it, and the command reported
    /// `failed` with kind `changed`: the link service merges that change (last writer wins by
    /// field) and writes the result back with the new base. A record that is not there any more
    /// is reported `gone` (``gone(_:id:command:cause:)``).
    ///
    /// The record as read goes to the connector, which makes the write itself conditional on it
    /// where the system can (the ERP's `If-Unmodified-Since-Modified-At` with the `modifiedAt`
    /// text read — the base itself, read through another precision, might never match exactly —
    /// and PowerOffice Go's JSON Patch `test`). Where it cannot (the webshop, a Go order's lines),
    /// an edit landing between this read and the write is still overwritten: a window of one
    /// round trip instead of a poll interval.
    ///
    /// A write that `resumes` one that died or failed half-way (``WriteMarkers/begin(_:id:)``)
    /// skips the comparison: the record was modified since the base by that write itself, and
    /// reporting its half as an edit would spread it (an order with half its lines) everywhere.
    func checkBase(
        _ command: CommandPayload, entity: CanonicalEntityType, mapper: Mapper, resumes: Bool = false,
        cause: Envelope
    ) async throws -> Base {
        guard command.operation != .create, let id = command.targetId, let baseText = command.baseModifiedAt,
            let base = try? CivilTime.parseInstant(baseText)
        else { return .write(current: nil) }
        guard let current = try await read(entity, id: id) else {
            return .stop(try await gone(entity, id: id, command: command, cause: cause))
        }
        guard !resumes, let modifiedAt = mapper.identity(of: current).modifiedAt, modifiedAt > base else { return .write(current: current) }
        // Modified, but to what the command writes: this command's own write, made before the
        // process died and the command came again (or the same values written by anyone). It is
        // written; reported as an edit, it would count as the system's at its newer time and
        // win over edits made elsewhere meanwhile.
        if Self.holds(.object(current), .object(command.record), cleared: command.cleared) {
            logger.info(
                "write already made: the record holds what the command writes",
                metadata: ["system": "\(connector.system)", "entity": "\(entity)", "id": "\(id)"])
            return .stop(try written(current, command: command, mapper: mapper, cause: cause))
        }
        return .stop(try await changed(current, entity: entity, id: id, command: command, mapper: mapper, cause: cause))
    }

    /// Whether `current` holds `wanted`: every member of an object (others may be there too),
    /// every element of an array in order, numbers by value, and nothing at the `cleared` paths
    /// (dotted, as the command names them).
    static func holds(_ current: JSONValue?, _ wanted: JSONValue, cleared: [String] = []) -> Bool {
        for path in cleared {
            var value = current
            for key in path.split(separator: ".") { value = value?[String(key)] }
            if let value, value != .null { return false }
        }
        switch wanted {
        case .object(let members):
            guard case .object? = current else { return false }
            return members.allSatisfy { holds(current?[$0.key], $0.value) }
        case .array(let elements):
            guard case .array(let have)? = current, have.count == elements.count else { return false }
            return zip(have, elements).allSatisfy { holds($0, $1) }
        case .number(let number):
            guard case .number(let have)? = current else { return false }
            return have == number || (have.decimal != nil && have.decimal == number.decimal)
        case .null:
            return current == nil || current == .null
        default:
            return current == wanted
        }
    }

    /// What ``checkBase(_:entity:mapper:resumes:cause:)`` found: write (with the record as read, which
    /// the connector makes the write conditional on where its system can), or report `event`.
    enum Base {
        case write(current: JSONObject?)
        case stop(Envelope)
    }

    /// A record modified since the state the command carries was merged: published as a change,
    /// exactly as the feed would report it, and the command reported `failed` kind `changed`.
    func changed(
        _ current: JSONObject, entity: CanonicalEntityType, id: String, command: CommandPayload, mapper: Mapper,
        cause: Envelope
    ) async throws -> Envelope {
        let modifiedAt = mapper.identity(of: current).modifiedAt
        let baseText = command.baseModifiedAt ?? "the state's merge"
        do {
            try await publisher.publish(
                try ChangeMessage.upsert(system: connector.system, entity: entity, id: id, modifiedAt: modifiedAt, record: current))
        } catch {
            throw HandlerFailure.transient("cannot publish the modified \(connector.system) \(entity) \(id) as a change: \(error)")
        }
        AdapterMetrics.command(connector.system, .changed)
        let now = modifiedAt.map { CivilTime.formatInstant(ms: $0) } ?? "an unknown time"
        logger.info(
            "write not made: the record changed since the state was merged; published it as a change",
            metadata: ["system": "\(connector.system)", "entity": "\(entity)", "id": "\(id)", "base": "\(baseText)", "modifiedAt": "\(now)"])
        let reason =
            "\(connector.system) \(entity) \(id) was modified at \(now), after \(baseText) which the state was merged with; "
            + "published it as a change to be merged, then written again"
        let payload = FailedPayload(
            stage: "adapter", writeId: command.writeId, globalId: command.idempotencyKey, operation: command.operation,
            kind: "changed", reason: reason, transient: true, targetId: id)
        return try Envelope.caused(by: cause, kind: .failed, entityId: id, payload: payload.json)
    }

    /// An update or archive of a record the system no longer has (it answered 404, or the read
    /// before the write found nothing): the system deleted it, so its delete is published as a
    /// change — the linked records are archived (DESIGN rule 9) — and the command reported
    /// `failed` with kind `gone`, which the link service takes as no failure.
    func gone(_ entity: CanonicalEntityType, id: String, command: CommandPayload, cause: Envelope) async throws -> Envelope {
        do {
            try await publisher.publish(try ChangeMessage.delete(system: connector.system, entity: entity, id: id))
        } catch {
            throw HandlerFailure.transient("cannot publish the delete of \(connector.system) \(entity) \(id): \(error)")
        }
        AdapterMetrics.command(connector.system, .gone)
        logger.info(
            "write not made: the record is gone; published its delete",
            metadata: ["system": "\(connector.system)", "entity": "\(entity)", "id": "\(id)"])
        let payload = FailedPayload(
            stage: "adapter", writeId: command.writeId, globalId: command.idempotencyKey, operation: command.operation,
            kind: "gone", reason: "\(connector.system) has no \(entity) \(id) any more (deleted there); published its delete",
            transient: false, targetId: id)
        return try Envelope.caused(by: cause, kind: .failed, entityId: id, payload: payload.json)
    }

    func settle(_ entity: CanonicalEntityType, id: String, modifiedAt: Int64?) async {
        do {
            try await markers?.settle(entity, id: id, modifiedAt: modifiedAt)
        } catch {
            // The mark stays "running" until it expires: the feed leaves the record out until
            // then, and reports its state after that.
            logger.warning(
                "could not settle a write's mark",
                metadata: ["system": "\(connector.system)", "entity": "\(entity)", "id": "\(id)", "error": "\(error)"])
        }
    }
}

/// One turn at a time per key, in this process: ``wait(_:)`` returns when the key is free (or
/// handed over by the turn before, in the order of waiting); ``done(_:)`` ends the turn.
actor RecordTurns {
    private var queues: [String: [CheckedContinuation<Void, Never>]] = [:]

    func wait(_ key: String) async {
        guard queues[key] != nil else {
            queues[key] = []  // taken, nobody waiting
            return
        }
        await withCheckedContinuation { queues[key]!.append($0) }
    }

    /// How many wait for `key`.
    func waiting(_ key: String) -> Int { queues[key]?.count ?? 0 }

    func done(_ key: String) {
        guard var waiting = queues[key], !waiting.isEmpty else {
            queues[key] = nil
            return
        }
        let next = waiting.removeFirst()
        queues[key] = waiting
        next.resume()  // the key stays taken: its turn now
    }
}
