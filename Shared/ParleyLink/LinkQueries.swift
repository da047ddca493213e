import Foundation
import ParleyLinkCore
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
import ParleyJSON
import ParleyEnvelope

/// The link service's state as tooling sees it (the `parley link` commands, docs/cli.md): a
/// record's global entity with its members, the parked, failed and conflicting entities, and
/// counts. Every read runs in one read-only, repeatable-read transaction, so a view is
/// consistent with itself even while the service is writing.
///
/// The one write is ``retry(globalId:system:lease:now:)``, which asks for a new sync request
/// exactly as the engine would after a change.
public struct LinkQueries: Sendable {
    public let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    // MARK: Values

    /// A global entity: its canonical state with per-field provenance, its members, and what is
    /// under way or stuck for the systems it has no record in yet.
    public struct Entity: Sendable, Hashable {
        public var ref: GlobalRef
        /// Flat canonical values (references as global refs), as stored.
        public var state: [String: JSONValue]
        /// Per merge field: the system and source modification time of the change that set it.
        public var provenance: [String: Provenance]
        public var createdAt: Date
        public var updatedAt: Date
        /// The records that are this entity, one per system, sorted by system.
        public var members: [Member]
        /// Systems without a record of this entity where something is going on: a create in
        /// flight, a parked create, a failed create. Sorted by system.
        public var outstanding: [Outstanding]
        /// Records of other entities' systems held because they match this one too (rule 3).
        public var conflicts: [Conflict]

        public var entityType: CanonicalEntityType { ref.entity }
    }

    /// One member (system, native id) of a global entity.
    public struct Member: Sendable, Hashable {
        public var system: SystemName
        public var nativeId: String
        /// The source modification time of the last change seen from this record; `nil` when
        /// nothing has been reported from it yet (only our own write is known).
        public var sourceModifiedAt: Date?
        /// When the record joined the entity.
        public var linkedAt: Date
        public var status: TargetStatus
    }

    /// A system the entity has no record in yet, with what is going on there.
    public struct Outstanding: Sendable, Hashable {
        public var system: SystemName
        public var status: TargetStatus
    }

    /// The state of writing one global entity into one system.
    public struct TargetStatus: Sendable, Hashable {
        /// The write in flight (rule 8), if any.
        public var write: Write?
        /// Waiting for referenced entities to have a record in the system (rule 6).
        public var parked: Parking?
        /// The last write failed (rule 10); cleared when a write succeeds.
        public var failure: Failure?

        public init(write: Write? = nil, parked: Parking? = nil, failure: Failure? = nil) {
            self.write = write
            self.parked = parked
            self.failure = failure
        }

        public var isQuiet: Bool { write == nil && parked == nil && failure == nil }
    }

    public struct Write: Sendable, Hashable {
        public var writeId: String
        public var operation: WriteOperation
        public var idempotencyKey: String
        /// When the write is sent again if no outcome came (for a transient failure: the retry time).
        public var leaseUntil: Date
        /// A newer state waits for this write to finish (coalesced).
        public var pending: Bool
        /// The target reported the record meanwhile; that report is handled when the write is
        /// answered (its modification time there).
        public var heldSince: Date? = nil
    }

    public struct Parking: Sendable, Hashable {
        /// The global refs that have no record in the system yet.
        public var waitingFor: [String]
        public var reason: String
        public var parkedAt: Date
    }

    public struct Failure: Sendable, Hashable {
        public var kind: String
        public var reason: String
        /// Transient failures are retried after `retryAt`; permanent ones wait for a change or
        /// ``LinkQueries/retry(globalId:system:lease:now:)``.
        public var transient: Bool
        public var attempts: Int
        public var retryAt: Date?
        public var failedAt: Date
    }

    /// A native record.
    public struct NativeRecord: Sendable, Hashable {
        public var system: SystemName
        public var nativeId: String
    }

    /// An entity parked for one system, with its records (to recognise it by).
    public struct ParkedEntity: Sendable, Hashable {
        public var ref: GlobalRef
        public var system: SystemName
        public var members: [NativeRecord]
        public var parking: Parking
    }

