import Foundation
import ParleyCanonical
import ParleyCore
import ParleyEnvelope
import ParleyJSON

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
        archivable: [SystemName: Set<CanonicalEntityType>] = [:], lease: Duration = .seconds(60), retryBase: Duration = .seconds(5),
        retryMax: Duration = .seconds(900)
    ) {
        self.flows = flows
        self.writtenFields = writtenFields
        self.archivable = archivable
        self.lease = lease
        self.retryBase = retryBase
        self.retryMax = retryMax
    }
}

/// What handling a message did (for logs and tests).
public enum LinkOutcome: Sendable, Hashable {
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
    /// or products): kept until they are members, then handled.
    case waiting
    /// Fields changed; `writes` sync requests were queued, `parked` targets wait for references.
    case applied(global: UUID, changed: [String], writes: Int, parked: Int)
    /// A write's outcome was recorded; `writes` follow-up requests were queued.
    case recorded(global: UUID, writes: Int)
    /// An event for a write that is no longer the current one.
    case ignored
}

/// The link service's decisions for one message (DESIGN rules 1–10): identity and matching,
/// field-level merge, echo suppression, references and parking, one write in flight per target
/// record, the creation chain, failures. Pure: it reads through its ``LinkStoring`` store and
/// changes nothing but through ``LinkEffect``s; the store decides what a read costs and when
/// the effects reach a database. docs/link-service.md states each rule.
public struct LinkRules<Store: LinkStoring> {
    let store: Store
    let entity: CanonicalEntityType
    let cause: Envelope
    let now: Date
    let configuration: LinkConfiguration
    /// The sync requests this message queued and the targets it parked.
    public internal(set) var requests: WriteRequests<Store>
    /// Set when `cause` is a change held while a write to its record was in flight: the
    /// record's snapshot from before that write, and what was written (its expected echo).
    var held: (previous: Snapshot?, written: Snapshot)? = nil

    public init(store: Store, entity: CanonicalEntityType, cause: Envelope, now: Date, configuration: LinkConfiguration) {
        self.store = store
        self.entity = entity
        self.cause = cause
        self.now = now
        self.configuration = configuration
        requests = WriteRequests(store: store, entity: entity, cause: cause, now: now, lease: configuration.lease)
    }

    /// Decides what `cause` means, by its kind: a canonical change, a written or a failed event.
    public mutating func decide() throws -> LinkOutcome {
        switch cause.kind {
        case .canonical: try canonical()
        case .written: try written()
        case .failed: try failed()
        default: throw LinkError("the link service does not take \(cause.kind) messages")
        }
    }

    func ref(_ global: UUID) -> String { GlobalRef(entity, id: global).description }

    func apply(_ effect: LinkEffect) throws { try store.apply(effect) }

    /// The global refs the values name: the order's customer and its lines' products.
    public static func references(in values: [String: JSONValue]) -> [String] {
        var refs: [String] = []
        if case .string(let customer)? = values["customer"] { refs.append(customer) }
        for line in values["lines"]?.array ?? [] {
            if case .string(let product)? = line["product"], !refs.contains(product) { refs.append(product) }
        }
        return refs
    }

    static func milliseconds(_ instant: String) -> Int64? {
        try? CivilTime.parseInstant(instant)
    }
}

// MARK: Canonical changes

extension LinkRules {
    /// A merged change's place: its entity, merged state, what changed, and whether the record
    /// just joined the entity (matched or new).
    struct Merged {
        var global: UUID
        var state: GlobalState
        var result: FieldMerge.Result
        var joined: Bool
    }

