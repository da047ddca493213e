import Foundation
import ParleyCore
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres

/// What the link service needs to know about the systems.
public struct LinkConfiguration: Sendable {
    public var flows: FlowGraph
    /// The canonical merge fields each system is written, per entity (`MappingTable.writtenFields`).
    /// A change reaches a linked member only when it touches one of them.
    public var writtenFields: [SystemName: [CanonicalEntityType: Set<String>]]
    /// The entity types each system can archive (`Mappings.archivable`); an archive reaches a
    /// member there even when `archived` is set through an operation rather than written.
    public var archivable: [SystemName: Set<CanonicalEntityType>]
    /// How long a write may stay unanswered before it is sent again (same write id and
    /// idempotency key).
    public var lease: Duration
    /// Backoff for transient failures reported by adapters: attempt n waits `min(base·2ⁿ⁻¹, max)`.
    public var retryBase: Duration
    public var retryMax: Duration

    public init(
        flows: FlowGraph = .standard, writtenFields: [SystemName: [CanonicalEntityType: Set<String>]],
        archivable: [SystemName: Set<CanonicalEntityType>] = [:], lease: Duration = .seconds(60), retryBase: Duration = .seconds(5), retryMax: Duration = .seconds(900)
    ) {
        self.flows = flows
        self.writtenFields = writtenFields
        self.archivable = archivable
        self.lease = lease
        self.retryBase = retryBase
        self.retryMax = retryMax
    }
}

/// The link service's decisions for one message, inside one database transaction (DESIGN
/// rules 1–10): identity and matching, field-level merge, echo suppression, references and
/// parking, one write in flight per target record, the creation chain. What must be sent is
/// written to the outbox in the same transaction and published after commit.
public struct LinkEngine: Sendable {
    public let configuration: LinkConfiguration

    public init(configuration: LinkConfiguration) {
        self.configuration = configuration
    }

    /// What handling a message did (for logs and tests).
    public enum Outcome: Sendable, Hashable {
        /// The message id was processed before: nothing changed.
        case duplicate
        /// A change older than the last one seen from that record.
        case stale
        /// The record matches a global entity that already has another record in its system:
        /// held as a conflict, not propagated.
        case conflict
        /// Nothing changed (the echo of our own write, or an edit of a field nobody else has).
        case unchanged(global: UUID)
        /// A change from a record a write is in flight to: kept until that write is answered,
        /// then handled against what was written (its echo is dropped then, an edit applied).
        case held(global: UUID)
        /// A change that names records of its own system not reported yet (an order's customer
        /// or products): kept until they are members (``LinkWaiting``), then handled.
        case waiting
        /// Fields changed; `writes` sync requests were queued, `parked` targets wait for references.
        case applied(global: UUID, changed: [String], writes: Int, parked: Int)
        /// A write's outcome was recorded; `writes` follow-up requests were queued.
        case recorded(global: UUID, writes: Int)
        /// An event for a write that is no longer the current one.
        case ignored
    }

    /// Handles one message in the caller's transaction. With an `outbox` collector, what it
    /// queues is claimed for this process and collected there, to be handed to the
    /// ``OutboxRelay`` after the commit (``OutboxRelay/publish(committed:)``).
    public func handle(_ envelope: Envelope, in tx: PostgresTransaction, now: Date = Date(), outbox: OutboxCollector? = nil) throws -> Outcome {
        let store = LinkStore(tx: tx, cache: LinkCache(collector: outbox))
        guard try store.claim(envelope.id) else { return .duplicate }
        return try handleClaimed(envelope, store: store, now: now)
    }

    /// A message that failed inside ``handleBatch(_:in:now:)``: the transaction is unusable,
    /// roll it back; `index` is the message's place in the batch.
    public struct BatchMessageFailed: Error, CustomStringConvertible {
        public let index: Int
        public let error: any Error
        public var description: String { "message \(index) of the batch: \(error)" }
    }

