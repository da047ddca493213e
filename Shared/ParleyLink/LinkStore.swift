import Foundation
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres

/// The link service's SQL, one small function per statement, all inside the caller's
/// transaction (`PostgresTransaction` runs on its connection's own thread, so these are
/// synchronous). JSON goes to and from `jsonb` as text; numbers keep their decimal text.
///
/// Round trips are the cost (docs/link-service.md, "Round trips"): what the transaction already
/// knows is kept in its ``LinkCache`` and not asked again. A store made with `LinkStore(tx:)`
/// knows nothing and asks every time.
struct LinkStore {
    let tx: PostgresTransaction
    let cache: LinkCache

    init(tx: PostgresTransaction, cache: LinkCache = LinkCache()) {
        self.tx = tx
        self.cache = cache
    }

    // MARK: Inbox

    /// Records a message id; `false` when it was processed before (a redelivery).
    func claim(_ messageId: UUID) throws -> Bool {
        try tx.execute("insert into inbox (message_id) values ($1) on conflict do nothing", [messageId]) == 1
    }

    // MARK: Members and global entities

    func member(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> UUID? {
        if cache.absent.contains(LinkCache.MemberKey(system, entity, nativeId)) { return nil }
        return try tx.query("select global_id from member where system = $1 and entity_type = $2 and native_id = $3",
                     [system.rawValue, entity.rawValue, nativeId]).first?.decode(UUID.self, at: 0)
    }

    /// The native id of a global entity's member in `system`.
    func nativeId(of global: UUID, in system: SystemName) throws -> String? {
        if let known = cache.entities[global] { return known.members[system] }
        return try tx.query("select native_id from member where global_id = $1 and system = $2", [global, system.rawValue])
            .first?.decode(String.self, at: 0)
    }

    /// Every member of a global entity: system → native id.
    func members(of global: UUID) throws -> [SystemName: String] {
        if let known = cache.entities[global] { return known.members }
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
        cache.absent.remove(LinkCache.MemberKey(system, entity, nativeId))
        let added = try tx.execute("""
            insert into member (global_id, system, entity_type, native_id) values ($1, $2, $3, $4)
            on conflict (system, entity_type, native_id) do nothing
            """, [global, system.rawValue, entity.rawValue, nativeId]) == 1
        if added { cache.entities[global]?.members[system] = nativeId }
        return added
    }

    /// A new global entity with its first member, its merged state, the member's snapshot and
    /// the natural keys, in one statement. `false` (and nothing written) when the member exists
    /// already: another replica linked the record meanwhile.
    func createEntity(
        _ global: UUID, _ entity: CanonicalEntityType, state: GlobalState, member system: SystemName, nativeId: String,
        snapshot: Snapshot, modifiedAt: Int64?, keys: [NaturalKey]
    ) throws -> Bool {
        let (snapshotJSON, hash, modified) = Self.snapshotColumns(snapshot, entity: entity, modifiedAt: modifiedAt)
        let (values, provenance) = Self.stateColumns(state)
        let keyRows = JSONValue.array(keys.map { .array([.string(Self.kind($0)), .string($0.value)]) }).serializedString()
        cache.absent.remove(LinkCache.MemberKey(system, entity, nativeId))
        // Foreign keys are checked at the end of the statement, when all three are in.
        let created = try tx.query("""
            with m as (
                insert into member (global_id, system, entity_type, native_id, snapshot, snapshot_hash, source_modified_at)
                values ($1, $2, $3, $4, $5, $6, $7)
                on conflict (system, entity_type, native_id) do nothing returning global_id),
            g as (insert into global_entity (id, entity_type, state, provenance) select global_id, $3, $8, $9 from m returning id),
            k as (insert into natural_key (entity_type, kind, value, global_id)
                  select $3, x->>0, x->>1, g.id from g, jsonb_array_elements($10::jsonb) x on conflict do nothing)
            select count(*) from m
            """, [global, system.rawValue, entity.rawValue, nativeId, snapshotJSON, hash, modified, values, provenance,
                  PostgresJSON(keyRows)]).first?.decode(Int.self, at: 0) == 1
        if created { cache.entities[global] = LinkCache.EntityInfo(members: [system: nativeId]) }
        return created
    }

    /// The global entity a native record belongs to, made (empty) when it has none yet: an
    /// order may name a customer whose own change has not been processed; it then fills the
    /// same global entity.
    func globalId(forMember system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> UUID {
        if let id = try member(system, entity, nativeId) { return id }
        let id = UUID()
        try createEntity(id, entity)
        if try addMember(id, system, entity, nativeId) {
            cache.entities[id] = LinkCache.EntityInfo(members: [system: nativeId])
            return id
        }
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
        return try Self.state(entity, values: try row.decode(String.self, at: 0), provenance: try row.decode(String.self, at: 1))
    }

    static func state(_ entity: CanonicalEntityType, values: String, provenance: String) throws -> GlobalState {
        let values = try Self.object(values)
        var result: [String: Provenance] = [:]
        for (field, value) in try Self.object(provenance) {
            if let system = value["system"]?.string.flatMap(SystemName.init(rawValue:)), let at = value["modifiedAt"]?.number?.int {
                result[field] = Provenance(system: system, modifiedAt: Int64(at))
            }
        }
        return GlobalState(entity: entity, values: values, provenance: result)
    }

    /// What a canonical change from a member needs, in two statements instead of five: the
    /// member's global entity locked and read, then — after the lock, so nothing another
    /// transaction committed meanwhile is missed — its members with the source's snapshot, and
    /// which targets have a write slot or a parked row. The transaction remembers the latter
    /// (``LinkCache``): every change to them for this entity goes through this store while the
    /// row lock is held. `nil` when the record is no member.
    func lockMemberEntity(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws
        -> (global: UUID, state: GlobalState, snapshot: Snapshot?, modifiedAt: Int64?)?
    {
        if cache.absent.contains(LinkCache.MemberKey(system, entity, nativeId)) { return nil }
        guard let row = try tx.query("""
            select id, state::text, provenance::text from global_entity
            where id = (select global_id from member where system = $1 and entity_type = $2 and native_id = $3) for update
            """, [system.rawValue, entity.rawValue, nativeId]).first else { return nil }
        let global = try row.decode(UUID.self, at: 0)
        let state = try Self.state(entity, values: try row.decode(String.self, at: 1), provenance: try row.decode(String.self, at: 2))
        let (snapshot, modifiedAt) = try readEntityInfo(global, snapshotOf: system)
        return (global, state, snapshot, modifiedAt)
    }

    /// Reads (after the entity's row lock) its members, write slots and parked targets into the
    /// cache, and the snapshot of `system`'s member.
    func readEntityInfo(_ global: UUID, snapshotOf system: SystemName) throws -> (Snapshot?, modifiedAt: Int64?) {
        try flushSlots()
        let rows = try tx.query("""
            select 0, system, native_id, snapshot::text, (extract(epoch from source_modified_at) * 1000)::bigint
              from member where global_id = $1
            union all select 1, system, null, null, null from write_slot where global_id = $1
            union all select 2, system, null, null, null from parked where global_id = $1
            """, [global])
        var info = LinkCache.EntityInfo(members: [:])
        var snapshot: Snapshot?
        var modifiedAt: Int64?
        for row in rows {
            guard let member = SystemName(rawValue: try row.decode(String.self, at: 1)) else { continue }
            switch try row.decode(Int.self, at: 0) {
            case 0:
                info.members[member] = try row.decode(String.self, at: 2)
                if member == system {
                    modifiedAt = try row.decode(Int64?.self, at: 4)
                    if let text = try row.decode(String?.self, at: 3) { snapshot = try Self.snapshot(text) }
                }
            case 1: info.slots.insert(member)
            default: info.parked.insert(member)
            }
        }
        cache.entities[global] = info
        return (snapshot, modifiedAt)
    }

    static func stateColumns(_ state: GlobalState) -> (PostgresJSON, PostgresJSON) {
        let values = JSONValue.object(JSONObject(state.values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        let provenance = JSONValue.object(JSONObject(state.provenance.sorted { $0.key < $1.key }.map { field, p in
            (field, ["system": .string(p.system.rawValue), "modifiedAt": .number(JSONNumber(p.modifiedAt))] as JSONValue)
        }))
        return (PostgresJSON(values.serializedString()), PostgresJSON(provenance.serializedString()))
    }

    func saveState(_ global: UUID, _ state: GlobalState) throws {
        let (values, provenance) = Self.stateColumns(state)
        _ = try tx.execute("update global_entity set state = $2, provenance = $3, updated_at = now() where id = $1",
                           [global, values, provenance])
    }

    /// `saveState` and `saveSnapshot` in one statement.
    func saveStateAndSnapshot(_ global: UUID, _ state: GlobalState, _ system: SystemName, _ snapshot: Snapshot,
                              entity: CanonicalEntityType, modifiedAt: Int64?) throws {
        let (values, provenance) = Self.stateColumns(state)
        let (snapshotJSON, hash, modified) = Self.snapshotColumns(snapshot, entity: entity, modifiedAt: modifiedAt)
        _ = try tx.execute("""
            with g as (update global_entity set state = $3, provenance = $4, updated_at = now() where id = $1)
            update member set snapshot = $5, snapshot_hash = $6, source_modified_at = coalesce($7, source_modified_at)
            where global_id = $1 and system = $2
            """, [global, system.rawValue, values, provenance, snapshotJSON, hash, modified])
    }

    // MARK: Snapshots

    func snapshot(_ global: UUID, _ system: SystemName) throws -> (Snapshot?, modifiedAt: Int64?) {
        guard let row = try tx.query("""
            select snapshot::text, (extract(epoch from source_modified_at) * 1000)::bigint
            from member where global_id = $1 and system = $2
            """, [global, system.rawValue]).first else { return (nil, nil) }
        let modifiedAt: Int64? = row.isNull(at: 1) ? nil : try row.decode(Int64.self, at: 1)
        guard !row.isNull(at: 0) else { return (nil, modifiedAt) }
        return (try Self.snapshot(try row.decode(String.self, at: 0)), modifiedAt)
    }

    static func snapshot(_ text: String) throws -> Snapshot {
        let object = try Self.object(text)
        let fields = object["fields"]?.array?.compactMap(\.string) ?? []
        let values = object["values"]?.object.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key, $0.value) }) } ?? [:]
        return Snapshot(fields: fields, values: values)
    }

    static func snapshotColumns(_ snapshot: Snapshot, entity: CanonicalEntityType, modifiedAt: Int64?) -> (PostgresJSON, String, Date?) {
        let json: JSONValue = [
            "fields": .array(snapshot.fields.map(JSONValue.string)),
            "values": .object(JSONObject(snapshot.values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })),
        ]
        let hash = CanonicalHash.hex(flat: snapshot.values, entity: entity,
                                     fields: snapshot.fields.compactMap { CanonicalField.named($0, entity: entity) })
        let modified: Date? = modifiedAt.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        return (PostgresJSON(json.serializedString()), hash, modified)
    }

