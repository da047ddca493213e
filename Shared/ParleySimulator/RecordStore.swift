import Foundation
import ParleyCore

/// One stored record: the server-kept metadata and the contract's members (`fields`), which
/// the simulator renders in its own shape (ids as strings or integers, timestamp names).
public struct StoredRecord: Sendable, Equatable {
    public var id: Int64
    public var createdAt: Timestamp
    public var modifiedAt: Timestamp
    public var archived: Bool
    public var fields: [String: JSONValue]

    public init(id: Int64, createdAt: Timestamp, modifiedAt: Timestamp, archived: Bool = false, fields: [String: JSONValue]) {
        self.id = id
        self.createdAt = createdAt
        self.modifiedAt = modifiedAt
        self.archived = archived
        self.fields = fields
    }
}

/// A value that must be unique among an entity's records (ERP customer and item numbers,
/// webshop SKU and e-mail). Archived records keep their values: a number once used stays taken.
public struct UniqueRule: Sendable {
    /// The member named in the 409 problem, e.g. `itemNo`.
    public var field: String
    /// The record's value in comparable form (e.g. lower-cased e-mail); `nil` or empty: no value.
    public var key: @Sendable ([String: JSONValue]) -> String?

    public init(field: String, key: @escaping @Sendable ([String: JSONValue]) -> String?) {
        self.field = field
        self.key = key
    }

    /// The string member `field`, trimmed, compared exactly (case-sensitive).
    public static func exact(_ field: String) -> UniqueRule {
        UniqueRule(field: field) { $0[field]?.stringValue?.trimmingCharacters(in: .whitespaces) }
    }

    /// The string member `field`, trimmed and lower-cased.
    public static func caseInsensitive(_ field: String) -> UniqueRule {
        UniqueRule(field: field) { $0[field]?.stringValue?.trimmingCharacters(in: .whitespaces).lowercased() }
    }
}

/// Why the store refused: each maps to one RFC 7807 problem.
public enum StoreError: Error, Sendable, Equatable {
    case notFound(entity: String, id: Int64)
    /// A unique value is taken by record `existingId`.
    case duplicate(field: String, value: String, existingId: Int64)
    /// The idempotency key was first used with a different request body.
    case idempotencyKeyReused(key: String)
    /// The cursor is not one this store issued.
    case invalidCursor
    /// `If-Unmodified-Since-Modified-At` did not match.
    case preconditionFailed(current: Timestamp)

    public var problem: Problem {
        switch self {
        case .notFound(let entity, let id):
            Problem(status: 404, title: "Not Found", detail: "No \(entity) with id \(id).")
        case .duplicate(let field, let value, let existingId):
            Problem(
                status: 409, title: "Conflict",
                detail: "\(field) '\(value)' is already used by record \(existingId).",
                errors: [.init(field: field, message: "must be unique; taken by \(existingId)")])
        case .idempotencyKeyReused(let key):
            Problem(
                status: 409, title: "Conflict",
                detail: "Idempotency-Key '\(key)' was used before with a different request body.",
                errors: [.init(field: "Idempotency-Key", message: "reused with a different body")])
        case .invalidCursor:
            Problem(
                status: 400, title: "Bad Request", detail: "The cursor is not valid.",
                errors: [.init(field: "cursor", message: "not a cursor this server issued")])
        case .preconditionFailed(let current):
            Problem(
                status: 412, title: "Precondition Failed",
                detail: "The record was modified since; its modifiedAt is \(current.rfc3339).")
        }
    }
}

/// Where a page of an incremental list resumes: after (modifiedAt, id). Opaque to clients
/// (URL-safe base64 of `v1:<ms>:<id>`).
public struct PageCursor: Sendable, Equatable {
    public var modifiedAt: Timestamp
    public var id: Int64

    public init(modifiedAt: Timestamp, id: Int64) {
        self.modifiedAt = modifiedAt
        self.id = id
    }