    /// Handles a batch in the caller's transaction with as few statements as it can: the
    /// message ids claimed in one statement; what the messages need read, locked (all of it up
    /// front, in one order) and matched in five (``LinkStore/prefetch(_:)``); each message then decided from the
    /// transaction's ``LinkCache``, asking the database only for what the prefetch could not
    /// know (a reference, a slot in flight, a match into an existing entity); and everything
    /// written — new entities, states, snapshots, write slots, outbox rows — sent in one
    /// statement at the end (``LinkStore/flush()``). No savepoints: the first message that fails
    /// throws ``BatchMessageFailed`` (the caller rolls back and runs the batch again one
    /// savepoint per message, so that message is dead-lettered alone), as does a record another
    /// replica linked meanwhile (``LinkStore/RaceLost``); a connection error, deadlock or
    /// serialization failure is rethrown as it is. The outcomes are the same as
    /// ``handle(_:in:now:)`` one by one.
    public func handleBatch(_ envelopes: [Envelope], in tx: PostgresTransaction, now: Date = Date(), outbox: OutboxCollector? = nil) throws -> [Outcome] {
        try handleBatch(envelopes, in: tx, now: now, outbox: outbox, lockingFirst: [])
    }

    /// ``handleBatch(_:in:now:outbox:)`` that also locks `lockingFirst` up front: entities an
    /// earlier attempt met late and found locked (``LinkStore/LockBusy``, which this rethrows).
    func handleBatch(_ envelopes: [Envelope], in tx: PostgresTransaction, now: Date, outbox: OutboxCollector?,
                     lockingFirst: Set<UUID>) throws -> [Outcome] {
        let store = LinkStore(tx: tx, cache: LinkCache(batched: true, collector: outbox))
        var claimed = try store.claim(envelopes.map(\.id))
        // Everything the batch will lock is found first and locked in one order (see
        // LinkStore.prefetch), so two transactions never wait for each other crosswise.
        var plan = LinkStore.Prefetch(busy: lockingFirst)
        for envelope in envelopes where claimed.contains(envelope.id) {
            guard let entity = CanonicalEntityType(rawValue: envelope.entityType.rawValue) else { continue }
            switch envelope.kind {
            case .canonical:
                let record = LinkCache.MemberKey(envelope.system, entity, envelope.entityId)
                // Parsed once here and kept for the message's turn; a bad payload is left for
                // that turn to reject.
                guard let parsed = try? Context.parse(envelope, entity: entity) else {
                    plan.records[record] = plan.records[record] ?? []
                    continue
                }
                store.cache.parsed[envelope.id] = parsed
                plan.records[record, default: []].append(contentsOf: parsed.keys)
                for reference in parsed.payload.references {
                    plan.references.insert(LinkCache.MemberKey(envelope.system, reference.entity, reference.id))
                }
                if let origin = parsed.payload.origin.flatMap(GlobalRef.init), origin.entity == entity { plan.entities.insert(origin.id) }
            case .written:
                guard let payload = try? WrittenPayload(json: envelope.payload), let ref = GlobalRef(payload.globalId), ref.entity == entity else { continue }
                plan.entities.insert(ref.id)
                plan.releases.append(LinkStore.Prefetch.Release(ref: ref, system: envelope.system))
                for reference in payload.expected.references {
                    plan.references.insert(LinkCache.MemberKey(envelope.system, reference.entity, reference.id))
                }
            case .failed:
                guard let payload = try? FailedPayload(json: envelope.payload), let ref = GlobalRef(payload.globalId ?? envelope.entityId),
                      ref.entity == entity else { continue }
                plan.entities.insert(ref.id)
            default:
                continue
            }
        }
        try store.prefetch(plan)
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(envelopes.count)
        for (index, envelope) in envelopes.enumerated() {
            // A message id twice in one batch: the second is a redelivery.
            guard claimed.remove(envelope.id) != nil else {
                outcomes.append(.duplicate)
                continue
            }
            do {
                outcomes.append(try handleClaimed(envelope, store: store, now: now))
            } catch let error as PostgresError where error.isConnectionError || error.isDeadlock || error.isSerializationFailure {
                throw error
            } catch let busy as LinkStore.LockBusy {
                throw busy
            } catch {
                throw BatchMessageFailed(index: index, error: error)
            }
        }
        try store.flush()
        return outcomes
    }

    func handleClaimed(_ envelope: Envelope, store: LinkStore, now: Date) throws -> Outcome {
        guard let entity = CanonicalEntityType(rawValue: envelope.entityType.rawValue) else {
            throw LinkError("unknown entity type \(envelope.entityType)")
        }
        var context = Context(store: store, entity: entity, cause: envelope, now: now, configuration: configuration)
        switch envelope.kind {
        case .canonical:
            return try context.canonical()
        case .written:
            return try context.written()
        case .failed:
            return try context.failed()
        default:
            throw LinkError("the link service does not take \(envelope.kind) messages")
        }
    }