    /// A record's change: merged into its entity (rules 1, 3, 4, 5), then sent on (rules 2, 6, 9).
    mutating func canonical() throws -> LinkOutcome {
        let parsed = try store.parsed(cause.id) ?? ParsedCanonical(cause, entity: entity)
        let payload = parsed.payload
        var values = parsed.values
        let modifiedAt = payload.modifiedAt.flatMap(Self.milliseconds) ?? Int64((cause.time.timeIntervalSince1970 * 1000).rounded())
        if entity == .order, try !resolveSourceReferences(payload, in: &values, modifiedAt: modifiedAt) { return .waiting }
        var change = IncomingChange(
            system: cause.system, modifiedAt: modifiedAt, values: values, carried: payload.carried,
            assigned: Set(payload.assigned))
        // A line the source adds without a VAT rate (it carries none: PowerOffice Go) takes its
        // product's (docs/canonical-model.md, "Order lines"). A batch has the products locked already.
        for product in change.productsNeedingVatRate {
            guard let ref = GlobalRef(product), ref.entity == .product else { continue }
            change.productVatRates[product] = try store.lockEntity(ref.id, .product).values["vatRate"]
        }
        // Rule 1 and 3: the record's global entity — its own, a match, or a new one.
        let step: Step
        if let existing = try store.lockMemberEntity(cause.system, entity, cause.entityId) {
            guard let own = try mergeIntoOwn(change, existing) else { return .stale }
            step = own
        } else {
            step = try join(change, parsed)
        }
        switch step {
        case .done(let outcome): return outcome
        case .merged(let merged): return try propagate(merged)
        }
    }

    enum Step {
        case done(LinkOutcome)
        case merged(Merged)
    }

    /// Rule 6 at the source: the records a change names (the order's customer, each line's
    /// product) are known by their own change first, so that they are matched by key like any
    /// record (rule 3) before anything refers to them. Until then the change waits (`false`).
    mutating func resolveSourceReferences(_ payload: CanonicalPayload, in values: inout [String: JSONValue], modifiedAt: Int64) throws -> Bool {
        let source = cause.system
        let record = RecordKey(source, entity, cause.entityId)
        var missing: [RecordKey] = []
        for reference in payload.references {
            if let target = try store.member(source, reference.entity, reference.id) {
                CanonicalJSON.set(GlobalRef(reference.entity, id: target).description, atReference: reference.path, in: &values)
            } else {
                let key = RecordKey(source, reference.entity, reference.id)
                if !missing.contains(key) { missing.append(key) }
            }
        }
        if !missing.isEmpty {
            let names = missing.map { "\($0.entity) \($0.nativeId)" }.joined(separator: ", ")
            try apply(.wait(cause, record, for: missing, modifiedAt: modifiedAt, reason: "waiting for \(source) to report \(names)"))
            return false
        }
        try apply(.resolveWaiting(record, modifiedAt: modifiedAt))
        return true
    }

    /// A change of a member: merged into its own entity. `nil` when it is stale.
    mutating func mergeIntoOwn(_ change: IncomingChange, _ existing: MemberView) throws -> Step? {
        let global = existing.global
        let source = cause.system
        // (A held change was checked when it was held; since then only Parley's write moved
        // the record's time, which the report may predate.)
        if held == nil, let lastModified = existing.modifiedAt, change.modifiedAt < lastModified { return nil }
        // Rule 5: while a write to this record is in flight, what it reports may be that
        // write's echo (the record's feed or webhook can beat the write's answer), and the
        // echo is only known with the answer. Kept until then (`written`/`failed` handle it).
        if try store.writeInFlight(global, to: source) {
            try apply(.hold(cause, global, source, modifiedAt: change.modifiedAt))
            return .done(.held(global: global))
        }
        let result = FieldMerge.apply(change, to: existing.state, snapshot: held?.previous ?? existing.snapshot, written: held?.written)
        // After a held change the record holds what was written, as far as Parley knows: the
        // report may be from before the write landed, which then overwrote it.
        try apply(.saveState(global, result.state, member: source, snapshot: held?.written ?? result.snapshot, modifiedAt: change.modifiedAt))
        // The stored keys are always those of the stored state: rewrite them only when they change.
        let keys = NaturalKey.of(entity, result.state.values)
        if !result.changed.isEmpty, keys != NaturalKey.of(entity, existing.state.values) {
            try apply(.replaceKeys(global, keys, entity: entity))
        }
        return .merged(Merged(global: global, state: result.state, result: result, joined: false))
    }