    /// A record's change that waits for records its own system has not reported yet (an order's
    /// customer or products; handled once they are members).
    public struct WaitingChange: Sendable, Hashable {
        public var record: NativeRecord
        public var entityType: CanonicalEntityType
        /// The records it names that are no member yet.
        public var waitingFor: [NativeRecord]
        public var reason: String
        /// Set when handling it failed after its records were there: tried again at `retryAt`.
        public var attempts: Int
        public var retryAt: Date?
        public var since: Date
    }

    /// An entity whose last write to one system failed, with its records.
    public struct FailedEntity: Sendable, Hashable {
        public var ref: GlobalRef
        public var system: SystemName
        public var members: [NativeRecord]
        public var failure: Failure
    }

    /// A record (`system`, `nativeId`) that matches `ref`, which already has `memberId` in that
    /// system: held, not propagated (rule 3).
    public struct Conflict: Sendable, Hashable {
        public var ref: GlobalRef
        public var system: SystemName
        public var nativeId: String
        public var memberId: String
        public var reason: String
        public var detectedAt: Date
    }

    public struct Counts: Sendable, Hashable {
        /// Global entities per type (every type, zeros included).
        public var entities: [CanonicalEntityType: Int]
        /// Per (system, entity type) with anything to count, sorted.
        public var systems: [SystemCounts]
        /// Changes waiting for records their own system has not reported yet.
        public var waiting: Int = 0
        /// Sync requests committed but not yet published.
        public var outbox: Int
        public var outboxOldest: Date?

        public var writesInFlight: Int { systems.reduce(0) { $0 + $1.writesInFlight } }
        public var parked: Int { systems.reduce(0) { $0 + $1.parked } }
        public var failed: Int { systems.reduce(0) { $0 + $1.failed } }
        public var conflicts: Int { systems.reduce(0) { $0 + $1.conflicts } }
    }

    public struct SystemCounts: Sendable, Hashable {
        public var system: SystemName
        public var entityType: CanonicalEntityType
        public var members = 0
        public var writesInFlight = 0
        public var parked = 0
        /// All failed entities, transient ones included.
        public var failed = 0
        public var failedTransient = 0
        public var conflicts = 0
    }

    // MARK: Queries

    /// The global entity the native record belongs to, or `nil` when it is not a member of any
    /// (not seen yet, or held as a conflict: see ``conflicts(limit:system:entityType:)``).
    public func entity(system: SystemName, entityType: CanonicalEntityType, nativeId: String) async throws -> Entity? {
        try await read { tx in
            guard
                let id = try tx.query(
                    "select global_id from member where system = $1 and entity_type = $2 and native_id = $3",
                    [system.rawValue, entityType.rawValue, nativeId]
                ).first?.decode(UUID.self, at: 0)
            else { return nil }
            return try Self.entity(id, in: tx)
        }
    }

    /// The global entity `globalId`, or `nil` when there is none (or it is of another type).
    public func entity(globalId: GlobalRef) async throws -> Entity? {
        try await read { tx in
            guard let entity = try Self.entity(globalId.id, in: tx), entity.ref == globalId else { return nil }
            return entity
        }
    }

    /// Parked entities, longest waiting first.
    public func parked(limit: Int = 100, system: SystemName? = nil, entityType: CanonicalEntityType? = nil) async throws -> [ParkedEntity] {
        try await read { tx in
            try tx.query(
                """
                select p.global_id, g.entity_type, p.system, p.waiting_for::text, p.reason, p.parked_at, \(Self.membersColumn("p"))
                from parked p join global_entity g on g.id = p.global_id
                where ($1::text is null or p.system = $1) and ($2::text is null or g.entity_type = $2)
                order by p.parked_at, p.global_id, p.system limit $3
                """, [system?.rawValue, entityType?.rawValue, limit]
            ).map { row in
                ParkedEntity(
                    ref: try Self.ref(row, id: 0, type: 1), system: try Self.system(row, at: 2),
                    members: try Self.records(try row.decode(String.self, at: 6)),
                    parking: Parking(
                        waitingFor: try Self.strings(try row.decode(String.self, at: 3)),
                        reason: try row.decode(String.self, at: 4), parkedAt: try row.decode(Date.self, at: 5)))
            }
        }
    }