    /// Sends again every write whose lease ran out (no written or failed event came): same write
    /// id, same idempotency key, the entity's current state. Returns how many.
    public func expireLeases(in tx: PostgresTransaction, now: Date = Date(), limit: Int = 100, outbox: OutboxCollector? = nil) throws -> Int {
        var count = 0
        for (global, system) in try LinkStore(tx: tx).expiredSlots(now: now, limit: limit) {
            // Each slot on its own savepoint and store: one whose entity or references another
            // transaction holds is left for the next round (it holds locks this one may want,
            // and waiting for it could wait for a transaction that waits for this one).
            _ = try tx.execute("savepoint lease")
            let sent = OutboxCollector()
            let cache = LinkCache(collector: outbox == nil ? nil : sent)
            cache.lateLocksWait = false
            let store = LinkStore(tx: tx, cache: cache)
            do {
                // The entity first, as every path locks; one another replica holds is its to handle.
                guard try store.lockEntityIfFree(global), let writeId = try store.expiredSlot(global, system, now: now),
                      let entity = try store.entityType(of: global) else {
                    _ = try tx.execute("release savepoint lease")
                    continue
                }
                let cause = try Envelope(kind: "leaseExpired", system: system, entityType: entity.messagingEntityType,
                                         entityId: GlobalRef(entity, id: global).description, time: now, payload: .null)
                var context = Context(store: store, entity: entity, cause: cause, now: now, configuration: configuration)
                try context.send(global: global, to: system, state: try store.lockEntity(global, entity), writeId: writeId)
                _ = try tx.execute("release savepoint lease")
                outbox?.messages.append(contentsOf: sent.messages)
                count += 1
            } catch is LinkStore.LockBusy {
                _ = try tx.execute("rollback to savepoint lease")
            }
        }
        return count
    }
}

/// One message's work: the store, the entity type, and the message that caused it.
struct Context {
    let store: LinkStore
    let entity: CanonicalEntityType
    let cause: Envelope
    let now: Date
    let configuration: LinkConfiguration
    var writes = 0
    var parked = 0
    /// Set when `cause` is a change held while a write to its record was in flight: the
    /// record's snapshot from before that write, and what was written (its expected echo).
    var held: (previous: Snapshot?, written: Snapshot)? = nil

    init(store: LinkStore, entity: CanonicalEntityType, cause: Envelope, now: Date, configuration: LinkConfiguration) {
        self.store = store
        self.entity = entity
        self.cause = cause
        self.now = now
        self.configuration = configuration
    }

    func ref(_ global: UUID) -> String { GlobalRef(entity, id: global).description }

    // MARK: canonical