    /// A record that is no member yet joins an entity: the one Parley created it from (its
    /// origin), one it matches by natural key, or a new one.
    mutating func join(_ change: IncomingChange, _ parsed: ParsedCanonical) throws -> Step {
        // The echo of Parley's own create, arriving before its written event, carries the key
        // it was created with: it joins that entity (orders are never matched by content, so
        // it would otherwise become a second entity) and changes nothing: merging it would
        // let what the system cannot hold (an order line's discount in the webshop) erase it.
        // What it reported is the member's snapshot, so a second report of the same record
        // before the written event (a webhook and a poll, two adapter replicas) is no edit
        // either; the written event then records what was written.
        if let origin = try originEntity(parsed.payload.origin) {
            _ = try store.lockEntity(origin, entity)
            if try store.nativeId(of: origin, in: cause.system) == nil {
                guard try store.addMember(origin, cause.system, entity, cause.entityId) else { return .done(try canonical()) }
                try apply(.saveSnapshot(origin, cause.system, FieldMerge.reported(by: change), entity: entity, modifiedAt: change.modifiedAt))
                return .done(.unchanged(global: origin))
            }
        }
        // The parsed values' keys (references are set only on orders, which have none).
        try store.lock(parsed.keys, entity: entity)
        if let match = try matchingEntity(parsed.keys) { return try joinMatch(match, change) }
        // New: the entity, its member, state, snapshot and keys in one statement.
        let global = UUID.random()
        let result = FieldMerge.apply(change, to: GlobalState(entity: entity), snapshot: nil)
        let keys = result.state.values == parsed.values ? parsed.keys : NaturalKey.of(entity, result.state.values)
        let new = NewEntity(
            global: global, entity: entity, system: cause.system, nativeId: cause.entityId, state: result.state,
            snapshot: result.snapshot, modifiedAt: change.modifiedAt, keys: keys)
        // `false`: another replica linked this record meanwhile: handle it as that entity's.
        guard try store.createEntity(new) else { return .done(try canonical()) }
        return .merged(Merged(global: global, state: result.state, result: result, joined: true))
    }

    /// The record matches entity `match` by a natural key (rule 3): it becomes its member,
    /// unless that entity has another record in this system (a conflict).
    mutating func joinMatch(_ match: UUID, _ change: IncomingChange) throws -> Step {
        let source = cause.system
        let nativeId = cause.entityId
        if let other = try store.nativeId(of: match, in: source) {
            if other == nativeId {
                // Another replica linked this very record meanwhile (the same change delivered
                // twice, handled at once): handle it as that entity's.
                store.memberAppeared(RecordKey(source, entity, nativeId))
                return .done(try canonical())
            }
            try apply(
                .recordConflict(
                    match, source, nativeId: nativeId, memberId: other,
                    reason: "\(source) \(entity.rawValue) \(nativeId) and \(other) both match \(ref(match))"))
            return .done(.conflict)
        }
        // Another replica linked this record meanwhile: handle it as that entity's.
        guard try store.addMember(match, source, entity, nativeId) else { return .done(try canonical()) }
        let state = try store.lockEntity(match, entity)
        _ = try store.snapshot(of: match, in: source)
        // A record that just joined has no snapshot yet.
        let result = FieldMerge.apply(change, to: state, snapshot: nil)
        try apply(.saveState(match, result.state, member: source, snapshot: result.snapshot, modifiedAt: change.modifiedAt))
        try apply(.replaceKeys(match, NaturalKey.of(entity, result.state.values), entity: entity))
        return .merged(Merged(global: match, state: result.state, result: result, joined: true))
    }