    public var token: String {
        Data("v1:\(modifiedAt.milliseconds):\(id)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public init?(token: String) {
        var b64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 3, parts[0] == "v1", let ms = Int64(parts[1]), let id = Int64(parts[2]) else { return nil }
        self.init(modifiedAt: Timestamp(milliseconds: ms), id: id)
    }
}

public struct Page: Sendable, Equatable {
    public var items: [StoredRecord]
    /// `nil` on the last page.
    public var nextCursor: PageCursor?
}

/// The records of one entity (customers, products or orders) with the contract's rules,
/// without HTTP and without a clock: every write is given its timestamp and id, so the rules
/// are testable with any timestamps, equal ones included.
public struct EntityStore: Sendable {
    public let name: String
    public let uniqueRules: [UniqueRule]
    public private(set) var records: [Int64: StoredRecord] = [:]

    public init(name: String, uniqueRules: [UniqueRule] = []) {
        self.name = name
        self.uniqueRules = uniqueRules
    }

    public func get(_ id: Int64) -> StoredRecord? { records[id] }

    /// The first unique value of `fields` already used by a record other than `except`.
    public func checkUnique(_ fields: [String: JSONValue], except: Int64? = nil) throws(StoreError) {
        for rule in uniqueRules {
            guard let key = rule.key(fields), !key.isEmpty else { continue }
            if let other = records.values.first(where: { $0.id != except && rule.key($0.fields) == key }) {
                throw .duplicate(field: rule.field, value: key, existingId: other.id)
            }
        }
    }

    public func find(where predicate: (StoredRecord) -> Bool) -> StoredRecord? {
        records.values.sorted { $0.id < $1.id }.first(where: predicate)
    }

    @discardableResult
    public mutating func insert(id: Int64, fields: [String: JSONValue], at time: Timestamp) throws(StoreError) -> StoredRecord {
        try checkUnique(fields)
        let record = StoredRecord(id: id, createdAt: time, modifiedAt: time, fields: fields)
        records[id] = record
        return record
    }

    /// Replaces the record's fields; `expectedModifiedAt` is the optional optimistic lock.
    @discardableResult
    public mutating func replace(
        id: Int64, fields: [String: JSONValue], at time: Timestamp, expectedModifiedAt: Timestamp? = nil
    ) throws(StoreError) -> StoredRecord {
        guard var record = records[id] else { throw .notFound(entity: name, id: id) }
        if let expected = expectedModifiedAt, expected != record.modifiedAt {
            throw .preconditionFailed(current: record.modifiedAt)
        }
        try checkUnique(fields, except: id)
        record.fields = fields
        record.modifiedAt = time
        records[id] = record
        return record
    }

    /// Archives the record. Idempotent: an archived record is returned unchanged (`changed`
    /// false) and keeps its `modifiedAt`.
    public mutating func archive(id: Int64, at time: Timestamp) throws(StoreError) -> (record: StoredRecord, changed: Bool) {
        guard var record = records[id] else { throw .notFound(entity: name, id: id) }
        if record.archived { return (record, false) }
        record.archived = true
        record.modifiedAt = time
        records[id] = record
        return (record, true)
    }

    /// An incremental page: records with `modifiedAt >= since` (all when `since` is nil) that
    /// `filter` accepts (all when nil), ordered by (modifiedAt, id), starting after `cursor`
    /// when given, at most `limit`.
    public func page(since: Timestamp?, after cursor: PageCursor?, limit: Int, where filter: ((StoredRecord) -> Bool)? = nil) -> Page {
        let ordered = records.values
            .filter { r in
                if let since, r.modifiedAt < since { return false }
                if let c = cursor, (r.modifiedAt, r.id) <= (c.modifiedAt, c.id) { return false }
                if let filter, !filter(r) { return false }
                return true
            }
            .sorted { ($0.modifiedAt, $0.id) < ($1.modifiedAt, $1.id) }
        let items = Array(ordered.prefix(max(1, limit)))
        let next = ordered.count > items.count ? items.last.map { PageCursor(modifiedAt: $0.modifiedAt, id: $0.id) } : nil
        return Page(items: items, nextCursor: next)
    }

    public mutating func removeAll() { records = [:] }
}