    mutating func canonical() throws -> LinkEngine.Outcome {
        let parsed = try store.cache.parsed[cause.id] ?? Context.parse(cause, entity: entity)
        let payload = parsed.payload
        let source = cause.system
        let nativeId = cause.entityId
        var values = parsed.values
        let modifiedAt = payload.modifiedAt.flatMap(Context.milliseconds) ?? Int64((cause.time.timeIntervalSince1970 * 1000).rounded())
        if entity == .order {
            // Rule 6 at the source: the records a change names (the order's customer, each line's
            // product) are known by their own change first, so that they are matched by key like
            // any record (rule 3) before anything refers to them. Until then the change waits.
            let record = LinkCache.MemberKey(source, entity, nativeId)
            var missing: [LinkCache.MemberKey] = []
            for reference in payload.references {
                if let target = try store.member(source, reference.entity, reference.id) {
                    Context.set(GlobalRef(reference.entity, id: target).description, at: reference.path, in: &values)
                } else {
                    let key = LinkCache.MemberKey(source, reference.entity, reference.id)
                    if !missing.contains(key) { missing.append(key) }
                }
            }
            if !missing.isEmpty {
                let names = missing.map { "\($0.entity) \($0.nativeId)" }.joined(separator: ", ")
                try store.wait(cause, record, for: missing, modifiedAt: modifiedAt, reason: "waiting for \(source) to report \(names)")
                return .waiting
            }
            try store.resolveWaiting(record, modifiedAt: modifiedAt)
        }
        var change = IncomingChange(system: source, modifiedAt: modifiedAt, values: values, carried: payload.carried,
                                    assigned: Set(payload.assigned))
        // A line the source adds without a VAT rate (it carries none: PowerOffice Go) takes its
        // product's (docs/canonical-model.md, "Order lines"). A batch has the products locked already.
        for product in change.productsNeedingVatRate {
            guard let ref = GlobalRef(product), ref.entity == .product else { continue }
            change.productVatRates[product] = try store.lockEntity(ref.id, .product).values["vatRate"]
        }

        // Rule 1 and 3: the record's global entity — its own, a match, or a new one.
        var global: UUID
        var joined = false
        var state: GlobalState
        let result: FieldMerge.Result
        if let existing = try store.lockMemberEntity(source, entity, nativeId) {
            // Its own: locked and read with its snapshot and members in two statements.
            global = existing.global
            // (A held change was checked when it was held; since then only Parley's write moved
            // the record's time, which the report may predate.)
            if held == nil, let lastModified = existing.modifiedAt, modifiedAt < lastModified { return .stale }
            // Rule 5: while a write to this record is in flight, what it reports may be that
            // write's echo (the record's feed or webhook can beat the write's answer), and the
            // echo is only known with the answer. Kept until then (`written`/`failed` handle it).
            if try store.writeInFlight(global, to: source) {
                try store.hold(cause, global, source, modifiedAt: modifiedAt)
                return .held(global: global)
            }
            result = FieldMerge.apply(change, to: existing.state, snapshot: held?.previous ?? existing.snapshot, written: held?.written)
            state = result.state
            // After a held change the record holds what was written, as far as Parley knows: the
            // report may be from before the write landed, which then overwrote it.
            try store.saveStateAndSnapshot(global, state, source, held?.written ?? result.snapshot, entity: entity, modifiedAt: modifiedAt)
            // The stored keys are always those of the stored state: rewrite them only when they change.
            let keys = Context.naturalKeys(entity, state.values)
            if !result.changed.isEmpty, keys != Context.naturalKeys(entity, existing.state.values) {
                try store.replaceKeys(global, keys, entity: entity)
            }
        } else {
            // The echo of Parley's own create, arriving before its written event, carries the key
            // it was created with: it joins that entity (orders are never matched by content, so
            // it would otherwise become a second entity) and changes nothing: merging it would
            // let what the system cannot hold (an order line's discount in the webshop) erase it.
            // What it reported is the member's snapshot, so a second report of the same record
            // before the written event (a webhook and a poll, two adapter replicas) is no edit
            // either; the written event then records what was written.
            if let origin = try originEntity(payload.origin) {
                _ = try store.lockEntity(origin, entity)
                if try store.nativeId(of: origin, in: source) == nil {
                    guard try store.addMember(origin, source, entity, nativeId) else { return try canonical() }
                    try store.saveSnapshot(origin, source, FieldMerge.reported(by: change), entity: entity, modifiedAt: modifiedAt)
                    return .unchanged(global: origin)
                }
            }
            // The parsed values' keys (references are set only on orders, which have none).
            let keys = parsed.keys
            try store.lock(keys, entity: entity)
            if let match = try matchingEntity(keys) {
                if let other = try store.nativeId(of: match, in: source) {
                    if other == nativeId {
                        // Another replica linked this very record meanwhile (the same change
                        // delivered twice, handled at once): handle it as that entity's.
                        store.cache.absent.remove(LinkCache.MemberKey(source, entity, nativeId))
                        return try canonical()
                    }
                    try store.recordConflict(match, source, nativeId: nativeId, memberId: other,
                                             reason: "\(source) \(entity.rawValue) \(nativeId) and \(other) both match \(ref(match))")
                    return .conflict
                }
                guard try store.addMember(match, source, entity, nativeId) else {
                    // Another replica linked this record meanwhile: handle it as that entity's.
                    return try canonical()
                }
                global = match
                state = try store.lockEntity(global, entity)
                _ = try store.readEntityInfo(global, snapshotOf: source)
                // A record that just joined has no snapshot yet.
                result = FieldMerge.apply(change, to: state, snapshot: nil)
                state = result.state
                try store.saveStateAndSnapshot(global, state, source, result.snapshot, entity: entity, modifiedAt: modifiedAt)
                try store.replaceKeys(global, Context.naturalKeys(entity, state.values), entity: entity)
            } else {
                // New: the entity, its member, state, snapshot and keys in one statement.
                global = UUID.random()
                result = FieldMerge.apply(change, to: GlobalState(entity: entity), snapshot: nil)
                state = result.state
                let stateKeys = state.values == values ? keys : Context.naturalKeys(entity, state.values)
                guard try store.createEntity(global, entity, state: state, member: source, nativeId: nativeId, snapshot: result.snapshot,
                                             modifiedAt: modifiedAt, keys: stateKeys) else {
                    // Another replica linked this record meanwhile: handle it as that entity's.
                    return try canonical()
                }
            }
            joined = true
        }
        // A write to this record that waited for its own change (see `send`) goes now, if the
        // entity holds something the record lacks.
        let writeBack = try !joined && store.isParked(global, for: source)
        if result.changed.isEmpty && !joined && !writeBack { return .unchanged(global: global) }

        // Rule 2: updates follow links (members whose written fields changed), creation
        // follows flow edges from members.
        let members = try store.members(of: global)
        for (system, _) in members.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where system != source {
            let written = configuration.writtenFields[system]?[entity] ?? []
            // Rule 9: an archive reaches every member that can archive, by field or by operation.
            let archives = result.changed.contains("archived") && state.values["archived"] == .bool(true)
                && configuration.archivable[system]?.contains(entity) == true
            if archives || result.changed.contains(where: written.contains) { try request(global: global, to: system, state: state) }
        }
        // A record that just joined gets what the entity knows and it lacks.
        if joined && members.count > 1 || writeBack {
            if try differs(state, from: result.snapshot, writtenTo: source) {
                try request(global: global, to: source, state: state)
            } else if writeBack {
                try store.unpark(global, source)
            }
        }
        try createDownstream(global: global, members: members, state: state)
        // A record matched into an entity is a link like a confirmed create: what waited for it
        // goes, and a create to it that failed (it already existed) is no failure any more.
        if joined, members.count > 1 {
            try releaseParked(on: global, in: source)
            try store.clearFailure(global, source)
        }
        if result.changed.isEmpty && writes == 0 { return .unchanged(global: global) }
        return .applied(global: global, changed: result.changed, writes: writes, parked: parked)
    }