    /// Rule 2: updates follow links (members whose written fields changed), creation follows
    /// flow edges from members; a record that just joined gets what the entity knows and it lacks.
    mutating func propagate(_ merged: Merged) throws -> LinkOutcome {
        let (global, state, result, joined) = (merged.global, merged.state, merged.result, merged.joined)
        let source = cause.system
        // A write to this record that waited for its own change (see `send`) goes now, if the
        // entity holds something the record lacks.
        let writeBack = try !joined && store.isParked(global, for: source)
        if result.changed.isEmpty && !joined && !writeBack { return .unchanged(global: global) }
        let members = try store.members(of: global)
        for (system, _) in members.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where system != source {
            let written = configuration.writtenFields[system]?[entity] ?? []
            // Rule 9: an archive reaches every member that can archive, by field or by operation.
            let archives =
                result.changed.contains("archived") && state.values["archived"] == .bool(true)
                && configuration.archivable[system]?.contains(entity) == true
            if archives || result.changed.contains(where: written.contains) { try requests.request(global: global, to: system, state: state) }
        }
        if joined && members.count > 1 || writeBack {
            if differs(state, from: result.snapshot, writtenTo: source) {
                try requests.request(global: global, to: source, state: state)
            } else if writeBack {
                try apply(.unpark(global, source))
            }
        }
        try createDownstream(global: global, members: members, state: state)
        // A record matched into an entity is a link like a confirmed create: what waited for it
        // goes, and a create to it that failed (it already existed) is no failure any more.
        if joined, members.count > 1 {
            try requests.releaseParked(on: global, in: source)
            try apply(.clearFailure(global, source))
        }
        if result.changed.isEmpty && requests.sent == 0 { return .unchanged(global: global) }
        return .applied(global: global, changed: result.changed, writes: requests.sent, parked: requests.parked)
    }

    /// Whether `state` has something for `system` that its last-known `snapshot` lacks, among
    /// the fields it is written.
    func differs(_ state: GlobalState, from snapshot: Snapshot, writtenTo system: SystemName) -> Bool {
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
            for candidate in candidates where candidate.kind == key.kind && candidate.value == key.value {
                if case .email = key, let org, let theirs = candidate.organizationNumber, theirs != org.value { continue }
                return candidate.global
            }
        }
        return nil
    }

    /// Creates the entity in every system a flow edge reaches from a member that exists.
    mutating func createDownstream(global: UUID, members: [SystemName: String], state: GlobalState) throws {
        for target in configuration.flows.creationTargets(entity: entity, members: Set(members.keys)) {
            try requests.request(global: global, to: target, state: state)
        }
    }
}

// MARK: Written and failed events

extension LinkRules {
    /// A write was carried out: the record is a member (rule 1), its snapshot is what was
    /// written (rule 5), and what waited for the write goes.
    mutating func written() throws -> LinkOutcome {
        let payload: WrittenPayload
        do { payload = try WrittenPayload(json: cause.payload) } catch { throw LinkError("\(error)") }
        guard let globalRef = GlobalRef(payload.globalId), globalRef.entity == entity else {
            throw LinkError("written: \(payload.globalId) is not a global \(entity.rawValue) id")
        }
        let global = globalRef.id
        let system = cause.system
        _ = try store.lockEntity(global, entity)
        guard let slot = try store.lockSlot(global, system), slot.writeId == payload.writeId else { return .ignored }
        if try store.nativeId(of: global, in: system) == nil {
            guard try store.addMember(global, system, entity, cause.entityId) else {
                throw LinkError("\(system) \(entity.rawValue) \(cause.entityId) already belongs to another global entity")
            }
        }
        let snapshot = try expectedEcho(payload, in: system)
        let previous = slot.held == nil ? nil : try store.snapshot(of: global, in: system).snapshot
        // The record's time after the write is the base of the next conditional write to it.
        try apply(.saveSnapshot(global, system, snapshot, entity: entity, modifiedAt: payload.modifiedAt.flatMap(Self.milliseconds)))
        let fields = snapshot.fields.compactMap { CanonicalField.named($0, entity: entity) }
        try apply(.saveWrittenHash(global, system, CanonicalHash.hex(flat: snapshot.values, entity: entity, fields: fields)))
        try apply(.clearFailure(global, system))
        try close(slot, global: global, in: system, previous: previous, written: snapshot)
        let state = try store.lockEntity(global, entity)
        try requests.releaseParked(on: global, in: system)
        // Rule 2: the chain continues from the new member (webshop copy confirmed → PowerOffice Go).
        try createDownstream(global: global, members: try store.members(of: global), state: state)
        return .recorded(global: global, writes: requests.sent)
    }

