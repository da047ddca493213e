import Foundation
import ParleyCore

/// A remembered create: the key's request body (hashed) and the first response's record.
public struct IdempotencyEntry: Sendable, Equatable {
    public var requestHash: String
    public var recordId: Int64
    /// The record exactly as the first create returned it (a retry returns the same body).
    public var firstResult: StoredRecord
    public var firstUsedAt: Timestamp
}

/// All of one simulator's state: its entities, one id sequence shared by them (as in a
/// WordPress posts table, so a customer id is never also a product id — an adapter that mixes
/// them up gets a 404, not someone else's record), one monotonic clock, and the idempotency
/// keys. Pure: the wall-clock time comes in with every call.
public struct SimulatorDatabase: Sendable {
    public static let idempotencyRetention: Int64 = 24 * 3_600_000

    public private(set) var entities: [String: EntityStore]
    public private(set) var clock = MonotonicClock()
    public private(set) var lastId: Int64
    private var idempotency: [String: IdempotencyEntry] = [:]
    private let firstId: Int64

    public init(entities: [EntityStore], firstId: Int64 = 1) {
        self.entities = Dictionary(uniqueKeysWithValues: entities.map { ($0.name, $0) })
        self.firstId = firstId
        self.lastId = firstId - 1
    }

    public func store(_ entity: String) -> EntityStore {
        guard let store = entities[entity] else { preconditionFailure("unknown entity \(entity)") }
        return store
    }

    public func get(_ entity: String, _ id: Int64) throws(StoreError) -> StoredRecord {
        guard let r = store(entity).get(id) else { throw .notFound(entity: entity, id: id) }
        return r
    }

    /// Creates a record. With an idempotency key: a retry (same key, same body hash) within
    /// 24 h returns the first result and `replayed` true, creating nothing; the same key with
    /// a different body is `idempotencyKeyReused`. A failed create does not use up its key.
    public mutating func create(
        _ entity: String, fields: [String: JSONValue], idempotencyKey: String? = nil, requestHash: String = "",
        wall: Timestamp
    ) throws(StoreError) -> (record: StoredRecord, replayed: Bool) {
        expireIdempotencyKeys(wall: wall)
        let scopedKey = idempotencyKey.map { "\(entity)\u{0}\($0)" }
        if let scopedKey, let entry = idempotency[scopedKey] {
            guard entry.requestHash == requestHash else { throw .idempotencyKeyReused(key: idempotencyKey ?? "") }
            return (entry.firstResult, true)
        }
        var store = store(entity)
        try store.checkUnique(fields)
        let time = clock.next(wall: wall)
        lastId += 1
        let record = try store.insert(id: lastId, fields: fields, at: time)
        entities[entity] = store
        if let scopedKey {
            idempotency[scopedKey] = IdempotencyEntry(
                requestHash: requestHash, recordId: record.id, firstResult: record, firstUsedAt: wall)
        }
        return (record, false)
    }

    /// Replaces the fields of a record (the caller merged the update into them).
    public mutating func update(
        _ entity: String, id: Int64, fields: [String: JSONValue], expectedModifiedAt: Timestamp? = nil, wall: Timestamp
    ) throws(StoreError) -> StoredRecord {
        var store = store(entity)
        guard let current = store.get(id) else { throw .notFound(entity: entity, id: id) }
        if let expectedModifiedAt, expectedModifiedAt != current.modifiedAt {
            throw .preconditionFailed(current: current.modifiedAt)
        }
        try store.checkUnique(fields, except: id)
        let time = clock.next(wall: wall)
        let record = try store.replace(id: id, fields: fields, at: time)
        entities[entity] = store
        return record
    }

    public mutating func archive(_ entity: String, id: Int64, wall: Timestamp) throws(StoreError) -> (record: StoredRecord, changed: Bool) {
        var store = store(entity)
        guard let current = store.get(id) else { throw .notFound(entity: entity, id: id) }
        if current.archived { return (current, false) }
        let result = try store.archive(id: id, at: clock.next(wall: wall))
        entities[entity] = store
        return result
    }

    /// An incremental page of `entity`, only records `filter` accepts when given.
    public func list(
        _ entity: String, since: Timestamp?, cursor: String?, limit: Int,
        where filter: ((StoredRecord) -> Bool)? = nil
    ) throws(StoreError) -> Page {
        var after: PageCursor?
        if let cursor {
            guard let c = PageCursor(token: cursor) else { throw .invalidCursor }
            after = c
        }
        return store(entity).page(since: since, after: after, limit: limit, where: filter)
    }

    /// Forgets every record and key; ids and the clock keep counting up, so nothing a client
    /// saw before a reset is ever reused.
    public mutating func reset() {
        for name in entities.keys { entities[name]?.removeAll() }
        idempotency = [:]
    }

    public var idempotencyKeyCount: Int { idempotency.count }

    private mutating func expireIdempotencyKeys(wall: Timestamp) {
        idempotency = idempotency.filter { wall.milliseconds - $0.value.firstUsedAt.milliseconds < Self.idempotencyRetention }
    }

    /// The hash an idempotent create compares: SHA-256 of the body's canonical JSON.
    public static func requestHash(_ body: JSONValue) -> String {
        SHA256.hex(JSONCoding.encode(body))
    }
}