    /// Changes waiting for records their system has not reported, longest waiting first.
    public func waiting(limit: Int = 100, system: SystemName? = nil, entityType: CanonicalEntityType? = nil) async throws -> [WaitingChange] {
        try await read { tx in
            try tx.query(
                """
                select w.system, w.entity_type, w.native_id, (select coalesce(jsonb_agg(jsonb_build_array(r->>0, r->>2)
                           order by r->>0, r->>2), '[]') from jsonb_array_elements(w.waiting_for) r
                         where not exists (select 1 from member m where m.system = r->>0 and m.entity_type = r->>1 and m.native_id = r->>2))::text,
                    w.reason, w.attempts, w.retry_at, w.waiting_since
                from waiting_change w
                where ($1::text is null or w.system = $1) and ($2::text is null or w.entity_type = $2)
                order by w.waiting_since, w.system, w.native_id limit $3
                """, [system?.rawValue, entityType?.rawValue, limit]
            ).map { row in
                let typeText = try row.decode(String.self, at: 1)
                guard let type = CanonicalEntityType(rawValue: typeText) else { throw LinkError("unknown entity type \(typeText) in the database") }
                return WaitingChange(
                    record: NativeRecord(system: try Self.system(row, at: 0), nativeId: try row.decode(String.self, at: 2)),
                    entityType: type, waitingFor: try Self.records(try row.decode(String.self, at: 3)),
                    reason: try row.decode(String.self, at: 4), attempts: try row.decode(Int.self, at: 5),
                    retryAt: try row.decode(Date?.self, at: 6), since: try row.decode(Date.self, at: 7))
            }
        }
    }

    /// Failed entities, most recent failure first.
    public func failed(limit: Int = 100, system: SystemName? = nil, entityType: CanonicalEntityType? = nil) async throws -> [FailedEntity] {
        try await read { tx in
            try tx.query(
                """
                select f.global_id, g.entity_type, f.system, f.kind, f.reason, f.transient, f.attempts, f.retry_at, f.failed_at,
                    \(Self.membersColumn("f"))
                from failed f join global_entity g on g.id = f.global_id
                where ($1::text is null or f.system = $1) and ($2::text is null or g.entity_type = $2)
                order by f.failed_at desc, f.global_id, f.system limit $3
                """, [system?.rawValue, entityType?.rawValue, limit]
            ).map { row in
                FailedEntity(
                    ref: try Self.ref(row, id: 0, type: 1), system: try Self.system(row, at: 2),
                    members: try Self.records(try row.decode(String.self, at: 9)), failure: try Self.failure(row, from: 3))
            }
        }
    }

    /// Held duplicate records, most recent first.
    public func conflicts(limit: Int = 100, system: SystemName? = nil, entityType: CanonicalEntityType? = nil) async throws -> [Conflict] {
        try await read { tx in
            try tx.query(
                """
                select c.global_id, g.entity_type, c.system, c.native_id, c.member_id, c.reason, c.detected_at
                from conflict c join global_entity g on g.id = c.global_id
                where ($1::text is null or c.system = $1) and ($2::text is null or g.entity_type = $2)
                order by c.detected_at desc, c.global_id, c.system, c.native_id limit $3
                """, [system?.rawValue, entityType?.rawValue, limit]
            ).map { row in try Self.conflict(row) }
        }
    }