    /// Rule 5: what the target will report back is its last-known state, its references named
    /// by the global refs of the target's records the command named.
    func expectedEcho(_ payload: WrittenPayload, in system: SystemName) throws -> Snapshot {
        var expected: [String: JSONValue]
        do { expected = try CanonicalJSON.flatten(payload.expected.entity, entity: entity) } catch { throw LinkError("\(error)") }
        for reference in payload.expected.references {
            guard let target = try store.member(system, reference.entity, reference.id) else {
                throw LinkError("written: the expected echo names \(system) \(reference.entity.rawValue) \(reference.id), which is no member")
            }
            CanonicalJSON.set(GlobalRef(reference.entity, id: target).description, atReference: reference.path, in: &expected)
        }
        return Snapshot(fields: payload.expected.carried, values: expected)
    }

    /// A write was not carried out: recorded with its reason (rule 10), unless the record turned
    /// out to exist, to have changed or to be gone.
    mutating func failed() throws -> LinkOutcome {
        let payload: FailedPayload
        do { payload = try FailedPayload(json: cause.payload) } catch { throw LinkError("\(error)") }
        guard let globalRef = GlobalRef(payload.globalId ?? cause.entityId), globalRef.entity == entity else {
            throw LinkError("failed: no global \(entity.rawValue) id")
        }
        let global = globalRef.id
        let system = cause.system
        _ = try store.lockEntity(global, entity)
        guard let slot = try store.lockSlot(global, system), slot.writeId == payload.writeId else { return .ignored }
        if payload.operation == .create, let outcome = try refusedCreate(payload, slot, global: global, in: system) { return outcome }
        // Not written because the record was modified after the state was merged (`changed`): the
        // adapter published it as a change. The write waits for that change like a write to a
        // record whose own change waits (`send`): parked without references, and `canonical`
        // writes the merged state back with the new base once the change is handled — also if it
        // was held meanwhile and is handled right here.
        if payload.kind == "changed" {
            try apply(.park(global, system, waitingFor: [], reason: "its record in \(system) changed since the state was merged: \(payload.reason)"))
            requests.parked += 1
            try apply(.closeSlot(global, system))
            if let held = slot.held { _ = try handleHeld(held) }
            return .recorded(global: global, writes: requests.sent)
        }
        // The record is gone from the target (`gone`: deleted there; the adapter published the
        // delete, which archives the other members, rule 9). Nothing failed and nothing waits.
        if payload.kind == "gone" {
            try apply(.clearFailure(global, system))
            try apply(.closeSlot(global, system))
            if let held = slot.held { _ = try handleHeld(held) }
            return .recorded(global: global, writes: requests.sent)
        }
        // Rule 10: recorded with its reason; transient failures come back after a backoff
        // (the slot's lease is the timer), permanent ones wait for a change or a retry request.
        let attempts = try store.recordFailure(global, system, kind: payload.kind, reason: payload.reason, transient: payload.transient)
        if payload.transient {
            let backoff = Backoff(initial: configuration.retryBase, maximum: configuration.retryMax, jitter: 0)
            let retryAt = now.addingTimeInterval(backoff.ceiling(forAttempt: max(0, attempts - 1)).inSeconds)
            try apply(.setRetryAt(global, system, retryAt))
            try apply(.extendLease(global, system, until: retryAt))
            return .recorded(global: global, writes: 0)
        }
        // Nothing was written; a newer state that waited may be the fix.
        try close(slot, global: global, in: system)
        return .recorded(global: global, writes: requests.sent)
    }

