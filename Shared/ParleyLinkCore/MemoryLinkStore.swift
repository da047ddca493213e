import Foundation
import ParleyCanonical
import ParleyCore
import ParleyEnvelope
import ParleyJSON

/// The link service's tables in memory, with the rules run against them: what the rules do
/// without a database, for the pure tests (every rule of docs/link-service.md, and properties
/// over random histories) and for measuring the rules alone.
///
/// It keeps the same rows as the PostgreSQL store (docs/link-service.md, "Tables") with the
/// same statement semantics — a snapshot's source time only moves forward, a held change or a
/// waiting change is replaced only by a newer one, opening a slot keeps what it held — and
/// runs one message at a time, as one transaction: locks have nothing to serialise. It is not
/// thread-safe; one test or one benchmark loop owns it.
public final class MemoryLinkStore {
    public struct MemberRef: Hashable, Sendable {
        public var global: UUID
        public var system: SystemName
        public init(_ global: UUID, _ system: SystemName) {
            self.global = global
            self.system = system
        }
    }

    public struct Member: Sendable {
        public var nativeId: String
        public var snapshot: Snapshot?
        public var modifiedAt: Int64?
        public var writtenHash: String?
    }

    public struct Slot: Sendable {
        public var writeId: String
        public var operation: WriteOperation
        public var key: String
        public var leaseUntil: Date
        public var pending: Bool
        public var held: (at: Int64, change: Envelope)?
    }

    public struct Parked: Sendable, Hashable {
        public var waitingFor: [String]
        public var reason: String
    }

    public struct Failure: Sendable, Hashable {
        public var kind: String
        public var reason: String
        public var transient: Bool
        public var attempts: Int
        public var retryAt: Date?
    }

    public struct Waiting: Sendable {
        public var change: Envelope
        public var waitingFor: [RecordKey]
        public var modifiedAt: Int64
        public var reason: String
        /// When it started waiting (insertion order).
        public var since: Int
    }

    public struct Conflict: Sendable, Hashable {
        public var global: UUID
        public var system: SystemName
        public var nativeId: String
        public var memberId: String
        public var reason: String
    }

    public struct OutboxMessage: Sendable {
        public var envelope: Envelope
        public var exchange: String
        public var routingKey: String
    }

    // The tables.
    public private(set) var inbox: Set<UUID> = []
    public private(set) var entities: [UUID: GlobalState] = [:]
    public private(set) var members: [MemberRef: Member] = [:]
    public private(set) var memberOf: [RecordKey: UUID] = [:]
    public private(set) var keys: [UUID: [NaturalKey]] = [:]
    /// Who holds each key (`natural_key`'s look-up by value).
    var holders: [KeyHolder: Set<UUID>] = [:]
    /// Each entity's members by system (`member`'s look-up by global id).
    var membersByEntity: [UUID: [SystemName: String]] = [:]
    public private(set) var slots: [MemberRef: Slot] = [:]
    public private(set) var parkedTargets: [MemberRef: Parked] = [:]
    public private(set) var failures: [MemberRef: Failure] = [:]
    public private(set) var waiting: [RecordKey: Waiting] = [:]
    public private(set) var conflicts: [Conflict] = []
    public private(set) var outbox: [OutboxMessage] = []
    var nextWaiting = 0
    /// Every effect applied, in order.
    public private(set) var effects: [LinkEffect] = []

    public let configuration: LinkConfiguration

    public init(configuration: LinkConfiguration) {
        self.configuration = configuration
    }

    // MARK: Running the rules

    /// Handles one message as the link service does: once per message id, as one transaction.
    @discardableResult
    public func deliver(_ envelope: Envelope, now: Date) throws -> LinkOutcome {
        guard inbox.insert(envelope.id).inserted else { return .duplicate }
        guard let entity = CanonicalEntityType(rawValue: envelope.entityType.rawValue) else {
            throw LinkError("unknown entity type \(envelope.entityType)")
        }
        var rules = LinkRules(store: self, entity: entity, cause: envelope, now: now, configuration: configuration)
        return try rules.decide()
    }

    /// Sends again every write whose lease ran out at `now` (same write id); returns how many.
    @discardableResult
    public func expireLeases(now: Date) throws -> Int {
        let expired = slots.filter { $0.value.leaseUntil <= now }.sorted { $0.value.leaseUntil < $1.value.leaseUntil }
        for (ref, slot) in expired {
            guard let state = entities[ref.global] else { continue }
            let cause = try Envelope(
                kind: "leaseExpired", system: ref.system, entityType: state.entity.messagingEntityType,
                entityId: GlobalRef(state.entity, id: ref.global).description, time: now, payload: .null)
            var requests = WriteRequests(store: self, entity: state.entity, cause: cause, now: now, lease: configuration.lease)
            try requests.send(global: ref.global, to: ref.system, state: state, writeId: slot.writeId)
        }
        return expired.count
    }

