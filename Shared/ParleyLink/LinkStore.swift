import Foundation
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres

/// The link service's SQL, one small function per statement, all inside the caller's
/// transaction (`PostgresTransaction` runs on its connection's own thread, so these are
/// synchronous). JSON goes to and from `jsonb` as text; numbers keep their decimal text.
struct LinkStore {
    let tx: PostgresTransaction

    // MARK: Inbox

    /// Records a message id; `false` when it was processed before (a redelivery).
    func claim(_ messageId: UUID) throws -> Bool {
        try tx.execute("insert into inbox (message_id) values ($1) on conflict do nothing", [messageId]) == 1
    }

    // MARK: Members and global entities

    func member(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> UUID? {
        try tx.query("select global_id from member where system = $1 and entity_type = $2 and native_id = $3",
                     [system.rawValue, entity.rawValue, nativeId]).first?.decode(UUID.self, at: 0)
    }

    /// The native id of a global entity's member in `system`.
    func nativeId(of global: UUID, in system: SystemName) throws -> String? {
        try tx.query("select native_id from member where global_id = $1 and system = $2", [global, system.rawValue])
            .first?.decode(String.self, at: 0)
    }

    /// Every member of a global entity: system → native id.
    func members(of global: UUID) throws -> [SystemName: String] {
        var result: [SystemName: String] = [:]
        for row in try tx.query("select system, native_id from member where global_id = $1", [global]) {
            if let system = SystemName(rawValue: try row.decode(String.self, at: 0)) { result[system] = try row.decode(String.self, at: 1) }
        }
        return result
    }

    func createEntity(_ id: UUID, _ entity: CanonicalEntityType) throws {
        _ = try tx.execute("insert into global_entity (id, entity_type) values ($1, $2)", [id, entity.rawValue])
    }

    /// Adds a member; `false` when (system, entity, native id) is already a member of some entity.
    func addMember(_ global: UUID, _ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> Bool {
        try tx.execute("""
            insert into member (global_id, system, entity_type, native_id) values ($1, $2, $3, $4)
            on conflict (system, entity_type, native_id) do nothing
            """, [global, system.rawValue, entity.rawValue, nativeId]) == 1
    }

    /// The global entity a native record belongs to, made (empty) when it has none yet: an
    /// order may name a customer whose own change has not been processed; it then fills the
    /// same global entity.
    func globalId(forMember system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> UUID {
        if let id = try member(system, entity, nativeId) { return id }
        let id = UUID()
        try createEntity(id, entity)
        if try addMember(id, system, entity, nativeId) { return id }
        // Another transaction added it first (we would have waited on its row); use theirs.
        _ = try tx.execute("delete from global_entity where id = $1", [id])
        guard let existing = try member(system, entity, nativeId) else { throw LinkError("member \(system) \(nativeId) vanished") }
        return existing
    }

    /// Locks the entity's row for this transaction (per-entity order across replicas) and reads it.
    func lockEntity(_ global: UUID, _ entity: CanonicalEntityType) throws -> GlobalState {
        guard let row = try tx.query("select state::text, provenance::text from global_entity where id = $1 for update", [global]).first else {
            throw LinkError("global entity \(global) does not exist")
        }
        let values = try Self.object(try row.decode(String.self, at: 0))
        var provenance: [String: Provenance] = [:]
        for (field, value) in try Self.object(try row.decode(String.self, at: 1)) {
            if let system = value["system"]?.string.flatMap(SystemName.init(rawValue:)), let at = value["modifiedAt"]?.number?.int {
                provenance[field] = Provenance(system: system, modifiedAt: Int64(at))
            }
        }
        return GlobalState(entity: entity, values: values, provenance: provenance)
    }

    func saveState(_ global: UUID, _ state: GlobalState) throws {
        let values = JSONValue.object(JSONObject(state.values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        let provenance = JSONValue.object(JSONObject(state.provenance.sorted { $0.key < $1.key }.map { field, p in
            (field, ["system": .string(p.system.rawValue), "modifiedAt": .number(JSONNumber(p.modifiedAt))] as JSONValue)
        }))
        _ = try tx.execute("update global_entity set state = $2, provenance = $3, updated_at = now() where id = $1",
                           [global, PostgresJSON(values.serializedString()), PostgresJSON(provenance.serializedString())])
    }

    // MARK: Snapshots

    func snapshot(_ global: UUID, _ system: SystemName) throws -> (Snapshot?, modifiedAt: Int64?) {
        guard let row = try tx.query("""
            select snapshot::text, (extract(epoch from source_modified_at) * 1000)::bigint
            from member where global_id = $1 and system = $2
            """, [global, system.rawValue]).first else { return (nil, nil) }
        let modifiedAt: Int64? = row.isNull(at: 1) ? nil : try row.decode(Int64.self, at: 1)
        guard !row.isNull(at: 0) else { return (nil, modifiedAt) }
        let object = try Self.object(try row.decode(String.self, at: 0))
        let fields = object["fields"]?.array?.compactMap(\.string) ?? []
        let values = object["values"]?.object.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key, $0.value) }) } ?? [:]
        return (Snapshot(fields: fields, values: values), modifiedAt)
    }

    func saveSnapshot(_ global: UUID, _ system: SystemName, _ snapshot: Snapshot, entity: CanonicalEntityType, modifiedAt: Int64?) throws {
        let json: JSONValue = [
            "fields": .array(snapshot.fields.map(JSONValue.string)),
            "values": .object(JSONObject(snapshot.values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })),
        ]
        let hash = CanonicalHash.hex(flat: snapshot.values, entity: entity,
                                     fields: snapshot.fields.compactMap { CanonicalField.named($0, entity: entity) })
        let modified: Date? = modifiedAt.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        _ = try tx.execute("""
            update member set snapshot = $3, snapshot_hash = $4,
                source_modified_at = coalesce($5, source_modified_at)
            where global_id = $1 and system = $2
            """, [global, system.rawValue, PostgresJSON(json.serializedString()), hash, modified])
    }