    /// A create refused because the record exists there: nothing failed when it has meanwhile
    /// been matched and linked; a duplicate conflict when it is another entity's member.
    mutating func refusedCreate(_ payload: FailedPayload, _ slot: OpenWrite, global: UUID, in system: SystemName) throws -> LinkOutcome? {
        // Matched and linked meanwhile (the system's own copy arrived as a change).
        if try store.nativeId(of: global, in: system) != nil {
            try close(slot, global: global, in: system)
            return .recorded(global: global, writes: requests.sent)
        }
        // Refused because the target has a record with this entity's key (`exists`): the adapter
        // found it by that key and reported it as a change, which matches it here (rule 3), and
        // the create, tried again as a transient failure, becomes an update. Unless that record
        // is another entity's member already: two entities for one record, a duplicate conflict
        // (held and reported, rule 3) that no retry can resolve.
        guard let existing = payload.existingId, let other = try store.member(system, entity, existing), other != global else { return nil }
        let reason =
            "\(system) already has this \(entity.rawValue) as \(existing), which is linked to \(ref(other)): "
            + "two global entities for one record (a duplicate conflict)"
        try apply(.recordConflict(global, system, nativeId: existing, memberId: existing, reason: reason))
        _ = try store.recordFailure(global, system, kind: "duplicate", reason: reason, transient: false)
        try close(slot, global: global, in: system)
        return .conflict
    }

    /// Ends a write: closes its slot, handles what the target reported meanwhile (held) — against
    /// what it held before and, when the write was confirmed, what was `written` — and sends the
    /// current state when a newer one waited or the held report was an edit the write may have
    /// overwritten there.
    mutating func close(_ slot: OpenWrite, global: UUID, in system: SystemName, previous: Snapshot? = nil, written: Snapshot? = nil) throws {
        try apply(.closeSlot(global, system))
        let again = try slot.held.map { try handleHeld($0, previous: previous, written: written) } ?? false
        if slot.pending || again { try requests.request(global: global, to: system, state: try store.lockEntity(global, entity)) }
    }

    /// A change held while a write to its record was in flight, handled now that the write's
    /// outcome is recorded (the slot is closed, so it is not held again): against the snapshot
    /// from before the write and, when it was written, what was written (`previous`, `written`).
    /// Returns whether the record must be written again: an edit of its own that the write in
    /// flight may have overwritten there.
    mutating func handleHeld(_ change: Envelope, previous: Snapshot? = nil, written: Snapshot? = nil) throws -> Bool {
        var rules = LinkRules(store: store, entity: entity, cause: change, now: now, configuration: configuration)
        if let written { rules.held = (previous, written) }
        let outcome = try rules.canonical()
        requests.sent += rules.requests.sent
        requests.parked += rules.requests.parked
        guard written != nil, case .applied(_, let changed, _, _) = outcome else { return false }
        let writtenFields = configuration.writtenFields[change.system]?[entity] ?? []
        return changed.contains(where: writtenFields.contains)
    }
}

// MARK: Writes

/// Sync requests for one message (rules 6 and 8): one write in flight per target record, sent
/// when every record the state names has a record in the target, parked until then. What a
/// write needs is its lease.
public struct WriteRequests<Store: LinkStoring> {
    let store: Store
    let entity: CanonicalEntityType
    let cause: Envelope
    let now: Date
    let lease: Duration
    /// Sync requests queued.
    public internal(set) var sent = 0
    /// Targets parked.
    public internal(set) var parked = 0

    public init(store: Store, entity: CanonicalEntityType, cause: Envelope, now: Date, lease: Duration) {
        self.store = store
        self.entity = entity
        self.cause = cause
        self.now = now
        self.lease = lease
    }