    public func counts() async throws -> Counts {
        try await read { tx in
            var entities = Dictionary(uniqueKeysWithValues: CanonicalEntityType.allCases.map { ($0, 0) })
            for row in try tx.query("select entity_type, count(*) from global_entity group by entity_type") {
                guard let type = CanonicalEntityType(rawValue: try row.decode(String.self, at: 0)) else { continue }
                entities[type] = try row.decode(Int.self, at: 1)
            }
            var systems: [String: SystemCounts] = [:]
            func add(_ sql: String, _ apply: (inout SystemCounts, PostgresRow) throws -> Void) throws {
                for row in try tx.query(sql) {
                    let system = try Self.system(row, at: 0)
                    let typeText = try row.decode(String.self, at: 1)
                    guard let type = CanonicalEntityType(rawValue: typeText) else {
                        throw LinkError("unknown entity type \(typeText) in the database")
                    }
                    let key = "\(system.rawValue)\u{0}\(type.rawValue)"
                    var counts = systems[key] ?? SystemCounts(system: system, entityType: type)
                    try apply(&counts, row)
                    systems[key] = counts
                }
            }
            try add("select system, entity_type, count(*) from member group by 1, 2") { $0.members = try $1.decode(Int.self, at: 2) }
            try add(
                """
                select s.system, g.entity_type, count(*) from write_slot s join global_entity g on g.id = s.global_id group by 1, 2
                """
            ) { $0.writesInFlight = try $1.decode(Int.self, at: 2) }
            try add(
                """
                select p.system, g.entity_type, count(*) from parked p join global_entity g on g.id = p.global_id group by 1, 2
                """
            ) { $0.parked = try $1.decode(Int.self, at: 2) }
            try add(
                """
                select f.system, g.entity_type, count(*), count(*) filter (where f.transient)
                from failed f join global_entity g on g.id = f.global_id group by 1, 2
                """
            ) {
                $0.failed = try $1.decode(Int.self, at: 2)
                $0.failedTransient = try $1.decode(Int.self, at: 3)
            }
            try add(
                """
                select c.system, g.entity_type, count(*) from conflict c join global_entity g on g.id = c.global_id group by 1, 2
                """
            ) { $0.conflicts = try $1.decode(Int.self, at: 2) }
            let outbox = try tx.query("select count(*), min(created_at), (select count(*) from waiting_change) from outbox")[0]
            return Counts(
                entities: entities,
                systems: systems.values.sorted { ($0.system.rawValue, $0.entityType.rawValue) < ($1.system.rawValue, $1.entityType.rawValue) },
                waiting: try outbox.decode(Int.self, at: 2), outbox: try outbox.decode(Int.self, at: 0),
                outboxOldest: try outbox.decode(Date?.self, at: 1))
        }
    }

    // MARK: Retry

    public enum RetryOutcome: Sendable, Hashable {
        /// A sync request was queued in the outbox (the running service's relay publishes it).
        case sent(writeId: String, operation: WriteOperation)
        /// A write to that system is already in flight (a change or an earlier retry sent it):
        /// nothing was done; its outcome clears or renews the failure.
        case inFlight(writeId: String)
        /// The entity still waits for references to have a record in the system.
        case parked
        /// A transient failure is retried by the service itself at `retryAt`.
        case alreadyScheduled(retryAt: Date?)
        /// Nothing failed for that entity and system.
        case notFailed
    }

    /// Makes a permanently failed entity try again in `system`: queues a sync request with its
    /// current state through the engine's own path (`WriteRequests.request`: references resolved or
    /// parked, a new write id, the same idempotency key), as a change would. Does nothing when a
    /// write to that system is already in flight. The failure stays recorded until a write
    /// succeeds. `lease` should be the service's
    /// (`link-service --lease-seconds`).
    public func retry(globalId: GlobalRef, system: SystemName, lease: Duration = .seconds(60), now: Date = Date()) async throws -> RetryOutcome {
        try await pool.transaction { tx in
            let store = LinkStore(tx: tx)
            guard let type = try store.entityType(of: globalId.id), type == globalId.entity else {
                throw LinkError("no global entity \(globalId)")
            }
            // The entity's row lock first, as the engine takes it: per-entity order across replicas.
            let state = try store.lockEntity(globalId.id, type)
            guard
                let row = try tx.query(
                    "select transient, retry_at from failed where global_id = $1 and system = $2 for update",
                    [globalId.id, system.rawValue]
                ).first
            else { return .notFailed }
            if try row.decode(Bool.self, at: 0) { return .alreadyScheduled(retryAt: try row.decode(Date?.self, at: 1)) }
            // A write already under way carries the current state, or is marked to be followed by it.
            if let slot = try store.lockSlot(globalId.id, system) { return .inFlight(writeId: slot.writeId) }
            let cause = try Envelope(
                kind: "retryRequested", system: system, entityType: type.messagingEntityType,
                entityId: globalId.description, time: now, payload: .null)
            var requests = WriteRequests(store: store, entity: type, cause: cause, now: now, lease: lease)
            try requests.request(global: globalId.id, to: system, state: state)
            try store.flush()
            if requests.parked > 0 { return .parked }
            guard requests.sent > 0,
                let slot = try tx.query(
                    "select write_id, operation from write_slot where global_id = $1 and system = $2",
                    [globalId.id, system.rawValue]
                ).first,
                let operation = WriteOperation(rawValue: try slot.decode(String.self, at: 1))
            else { throw LinkError("retry of \(globalId) in \(system): the engine queued nothing") }
            return .sent(writeId: try slot.decode(String.self, at: 0), operation: operation)
        }
    }