    /// A canonical message's payload and its flat values (references still native).
    static func parse(_ envelope: Envelope, entity: CanonicalEntityType) throws -> LinkCache.Parsed {
        let payload: CanonicalPayload
        do { payload = try CanonicalPayload(json: envelope.payload) } catch { throw LinkError("\(error)") }
        let values: [String: JSONValue]
        do { values = try CanonicalJSON.flatten(payload.entity, entity: entity) } catch { throw LinkError("\(error)") }
        return LinkCache.Parsed(payload: payload, values: values, keys: naturalKeys(entity, values))
    }

    /// Whether `state` has something for `system` that its last-known `snapshot` lacks, among
    /// the fields it is written.
    func differs(_ state: GlobalState, from snapshot: Snapshot, writtenTo system: SystemName) throws -> Bool {
        let written = configuration.writtenFields[system]?[entity] ?? []
        return written.contains { field in
            !FieldMerge.equal(state.values[field], snapshot.values[field], field: field, entity: entity, fields: snapshot.fields)
        }
    }

    /// The entity a record's `origin` (the key Parley created it with) names, if it exists.
    func originEntity(_ origin: String?) throws -> UUID? {
        guard let ref = origin.flatMap(GlobalRef.init), ref.entity == entity, try store.entityType(of: ref.id) == entity else { return nil }
        return ref.id
    }

    /// Rule 3: customers by organisation number, else e-mail (never two different organisation
    /// numbers); products by SKU; orders never. The oldest matching entity wins ties.
    func matchingEntity(_ keys: [NaturalKey]) throws -> UUID? {
        let org = keys.first { if case .organizationNumber = $0 { true } else { false } }
        let candidates = try store.candidates(for: keys, entity: entity)
        for key in keys {
            let kind = LinkStore.kind(key)
            for candidate in candidates where candidate.kind == kind && candidate.value == key.value {
                if case .email = key, let org, let theirs = candidate.organizationNumber, theirs != org.value {
                    continue
                }
                return candidate.global
            }
        }
        return nil
    }