    /// Rule 8: one write in flight per target record; a newer state waits for it.
    public mutating func request(global: UUID, to system: SystemName, state: GlobalState) throws {
        if try store.lockSlot(global, system) != nil {
            try store.apply(.markPending(global, system))
            return
        }
        try send(global: global, to: system, state: state, writeId: UUID.random().lowercasedString)
    }

    /// Queues a sync request now (references resolved, or parked when one is missing).
    public mutating func send(global: UUID, to system: SystemName, state: GlobalState, writeId: String) throws {
        // The record's own newer change waits for records it names: writing now would overwrite
        // that version unmerged. Parked until that change is handled (`canonical` sends it then).
        if try store.changeWaits(global, in: system) {
            try park(global, system, waitingFor: [], reason: "its record in \(system) has a newer change of its own that waits for records it names")
            return
        }
        guard let targetIds = try targetReferences(global: global, in: system, state: state) else { return }
        try store.apply(.unpark(global, system))
        let targetId = try store.nativeId(of: global, in: system)
        let operation: WriteOperation = targetId == nil ? .create : (state.values["archived"] == .bool(true) ? .archive : .update)
        let key = GlobalRef(entity, id: global).description
        try store.apply(
            .openSlot(global, system, writeId: writeId, operation: operation, key: key, leaseUntil: now.addingTimeInterval(lease.inSeconds)))
        // The record's time as last seen: the adapter writes only if it has not changed since.
        let base = targetId == nil ? nil : try store.snapshot(of: global, in: system).modifiedAt
        let request = SyncRequestPayload(
            operation: operation, targetId: targetId, entity: CanonicalJSON.nest(state.values, entity: entity),
            targetIds: targetIds, writeId: writeId, baseModifiedAt: base.map { CivilTime.formatInstant(ms: $0) })
        let envelope = try Envelope.caused(
            by: cause, kind: .syncRequest, system: system, entityType: entity.messagingEntityType,
            entityId: key, time: now, payload: request.json)
        try store.apply(
            .enqueue(
                envelope, exchange: ParleyTopology.Exchanges.sync,
                routingKey: ParleyTopology.routingKey(system: system, entityType: envelope.entityType, kind: .syncRequest)))
        sent += 1
    }

    /// Rule 6: the target's ids of every entity the state refers to; `nil` (and the entity
    /// parked) when one has no record in the target yet.
    mutating func targetReferences(global: UUID, in system: SystemName, state: GlobalState) throws -> [String: String]? {
        let references = LinkRules<Store>.references(in: state.values)
        // Parking and releasing must not miss each other between two transactions.
        try store.lockReferenced(references.compactMap { GlobalRef($0)?.id })
        var targetIds: [String: String] = [:]
        var missing: [String] = []
        for reference in references {
            guard let target = GlobalRef(reference) else { continue }
            if let id = try store.nativeId(of: target.id, in: system) { targetIds[reference] = id } else { missing.append(reference) }
        }
        guard missing.isEmpty else {
            let sorted = missing.sorted()
            try park(global, system, waitingFor: sorted, reason: "waiting for \(sorted.joined(separator: ", ")) to have a record in \(system)")
            return nil
        }
        return targetIds
    }

    mutating func park(_ global: UUID, _ system: SystemName, waitingFor refs: [String], reason: String) throws {
        try store.apply(.park(global, system, waitingFor: refs, reason: reason))
        try store.apply(.closeSlot(global, system))
        parked += 1
    }

    /// Rule 6: entities parked for `system` on this entity go now that it has a record there,
    /// whether Parley wrote it or it was matched.
    public mutating func releaseParked(on global: UUID, in system: SystemName) throws {
        for waiting in try store.parked(waitingFor: GlobalRef(entity, id: global).description, in: system) {
            guard let waitingEntity = try store.entityType(of: waiting) else { continue }
            var other = WriteRequests(store: store, entity: waitingEntity, cause: cause, now: now, lease: lease)
            try other.request(global: waiting, to: system, state: try store.lockEntity(waiting, waitingEntity))
            sent += other.sent
        }
    }
}
