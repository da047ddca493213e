import Foundation
import ParleyCore
import ParleyAMQP
import ParleyCanonical
import ParleyLinkCore
import ParleyMessaging
import ParleyPostgres
import ParleyJSON
import ParleyEnvelope

/// The link service's SQL, one small function per statement, all inside the caller's
/// transaction (`PostgresTransaction` runs on its connection's own thread, so these are
/// synchronous). JSON goes to and from `jsonb` as text; numbers keep their decimal text.
///
/// Round trips are the cost (docs/link-service.md, "Batches and round trips"). What the
/// transaction already knows is kept in its ``LinkCache`` and not asked again; the rows most
/// messages write — new entities, states, snapshots, new write slots, outbox rows — wait there
/// too, and go in one statement (``flush()``) before any other statement and at the end (the
/// caller's `flush()`), whether the store serves a batch or one message. The rarer changes
/// (parking, holding, failures, waiting changes, keys of an existing entity) are one statement
/// each, after a flush.
struct LinkStore {
    let tx: PostgresTransaction
    let cache: LinkCache

    init(tx: PostgresTransaction, cache: LinkCache = LinkCache()) {
        self.tx = tx
        self.cache = cache
    }

    /// Every statement goes through these two: the buffered writes first, so what the statement
    /// reads or changes is the transaction's real state.
    private func query(_ sql: String, _ binds: [any PostgresEncodable] = [], planning: PostgresPlanning = .cached) throws -> [PostgresRow] {
        try flush()
        return try tx.query(sql, binds, planning: planning)
    }

    private func execute(_ sql: String, _ binds: [any PostgresEncodable] = [], planning: PostgresPlanning = .cached) throws -> Int {
        try flush()
        return try tx.execute(sql, binds, planning: planning)
    }

    // MARK: Inbox

    /// Records a message id; `false` when it was processed before (a redelivery).
    func claim(_ messageId: UUID) throws -> Bool {
        try execute("insert into inbox (message_id) values ($1) on conflict do nothing", [messageId]) == 1
    }

    // MARK: Members and global entities