    func saveWrittenHash(_ global: UUID, _ system: SystemName, _ hash: String) throws {
        _ = try tx.execute("update member set written_hash = $3 where global_id = $1 and system = $2", [global, system.rawValue, hash])
    }

    // MARK: Natural keys

    static func kind(_ key: NaturalKey) -> String {
        switch key {
        case .organizationNumber: "organizationNumber"
        case .email: "email"
        case .sku: "sku"
        }
    }

    /// Serialises matching on these keys across replicas for the rest of the transaction.
    func lock(_ keys: [NaturalKey], entity: CanonicalEntityType) throws {
        for key in keys.sorted(by: { $0.description < $1.description }) {
            _ = try tx.query("select pg_advisory_xact_lock(hashtextextended($1, 0))", ["\(entity.rawValue)|\(key.description)"])
        }
    }

    func entities(with key: NaturalKey, entity: CanonicalEntityType) throws -> [UUID] {
        try tx.query("select global_id from natural_key where entity_type = $1 and kind = $2 and value = $3 order by global_id",
                     [entity.rawValue, Self.kind(key), key.value]).map { try $0.decode(UUID.self, at: 0) }
    }

    func keys(of global: UUID) throws -> [String: String] {
        var result: [String: String] = [:]
        for row in try tx.query("select kind, value from natural_key where global_id = $1", [global]) {
            result[try row.decode(String.self, at: 0)] = try row.decode(String.self, at: 1)
        }
        return result
    }

    func replaceKeys(_ global: UUID, _ keys: [NaturalKey], entity: CanonicalEntityType) throws {
        _ = try tx.execute("delete from natural_key where global_id = $1", [global])
        for key in keys {
            _ = try tx.execute("insert into natural_key (entity_type, kind, value, global_id) values ($1, $2, $3, $4) on conflict do nothing",
                               [entity.rawValue, Self.kind(key), key.value, global])
        }
    }

    // MARK: Conflicts

    func recordConflict(_ global: UUID, _ system: SystemName, nativeId: String, memberId: String, reason: String) throws {
        _ = try tx.execute("""
            insert into conflict (global_id, system, native_id, member_id, reason) values ($1, $2, $3, $4, $5)
            on conflict (system, native_id, global_id) do update set reason = excluded.reason, detected_at = now()
            """, [global, system.rawValue, nativeId, memberId, reason])
    }

    // MARK: Write slots

    struct Slot {
        var writeId: String
        var pending: Bool
        var attempts: Int
    }

    func lockSlot(_ global: UUID, _ system: SystemName) throws -> Slot? {
        guard let row = try tx.query("select write_id, pending from write_slot where global_id = $1 and system = $2 for update",
                                     [global, system.rawValue]).first else { return nil }
        return Slot(writeId: try row.decode(String.self, at: 0), pending: try row.decode(Bool.self, at: 1), attempts: 0)
    }

    func markPending(_ global: UUID, _ system: SystemName) throws {
        _ = try tx.execute("update write_slot set pending = true where global_id = $1 and system = $2", [global, system.rawValue])
    }

    func openSlot(_ global: UUID, _ system: SystemName, writeId: String, operation: WriteOperation, key: String, leaseUntil: Date) throws {
        _ = try tx.execute("""
            insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until, pending)
            values ($1, $2, $3, $4, $5, $6, false)
            on conflict (global_id, system) do update set write_id = excluded.write_id, operation = excluded.operation,
                lease_until = excluded.lease_until, pending = false
            """, [global, system.rawValue, writeId, operation.rawValue, key, leaseUntil])
    }

