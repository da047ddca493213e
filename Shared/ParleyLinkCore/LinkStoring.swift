import Foundation
import ParleyCanonical
import ParleyCore
import ParleyEnvelope
import ParleyJSON

/// What the link service's rules (``LinkRules``) read and write, and nothing more: the port
/// between the rules and their store. The rules decide; a store answers their questions about
/// the entities a message touches and carries out their ``LinkEffect``s.
///
/// ParleyLink's `LinkStore` is the store in production: one PostgreSQL transaction, whose
/// reads lock what they read (an entity's row, the advisory lock of a natural key) so that two
/// replicas handle one entity in turn, and whose effects wait in memory and go to the database
/// in one statement. The pure tests' store keeps the same tables in dictionaries. Either way
/// the rules see one transaction: what an effect changed, a later read in the same message
/// (or batch) sees.
public protocol LinkStoring {
    // MARK: The message

    /// The canonical message's payload, parsed ahead when a batch was prefetched.
    func parsed(_ message: UUID) -> ParsedCanonical?

    // MARK: Records and global entities

    /// The global entity a record is a member of.
    func member(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> UUID?
    /// A record the store believed no member turned out to be one (another replica linked it
    /// meanwhile): ask again next time.
    func memberAppeared(_ record: RecordKey)
    /// The native id of a global entity's member in `system`.
    func nativeId(of global: UUID, in system: SystemName) throws -> String?
    /// Every member of a global entity: system → native id.
    func members(of global: UUID) throws -> [SystemName: String]
    func entityType(of global: UUID) throws -> CanonicalEntityType?
    /// Locks the entity for the rest of the transaction and reads its state.
    func lockEntity(_ global: UUID, _ entity: CanonicalEntityType) throws -> GlobalState
    /// The record's global entity, locked and read, with the record's snapshot and source time;
    /// `nil` when the record is no member.
    func lockMemberEntity(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> MemberView?
    /// The snapshot and source time of the entity's member in `system` (the entity locked).
    func snapshot(of global: UUID, in system: SystemName) throws -> (snapshot: Snapshot?, modifiedAt: Int64?)
    /// Takes a share lock on each referenced entity, so a transaction that links one of them
    /// and this one's reference check see each other.
    func lockReferenced(_ globals: [UUID]) throws
    /// Serialises matching on these natural keys for the rest of the transaction.
    func lock(_ keys: [NaturalKey], entity: CanonicalEntityType) throws
    /// Every global entity holding one of `keys`, oldest first.
    func candidates(for keys: [NaturalKey], entity: CanonicalEntityType) throws -> [KeyCandidate]
    /// Adds a member; `false` when the record is already a member of some entity.
    func addMember(_ global: UUID, _ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> Bool
    /// A new global entity with its first member, state, snapshot and keys; `false` (nothing
    /// written) when the record is a member already.
    func createEntity(_ new: NewEntity) throws -> Bool

    // MARK: Changes that wait, writes in flight, parked and failed targets

    /// Whether the entity's member in `system` has a change of its own waiting for records it names.
    func changeWaits(_ global: UUID, in system: SystemName) throws -> Bool
    /// The entity's write in flight to `system`, locked.
    func lockSlot(_ global: UUID, _ system: SystemName) throws -> OpenWrite?
    /// Whether a write to `system` is in flight for the entity.
    func writeInFlight(_ global: UUID, to system: SystemName) throws -> Bool
    /// Whether the entity is parked for `system`.
    func isParked(_ global: UUID, for system: SystemName) throws -> Bool
    /// Entities parked for `system` that wait for `ref`, in id order.
    func parked(waitingFor ref: String, in system: SystemName) throws -> [UUID]
    /// Records a failure (replacing the last) and returns how many times in a row it failed.
    func recordFailure(_ global: UUID, _ system: SystemName, kind: String, reason: String, transient: Bool) throws -> Int

    // MARK: Effects

    /// Carries out an effect; what later reads in the transaction see.
    func apply(_ effect: LinkEffect) throws
}

/// What the rules change, one value per change. A store applies them in order; the database
/// store buffers them and writes them at the end of the batch.
public enum LinkEffect: Sendable, Equatable {
    /// The entity's merged state and `member`'s snapshot (and its source time, which only moves forward).
    case saveState(UUID, GlobalState, member: SystemName, snapshot: Snapshot, modifiedAt: Int64?)
    case saveSnapshot(UUID, SystemName, Snapshot, entity: CanonicalEntityType, modifiedAt: Int64?)
    /// The canonical hash of what was last written to the member.
    case saveWrittenHash(UUID, SystemName, String)
    /// The entity now holds exactly these natural keys.
    case replaceKeys(UUID, [NaturalKey], entity: CanonicalEntityType)
    case recordConflict(UUID, SystemName, nativeId: String, memberId: String, reason: String)
    /// Keeps a change that names records not reported yet; a newer change of the record replaces an older one.
    case wait(Envelope, RecordKey, for: [RecordKey], modifiedAt: Int64, reason: String)
    /// A change of the record as new as its waiting one, or newer, is handled: the waiting one is done.
    case resolveWaiting(RecordKey, modifiedAt: Int64)
    /// Keeps the target's own change until the write in flight to it is answered (a newer one replaces an older one).
    case hold(Envelope, UUID, SystemName, modifiedAt: Int64)
    /// A newer state waits for the write in flight.
    case markPending(UUID, SystemName)
    case openSlot(UUID, SystemName, writeId: String, operation: WriteOperation, key: String, leaseUntil: Date)
    case closeSlot(UUID, SystemName)
    case extendLease(UUID, SystemName, until: Date)
    case park(UUID, SystemName, waitingFor: [String], reason: String)
    case unpark(UUID, SystemName)
    case setRetryAt(UUID, SystemName, Date)
    case clearFailure(UUID, SystemName)
    /// A message for the outbox, published after the commit.
    case enqueue(Envelope, exchange: String, routingKey: String)
}

/// A record in a system: (system, entity type, native id).
public struct RecordKey: Hashable, Sendable {
    public var system: String
    public var entity: String
    public var nativeId: String

    public init(system: String, entity: String, nativeId: String) {
        self.system = system
        self.entity = entity
        self.nativeId = nativeId
    }

    public init(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) {
        self.init(system: system.rawValue, entity: entity.rawValue, nativeId: nativeId)
    }
}

/// A record's global entity as a change from it needs it.
public struct MemberView: Sendable {
    public var global: UUID
    public var state: GlobalState
    public var snapshot: Snapshot?
    public var modifiedAt: Int64?

    public init(global: UUID, state: GlobalState, snapshot: Snapshot?, modifiedAt: Int64?) {
        self.global = global
        self.state = state
        self.snapshot = snapshot
        self.modifiedAt = modifiedAt
    }
}

/// An entity holding a natural key (a matching candidate).
public struct KeyCandidate: Sendable, Hashable {
    public var kind: String
    public var value: String
    public var global: UUID
    public var organizationNumber: String?

    public init(kind: String, value: String, global: UUID, organizationNumber: String?) {
        self.kind = kind
        self.value = value
        self.global = global
        self.organizationNumber = organizationNumber
    }
}

/// A new global entity with its first member.
public struct NewEntity: Sendable {
    public var global: UUID
    public var entity: CanonicalEntityType
    public var system: SystemName
    public var nativeId: String
    public var state: GlobalState
    public var snapshot: Snapshot
    public var modifiedAt: Int64?
    public var keys: [NaturalKey]

    public init(
        global: UUID, entity: CanonicalEntityType, system: SystemName, nativeId: String, state: GlobalState,
        snapshot: Snapshot, modifiedAt: Int64?, keys: [NaturalKey]
    ) {
        self.global = global
        self.entity = entity
        self.system = system
        self.nativeId = nativeId
        self.state = state
        self.snapshot = snapshot
        self.modifiedAt = modifiedAt
        self.keys = keys
    }
}

/// A write in flight to a target record (DESIGN rule 8).
public struct OpenWrite: Sendable {
    public var writeId: String
    /// A newer state waits for this write.
    public var pending: Bool
    /// The target's own change that arrived while this write was in flight (its canonical
    /// envelope), handled once the write's outcome is known.
    public var held: Envelope?

    public init(writeId: String, pending: Bool, held: Envelope?) {
        self.writeId = writeId
        self.pending = pending
        self.held = held
    }
}

/// A canonical message's payload and flat values (references still native), parsed once.
public struct ParsedCanonical: Sendable {
    public var payload: CanonicalPayload
    public var values: [String: JSONValue]
    /// The natural keys of `values` (matching order).
    public var keys: [NaturalKey]

    /// Parses `envelope`'s canonical payload; a bad one is a ``LinkError``.
    public init(_ envelope: Envelope, entity: CanonicalEntityType) throws {
        do { payload = try CanonicalPayload(json: envelope.payload) } catch { throw LinkError("\(error)") }
        do { values = try CanonicalJSON.flatten(payload.entity, entity: entity) } catch { throw LinkError("\(error)") }
        keys = NaturalKey.of(entity, values)
    }
}

extension NaturalKey {
    /// The natural keys of flat canonical values: customers by organisation number and e-mail,
    /// products by SKU, orders none.
    public static func of(_ entity: CanonicalEntityType, _ values: [String: JSONValue]) -> [NaturalKey] {
        switch entity {
        case .customer: (try? Customer(canonicalFieldValues: values))?.naturalKeys ?? []
        case .product: (try? Product(canonicalFieldValues: values))?.naturalKey.map { [$0] } ?? []
        case .order: []
        }
    }

    /// The key's kind as stored: `organizationNumber`, `email` or `sku`.
    public var kind: String {
        switch self {
        case .organizationNumber: "organizationNumber"
        case .email: "email"
        case .sku: "sku"
        }
    }
}

/// Something the link service cannot do with a message or a row; the message is dead-lettered.
public struct LinkError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A change that waited for the records it names (``LinkEffect/wait(_:_:for:modifiedAt:reason:)``),
/// handed back to the rules once they are members.
public enum WaitingChange {
    /// The change as released: the same change under a message id derived from the one it
    /// waited with — the same in every replica, so the inbox takes it once.
    public static func released(_ original: Envelope) throws -> Envelope {
        try Envelope.caused(by: original, id: releasedId(of: original.id), kind: original.kind, time: original.time, payload: original.payload)
    }

    /// The message id of a released change (a name-based UUID, version 5, of the original id).
    public static func releasedId(of id: UUID) -> UUID {
        var bytes = SHA256.hash(Array("parley-waiting-release:\(id.lowercasedString)".utf8))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5 (name-based, SHA)
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