    /// Creates the entity in every system a flow edge reaches from a member that exists.
    mutating func createDownstream(global: UUID, members: [SystemName: String], state: GlobalState) throws {
        for target in configuration.flows.creationTargets(entity: entity, members: Set(members.keys)) {
            try request(global: global, to: target, state: state)
        }
    }

    // MARK: Writes

    /// Rule 8: one write in flight per target record; a newer state waits for it.
    mutating func request(global: UUID, to system: SystemName, state: GlobalState) throws {
        if try store.lockSlot(global, system) != nil {
            try store.markPending(global, system)
            return
        }
        try send(global: global, to: system, state: state, writeId: UUID.random().lowercasedString)
    }

    /// Queues a sync request now (references resolved, or parked when one is missing).
    mutating func send(global: UUID, to system: SystemName, state: GlobalState, writeId: String) throws {
        // The record's own newer change waits for records it names: writing now would overwrite
        // that version unmerged. Parked until that change is handled (`canonical` sends it then).
        if try store.changeWaits(global, in: system) {
            try store.park(global, system, waitingFor: [], reason: "its record in \(system) has a newer change of its own that waits for records it names")
            try store.closeSlot(global, system)
            parked += 1
            return
        }
        // Rule 6: every referenced entity must have a record in the target first.
        var targetIds: [String: String] = [:]
        var missing: [String] = []
        // Parking and releasing must not miss each other between two transactions.
        try store.lockReferenced(Context.references(in: state.values).compactMap { GlobalRef($0)?.id })
        for reference in Context.references(in: state.values) {
            guard let target = GlobalRef(reference) else { continue }
            if let id = try store.nativeId(of: target.id, in: system) { targetIds[reference] = id } else { missing.append(reference) }
        }
        if !missing.isEmpty {
            try store.park(global, system, waitingFor: missing.sorted(),
                           reason: "waiting for \(missing.sorted().joined(separator: ", ")) to have a record in \(system)")
            try store.closeSlot(global, system)
            parked += 1
            return
        }
        try store.unpark(global, system)
        let targetId = try store.nativeId(of: global, in: system)
        let operation: WriteOperation =
            targetId == nil ? .create : (state.values["archived"] == .bool(true) ? .archive : .update)
        let key = ref(global)
        try store.openSlot(global, system, writeId: writeId, operation: operation, key: key,
                           leaseUntil: now.addingTimeInterval(Context.seconds(configuration.lease)))
        // The record's time as last seen: the adapter writes only if it has not changed since.
        let base = targetId == nil ? nil : try store.readEntityInfo(global, snapshotOf: system).modifiedAt
        let request = SyncRequestPayload(
            operation: operation, targetId: targetId, entity: CanonicalJSON.nest(state.values, entity: entity),
            targetIds: targetIds, writeId: writeId, baseModifiedAt: base.map { CivilTime.formatInstant(ms: $0) })
        let envelope = try Envelope.caused(by: cause, kind: .syncRequest, system: system, entityType: entity.messagingEntityType,
                                           entityId: key, time: now, payload: request.json)
        try store.enqueue(envelope, exchange: ParleyTopology.Exchanges.sync,
                          routingKey: ParleyTopology.routingKey(system: system, entityType: envelope.entityType, kind: .syncRequest))
        writes += 1
    }

    /// Rule 6: entities parked for `system` on this entity go now that it has a record there,
    /// whether Parley wrote it or it was matched.
    mutating func releaseParked(on global: UUID, in system: SystemName) throws {
        for waiting in try store.parked(waitingFor: ref(global), in: system) {
            guard let waitingEntity = try store.entityType(of: waiting) else { continue }
            var other = Context(store: store, entity: waitingEntity, cause: cause, now: now, configuration: configuration)
            try other.request(global: waiting, to: system, state: try store.lockEntity(waiting, waitingEntity))
            writes += other.writes
        }
    }

    // MARK: written