    // MARK: Reading

    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresTransaction) throws -> T) async throws -> T {
        try await pool.transaction(isolation: .repeatableRead) { tx in
            _ = try tx.execute("set transaction read only")
            return try body(tx)
        }
    }

    static func entity(_ id: UUID, in tx: PostgresTransaction) throws -> Entity? {
        guard
            let row = try tx.query(
                """
                select id, entity_type, state::text, provenance::text, created_at, updated_at from global_entity where id = $1
                """, [id]
            ).first
        else { return nil }
        let ref = try Self.ref(row, id: 0, type: 1)
        let state = try LinkStore.object(try row.decode(String.self, at: 2))
        var provenance: [String: Provenance] = [:]
        for (field, value) in try LinkStore.object(try row.decode(String.self, at: 3)) {
            if let system = value["system"]?.string.flatMap(SystemName.init(rawValue:)), let at = value["modifiedAt"]?.number?.int {
                provenance[field] = Provenance(system: system, modifiedAt: Int64(at))
            }
        }

        var statuses = try Self.targetStatuses(id, in: tx)
        var members: [Member] = []
        for row in try tx.query(
            """
            select system, native_id, source_modified_at, created_at from member where global_id = $1 order by system
            """, [id])
        {
            let system = try Self.system(row, at: 0)
            members.append(
                Member(
                    system: system, nativeId: try row.decode(String.self, at: 1),
                    sourceModifiedAt: try row.decode(Date?.self, at: 2), linkedAt: try row.decode(Date.self, at: 3),
                    status: statuses.removeValue(forKey: system) ?? TargetStatus()))
        }
        let outstanding = statuses.sorted { $0.key.rawValue < $1.key.rawValue }.map { Outstanding(system: $0.key, status: $0.value) }
        let conflicts = try tx.query(
            """
            select c.global_id, g.entity_type, c.system, c.native_id, c.member_id, c.reason, c.detected_at
            from conflict c join global_entity g on g.id = c.global_id
            where c.global_id = $1 order by c.system, c.native_id
            """, [id]
        ).map { try Self.conflict($0) }
        return Entity(
            ref: ref, state: state, provenance: provenance, createdAt: try row.decode(Date.self, at: 4),
            updatedAt: try row.decode(Date.self, at: 5), members: members, outstanding: outstanding, conflicts: conflicts)
    }

    /// What each target of the entity has under way: its write in flight, its parking, its failure.
    static func targetStatuses(_ id: UUID, in tx: PostgresTransaction) throws -> [SystemName: TargetStatus] {
        var statuses: [SystemName: TargetStatus] = [:]
        for row in try tx.query(
            """
            select system, write_id, operation, idempotency_key, lease_until, pending, (held->>'at')::bigint from write_slot where global_id = $1
            """, [id])
        {
            let operationText = try row.decode(String.self, at: 2)
            guard let operation = WriteOperation(rawValue: operationText) else { throw LinkError("unknown write operation \(operationText)") }
            statuses[try Self.system(row, at: 0), default: TargetStatus()].write = Write(
                writeId: try row.decode(String.self, at: 1), operation: operation, idempotencyKey: try row.decode(String.self, at: 3),
                leaseUntil: try row.decode(Date.self, at: 4), pending: try row.decode(Bool.self, at: 5),
                heldSince: try row.decode(Int64?.self, at: 6).map { Date(timeIntervalSince1970: Double($0) / 1000) })
        }
        for row in try tx.query("select system, waiting_for::text, reason, parked_at from parked where global_id = $1", [id]) {
            statuses[try Self.system(row, at: 0), default: TargetStatus()].parked = Parking(
                waitingFor: try Self.strings(try row.decode(String.self, at: 1)), reason: try row.decode(String.self, at: 2),
                parkedAt: try row.decode(Date.self, at: 3))
        }
        for row in try tx.query(
            """
            select system, kind, reason, transient, attempts, retry_at, failed_at from failed where global_id = $1
            """, [id])
        {
            statuses[try Self.system(row, at: 0), default: TargetStatus()].failure = try Self.failure(row, from: 1)
        }
        return statuses
    }

    /// The entity's members as `[[system, native id], ...]` JSON text, for the list queries.
    static func membersColumn(_ alias: String) -> String {
        """
        coalesce((select jsonb_agg(jsonb_build_array(m.system, m.native_id) order by m.system)
                  from member m where m.global_id = \(alias).global_id), '[]')::text
        """
    }

    static func ref(_ row: PostgresRow, id: Int, type: Int) throws -> GlobalRef {
        let text = try row.decode(String.self, at: type)
        guard let entity = CanonicalEntityType(rawValue: text) else { throw LinkError("unknown entity type \(text) in the database") }
        return GlobalRef(entity, id: try row.decode(UUID.self, at: id))
    }

    static func system(_ row: PostgresRow, at index: Int) throws -> SystemName {
        let text = try row.decode(String.self, at: index)
        guard let system = SystemName(rawValue: text) else { throw LinkError("invalid system name \(text) in the database") }
        return system
    }

    /// kind, reason, transient, attempts, retry_at, failed_at from column `index` on.
    static func failure(_ row: PostgresRow, from index: Int) throws -> Failure {
        Failure(
            kind: try row.decode(String.self, at: index), reason: try row.decode(String.self, at: index + 1),
            transient: try row.decode(Bool.self, at: index + 2), attempts: try row.decode(Int.self, at: index + 3),
            retryAt: try row.decode(Date?.self, at: index + 4), failedAt: try row.decode(Date.self, at: index + 5))
    }

    static func conflict(_ row: PostgresRow) throws -> Conflict {
        Conflict(
            ref: try ref(row, id: 0, type: 1), system: try system(row, at: 2), nativeId: try row.decode(String.self, at: 3),
            memberId: try row.decode(String.self, at: 4), reason: try row.decode(String.self, at: 5),
            detectedAt: try row.decode(Date.self, at: 6))
    }

    static func strings(_ text: String) throws -> [String] {
        guard case .array(let items) = try JSONValue.parse(text) else { throw LinkError("expected a JSON array in the database") }
        return items.compactMap(\.string)
    }

    static func records(_ text: String) throws -> [NativeRecord] {
        guard case .array(let items) = try JSONValue.parse(text) else { throw LinkError("expected a JSON array in the database") }
        return try items.map { item in
            guard let pair = item.array, pair.count == 2, let s = pair[0].string, let system = SystemName(rawValue: s),
                let nativeId = pair[1].string
            else { throw LinkError("unexpected member pair \(item)") }
            return NativeRecord(system: system, nativeId: nativeId)
        }
    }
}