    /// Hands back the waiting changes whose records are all members now, as the link service's
    /// `LinkWaiting` does (each under its released id, oldest first; handling it resolves the
    /// row); returns how many.
    @discardableResult
    public func releaseWaiting(now: Date) throws -> Int {
        let ready = waiting.values.filter { $0.waitingFor.allSatisfy { memberOf[$0] != nil } }.sorted { $0.since < $1.since }
        for row in ready { try deliver(try WaitingChange.released(row.change), now: now) }
        return ready.count
    }

    /// The outbox's messages, oldest first, removed (as the relay would).
    public func takeOutbox() -> [OutboxMessage] {
        defer { outbox = [] }
        return outbox
    }

    /// The global entity a record is a member of, with its state.
    public func entity(of system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) -> (global: UUID, state: GlobalState)? {
        guard let global = memberOf[RecordKey(system, entity, nativeId)], let state = entities[global] else { return nil }
        return (global, state)
    }

    struct KeyHolder: Hashable {
        var entity: CanonicalEntityType
        var key: NaturalKey
    }

    func setKeys(_ global: UUID, _ new: [NaturalKey], entity: CanonicalEntityType) {
        for key in keys[global] ?? [] { holders[KeyHolder(entity: entity, key: key)]?.remove(global) }
        keys[global] = new
        for key in new { holders[KeyHolder(entity: entity, key: key), default: []].insert(global) }
    }

    func addMemberRow(_ global: UUID, _ system: SystemName, _ record: RecordKey, _ member: Member) {
        memberOf[record] = global
        members[MemberRef(global, system)] = member
        membersByEntity[global, default: [:]][system] = member.nativeId
    }

    static func later(_ a: Int64?, _ b: Int64?) -> Int64? {
        guard let a else { return b }
        guard let b else { return a }
        return max(a, b)
    }
}

extension MemoryLinkStore: LinkStoring {
    public func parsed(_ message: UUID) -> ParsedCanonical? { nil }