    mutating func written() throws -> LinkEngine.Outcome {
        let payload: WrittenPayload
        do { payload = try WrittenPayload(json: cause.payload) } catch { throw LinkError("\(error)") }
        guard let globalRef = GlobalRef(payload.globalId), globalRef.entity == entity else {
            throw LinkError("written: \(payload.globalId) is not a global \(entity.rawValue) id")
        }
        let global = globalRef.id
        let system = cause.system
        _ = try store.lockEntity(global, entity)
        guard let slot = try store.lockSlot(global, system), slot.writeId == payload.writeId else { return .ignored }

        // The record exists in the target now (rule 1): link it.
        if try store.nativeId(of: global, in: system) == nil {
            guard try store.addMember(global, system, entity, cause.entityId) else {
                throw LinkError("\(system) \(entity.rawValue) \(cause.entityId) already belongs to another global entity")
            }
        }
        // Rule 5: what the target will report back is its last-known state.
        var expected: [String: JSONValue]
        do { expected = try CanonicalJSON.flatten(payload.expected.entity, entity: entity) } catch { throw LinkError("\(error)") }
        for reference in payload.expected.references {
            // The command named the target's records by the ids of their members there.
            guard let target = try store.member(system, reference.entity, reference.id) else {
                throw LinkError("written: the expected echo names \(system) \(reference.entity.rawValue) \(reference.id), which is no member")
            }
            Context.set(GlobalRef(reference.entity, id: target).description, at: reference.path, in: &expected)
        }
        let snapshot = Snapshot(fields: payload.expected.carried, values: expected)
        let previous = slot.held == nil ? nil : try store.readEntityInfo(global, snapshotOf: system).0
        // The record's time after the write is the base of the next conditional write to it.
        try store.saveSnapshot(global, system, snapshot, entity: entity, modifiedAt: payload.modifiedAt.flatMap(Context.milliseconds))
        try store.saveWrittenHash(global, system, CanonicalHash.hex(flat: expected, entity: entity,
                                                                      fields: snapshot.fields.compactMap { CanonicalField.named($0, entity: entity) }))
        try store.clearFailure(global, system)
        try close(slot, global: global, in: system, previous: previous, written: snapshot)
        let state = try store.lockEntity(global, entity)

        try releaseParked(on: global, in: system)
        // Rule 2: the chain continues from the new member (webshop copy confirmed → PowerOffice Go).
        try createDownstream(global: global, members: try store.members(of: global), state: state)
        return .recorded(global: global, writes: writes)
    }

    // MARK: failed

    mutating func failed() throws -> LinkEngine.Outcome {
        let payload: FailedPayload
        do { payload = try FailedPayload(json: cause.payload) } catch { throw LinkError("\(error)") }
        guard let globalRef = GlobalRef(payload.globalId ?? cause.entityId), globalRef.entity == entity else {
            throw LinkError("failed: no global \(entity.rawValue) id")
        }
        let global = globalRef.id
        let system = cause.system
        _ = try store.lockEntity(global, entity)
        guard let slot = try store.lockSlot(global, system), slot.writeId == payload.writeId else { return .ignored }
        // A create refused because the record already exists there, which has meanwhile been
        // matched and linked (the system's own copy arrived as a change): nothing failed.
        if payload.operation == .create, try store.nativeId(of: global, in: system) != nil {
            try close(slot, global: global, in: system)
            return .recorded(global: global, writes: writes)
        }
        // Refused because the target has a record with this entity's key (`exists`): the adapter
        // found it by that key and reported it as a change, which matches it here (rule 3), and
        // the create, tried again as a transient failure, becomes an update. Unless that record
        // is another entity's member already: two entities for one record, a duplicate conflict
        // (held and reported, rule 3) that no retry can resolve.
        if payload.operation == .create, let existing = payload.existingId,
           let other = try store.member(system, entity, existing), other != global {
            let reason = "\(system) already has this \(entity.rawValue) as \(existing), which is linked to \(ref(other)): "
                + "two global entities for one record (a duplicate conflict)"
            try store.recordConflict(global, system, nativeId: existing, memberId: existing, reason: reason)
            _ = try store.recordFailure(global, system, kind: "duplicate", reason: reason, transient: false, retryAt: nil)
            try close(slot, global: global, in: system)
            return .conflict
        }
        // Not written because the record was modified after the state was merged (`changed`): the
        // adapter published it as a change. The write waits for that change like a write to a
        // record whose own change waits (`send`): parked without references, and `canonical`
        // writes the merged state back with the new base once the change is handled — also if it
        // was held meanwhile and is handled right here.
        if payload.kind == "changed" {
            try store.park(global, system, waitingFor: [], reason: "its record in \(system) changed since the state was merged: \(payload.reason)")
            parked += 1
            try store.closeSlot(global, system)
            if let held = slot.held { _ = try handleHeld(held) }
            return .recorded(global: global, writes: writes)
        }
        // The record is gone from the target (`gone`: deleted there; the adapter published the
        // delete, which archives the other members, rule 9). Nothing failed and nothing waits.
        if payload.kind == "gone" {
            try store.clearFailure(global, system)
            try store.closeSlot(global, system)
            if let held = slot.held { _ = try handleHeld(held) }
            return .recorded(global: global, writes: writes)
        }
        // Rule 10: recorded with its reason; transient failures come back after a backoff
        // (the slot's lease is the timer), permanent ones wait for a change or a retry request.
        if payload.transient {
            let attempts = try store.recordFailure(global, system, kind: payload.kind, reason: payload.reason, transient: true, retryAt: nil)
            let backoff = Backoff(initial: configuration.retryBase, maximum: configuration.retryMax, jitter: 0)
            let delay = Context.seconds(backoff.ceiling(forAttempt: max(0, attempts - 1)))
            let retryAt = now.addingTimeInterval(delay)
            try store.setRetryAt(global, system, retryAt)
            try store.extendLease(global, system, until: retryAt)
            return .recorded(global: global, writes: 0)
        }
        _ = try store.recordFailure(global, system, kind: payload.kind, reason: payload.reason, transient: false, retryAt: nil)
        // Nothing was written; a newer state that waited may be the fix.
        try close(slot, global: global, in: system)
        return .recorded(global: global, writes: writes)
    }