    func member(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> UUID? {
        let key = LinkCache.MemberKey(system, entity, nativeId)
        if cache.absent.contains(key) { return nil }
        if let known = cache.memberOf[key] { return known }
        return try query(
            "select global_id from member where system = $1 and entity_type = $2 and native_id = $3",
            [system.rawValue, entity.rawValue, nativeId]
        ).first?.decode(UUID.self, at: 0)
    }

    /// The native id of a global entity's member in `system`.
    func nativeId(of global: UUID, in system: SystemName) throws -> String? {
        if let known = cache.entities[global] { return known.members[system] }
        return try query("select native_id from member where global_id = $1 and system = $2", [global, system.rawValue])
            .first?.decode(String.self, at: 0)
    }

    /// Every member of a global entity: system → native id.
    func members(of global: UUID) throws -> [SystemName: String] {
        if let known = cache.entities[global] { return known.members }
        var result: [SystemName: String] = [:]
        for row in try query("select system, native_id from member where global_id = $1", [global]) {
            if let system = SystemName(rawValue: try row.decode(String.self, at: 0)) { result[system] = try row.decode(String.self, at: 1) }
        }
        return result
    }

    /// Adds a member; `false` when (system, entity, native id) is already a member of some entity.
    func addMember(_ global: UUID, _ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> Bool {
        let key = LinkCache.MemberKey(system, entity, nativeId)
        cache.absent.remove(key)
        let added =
            try execute(
                """
                insert into member (global_id, system, entity_type, native_id) values ($1, $2, $3, $4)
                on conflict (system, entity_type, native_id) do nothing
                """, [global, system.rawValue, entity.rawValue, nativeId]) == 1
        if added {
            cache.memberOf[key] = global
            cache.entities[global]?.members[system] = nativeId
            if cache.states[global] != nil { cache.snapshots[LinkCache.MemberRef(global, system)] = LinkCache.MemberSnapshot() }
        }
        return added
    }

    /// A new global entity with its first member, its merged state, the member's snapshot and
    /// the natural keys: kept in the cache and written by the ``flush()``. A member that exists
    /// by then (another replica linked the record meanwhile) makes the flush throw ``RaceLost``;
    /// the transaction, or the message's savepoint, is rolled back and run again, and the
    /// record is handled as that entity's. So this always says `true`.
    func createEntity(_ new: NewEntity) throws -> Bool {
        let key = LinkCache.MemberKey(new.system, new.entity, new.nativeId)
        cache.absent.remove(key)
        cache.newEntities[new.global] = new
        cache.memberOf[key] = new.global
        cache.entities[new.global] = LinkCache.EntityInfo(members: [new.system: new.nativeId])
        cache.states[new.global] = new.state
        cache.snapshots[LinkCache.MemberRef(new.global, new.system)] = LinkCache.MemberSnapshot(snapshot: new.snapshot, modifiedAt: new.modifiedAt)
        cache.keysChanged(new.global, entity: new.entity, to: new.keys)
        return true
    }

    // MARK: Changes that wait for the records they name

    /// Keeps a change that names records of its own system that are no member yet (an order's
    /// customer or products) until they are (``LinkWaiting`` hands it back then). A newer change
    /// of the record replaces an older one: each carries the whole record.
    func wait(_ change: Envelope, _ record: LinkCache.MemberKey, for missing: [LinkCache.MemberKey], modifiedAt: Int64, reason: String) throws {
        let list = JSONValue.array(missing.map { .array([.string($0.system), .string($0.entity), .string($0.nativeId)]) })
        _ = try execute(
            """
            insert into waiting_change (system, entity_type, native_id, waiting_for, modified_at, envelope, reason)
            values ($1, $2, $3, $4, $5, $6, $7)
            on conflict (system, entity_type, native_id) do update set waiting_for = excluded.waiting_for,
                modified_at = excluded.modified_at, envelope = excluded.envelope, reason = excluded.reason, attempts = 0, retry_at = null
            where waiting_change.modified_at <= excluded.modified_at
            """, [record.system, record.entity, record.nativeId, PostgresJSON(list.serializedString()), modifiedAt, change.encoded(), reason])
        cache.waiting.insert(record)
        cache.waitingKnown.insert(record)
        if let global = cache.memberOf[record], let system = SystemName(rawValue: record.system) {
            cache.entities[global]?.waiting.insert(system)
        }
    }

    /// A change of `record` as new as its waiting one, or newer, is being handled: the waiting
    /// one is done (a newer waiting one stays).
    func resolveWaiting(_ record: LinkCache.MemberKey, modifiedAt: Int64) throws {
        if cache.waitingKnown.contains(record), !cache.waiting.contains(record) { return }
        let removed = try execute(
            """
            delete from waiting_change where system = $1 and entity_type = $2 and native_id = $3 and modified_at <= $4
            """, [record.system, record.entity, record.nativeId, modifiedAt])
        if removed > 0 {
            cache.waiting.remove(record)
            if let global = cache.memberOf[record], let system = SystemName(rawValue: record.system) {
                cache.entities[global]?.waiting.remove(system)
            }
        }
        cache.waitingKnown.insert(record)
    }

    /// Whether the entity's member in `system` has a change of its own waiting for records it
    /// names: writing to it now would overwrite a version of the record Parley has not merged.
    func changeWaits(_ global: UUID, in system: SystemName) throws -> Bool {
        if let known = cache.entities[global] { return known.waiting.contains(system) }
        return try !query(
            """
            select 1 from waiting_change w join member m on m.system = w.system and m.entity_type = w.entity_type and m.native_id = w.native_id
            where m.global_id = $1 and m.system = $2
            """, [global, system.rawValue]
        ).isEmpty
    }

    /// Whether the entity is parked for `system` (its row locked).
    func isParked(_ global: UUID, for system: SystemName) throws -> Bool {
        if let known = cache.entities[global] { return known.parked.contains(system) }
        return try !query("select 1 from parked where global_id = $1 and system = $2", [global, system.rawValue]).isEmpty
    }

    /// Locks the entity's row for this transaction (per-entity order across replicas) and reads
    /// it; an entity the transaction holds already is answered from the cache.
    func lockEntity(_ global: UUID, _ entity: CanonicalEntityType) throws -> GlobalState {
        if let held = cache.states[global] { return held }
        guard let row = try lateLock("select state::text, provenance::text from global_entity where id = $1 for update", global).first else {
            throw LinkError("global entity \(global) does not exist")
        }
        let state = try Self.state(entity, values: try row.decode(String.self, at: 0), provenance: try row.decode(String.self, at: 1))
        cache.states[global] = state
        return state
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
    /// row lock is held. `nil` when the record is no member. A batch's ``prefetch(_:)`` has
    /// usually read all of it already.
    func lockMemberEntity(_ system: SystemName, _ entity: CanonicalEntityType, _ nativeId: String) throws -> MemberView? {
        let key = LinkCache.MemberKey(system, entity, nativeId)
        if cache.absent.contains(key) { return nil }
        if let global = cache.memberOf[key], let state = cache.states[global], cache.entities[global] != nil,
            let known = cache.snapshots[LinkCache.MemberRef(global, system)]
        {
            return MemberView(global: global, state: state, snapshot: known.snapshot, modifiedAt: known.modifiedAt)
        }
        guard
            let row = try query(
                """
                select id, state::text, provenance::text from global_entity
                where id = (select global_id from member where system = $1 and entity_type = $2 and native_id = $3) for update
                """, [system.rawValue, entity.rawValue, nativeId]
            ).first
        else { return nil }
        let global = try row.decode(UUID.self, at: 0)
        let state = try Self.state(entity, values: try row.decode(String.self, at: 1), provenance: try row.decode(String.self, at: 2))
        cache.memberOf[key] = global
        cache.states[global] = state
        let (snapshot, modifiedAt) = try readEntityInfo(global, snapshotOf: system)
        return MemberView(global: global, state: state, snapshot: snapshot, modifiedAt: modifiedAt)
    }

    /// Reads (after the entity's row lock) its members with their snapshots, write slots and
    /// parked targets into the cache, and returns the snapshot of `system`'s member.
    func readEntityInfo(_ global: UUID, snapshotOf system: SystemName) throws -> (Snapshot?, modifiedAt: Int64?) {
        let ref = LinkCache.MemberRef(global, system)
        if cache.entities[global] != nil, let known = cache.snapshots[ref] { return (known.snapshot, known.modifiedAt) }
        try readEntityInfo([global])
        let known = cache.snapshots[ref] ?? LinkCache.MemberSnapshot()
        return (known.snapshot, known.modifiedAt)
    }

    /// ``readEntityInfo(_:snapshotOf:)`` for many entities in one statement.
    private func readEntityInfo(_ globals: [UUID]) throws {
        guard !globals.isEmpty else { return }
        let ids = PostgresJSON(JSONValue.array(globals.map { .string($0.lowercasedString) }).serializedString())
        let rows = try query(
            """
            with x as (select distinct v::uuid as id from jsonb_array_elements_text($1::jsonb) v)
            select 0, global_id, system, native_id, snapshot::text, (extract(epoch from source_modified_at) * 1000)::bigint
              from member where global_id in (select id from x)
            union all select 1, global_id, system, null, null, null from write_slot where global_id in (select id from x)
            union all select 2, global_id, system, null, null, null from parked where global_id in (select id from x)
            union all select 3, m.global_id, m.system, null, null, null from waiting_change w
              join member m on m.system = w.system and m.entity_type = w.entity_type and m.native_id = w.native_id
              where m.global_id in (select id from x)
            """, [ids], planning: .perExecution)
        var infos = Dictionary(uniqueKeysWithValues: globals.map { ($0, LinkCache.EntityInfo(members: [:])) })
        for row in rows {
            let global = try row.decode(UUID.self, at: 1)
            guard let system = SystemName(rawValue: try row.decode(String.self, at: 2)) else { continue }
            switch try row.decode(Int.self, at: 0) {
            case 0:
                infos[global]?.members[system] = try row.decode(String.self, at: 3)
                let snapshot = try row.decode(String?.self, at: 4).map(Self.snapshot)
                cache.snapshots[LinkCache.MemberRef(global, system)] =
                    LinkCache.MemberSnapshot(snapshot: snapshot, modifiedAt: try row.decode(Int64?.self, at: 5))
            case 1: infos[global]?.slots.insert(system)
            case 2: infos[global]?.parked.insert(system)
            default: infos[global]?.waiting.insert(system)
            }
        }
        for (global, info) in infos { cache.entities[global] = info }
    }

    static func stateJSON(_ state: GlobalState) -> (values: JSONValue, provenance: JSONValue) {
        let values = JSONValue.object(JSONObject(state.values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        let provenance = JSONValue.object(
            JSONObject(
                state.provenance.sorted { $0.key < $1.key }.map { field, p in
                    (field, ["system": .string(p.system.rawValue), "modifiedAt": .number(JSONNumber(p.modifiedAt))] as JSONValue)
                }))
        return (values, provenance)
    }

    /// The entity's new state and `system`'s member's new snapshot (one statement; in a batch
    /// they wait for ``flush()``).
    func saveStateAndSnapshot(
        _ global: UUID, _ state: GlobalState, _ system: SystemName, _ snapshot: Snapshot,
        entity: CanonicalEntityType, modifiedAt: Int64?
    ) throws {
        cache.states[global] = state
        if cache.newEntities[global] != nil {
            cache.newEntities[global]?.state = state
        } else {
            cache.stateSaves[global] = state
        }
        saveSnapshot(global, system, snapshot, entity: entity, modifiedAt: modifiedAt)
    }

    // MARK: Snapshots

    static func snapshot(_ text: String) throws -> Snapshot {
        let object = try Self.object(text)
        let fields = object["fields"]?.array?.compactMap(\.string) ?? []
        let values = object["values"]?.object.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key, $0.value) }) } ?? [:]
        return Snapshot(fields: fields, values: values)
    }

    static func snapshotJSON(_ snapshot: Snapshot) -> JSONValue {
        [
            "fields": .array(snapshot.fields.map(JSONValue.string)),
            "values": .object(JSONObject(snapshot.values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        ]
    }

    static func snapshotHash(_ snapshot: Snapshot, entity: CanonicalEntityType) -> String {
        CanonicalHash.hex(flat: snapshot.values, entity: entity, fields: snapshot.fields.compactMap { CanonicalField.named($0, entity: entity) })
    }

    /// A member's source time only moves forward: it is the record's last modification time the
    /// link service knows (by its change or by Parley's write), the base of the next conditional
    /// write to it, and a held report older than the write it waited for must not move it back.
    static func later(_ a: Int64?, _ b: Int64?) -> Int64? {
        guard let a else { return b }
        guard let b else { return a }
        return max(a, b)
    }

    /// A snapshot written by the next ``flush()`` (the member's source time kept when `nil`).
    func saveSnapshot(_ global: UUID, _ system: SystemName, _ snapshot: Snapshot, entity: CanonicalEntityType, modifiedAt: Int64?) {
        let ref = LinkCache.MemberRef(global, system)
        let modifiedAt = Self.later(modifiedAt, cache.snapshots[ref]?.modifiedAt)
        cache.snapshots[ref] = LinkCache.MemberSnapshot(snapshot: snapshot, modifiedAt: modifiedAt)
        if cache.newEntities[global]?.system == system {
            cache.newEntities[global]?.snapshot = snapshot
            cache.newEntities[global]?.modifiedAt = modifiedAt
        } else {
            cache.snapshotSaves[ref] = LinkCache.SnapshotSave(entity: entity, snapshot: snapshot, modifiedAt: modifiedAt)
        }
    }

    func saveWrittenHash(_ global: UUID, _ system: SystemName, _ hash: String) throws {
        _ = try execute("update member set written_hash = $3 where global_id = $1 and system = $2", [global, system.rawValue, hash])
    }

    // MARK: Natural keys

    static func keyRows(_ keys: [NaturalKey]) -> JSONValue {
        .array(keys.map { .array([.string($0.kind), .string($0.value)]) })
    }

    static func lockName(_ key: NaturalKey, entity: CanonicalEntityType) -> String { "\(entity.rawValue)|\(key.description)" }

    /// Serialises matching on these keys across replicas for the rest of the transaction.
    func lock(_ keys: [NaturalKey], entity: CanonicalEntityType) throws {
        try lockKeys(keys.map { Self.lockName($0, entity: entity) })
    }

    /// The advisory locks of these lock names that the transaction does not hold yet, in one
    /// statement, taken in sorted order.
    private func lockKeys(_ names: some Sequence<String>, planning: PostgresPlanning = .cached) throws {
        let names = Set(names).filter { !cache.lockedKeys.contains($0) }.sorted()
        guard !names.isEmpty else { return }
        _ = try query(
            "select pg_advisory_xact_lock(hashtextextended(k, 0)) from jsonb_array_elements_text($1::jsonb) k",
            [PostgresJSON(JSONValue.array(names.map(JSONValue.string)).serializedString())], planning: planning)
        cache.lockedKeys.formUnion(names)
    }

    /// Every global entity holding one of `keys`, with its organisation number: the matching
    /// candidates for all keys in one statement, oldest id first per key. Keys a batch's
    /// ``prefetch(_:)`` looked up are answered from the cache (with what the transaction added).
    func candidates(for keys: [NaturalKey], entity: CanonicalEntityType) throws -> [KeyCandidate] {
        guard !keys.isEmpty else { return [] }
        let refs = keys.map { LinkCache.KeyRef(entity: entity, kind: $0.kind, value: $0.value) }
        if !refs.allSatisfy({ cache.candidates[$0] != nil }) { try loadCandidates(refs) }
        var result: [KeyCandidate] = []
        for ref in refs {
            for candidate in cache.candidates[ref] ?? [] {
                result.append(
                    KeyCandidate(kind: ref.kind, value: ref.value, global: candidate.global, organizationNumber: candidate.organizationNumber))
            }
        }
        return result.sorted { $0.global.uuidString < $1.global.uuidString }
    }

    /// Looks the keys up in one statement (planned per execution: how many keys and how big
    /// the table is decide between index look-ups and one scan) and caches the answer, an
    /// empty list for a key nobody holds.
    private func loadCandidates(_ refs: [LinkCache.KeyRef]) throws {
        let wanted = JSONValue.array(refs.map { .array([.string($0.entity.rawValue), .string($0.kind), .string($0.value)]) })
        for ref in refs { cache.candidates[ref] = [] }
        for row in try query(
            """
            select n.entity_type, n.kind, n.value, n.global_id,
                   (select o.value from natural_key o where o.global_id = n.global_id and o.kind = 'organizationNumber' limit 1)
            from natural_key n join jsonb_array_elements($1::jsonb) x on n.entity_type = x->>0 and n.kind = x->>1 and n.value = x->>2
            order by n.global_id
            """, [PostgresJSON(wanted.serializedString())], planning: .perExecution)
        {
            guard let entity = CanonicalEntityType(rawValue: try row.decode(String.self, at: 0)) else { continue }
            let ref = LinkCache.KeyRef(entity: entity, kind: try row.decode(String.self, at: 1), value: try row.decode(String.self, at: 2))
            cache.add(
                LinkCache.Candidate(global: try row.decode(UUID.self, at: 3), organizationNumber: try row.decode(String?.self, at: 4)), for: ref)
        }
    }

    func replaceKeys(_ global: UUID, _ keys: [NaturalKey], entity: CanonicalEntityType) throws {
        if cache.newEntities[global] != nil {
            cache.newEntities[global]?.keys = keys
        } else {
            _ = try execute("delete from natural_key where global_id = $1", [global])
            for key in keys {
                _ = try execute(
                    "insert into natural_key (entity_type, kind, value, global_id) values ($1, $2, $3, $4) on conflict do nothing",
                    [entity.rawValue, key.kind, key.value, global])
            }
        }
        cache.keysChanged(global, entity: entity, to: keys)
    }

    // MARK: Conflicts

    func recordConflict(_ global: UUID, _ system: SystemName, nativeId: String, memberId: String, reason: String) throws {
        _ = try execute(
            """
            insert into conflict (global_id, system, native_id, member_id, reason) values ($1, $2, $3, $4, $5)
            on conflict (system, native_id, global_id) do update set reason = excluded.reason, detected_at = now()
            """, [global, system.rawValue, nativeId, memberId, reason])
    }

    // MARK: Write slots

    func lockSlot(_ global: UUID, _ system: SystemName) throws -> OpenWrite? {
        if let known = cache.entities[global], !known.slots.contains(system) { return nil }
        guard
            let row = try query(
                "select write_id, pending, (held->'envelope')::text from write_slot where global_id = $1 and system = $2 for update",
                [global, system.rawValue]
            ).first
        else { return nil }
        let held = try row.decode(String?.self, at: 2).flatMap { try? Envelope.decode(Array($0.utf8)) }
        return OpenWrite(writeId: try row.decode(String.self, at: 0), pending: try row.decode(Bool.self, at: 1), held: held)
    }

    /// Whether a write to `system` is in flight for the entity (its row locked and read).
    func writeInFlight(_ global: UUID, to system: SystemName) throws -> Bool {
        if let known = cache.entities[global] { return known.slots.contains(system) }
        return try !query("select 1 from write_slot where global_id = $1 and system = $2", [global, system.rawValue]).isEmpty
    }

    /// Keeps the target's change until the write in flight to it is answered; a newer one
    /// replaces an older one (each carries the whole record as the target holds it).
    func hold(_ change: Envelope, _ global: UUID, _ system: SystemName, modifiedAt: Int64) throws {
        _ = try execute(
            """
            update write_slot set held = jsonb_build_object('at', $4::bigint, 'envelope', $3::jsonb)
            where global_id = $1 and system = $2 and (held is null or (held->>'at')::bigint <= $4)
            """, [global, system.rawValue, PostgresJSON(String(decoding: change.encoded(), as: UTF8.self)), modifiedAt])
    }

    func markPending(_ global: UUID, _ system: SystemName) throws {
        _ = try execute("update write_slot set pending = true where global_id = $1 and system = $2", [global, system.rawValue])
    }

    func openSlot(_ global: UUID, _ system: SystemName, writeId: String, operation: WriteOperation, key: String, leaseUntil: Date) throws {
        if let known = cache.entities[global], !known.slots.contains(system) {
            // None there (the entity is locked or new in this transaction): written by the flush.
            cache.slots.append(
                .array([
                    .string(global.lowercasedString), .string(system.rawValue), .string(writeId),
                    .string(operation.rawValue), .string(key), .string(PostgresTimestamp.format(leaseUntil))
                ]))
            cache.entities[global]?.slots.insert(system)
            return
        }
        _ = try execute(
            """
            insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until, pending)
            values ($1, $2, $3, $4, $5, $6, false)
            on conflict (global_id, system) do update set write_id = excluded.write_id, operation = excluded.operation,
                lease_until = excluded.lease_until, pending = false
            """, [global, system.rawValue, writeId, operation.rawValue, key, leaseUntil])
        cache.entities[global]?.slots.insert(system)
    }

    func extendLease(_ global: UUID, _ system: SystemName, until: Date) throws {
        _ = try execute("update write_slot set lease_until = $3 where global_id = $1 and system = $2", [global, system.rawValue, until])
    }

    func closeSlot(_ global: UUID, _ system: SystemName) throws {
        if let known = cache.entities[global], !known.slots.contains(system) { return }
        _ = try execute("delete from write_slot where global_id = $1 and system = $2", [global, system.rawValue])
        cache.entities[global]?.slots.remove(system)
    }

    /// Slots whose lease ran out, oldest first, not locked: each is taken with
    /// ``lockEntityIfFree(_:)`` and ``expiredSlot(_:_:now:)``, entity before slot, the order
    /// every other path locks them in.
    func expiredSlots(now: Date, limit: Int) throws -> [(UUID, SystemName)] {
        try query("select global_id, system from write_slot where lease_until <= $1 order by lease_until limit $2", [now, limit])
            .compactMap { row in
                guard let system = SystemName(rawValue: try row.decode(String.self, at: 1)) else { return nil }
                return (try row.decode(UUID.self, at: 0), system)
            }
    }

    /// Locks the entity unless another transaction holds it (then `false`: that transaction,
    /// another replica's, is handling it).
    func lockEntityIfFree(_ global: UUID) throws -> Bool {
        try !query("select 1 from global_entity where id = $1 for update skip locked", [global]).isEmpty
    }

    /// The write id of the slot if its lease has still run out (under the entity's lock).
    func expiredSlot(_ global: UUID, _ system: SystemName, now: Date) throws -> String? {
        try query(
            "select write_id from write_slot where global_id = $1 and system = $2 and lease_until <= $3 for update",
            [global, system.rawValue, now]
        ).first?.decode(String.self, at: 0)
    }

    func entityType(of global: UUID) throws -> CanonicalEntityType? {
        if let held = cache.states[global] { return held.entity }
        return try query("select entity_type from global_entity where id = $1", [global]).first
            .flatMap { CanonicalEntityType(rawValue: try $0.decode(String.self, at: 0)) }
    }

    // MARK: Parked and failed

    func park(_ global: UUID, _ system: SystemName, waitingFor refs: [String], reason: String) throws {
        let list = JSONValue.array(refs.map(JSONValue.string)).serializedString()
        _ = try execute(
            """
            insert into parked (global_id, system, waiting_for, reason) values ($1, $2, $3, $4)
            on conflict (global_id, system) do update set waiting_for = excluded.waiting_for, reason = excluded.reason
            """, [global, system.rawValue, PostgresJSON(list), reason])
        cache.entities[global]?.parked.insert(system)
    }

    func unpark(_ global: UUID, _ system: SystemName) throws {
        if let known = cache.entities[global], !known.parked.contains(system) { return }
        _ = try execute("delete from parked where global_id = $1 and system = $2", [global, system.rawValue])
        cache.entities[global]?.parked.remove(system)
    }

    /// Entities parked for `system` that wait for `ref`.
    func parked(waitingFor ref: String, in system: SystemName) throws -> [UUID] {
        try query(
            "select global_id from parked where system = $1 and waiting_for @> $2 order by global_id",
            [system.rawValue, PostgresJSON(JSONValue.array([.string(ref)]).serializedString())]
        )
        .map { try $0.decode(UUID.self, at: 0) }
    }

    func recordFailure(_ global: UUID, _ system: SystemName, kind: String, reason: String, transient: Bool) throws -> Int {
        try query(
            """
            insert into failed (global_id, system, kind, reason, transient, retry_at) values ($1, $2, $3, $4, $5, null)
            on conflict (global_id, system) do update set kind = excluded.kind, reason = excluded.reason,
                transient = excluded.transient, retry_at = excluded.retry_at, attempts = failed.attempts + 1, failed_at = now()
            returning attempts
            """, [global, system.rawValue, kind, reason, transient]
        ).first?.decode(Int.self, at: 0) ?? 1
    }

    func setRetryAt(_ global: UUID, _ system: SystemName, _ retryAt: Date) throws {
        _ = try execute("update failed set retry_at = $3 where global_id = $1 and system = $2", [global, system.rawValue, retryAt])
    }

    func clearFailure(_ global: UUID, _ system: SystemName) throws {
        _ = try execute("delete from failed where global_id = $1 and system = $2", [global, system.rawValue])
    }

    /// Takes a share lock on each referenced entity, in id order. A transaction that links one
    /// of them (written event, match) holds its row lock, so the reference check that follows
    /// either sees that link or parks where the linking transaction's release will find it.
    func lockReferenced(_ globals: [UUID]) throws {
        for global in globals.sorted(by: { $0.uuidString < $1.uuidString }) where cache.states[global] == nil {
            _ = try lateLock("select 1 from global_entity where id = $1 for share", global)
        }
    }

    /// An entity's row lock that was not taken up front. A transaction that took its locks up
    /// front in one order (a batch, ``prefetch(_:)``; lease expiry) must not wait for one now,
    /// or it may wait for a transaction that waits for it: it asks without waiting, and when the
    /// row is held it gives up with ``LockBusy`` (rolled back, run again with that entity
    /// among those locked up front). Others wait as usual.
    private func lateLock(_ sql: String, _ global: UUID) throws -> [PostgresRow] {
        guard !cache.lateLocksWait else { return try query(sql, [global]) }
        do {
            return try query(sql + " nowait", [global])
        } catch let error as PostgresError where error.sqlState == "55P03" {
            throw LockBusy(entities: [global])
        }
    }

    /// A lock not taken up front was held by another transaction (``lateLock(_:_:)``).
    struct LockBusy: Error, CustomStringConvertible {
        var entities: Set<UUID>
        var description: String { "entities \(entities.map(\.lowercasedString).sorted()) are locked by another transaction" }
    }

    // MARK: Outbox

    /// Queues a message for the relay; in a batch the row waits for ``flush()``. With an
    /// ``OutboxCollector`` (the link consumers, lease expiry) the row is claimed by this
    /// transaction (`claimed_until`, ``OutboxRelay/claim``) and the message collected, so after
    /// the commit this process publishes it from memory and only deletes the row; without one (the
    /// CLI's retry) it waits unclaimed for whichever relay polls first.
    func enqueue(_ envelope: Envelope, exchange: String, routingKey: String) throws {
        let message = OutgoingMessage(envelope: envelope, exchange: exchange, routingKey: routingKey)
        let claimed = cache.collector != nil
        cache.collector?.messages.append(OutboxMessage(id: envelope.id, message: message))
        cache.outbox.append(LinkCache.OutboxRow(id: envelope.id, exchange: exchange, routingKey: routingKey, body: message.body, claimed: claimed))
    }

    /// The batch's outbox rows as one `json` parameter: `[[id, exchange, routing key, claimed,
    /// body], …]` with each body spliced in as the JSON it is (an envelope), so it is neither
    /// escaped here nor re-parsed into `jsonb` there; `(r->4)::text` is the body's exact text.
    static func outboxParameter(_ rows: [LinkCache.OutboxRow]) -> String {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        bytes.reserveCapacity(rows.reduce(2) { $0 + $1.body.count + 120 })
        for (index, row) in rows.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            let head: JSONValue = [.string(row.id.lowercasedString), .string(row.exchange), .string(row.routingKey), .bool(row.claimed)]
            var text = Array(head.serializedString().utf8)
            text.removeLast()  // the closing bracket: the body follows
            bytes.append(contentsOf: text)
            bytes.append(UInt8(ascii: ","))
            bytes.append(contentsOf: row.body)
            bytes.append(UInt8(ascii: "]"))
        }
        bytes.append(UInt8(ascii: "]"))
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Batches

    /// A batch's member created by another transaction between this batch's look-up and its
    /// flush (another replica handling the same record at once). The batch cannot simply go
    /// on; it is rolled back and run again one savepoint per message, where the per-message
    /// path sees the member and handles the record as that entity's.
    struct RaceLost: Error, CustomStringConvertible {
        var description: String { "a record of the batch became a member in another transaction meanwhile" }
    }

    /// Writes what the batch buffered, in one statement (planned per execution: its rows are
    /// the batch's): new entities with their members and keys, saved states and snapshots, new
    /// write slots and outbox rows, in the order they were queued (the relay publishes by id).
    /// Foreign keys are checked at the end of the statement, when the entities are in. Throws
    /// ``RaceLost`` when a new entity's member existed by then (nothing of it was written).
    func flush() throws {
        guard cache.hasPending else { return }
        var statement = FlushStatement()
        let newEntities = cache.newEntities
        if !newEntities.isEmpty { statement.insertEntities(newEntities) }
        if !cache.stateSaves.isEmpty { statement.updateStates(cache.stateSaves) }
        if !cache.snapshotSaves.isEmpty { statement.updateSnapshots(cache.snapshotSaves) }
        if !cache.slots.isEmpty {
            // Not for a new entity whose member another transaction inserted meanwhile (left out
            // of `ng`): its slot would fail the foreign key before the count below can tell.
            let lost = newEntities.isEmpty ? "" : " where (r->>0)::uuid not in (select id from nx except select id from ng)"
            statement.ctes.append(
                """
                ws as (insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until, pending)
                       select (r->>0)::uuid, r->>1, r->>2, r->>3, r->>4, (r->>5)::timestamptz, false
                       from jsonb_array_elements(\(statement.param(cache.slots))) r\(lost))
                """)
        }
        if !cache.outbox.isEmpty { statement.insertOutbox(cache.outbox) }
        let sql = "with " + statement.ctes.joined(separator: ",\n") + "\nselect " + (newEntities.isEmpty ? "0" : "(select count(*) from nm)")
        cache.clearPending()
        let created = try tx.query(sql, statement.binds, planning: .perExecution).first?.decode(Int.self, at: 0) ?? 0
        if created != newEntities.count { throw RaceLost() }
    }

    /// The one statement ``flush()`` sends: a data-modifying CTE per kind of buffered row,
    /// each kind's rows in one `jsonb` parameter.
    struct FlushStatement {
        var ctes: [String] = []
        var binds: [any PostgresEncodable] = []

        /// Binds `rows` and returns the parameter's reference.
        mutating func param(_ rows: [JSONValue]) -> String {
            binds.append(PostgresJSON(JSONValue.array(rows).serializedString()))
            return "$\(binds.count)::jsonb"
        }

        /// New entities with their members and keys (`nx`, `nm`, `ng`, `nk`); foreign keys are
        /// checked at the end of the statement, when the entities are in.
        mutating func insertEntities(_ newEntities: [UUID: NewEntity]) {
            let rows: [JSONValue] = newEntities.map { global, new in
                let (values, provenance) = LinkStore.stateJSON(new.state)
                return [
                    "id": .string(global.lowercasedString), "entity_type": .string(new.entity.rawValue),
                    "system": .string(new.system.rawValue), "native_id": .string(new.nativeId),
                    "snapshot": LinkStore.snapshotJSON(new.snapshot),
                    "snapshot_hash": .string(LinkStore.snapshotHash(new.snapshot, entity: new.entity)),
                    "modified": LinkStore.timestampJSON(new.modifiedAt),
                    "state": values, "provenance": provenance, "keys": LinkStore.keyRows(new.keys)
                ]
            }
            ctes.append(
                """
                nx as (select * from jsonb_to_recordset(\(param(rows))) as x (id uuid, entity_type text, system text, native_id text,
                       snapshot jsonb, snapshot_hash text, modified timestamptz, state jsonb, provenance jsonb, keys jsonb)),
                nm as (insert into member (global_id, system, entity_type, native_id, snapshot, snapshot_hash, source_modified_at)
                       select id, system, entity_type, native_id, snapshot, snapshot_hash, modified from nx
                       on conflict (system, entity_type, native_id) do nothing returning global_id),
                ng as (insert into global_entity (id, entity_type, state, provenance)
                       select id, entity_type, state, provenance from nx where id in (select global_id from nm) returning id),
                nk as (insert into natural_key (entity_type, kind, value, global_id)
                       select nx.entity_type, k->>0, k->>1, nx.id from nx cross join jsonb_array_elements(nx.keys) k
                       where nx.id in (select id from ng) on conflict do nothing)
                """)
        }

        mutating func updateStates(_ saves: [UUID: GlobalState]) {
            let rows: [JSONValue] = saves.map { global, state in
                let (values, provenance) = LinkStore.stateJSON(state)
                return ["id": .string(global.lowercasedString), "state": values, "provenance": provenance]
            }
            ctes.append(
                """
                us as (update global_entity g set state = x.state, provenance = x.provenance, updated_at = now()
                       from jsonb_to_recordset(\(param(rows))) as x (id uuid, state jsonb, provenance jsonb) where g.id = x.id)
                """)
        }

        mutating func updateSnapshots(_ saves: [LinkCache.MemberRef: LinkCache.SnapshotSave]) {
            let rows: [JSONValue] = saves.map { ref, save in
                [
                    "global_id": .string(ref.global.lowercasedString), "system": .string(ref.system.rawValue),
                    "snapshot": LinkStore.snapshotJSON(save.snapshot),
                    "snapshot_hash": .string(LinkStore.snapshotHash(save.snapshot, entity: save.entity)),
                    "modified": LinkStore.timestampJSON(save.modifiedAt)
                ]
            }
            ctes.append(
                """
                um as (update member m set snapshot = x.snapshot, snapshot_hash = x.snapshot_hash,
                           source_modified_at = greatest(m.source_modified_at, x.modified)
                       from jsonb_to_recordset(\(param(rows))) as x (global_id uuid, system text, snapshot jsonb, snapshot_hash text,
                           modified timestamptz)
                       where m.global_id = x.global_id and m.system = x.system)
                """)
        }

        /// Outbox rows in the order they were queued (the relay publishes by id).
        mutating func insertOutbox(_ rows: [LinkCache.OutboxRow]) {
            binds.append(LinkStore.outboxParameter(rows))  // text, cast to json: a jsonb parameter would reorder the bodies' keys
            ctes.append(
                """
                ob as (insert into outbox (message_id, exchange, routing_key, body, claimed_until)
                       select (r->>0)::uuid, r->>1, r->>2, convert_to((r->4)::text, 'UTF8'),
                              case when (r->>3)::boolean then now() + make_interval(secs => \(OutboxRelay.claim.components.seconds)) end
                       from json_array_elements($\(binds.count)::json) with ordinality t (r, n) order by n)
                """)
        }
    }

    /// A source time (ms) as the `timestamptz` text a flush row carries, or JSON null.
    static func timestampJSON(_ ms: Int64?) -> JSONValue {
        ms.map { .string(PostgresTimestamp.format(Date(timeIntervalSince1970: Double($0) / 1000))) } ?? .null
    }

    /// Claims a batch's message ids in one statement; returns the ones claimed now.
    func claim(_ ids: [UUID]) throws -> Set<UUID> {
        guard !ids.isEmpty else { return [] }
        let list = JSONValue.array(ids.map { .string($0.lowercasedString) }).serializedString()
        return Set(
            try query(
                """
                insert into inbox (message_id) select x::uuid from jsonb_array_elements_text($1::jsonb) x
                on conflict do nothing returning message_id
                """, [PostgresJSON(list)], planning: .perExecution
            ).map { try $0.decode(UUID.self, at: 0) })
    }

    /// What a batch will read and lock, gathered from its messages before any is handled.
    struct Prefetch {
        /// Canonical changes' records, with the natural keys of their changes.
        var records: [LinkCache.MemberKey: [NaturalKey]] = [:]
        /// Records the messages refer to: an order's customer and products in its source, a
        /// written order's in the target.
        var references: Set<LinkCache.MemberKey> = []
        /// Entities named outright: written and failed events', origins' (an early echo).
        var entities: Set<UUID> = []
        /// Written events: entities parked on `ref` in `system` are released (and locked).
        var releases: [Release] = []
        /// Entities an earlier attempt of the batch found locked when it met them late
        /// (``LockBusy``): locked up front this time.
        var busy: Set<UUID> = []

        struct Release {
            var ref: GlobalRef
            var system: SystemName
        }
    }

    /// What a batch needs before its messages are handled one by one, in five statements for
    /// the whole batch: which records (and referenced records) are members, and which entities
    /// are parked on the written events' entities (one); the advisory locks of the new
    /// records' natural keys, sorted (one), and every entity holding one of those keys (one);
    /// then **every entity the batch will lock** — the records', the referenced, the events',
    /// those parked on them, the matching candidates — locked in id order and read (one), and
    /// after the locks their members, snapshots, write slots and parked targets (one).
    ///
    /// All transactions of the batch path take their locks this way — advisory locks first,
    /// then rows in id order — so two of them (two consumers, two replicas) never wait for
    /// each other crosswise: deadlocks between them came from taking row locks in message
    /// order (an events batch against a canonical batch: a written customer and the order
    /// parked on it). What the messages find only while they are handled (a record a
    /// written event releases that was parked after the look-up) is locked then.
    func prefetch(_ plan: Prefetch) throws {
        let lookedUp = Set(plan.records.keys).union(plan.references)
        let found = try lookUp(plan, records: lookedUp)

        // New records' natural keys: locked (sorted), then who holds them.
        var byEntity: [CanonicalEntityType: [NaturalKey]] = [:]
        for (record, keys) in plan.records where cache.absent.contains(record) {
            guard let entity = CanonicalEntityType(rawValue: record.entity) else { continue }
            byEntity[entity, default: []].append(contentsOf: keys)
        }
        try lockKeys(byEntity.flatMap { entity, keys in keys.map { Self.lockName($0, entity: entity) } }, planning: .perExecution)
        let refs = Set(byEntity.flatMap { entity, keys in keys.map { LinkCache.KeyRef(entity: entity, kind: $0.kind, value: $0.value) } })
        let unknown = refs.filter { cache.candidates[$0] == nil }
        if !unknown.isEmpty { try loadCandidates(Array(unknown)) }

        // Every entity the batch will lock, in id order.
        var wanted = plan.entities.union(found).union(plan.busy)
        for key in lookedUp { if let global = cache.memberOf[key] { wanted.insert(global) } }
        for ref in refs { for candidate in cache.candidates[ref] ?? [] { wanted.insert(candidate.global) } }
        let locking = wanted.filter { cache.states[$0] == nil }
        guard !locking.isEmpty else { return }
        let ids = JSONValue.array(locking.map { .string($0.lowercasedString) })
        var locked: [UUID] = []
        for row in try query(
            """
            select id, entity_type, state::text, provenance::text from global_entity
            where id in (select v::uuid from jsonb_array_elements_text($1::jsonb) v) order by id for update
            """, [PostgresJSON(ids.serializedString())], planning: .perExecution)
        {
            guard let entity = CanonicalEntityType(rawValue: try row.decode(String.self, at: 1)) else { continue }
            let global = try row.decode(UUID.self, at: 0)
            cache.states[global] = try Self.state(entity, values: try row.decode(String.self, at: 2), provenance: try row.decode(String.self, at: 3))
            locked.append(global)
        }
        try readEntityInfo(locked)
    }

    /// The first statement of ``prefetch(_:)``: which looked-up records are members (cached,
    /// the others as absent) and which have a change waiting; returns the entities found that
    /// are no member of them — those parked on the written events' entities, and what the
    /// orders among the batch's entities refer to (their sends share-lock those; read before
    /// the locks, a reference added meanwhile is locked when it is met).
    private func lookUp(_ plan: Prefetch, records lookedUp: Set<LinkCache.MemberKey>) throws -> Set<UUID> {
        var found: Set<UUID> = []
        guard !lookedUp.isEmpty || !plan.entities.isEmpty || !plan.releases.isEmpty else { return found }
        let members = JSONValue.array(lookedUp.map { .array([.string($0.system), .string($0.entity), .string($0.nativeId)]) })
        let releases = JSONValue.array(plan.releases.map { .array([.string($0.ref.description), .string($0.system.rawValue)]) })
        let named = JSONValue.array(plan.entities.map { .string($0.lowercasedString) })
        var absent = lookedUp
        for row in try query(
            """
            with x as (select e->>0 s, e->>1 t, e->>2 n from jsonb_array_elements($1::jsonb) e),
            m as (select m.system, m.entity_type, m.native_id, m.global_id from member m
                  join x on m.system = x.s and m.entity_type = x.t and m.native_id = x.n),
            y as (select e->>0 ref, e->>1 system from jsonb_array_elements($2::jsonb) e),
            d as (select p.global_id from parked p join y on p.system = y.system and p.waiting_for @> jsonb_build_array(y.ref)),
            ent as (select v::uuid id from jsonb_array_elements_text($3::jsonb) v union select global_id from d
                    union select global_id from m)
            select 0, system, entity_type, native_id, global_id from m
            union all select 1, null, null, null, global_id from d
            union all select 1, null, null, null, split_part(r, '/', 2)::uuid from global_entity g join ent on g.id = ent.id
              cross join lateral (select g.state->>'customer' union all select l->>'product' from jsonb_array_elements(
                  case when jsonb_typeof(g.state->'lines') = 'array' then g.state->'lines' else '[]'::jsonb end) l) refs (r)
              where g.entity_type = 'order' and r like '%/%'
            union all select 2, w.system, w.entity_type, w.native_id, null from waiting_change w
              join x on w.system = x.s and w.entity_type = x.t and w.native_id = x.n
            """, [PostgresJSON(members.serializedString()), PostgresJSON(releases.serializedString()), PostgresJSON(named.serializedString())],
            planning: .perExecution)
        {
            let kind = try row.decode(Int.self, at: 0)
            if kind == 1 {
                found.insert(try row.decode(UUID.self, at: 4))
                continue
            }
            let key = LinkCache.MemberKey(
                system: try row.decode(String.self, at: 1), entity: try row.decode(String.self, at: 2),
                nativeId: try row.decode(String.self, at: 3))
            if kind == 2 {
                cache.waiting.insert(key)
                continue
            }
            absent.remove(key)
            cache.memberOf[key] = try row.decode(UUID.self, at: 4)
        }
        cache.absent.formUnion(absent)
        cache.waitingKnown.formUnion(lookedUp)
        return found
    }

    // MARK: JSON

    static func object(_ text: String) throws -> [String: JSONValue] {
        guard case .object(let o) = try JSONValue.parse(text) else { throw LinkError("expected a JSON object in the database") }
        return Dictionary(uniqueKeysWithValues: o.map { ($0.key, $0.value) })
    }
}

/// What one transaction knows without asking the database again, and — in a batch — what it
/// has written but not sent yet. Only facts that cannot change under it are kept: records found
/// to be no member (until this transaction adds them; another replica adding one meanwhile makes
/// the insert or the flush find it), records found to be members (members never move), natural
/// keys it holds the advisory locks of, with their candidates, and the state, members, member
/// snapshots, write slots and parked targets of entities whose row this transaction has locked
/// or created — every change to those goes through the same ``LinkStore`` while the lock is
/// held, and updates this. A transaction that rolls back to a savepoint must not keep using its
/// cache (the batch path never does: it rolls back the whole transaction and runs the batch
/// again with one store per message).
final class LinkCache {
    typealias MemberKey = RecordKey

    /// A member of a global entity, by system.
    struct MemberRef: Hashable {
        var global: UUID
        var system: SystemName
        init(_ global: UUID, _ system: SystemName) {
            self.global = global
            self.system = system
        }
    }

    struct EntityInfo {
        var members: [SystemName: String]
        var slots: Set<SystemName> = []
        var parked: Set<SystemName> = []
        /// Members whose own change waits for records it names (``LinkStore/changeWaits(_:in:)``).
        var waiting: Set<SystemName> = []
    }

    struct MemberSnapshot {
        var snapshot: Snapshot?
        var modifiedAt: Int64?
    }

    struct KeyRef: Hashable {
        var entity: CanonicalEntityType
        var kind: String
        var value: String
    }

    struct Candidate {
        var global: UUID
        var organizationNumber: String?
    }

    struct SnapshotSave {
        var entity: CanonicalEntityType
        var snapshot: Snapshot
        var modifiedAt: Int64?
    }

    /// Whether a row lock not taken up front may wait (``LinkStore/lateLock(_:_:)``): not in
    /// a batch, whose locks are taken up front in one order, nor in lease expiry.
    var lateLocksWait: Bool

    var absent: Set<MemberKey> = []
    var memberOf: [MemberKey: UUID] = [:]
    /// Records with a change waiting in `waiting_change`, among those whose rows were looked
    /// up (`waitingKnown`); for other records the table is asked.
    var waiting: Set<MemberKey> = []
    var waitingKnown: Set<MemberKey> = []
    var entities: [UUID: EntityInfo] = [:]
    /// The current state of the entities this transaction holds (locked or created).
    var states: [UUID: GlobalState] = [:]
    var snapshots: [MemberRef: MemberSnapshot] = [:]
    /// Advisory lock names of the natural keys this transaction holds.
    var lockedKeys: Set<String> = []
    /// Every entity holding the key (an empty list: none), as this transaction sees it.
    var candidates: [KeyRef: [Candidate]] = [:]
    /// Canonical payloads the batch parsed ahead, by message id.
    var parsed: [UUID: ParsedCanonical] = [:]
    /// The keys each entity is listed under in `candidates`.
    var listed: [UUID: Set<KeyRef>] = [:]

    // Buffered writes, for ``LinkStore/flush()``.
    var newEntities: [UUID: NewEntity] = [:]
    var stateSaves: [UUID: GlobalState] = [:]
    var snapshotSaves: [MemberRef: SnapshotSave] = [:]
    var slots: [JSONValue] = []
    var outbox: [OutboxRow] = []
    /// Collects what the transaction queues for the relay, for this process to publish after
    /// the commit (``LinkStore/enqueue(_:exchange:routingKey:)``).
    var collector: OutboxCollector?

    struct OutboxRow {
        var id: UUID
        var exchange: String
        var routingKey: String
        var body: [UInt8]
        var claimed: Bool
    }

    init(lateLocksWait: Bool = true, collector: OutboxCollector? = nil) {
        self.collector = collector
        self.lateLocksWait = lateLocksWait
    }

    var hasPending: Bool {
        !newEntities.isEmpty || !stateSaves.isEmpty || !snapshotSaves.isEmpty || !slots.isEmpty || !outbox.isEmpty
    }

    func clearPending() {
        newEntities = [:]
        stateSaves = [:]
        snapshotSaves = [:]
        slots = []
        outbox = []
    }

    /// `global` now holds exactly `keys`: the cached candidate lists follow.
    func keysChanged(_ global: UUID, entity: CanonicalEntityType, to keys: [NaturalKey]) {
        for ref in listed[global] ?? [] { candidates[ref]?.removeAll { $0.global == global } }
        listed[global] = nil
        let org = keys.first { if case .organizationNumber = $0 { true } else { false } }?.value
        for key in keys {
            let ref = KeyRef(entity: entity, kind: key.kind, value: key.value)
            if candidates[ref] != nil { add(Candidate(global: global, organizationNumber: org), for: ref) }
        }
    }

    /// Lists a candidate under a key (and remembers where, for ``keysChanged(_:entity:to:)``).
    func add(_ candidate: Candidate, for ref: KeyRef) {
        candidates[ref, default: []].append(candidate)
        listed[candidate.global, default: []].insert(ref)
    }
}

/// The rules' store in production: reads answered from the transaction's cache or the
/// database, effects written at once or — in a batch — at the flush.
extension LinkStore: LinkStoring {
    func parsed(_ message: UUID) -> ParsedCanonical? { cache.parsed[message] }

    func memberAppeared(_ record: RecordKey) { cache.absent.remove(record) }

    func snapshot(of global: UUID, in system: SystemName) throws -> (snapshot: Snapshot?, modifiedAt: Int64?) {
        let (snapshot, modifiedAt) = try readEntityInfo(global, snapshotOf: system)
        return (snapshot, modifiedAt)
    }

    func apply(_ effect: LinkEffect) throws {
        switch effect {
        case .saveState(let global, let state, let system, let snapshot, let modifiedAt):
            try saveStateAndSnapshot(global, state, system, snapshot, entity: state.entity, modifiedAt: modifiedAt)
        case .saveSnapshot(let global, let system, let snapshot, let entity, let modifiedAt):
            saveSnapshot(global, system, snapshot, entity: entity, modifiedAt: modifiedAt)
        case .saveWrittenHash(let global, let system, let hash): try saveWrittenHash(global, system, hash)
        case .replaceKeys(let global, let keys, let entity): try replaceKeys(global, keys, entity: entity)
        case .recordConflict(let global, let system, let nativeId, let memberId, let reason):
            try recordConflict(global, system, nativeId: nativeId, memberId: memberId, reason: reason)
        case .wait(let change, let record, let missing, let modifiedAt, let reason):
            try wait(change, record, for: missing, modifiedAt: modifiedAt, reason: reason)
        case .resolveWaiting(let record, let modifiedAt): try resolveWaiting(record, modifiedAt: modifiedAt)
        case .hold(let change, let global, let system, let modifiedAt): try hold(change, global, system, modifiedAt: modifiedAt)
        case .markPending(let global, let system): try markPending(global, system)
        case .openSlot(let global, let system, let writeId, let operation, let key, let leaseUntil):
            try openSlot(global, system, writeId: writeId, operation: operation, key: key, leaseUntil: leaseUntil)
        case .closeSlot(let global, let system): try closeSlot(global, system)
        case .extendLease(let global, let system, let until): try extendLease(global, system, until: until)
        case .park(let global, let system, let refs, let reason): try park(global, system, waitingFor: refs, reason: reason)
        case .unpark(let global, let system): try unpark(global, system)
        case .setRetryAt(let global, let system, let at): try setRetryAt(global, system, at)
        case .clearFailure(let global, let system): try clearFailure(global, system)
        case .enqueue(let envelope, let exchange, let routingKey): try enqueue(envelope, exchange: exchange, routingKey: routingKey)
        }
    }
}