    func saveSnapshot(_ global: UUID, _ system: SystemName, _ snapshot: Snapshot, entity: CanonicalEntityType, modifiedAt: Int64?) throws {
        let (json, hash, modified) = Self.snapshotColumns(snapshot, entity: entity, modifiedAt: modifiedAt)
        _ = try tx.execute("""
            update member set snapshot = $3, snapshot_hash = $4,
                source_modified_at = coalesce($5, source_modified_at)
            where global_id = $1 and system = $2
            """, [global, system.rawValue, json, hash, modified])
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
        guard !keys.isEmpty else { return }
        // One statement, the locks taken in the array's (sorted) order.
        let names = keys.map { "\(entity.rawValue)|\($0.description)" }.sorted()
        _ = try tx.query("select pg_advisory_xact_lock(hashtextextended(k, 0)) from jsonb_array_elements_text($1::jsonb) k",
                         [PostgresJSON(JSONValue.array(names.map(JSONValue.string)).serializedString())])
    }

    /// Every global entity holding one of `keys`, with its organisation number: the matching
    /// candidates for all keys in one statement, oldest id first per key.
    func candidates(for keys: [NaturalKey], entity: CanonicalEntityType) throws -> [(kind: String, value: String, global: UUID, organizationNumber: String?)] {
        guard !keys.isEmpty else { return [] }
        let wanted = JSONValue.array(keys.map { .array([.string(Self.kind($0)), .string($0.value)]) }).serializedString()
        return try tx.query("""
            select n.kind, n.value, n.global_id,
                   (select o.value from natural_key o where o.global_id = n.global_id and o.kind = 'organizationNumber' limit 1)
            from natural_key n join jsonb_array_elements($2::jsonb) x on n.kind = x->>0 and n.value = x->>1
            where n.entity_type = $1 order by n.global_id
            """, [entity.rawValue, PostgresJSON(wanted)]).map {
            (try $0.decode(String.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(UUID.self, at: 2), try $0.decode(String?.self, at: 3))
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
        if let known = cache.entities[global], !known.slots.contains(system) { return nil }
        try flushSlots()
        guard let row = try tx.query("select write_id, pending from write_slot where global_id = $1 and system = $2 for update",
                                     [global, system.rawValue]).first else { return nil }
        return Slot(writeId: try row.decode(String.self, at: 0), pending: try row.decode(Bool.self, at: 1), attempts: 0)
    }

    func markPending(_ global: UUID, _ system: SystemName) throws {
        try flushSlots()
        _ = try tx.execute("update write_slot set pending = true where global_id = $1 and system = $2", [global, system.rawValue])
    }

    func openSlot(_ global: UUID, _ system: SystemName, writeId: String, operation: WriteOperation, key: String, leaseUntil: Date) throws {
        if cache.buffersOutbox, let known = cache.entities[global], !known.slots.contains(system) {
            // None there (the entity is locked or new in this transaction): written with the outbox.
            cache.slots.append(.array([.string(global.uuidString.lowercased()), .string(system.rawValue), .string(writeId),
                                       .string(operation.rawValue), .string(key), .string(PostgresTimestamp.format(leaseUntil))]))
            cache.entities[global]?.slots.insert(system)
            return
        }
        try flushSlots()
        _ = try tx.execute("""
            insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until, pending)
            values ($1, $2, $3, $4, $5, $6, false)
            on conflict (global_id, system) do update set write_id = excluded.write_id, operation = excluded.operation,
                lease_until = excluded.lease_until, pending = false
            """, [global, system.rawValue, writeId, operation.rawValue, key, leaseUntil])
        cache.entities[global]?.slots.insert(system)
    }

    func extendLease(_ global: UUID, _ system: SystemName, until: Date) throws {
        try flushSlots()
        _ = try tx.execute("update write_slot set lease_until = $3 where global_id = $1 and system = $2", [global, system.rawValue, until])
    }

    func closeSlot(_ global: UUID, _ system: SystemName) throws {
        if let known = cache.entities[global], !known.slots.contains(system) { return }
        try flushSlots()
        _ = try tx.execute("delete from write_slot where global_id = $1 and system = $2", [global, system.rawValue])
        cache.entities[global]?.slots.remove(system)
    }

    /// Slots whose lease ran out, locked (skipping ones another replica is handling).
    func expiredSlots(now: Date, limit: Int) throws -> [(UUID, SystemName, String)] {
        try flushSlots()
        return try tx.query("""
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
        cache.entities[global]?.parked.insert(system)
    }

    func unpark(_ global: UUID, _ system: SystemName) throws {
        if let known = cache.entities[global], !known.parked.contains(system) { return }
        _ = try tx.execute("delete from parked where global_id = $1 and system = $2", [global, system.rawValue])
        cache.entities[global]?.parked.remove(system)
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

    /// Queues a message for the relay; with a batch's cache the row waits for ``flushOutbox()``.
    func enqueue(_ envelope: Envelope, exchange: String, routingKey: String) throws {
        if cache.buffersOutbox {
            cache.outbox.append(.array([.string(envelope.id.uuidString.lowercased()), .string(exchange), .string(routingKey),
                                        .string(String(decoding: envelope.encoded(), as: UTF8.self))]))
            return
        }
        _ = try tx.execute("insert into outbox (message_id, exchange, routing_key, body) values ($1, $2, $3, $4)",
                           [envelope.id, exchange, routingKey, envelope.encoded()])
    }

    /// The buffered outbox rows in one statement, in the order they were queued (the relay
    /// publishes by id). The bodies are JSON text, so UTF-8 without NUL: `convert_to` gives back
    /// the same bytes.
    func flushOutbox() throws {
        guard !cache.outbox.isEmpty || !cache.slots.isEmpty else { return }
        _ = try tx.execute("""
            with s as (insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until, pending)
                       select (r->>0)::uuid, r->>1, r->>2, r->>3, r->>4, (r->>5)::timestamptz, false from jsonb_array_elements($2::jsonb) r)
            insert into outbox (message_id, exchange, routing_key, body)
            select (r->>0)::uuid, r->>1, r->>2, convert_to(r->>3, 'UTF8') from jsonb_array_elements($1::jsonb) with ordinality t (r, n)
            order by n
            """, [PostgresJSON(JSONValue.array(cache.outbox).serializedString()), PostgresJSON(JSONValue.array(cache.slots).serializedString())])
        cache.outbox = []
        cache.slots = []
    }

    /// Writes the buffered new write slots before any statement that reads or changes slots.
    func flushSlots() throws {
        guard !cache.slots.isEmpty else { return }
        _ = try tx.execute("""
            insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until, pending)
            select (r->>0)::uuid, r->>1, r->>2, r->>3, r->>4, (r->>5)::timestamptz, false from jsonb_array_elements($1::jsonb) r
            """, [PostgresJSON(JSONValue.array(cache.slots).serializedString())])
        cache.slots = []
    }

    // MARK: Batches

    /// Claims a batch's message ids in one statement; returns the ones claimed now.
    func claim(_ ids: [UUID]) throws -> Set<UUID> {
        guard !ids.isEmpty else { return [] }
        let list = JSONValue.array(ids.map { .string($0.uuidString.lowercased()) }).serializedString()
        return Set(try tx.query("""
            insert into inbox (message_id) select x::uuid from jsonb_array_elements_text($1::jsonb) x
            on conflict do nothing returning message_id
            """, [PostgresJSON(list)]).map { try $0.decode(UUID.self, at: 0) })
    }

    /// Records which of these native records are no member yet, in one statement, so their
    /// changes go straight to matching.
    func prefetchAbsentMembers(_ keys: Set<LinkCache.MemberKey>) throws {
        guard !keys.isEmpty else { return }
        let list = JSONValue.array(keys.map { .array([.string($0.system), .string($0.entity), .string($0.nativeId)]) }).serializedString()
        var absent = keys
        for row in try tx.query("""
            select m.system, m.entity_type, m.native_id from member m
            join jsonb_array_elements($1::jsonb) x on m.system = x->>0 and m.entity_type = x->>1 and m.native_id = x->>2
            """, [PostgresJSON(list)]) {
            absent.remove(LinkCache.MemberKey(system: try row.decode(String.self, at: 0), entity: try row.decode(String.self, at: 1),
                                              nativeId: try row.decode(String.self, at: 2)))
        }
        cache.absent.formUnion(absent)
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

/// What one transaction knows without asking the database again. Only facts that cannot change
/// under it are kept: records found to be no member (until this transaction adds them; another
/// replica adding one meanwhile makes the insert find it), and the members, write slots and
/// parked targets of entities whose row this transaction has locked or created — every change to
/// those goes through the same ``LinkStore`` while the lock is held, and updates this. A
/// transaction that rolls back to a savepoint must not keep using its cache (the batch path
/// never does: it rolls back the whole transaction and runs the batch again with one store per
/// message).
final class LinkCache {
    struct MemberKey: Hashable {
        var system: String
        var entity: String
        var nativeId: String

        init(system: String, entity: String, nativeId: String) {
            self.system = system
            self.entity = entity
            self.nativeId = nativeId
        }

        init(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) {
            self.init(system: system.rawValue, entity: entity.rawValue, nativeId: nativeId)
        }
    }

    struct EntityInfo {
        var members: [SystemName: String]
        var slots: Set<SystemName> = []
        var parked: Set<SystemName> = []
    }

    var absent: Set<MemberKey> = []
    var entities: [UUID: EntityInfo] = [:]
    /// Outbox rows, and new write slots of entities this transaction holds, waiting for
    /// `flushOutbox` (only when `buffersOutbox`; slots go earlier when a statement touches slots).
    let buffersOutbox: Bool
    var outbox: [JSONValue] = []
    var slots: [JSONValue] = []

    init(buffersOutbox: Bool = false) { self.buffersOutbox = buffersOutbox }
}