    /// Ends a write: closes its slot, handles what the target reported meanwhile (held) — against
    /// what it held before and, when the write was confirmed, what was `written` — and sends the
    /// current state when a newer one waited or the held report was an edit the write may have
    /// overwritten there.
    mutating func close(_ slot: LinkStore.Slot, global: UUID, in system: SystemName, previous: Snapshot? = nil, written: Snapshot? = nil) throws {
        try store.closeSlot(global, system)
        let again = try slot.held.map { try handleHeld($0, previous: previous, written: written) } ?? false
        if slot.pending || again { try request(global: global, to: system, state: try store.lockEntity(global, entity)) }
    }

    /// A change held while a write to its record was in flight, handled now that the write's
    /// outcome is recorded (the slot is closed, so it is not held again): against the snapshot
    /// from before the write and, when it was written, what was written (`previous`, `written`).
    /// Returns whether the record must be written again: an edit of its own that the write in
    /// flight may have overwritten there.
    mutating func handleHeld(_ change: Envelope, previous: Snapshot? = nil, written: Snapshot? = nil) throws -> Bool {
        var context = Context(store: store, entity: entity, cause: change, now: now, configuration: configuration)
        if let written { context.held = (previous, written) }
        let outcome = try context.canonical()
        writes += context.writes
        parked += context.parked
        guard written != nil, case .applied(_, let changed, _, _) = outcome else { return false }
        let writtenFields = configuration.writtenFields[change.system]?[entity] ?? []
        return changed.contains(where: writtenFields.contains)
    }

    // MARK: Helpers

    static func naturalKeys(_ entity: CanonicalEntityType, _ values: [String: JSONValue]) -> [NaturalKey] {
        switch entity {
        case .customer: (try? Customer(canonicalFieldValues: values))?.naturalKeys ?? []
        case .product: (try? Product(canonicalFieldValues: values))?.naturalKey.map { [$0] } ?? []
        case .order: []
        }
    }

    /// The global refs the values name: the order's customer and its lines' products.
    static func references(in values: [String: JSONValue]) -> [String] {
        var refs: [String] = []
        if case .string(let customer)? = values["customer"] { refs.append(customer) }
        for line in values["lines"]?.array ?? [] {
            if case .string(let product)? = line["product"], !refs.contains(product) { refs.append(product) }
        }
        return refs
    }

    /// Puts a reference at `customer` or `lines[2].product`.
    static func set(_ ref: String, at path: String, in values: inout [String: JSONValue]) {
        CanonicalJSON.set(ref, atReference: path, in: &values)
    }

    static func milliseconds(_ instant: String) -> Int64? {
        try? CivilTime.parseInstant(instant)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