    func extendLease(_ global: UUID, _ system: SystemName, until: Date) throws {
        _ = try tx.execute("update write_slot set lease_until = $3 where global_id = $1 and system = $2", [global, system.rawValue, until])
    }

    func closeSlot(_ global: UUID, _ system: SystemName) throws {
        _ = try tx.execute("delete from write_slot where global_id = $1 and system = $2", [global, system.rawValue])
    }

    /// Slots whose lease ran out, locked (skipping ones another replica is handling).
    func expiredSlots(now: Date, limit: Int) throws -> [(UUID, SystemName, String)] {
        try tx.query("""
            select global_id, system, write_id from write_slot where lease_until <= $1
            order by lease_until limit $2 for update skip locked
            """, [now, limit]).compactMap { row in
            guard let system = SystemName(rawValue: try row.decode(String.self, at: 1)) else { return nil }
            return (try row.decode(UUID.self, at: 0), system, try row.decode(String.self, at: 2))
        }
    }

    func entityType(of global: UUID) throws -> CanonicalEntityType? {
        try tx.query("select entity_type from global_entity where id = $1", [global]).first
            .flatMap { CanonicalEntityType(rawValue: try $0.decode(String.self, at: 0)) }
    }

    // MARK: Parked and failed

    func park(_ global: UUID, _ system: SystemName, waitingFor refs: [String], reason: String) throws {
        let list = JSONValue.array(refs.map(JSONValue.string)).serializedString()
        _ = try tx.execute("""
            insert into parked (global_id, system, waiting_for, reason) values ($1, $2, $3, $4)
            on conflict (global_id, system) do update set waiting_for = excluded.waiting_for, reason = excluded.reason
            """, [global, system.rawValue, PostgresJSON(list), reason])
    }

    func unpark(_ global: UUID, _ system: SystemName) throws {
        _ = try tx.execute("delete from parked where global_id = $1 and system = $2", [global, system.rawValue])
    }

    /// Entities parked for `system` that wait for `ref`.
    func parked(waitingFor ref: String, in system: SystemName) throws -> [UUID] {
        try tx.query("select global_id from parked where system = $1 and waiting_for @> $2 order by global_id",
                     [system.rawValue, PostgresJSON(JSONValue.array([.string(ref)]).serializedString())])
            .map { try $0.decode(UUID.self, at: 0) }
    }

    func recordFailure(_ global: UUID, _ system: SystemName, kind: String, reason: String, transient: Bool, retryAt: Date?) throws -> Int {
        try tx.query("""
            insert into failed (global_id, system, kind, reason, transient, retry_at) values ($1, $2, $3, $4, $5, $6)
            on conflict (global_id, system) do update set kind = excluded.kind, reason = excluded.reason,
                transient = excluded.transient, retry_at = excluded.retry_at, attempts = failed.attempts + 1, failed_at = now()
            returning attempts
            """, [global, system.rawValue, kind, reason, transient, retryAt]).first?.decode(Int.self, at: 0) ?? 1
    }

    func setRetryAt(_ global: UUID, _ system: SystemName, _ retryAt: Date) throws {
        _ = try tx.execute("update failed set retry_at = $3 where global_id = $1 and system = $2", [global, system.rawValue, retryAt])
    }

    func clearFailure(_ global: UUID, _ system: SystemName) throws {
        _ = try tx.execute("delete from failed where global_id = $1 and system = $2", [global, system.rawValue])
    }

    // MARK: Outbox

    func enqueue(_ envelope: Envelope, exchange: String, routingKey: String) throws {
        _ = try tx.execute("insert into outbox (message_id, exchange, routing_key, body) values ($1, $2, $3, $4)",
                           [envelope.id, exchange, routingKey, envelope.encoded()])
    }

    // MARK: JSON

    static func object(_ text: String) throws -> [String: JSONValue] {
        guard case .object(let o) = try JSONValue.parse(text) else { throw LinkError("expected a JSON object in the database") }
        return Dictionary(uniqueKeysWithValues: o.map { ($0.key, $0.value) })
    }
}

/// Something the link service cannot do with a message or a row; the message is dead-lettered.
public struct LinkError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension LinkStore {
    /// Takes a share lock on each referenced entity, in id order. A transaction that links one
    /// of them (written event, match) holds its row lock, so the reference check that follows
    /// either sees that link or parks where the linking transaction's release will find it.
    func lockReferenced(_ globals: [UUID]) throws {
        for global in globals.sorted(by: { $0.uuidString < $1.uuidString }) {
            _ = try tx.query("select 1 from global_entity where id = $1 for share", [global])
        }
    }
}