    public func member(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> UUID? {
        memberOf[RecordKey(system, entity, nativeId)]
    }

    public func memberAppeared(_ record: RecordKey) {}

    public func nativeId(of global: UUID, in system: SystemName) throws -> String? {
        members[MemberRef(global, system)]?.nativeId
    }

    public func members(of global: UUID) throws -> [SystemName: String] {
        membersByEntity[global] ?? [:]
    }

    public func entityType(of global: UUID) throws -> CanonicalEntityType? { entities[global]?.entity }

    public func lockEntity(_ global: UUID, _ entity: CanonicalEntityType) throws -> GlobalState {
        guard let state = entities[global] else { throw LinkError("global entity \(global) does not exist") }
        return state
    }

    public func lockMemberEntity(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> MemberView? {
        guard let global = memberOf[RecordKey(system, entity, nativeId)], let state = entities[global] else { return nil }
        let member = members[MemberRef(global, system)]
        return MemberView(global: global, state: state, snapshot: member?.snapshot, modifiedAt: member?.modifiedAt)
    }

    public func snapshot(of global: UUID, in system: SystemName) throws -> (snapshot: Snapshot?, modifiedAt: Int64?) {
        let member = members[MemberRef(global, system)]
        return (member?.snapshot, member?.modifiedAt)
    }

    public func lockReferenced(_ globals: [UUID]) throws {}

    public func lock(_ keys: [NaturalKey], entity: CanonicalEntityType) throws {}

    public func candidates(for keys: [NaturalKey], entity: CanonicalEntityType) throws -> [KeyCandidate] {
        var result: [KeyCandidate] = []
        for key in keys {
            for global in holders[KeyHolder(entity: entity, key: key)] ?? [] {
                let org = self.keys[global]?.first { if case .organizationNumber = $0 { true } else { false } }?.value
                result.append(KeyCandidate(kind: key.kind, value: key.value, global: global, organizationNumber: org))
            }
        }
        return result.sorted { $0.global.uuidString < $1.global.uuidString }
    }

    public func addMember(_ global: UUID, _ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> Bool {
        let record = RecordKey(system, entity, nativeId)
        guard memberOf[record] == nil, members[MemberRef(global, system)] == nil else { return false }
        addMemberRow(global, system, record, Member(nativeId: nativeId))
        return true
    }

    public func createEntity(_ new: NewEntity) throws -> Bool {
        let record = RecordKey(new.system, new.entity, new.nativeId)
        guard memberOf[record] == nil else { return false }
        entities[new.global] = new.state
        addMemberRow(new.global, new.system, record, Member(nativeId: new.nativeId, snapshot: new.snapshot, modifiedAt: new.modifiedAt))
        setKeys(new.global, new.keys, entity: new.entity)
        return true
    }

    public func changeWaits(_ global: UUID, in system: SystemName) throws -> Bool {
        guard let member = members[MemberRef(global, system)], let entity = entities[global]?.entity else { return false }
        return waiting[RecordKey(system, entity, member.nativeId)] != nil
    }

    public func lockSlot(_ global: UUID, _ system: SystemName) throws -> OpenWrite? {
        slots[MemberRef(global, system)].map { OpenWrite(writeId: $0.writeId, pending: $0.pending, held: $0.held?.change) }
    }

    public func writeInFlight(_ global: UUID, to system: SystemName) throws -> Bool { slots[MemberRef(global, system)] != nil }

    public func isParked(_ global: UUID, for system: SystemName) throws -> Bool { parkedTargets[MemberRef(global, system)] != nil }

    public func parked(waitingFor ref: String, in system: SystemName) throws -> [UUID] {
        parkedTargets.filter { $0.key.system == system && $0.value.waitingFor.contains(ref) }.map(\.key.global)
            .sorted { $0.uuidString < $1.uuidString }
    }

    public func recordFailure(_ global: UUID, _ system: SystemName, kind: String, reason: String, transient: Bool) throws -> Int {
        let attempts = (failures[MemberRef(global, system)]?.attempts ?? 0) + 1
        failures[MemberRef(global, system)] = Failure(kind: kind, reason: reason, transient: transient, attempts: attempts, retryAt: nil)
        return attempts
    }

    public func apply(_ effect: LinkEffect) throws {
        effects.append(effect)
        switch effect {
        case .saveState(let global, let state, let system, let snapshot, let modifiedAt):
            entities[global] = state
            saveSnapshot(global, system, snapshot, modifiedAt)
        case .saveSnapshot(let global, let system, let snapshot, _, let modifiedAt): saveSnapshot(global, system, snapshot, modifiedAt)
        case .saveWrittenHash(let global, let system, let hash): members[MemberRef(global, system)]?.writtenHash = hash
        case .replaceKeys(let global, let keys, let entity): setKeys(global, keys, entity: entity)
        case .recordConflict(let global, let system, let nativeId, let memberId, let reason):
            conflicts.removeAll { $0.global == global && $0.system == system && $0.nativeId == nativeId }
            conflicts.append(Conflict(global: global, system: system, nativeId: nativeId, memberId: memberId, reason: reason))
        case .wait(let change, let record, let missing, let modifiedAt, let reason):
            if let old = waiting[record], old.modifiedAt > modifiedAt { break }
            waiting[record] = Waiting(
                change: change, waitingFor: missing, modifiedAt: modifiedAt, reason: reason,
                since: waiting[record]?.since ?? nextWaiting)
            nextWaiting += 1
        case .resolveWaiting(let record, let modifiedAt):
            if let old = waiting[record], old.modifiedAt <= modifiedAt { waiting[record] = nil }
        case .hold(let change, let global, let system, let modifiedAt):
            let ref = MemberRef(global, system)
            if let held = slots[ref]?.held, held.at > modifiedAt { break }
            slots[ref]?.held = (modifiedAt, change)
        case .markPending(let global, let system): slots[MemberRef(global, system)]?.pending = true
        case .openSlot(let global, let system, let writeId, let operation, let key, let leaseUntil):
            let ref = MemberRef(global, system)
            slots[ref] = Slot(writeId: writeId, operation: operation, key: key, leaseUntil: leaseUntil, pending: false, held: slots[ref]?.held)
        case .closeSlot(let global, let system): slots[MemberRef(global, system)] = nil
        case .extendLease(let global, let system, let until): slots[MemberRef(global, system)]?.leaseUntil = until
        case .park(let global, let system, let refs, let reason): parkedTargets[MemberRef(global, system)] = Parked(waitingFor: refs, reason: reason)
        case .unpark(let global, let system): parkedTargets[MemberRef(global, system)] = nil
        case .setRetryAt(let global, let system, let at): failures[MemberRef(global, system)]?.retryAt = at
        case .clearFailure(let global, let system): failures[MemberRef(global, system)] = nil
        case .enqueue(let envelope, let exchange, let routingKey):
            outbox.append(OutboxMessage(envelope: envelope, exchange: exchange, routingKey: routingKey))
        }
    }

    func saveSnapshot(_ global: UUID, _ system: SystemName, _ snapshot: Snapshot, _ modifiedAt: Int64?) {
        let ref = MemberRef(global, system)
        guard var member = members[ref] else { return }
        member.snapshot = snapshot
        member.modifiedAt = Self.later(modifiedAt, member.modifiedAt)
        members[ref] = member
    }
}