// MARK: - JSON

/// The machine-readable forms (`parley link ... --json`): camelCase keys, global ids as
/// `<type>/<uuid>`, times as RFC 3339 UTC with milliseconds, absent values as `null`.
extension LinkQueries {
    static func time(_ date: Date?) -> JSONValue {
        guard let date else { return .null }
        return .string(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
    }

    static func time(milliseconds: Int64) -> JSONValue {
        time(Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    static func object(_ members: [(String, JSONValue)]) -> JSONValue {
        .object(JSONObject(members))
    }
}

extension LinkQueries.Entity {
    public var json: JSONValue {
        LinkQueries.object([
            ("id", .string(ref.description)),
            ("entityType", .string(entityType.rawValue)),
            ("state", LinkQueries.object(state.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })),
            (
                "provenance",
                LinkQueries.object(
                    provenance.sorted { $0.key < $1.key }.map { field, p in
                        (
                            field,
                            LinkQueries.object([("system", .string(p.system.rawValue)), ("modifiedAt", LinkQueries.time(milliseconds: p.modifiedAt))])
                        )
                    })
            ),
            ("createdAt", LinkQueries.time(createdAt)),
            ("updatedAt", LinkQueries.time(updatedAt)),
            ("members", .array(members.map(\.json))),
            ("outstanding", .array(outstanding.map(\.json))),
            ("conflicts", .array(conflicts.map(\.json)))
        ])
    }
}

extension LinkQueries.Member {
    public var json: JSONValue {
        LinkQueries.object(
            [
                ("system", .string(system.rawValue)), ("nativeId", .string(nativeId)),
                ("sourceModifiedAt", LinkQueries.time(sourceModifiedAt)), ("linkedAt", LinkQueries.time(linkedAt))
            ] + status.members)
    }
}

extension LinkQueries.Outstanding {
    public var json: JSONValue {
        LinkQueries.object([("system", .string(system.rawValue)), ("nativeId", .null)] + status.members)
    }
}

extension LinkQueries.TargetStatus {
    var members: [(String, JSONValue)] {
        [("write", write?.json ?? .null), ("parked", parked?.json ?? .null), ("failure", failure?.json ?? .null)]
    }
}

extension LinkQueries.Write {
    public var json: JSONValue {
        LinkQueries.object([
            ("writeId", .string(writeId)), ("operation", .string(operation.rawValue)), ("idempotencyKey", .string(idempotencyKey)),
            ("leaseUntil", LinkQueries.time(leaseUntil)), ("pending", .bool(pending)),
            ("heldSince", heldSince.map(LinkQueries.time) ?? .null)
        ])
    }
}

extension LinkQueries.Parking {
    var members: [(String, JSONValue)] {
        [("waitingFor", .array(waitingFor.map(JSONValue.string))), ("reason", .string(reason)), ("parkedAt", LinkQueries.time(parkedAt))]
    }

    public var json: JSONValue { LinkQueries.object(members) }
}

extension LinkQueries.Failure {
    var members: [(String, JSONValue)] {
        [
            ("kind", .string(kind)), ("reason", .string(reason)), ("transient", .bool(transient)),
            ("attempts", .number(JSONNumber(attempts))), ("retryAt", LinkQueries.time(retryAt)), ("failedAt", LinkQueries.time(failedAt))
        ]
    }

    public var json: JSONValue { LinkQueries.object(members) }
}

extension LinkQueries.NativeRecord {
    public var json: JSONValue { LinkQueries.object([("system", .string(system.rawValue)), ("nativeId", .string(nativeId))]) }
}

extension LinkQueries.ParkedEntity {
    public var json: JSONValue {
        LinkQueries.object(
            [
                ("id", .string(ref.description)), ("entityType", .string(ref.entity.rawValue)), ("system", .string(system.rawValue)),
                ("members", .array(members.map(\.json)))
            ] + parking.members)
    }
}

extension LinkQueries.WaitingChange {
    public var json: JSONValue {
        LinkQueries.object([
            ("system", .string(record.system.rawValue)), ("entityType", .string(entityType.rawValue)), ("nativeId", .string(record.nativeId)),
            ("waitingFor", .array(waitingFor.map(\.json))), ("reason", .string(reason)), ("attempts", .number(JSONNumber(attempts))),
            ("retryAt", LinkQueries.time(retryAt)), ("since", LinkQueries.time(since))
        ])
    }
}

extension LinkQueries.FailedEntity {
    public var json: JSONValue {
        LinkQueries.object(
            [
                ("id", .string(ref.description)), ("entityType", .string(ref.entity.rawValue)), ("system", .string(system.rawValue)),
                ("members", .array(members.map(\.json)))
            ] + failure.members)
    }
}

extension LinkQueries.Conflict {
    public var json: JSONValue {
        LinkQueries.object([
            ("id", .string(ref.description)), ("entityType", .string(ref.entity.rawValue)), ("system", .string(system.rawValue)),
            ("nativeId", .string(nativeId)), ("memberId", .string(memberId)), ("reason", .string(reason)),
            ("detectedAt", LinkQueries.time(detectedAt))
        ])
    }
}

extension LinkQueries.Counts {
    public var json: JSONValue {
        LinkQueries.object([
            ("entities", LinkQueries.object(CanonicalEntityType.allCases.map { ($0.rawValue, .number(JSONNumber(entities[$0] ?? 0))) })),
            ("systems", .array(systems.map(\.json))),
            ("writesInFlight", .number(JSONNumber(writesInFlight))),
            ("waiting", .number(JSONNumber(waiting))),
            ("outbox", .number(JSONNumber(outbox))),
            ("outboxOldest", LinkQueries.time(outboxOldest))
        ])
    }
}

extension LinkQueries.SystemCounts {
    public var json: JSONValue {
        LinkQueries.object([
            ("system", .string(system.rawValue)), ("entityType", .string(entityType.rawValue)),
            ("members", .number(JSONNumber(members))), ("writesInFlight", .number(JSONNumber(writesInFlight))),
            ("parked", .number(JSONNumber(parked))), ("failed", .number(JSONNumber(failed))),
            ("failedTransient", .number(JSONNumber(failedTransient))), ("conflicts", .number(JSONNumber(conflicts)))
        ])
    }
}
