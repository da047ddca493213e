import Foundation
import ParleyEnvelope
import ParleyJSON

// The payloads of the messages around the mapping service (docs/mapping-service.md):
//
//   adapter ──change──► mapping ──canonical──► link ──syncRequest──► mapping ──command──► adapter
//
// Each is a JSON object; `init(json:)` reads one strictly (unknown members are an error, so a
// misspelt member never silently loses data) and `json` writes it.

/// A native id of another entity found in a native record: the order's customer, a line's
/// product. The mapping service is stateless and cannot know global ids, so it reports these and
/// the link service translates them through the links (DESIGN rule 6).
public struct NativeReference: Sendable, Hashable {
    /// The canonical path with the line index: `customer`, `lines[2].product`.
    public var path: String
    public var entity: CanonicalEntityType
    /// The native id in the system the record came from.
    public var id: String

    public init(path: String, entity: CanonicalEntityType, id: String) {
        self.path = path
        self.entity = entity
        self.id = id
    }

    public var json: JSONValue { ["path": .string(path), "entityType": .string(entity.rawValue), "id": .string(id)] }

    public init(json: JSONValue, at field: String) throws(PayloadError) {
        let r = try PayloadReader(json, at: field, allowed: ["path", "entityType", "id"])
        path = try r.string("path")
        let type = try r.string("entityType")
        guard let entity = CanonicalEntityType(rawValue: type) else { throw r.fail("entityType", "unknown entity type \"\(type)\"") }
        self.entity = entity
        id = try r.string("id")
    }
}

/// A payload that does not have the documented shape: the member and the reason.
public struct PayloadError: Error, Sendable, Hashable, CustomStringConvertible {
    public let field: String
    public let reason: String
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { field.isEmpty ? "payload: \(reason)" : "payload field \(field): \(reason)" }
}

/// `change` (adapter → mapping service): a record as the source system reports it.
public struct ChangePayload: Sendable, Hashable {
    public enum Operation: String, Sendable, Hashable { case upsert, delete }
    public var operation: Operation
    /// The native record in the table's read schema; for a delete it may be absent (the
    /// system only reports the id, which is the envelope's `entityId`).
    public var record: JSONValue?

    public init(operation: Operation = .upsert, record: JSONValue?) {
        self.operation = operation
        self.record = record
    }

    public var json: JSONValue {
        var o: JSONObject = ["operation": .string(operation.rawValue)]
        if let record { o["record"] = record }
        return .object(o)
    }

    public init(json: JSONValue) throws(PayloadError) {
        let r = try PayloadReader(json, at: "", allowed: ["operation", "record"])
        operation = try r.enumeration("operation", default: .upsert)
        record = r.optional("record")
        if operation == .upsert, record == nil { throw r.fail("record", "an upsert needs the record") }
    }
}

/// `canonical` (mapping service → link service): a change normalised to the canonical model.
public struct CanonicalPayload: Sendable, Hashable {
    public var operation: ChangePayload.Operation
    /// Canonical JSON: the values the source reported, references left out (see `references`).
    public var entity: JSONValue
    /// The merge fields the source carries, in canonical order. Carried but absent from
    /// `entity` means empty in the source; not carried means the source cannot say.
    public var carried: [String]
    /// The carried fields the source assigns itself (its own order number, the creation date):
    /// they fill an empty canonical field and never overwrite one. A subset of `carried`.
    public var assigned: [String]
    /// Native ids of referenced entities, in the source system.
    public var references: [NativeReference]
    /// The source's modification time (canonical instant), when it reports one.
    public var modifiedAt: String?
    /// The key Parley created the record with (its global ref), when the source keeps it: the
    /// echo of Parley's own create, recognised even before the create's `written` event.
    public var origin: String?

    public init(
        operation: ChangePayload.Operation, entity: JSONValue, carried: [String], assigned: [String] = [],
        references: [NativeReference], modifiedAt: String?, origin: String? = nil
    ) {
        self.origin = origin
        self.operation = operation
        self.entity = entity
        self.carried = carried
        self.assigned = assigned
        self.references = references
        self.modifiedAt = modifiedAt
    }

    public var json: JSONValue {
        var o: JSONObject = [
            "operation": .string(operation.rawValue), "entity": entity,
            "carried": .array(carried.map(JSONValue.string)), "references": .array(references.map(\.json))
        ]
        if !assigned.isEmpty { o["assigned"] = .array(assigned.map(JSONValue.string)) }
        if let modifiedAt { o["modifiedAt"] = .string(modifiedAt) }
        if let origin { o["origin"] = .string(origin) }
        return .object(o)
    }

    public init(json: JSONValue) throws(PayloadError) {
        let r = try PayloadReader(json, at: "", allowed: ["operation", "entity", "carried", "assigned", "references", "modifiedAt", "origin"])
        operation = try r.enumeration("operation", default: .upsert)
        entity = try r.required("entity")
        carried = try r.strings("carried")
        let assigned = try r.strings("assigned")
        let carried = self.carried
        if let stray = assigned.first(where: { !carried.contains($0) }) {
            throw r.fail("assigned", "\"\(stray)\" is not in carried")
        }
        self.assigned = assigned
        references = try r.array("references").enumerated().map { (i, v) throws(PayloadError) in
            try NativeReference(json: v, at: "references[\(i)]")
        }
        modifiedAt = try r.optionalString("modifiedAt")
        origin = try r.optionalString("origin")
    }
}

/// What a write to a target does.
public enum WriteOperation: String, Sendable, Hashable {
    /// A new record; the envelope's `entityId` is the global id, the idempotency key.
    case create
    /// Bring an existing record (`targetId`) in line.
    case update
    /// Archive an existing record (DESIGN rule 9: deletes become archives).
    case archive
}

/// `syncRequest` (link service → mapping service): bring one target record in line with a
/// global entity's canonical state.
public struct SyncRequestPayload: Sendable, Hashable {
    public var operation: WriteOperation
    /// The record's native id in the target (update, archive).
    public var targetId: String?
    /// The canonical state (canonical JSON, references as global refs).
    public var entity: JSONValue
    /// The target's native id for every global ref `entity` names (`"customer/<uuid>": "42"`).
    public var targetIds: [String: String]
    /// The link service's token for this write, handed back in `written`/`failed`.
    public var writeId: String?
    /// The target record's modification time (canonical instant) the state was merged with:
    /// the last the link service saw of it, by its change or by Parley's own write. The adapter
    /// writes only if the record has not been modified since (a conditional write): an edit the
    /// link service has not seen yet is never overwritten unmerged (`failed` kind `changed`).
    public var baseModifiedAt: String?

    public init(
        operation: WriteOperation, targetId: String?, entity: JSONValue, targetIds: [String: String] = [:], writeId: String? = nil,
        baseModifiedAt: String? = nil
    ) {
        self.operation = operation
        self.targetId = targetId
        self.entity = entity
        self.targetIds = targetIds
        self.writeId = writeId
        self.baseModifiedAt = baseModifiedAt
    }

    public var json: JSONValue {
        var o: JSONObject = ["operation": .string(operation.rawValue)]
        if let targetId { o["targetId"] = .string(targetId) }
        o["entity"] = entity
        o["targetIds"] = .object(JSONObject(targetIds.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))
        if let writeId { o["writeId"] = .string(writeId) }
        if let baseModifiedAt { o["baseModifiedAt"] = .string(baseModifiedAt) }
        return .object(o)
    }

    public init(json: JSONValue) throws(PayloadError) {
        let r = try PayloadReader(json, at: "", allowed: ["operation", "targetId", "entity", "targetIds", "writeId", "baseModifiedAt"])
        operation = try r.enumeration("operation", default: nil)
        targetId = try r.optionalString("targetId")
        if operation != .create, targetId == nil { throw r.fail("targetId", "an \(operation.rawValue) needs the target's id") }
        entity = try r.required("entity")
        var ids: [String: String] = [:]
        if let value = r.optional("targetIds") {
            guard case .object(let o) = value else { throw r.fail("targetIds", "expected an object, got \(value.typeName)") }
            for (key, v) in o {
                guard case .string(let s) = v else { throw r.fail("targetIds.\(key)", "expected a string id, got \(v.typeName)") }
                ids[key] = s
            }
        }
        targetIds = ids
        writeId = try r.optionalString("writeId")
        baseModifiedAt = try r.instant("baseModifiedAt")
    }
}

/// `command` (mapping service → adapter): a native write.
public struct CommandPayload: Sendable, Hashable {
    public var operation: WriteOperation
    public var targetId: String?
    /// The global id: the create's idempotency key (PowerOffice `ExternalImportReference`,
    /// `Idempotency-Key` on the custom contracts).
    public var idempotencyKey: String
    /// The native record in the target's write schema.
    public var record: JSONObject
    /// Written native paths whose value is empty: an update clears them.
    public var cleared: [String]
    /// What the target will report back (normalise ∘ denormalise), for echo suppression: the
    /// adapter hands it back in `written`.
    public var expected: CanonicalPayload
    public var writeId: String?
    /// The request's `baseModifiedAt`: write only if the record was not modified since.
    public var baseModifiedAt: String?

    public init(
        operation: WriteOperation, targetId: String?, idempotencyKey: String, record: JSONObject, cleared: [String],
        expected: CanonicalPayload, writeId: String?, baseModifiedAt: String? = nil
    ) {
        self.baseModifiedAt = baseModifiedAt
        self.operation = operation
        self.targetId = targetId
        self.idempotencyKey = idempotencyKey
        self.record = record
        self.cleared = cleared
        self.expected = expected
        self.writeId = writeId
    }

    public var json: JSONValue {
        var o: JSONObject = ["operation": .string(operation.rawValue)]
        if let targetId { o["targetId"] = .string(targetId) }
        o["idempotencyKey"] = .string(idempotencyKey)
        o["record"] = .object(record)
        o["cleared"] = .array(cleared.map(JSONValue.string))
        o["expected"] = expected.json
        if let writeId { o["writeId"] = .string(writeId) }
        if let baseModifiedAt { o["baseModifiedAt"] = .string(baseModifiedAt) }
        return .object(o)
    }

    public init(json: JSONValue) throws(PayloadError) {
        let r = try PayloadReader(
            json, at: "",
            allowed: [
                "operation", "targetId", "idempotencyKey", "record", "cleared", "expected", "writeId",
                "baseModifiedAt"
            ])
        operation = try r.enumeration("operation", default: nil)
        targetId = try r.optionalString("targetId")
        idempotencyKey = try r.string("idempotencyKey")
        guard case .object(let o) = try r.required("record") else { throw r.fail("record", "expected an object") }
        record = o
        cleared = try r.strings("cleared")
        do {
            expected = try CanonicalPayload(json: try r.required("expected"))
        } catch {
            throw PayloadError(field: "expected." + error.field, reason: error.reason)
        }
        writeId = try r.optionalString("writeId")
        baseModifiedAt = try r.instant("baseModifiedAt")
    }
}

/// Reads the members of one payload object, with errors naming the member.
struct PayloadReader {
    let object: JSONObject
    let prefix: String

    init(_ json: JSONValue, at field: String, allowed: Set<String>) throws(PayloadError) {
        guard case .object(let object) = json else {
            throw PayloadError(field: field, reason: "expected an object, got \(json.typeName)")
        }
        self.object = object
        self.prefix = field.isEmpty ? "" : field + "."
        if let unknown = object.keys.first(where: { !allowed.contains($0) }) {
            throw PayloadError(field: prefix + unknown, reason: "unknown member (expected \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func fail(_ key: String, _ reason: String) -> PayloadError { PayloadError(field: prefix + key, reason: reason) }

    func optional(_ key: String) -> JSONValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    func required(_ key: String) throws(PayloadError) -> JSONValue {
        guard let v = optional(key) else { throw fail(key, "missing") }
        return v
    }

    func string(_ key: String) throws(PayloadError) -> String {
        guard let s = try optionalString(key) else { throw fail(key, "missing") }
        return s
    }

    func optionalString(_ key: String) throws(PayloadError) -> String? {
        guard let v = optional(key) else { return nil }
        guard case .string(let s) = v, !s.isEmpty else { throw fail(key, "expected a non-empty string, got \(v.typeName)") }
        return s
    }

    /// An optional canonical instant (RFC 3339, UTC), checked.
    func instant(_ key: String) throws(PayloadError) -> String? {
        guard let text = try optionalString(key) else { return nil }
        do { _ = try CivilTime.parseInstant(text) } catch { throw fail(key, "not an instant: \(error)") }
        return text
    }

    func array(_ key: String) throws(PayloadError) -> [JSONValue] {
        guard let v = optional(key) else { return [] }
        guard case .array(let a) = v else { throw fail(key, "expected an array, got \(v.typeName)") }
        return a
    }

    func strings(_ key: String) throws(PayloadError) -> [String] {
        try array(key).enumerated().map { (i, v) throws(PayloadError) in
            guard case .string(let s) = v else { throw fail("\(key)[\(i)]", "expected a string, got \(v.typeName)") }
            return s
        }
    }

    func enumeration<E: RawRepresentable>(_ key: String, default fallback: E?) throws(PayloadError) -> E where E.RawValue == String {
        guard let text = try optionalString(key) else {
            if let fallback { return fallback }
            throw fail(key, "missing")
        }
        guard let value = E(rawValue: text) else { throw fail(key, "unknown value \"\(text)\"") }
        return value
    }
}

/// `written` (adapter → link service): the target confirmed a write. The envelope's `system`
/// is the target and `entityId` the record's native id there (for a create, the id it got).
public struct WrittenPayload: Sendable, Hashable {
    public var writeId: String
    /// The global id the command was for (its idempotency key).
    public var globalId: String
    public var operation: WriteOperation
    /// The command's `expected`, handed back unchanged: the target's new last-known state.
    public var expected: CanonicalPayload
    /// The record's modification time after the write (canonical instant), when the system's
    /// answer says: the base of the next conditional write to it (`SyncRequestPayload`).
    public var modifiedAt: String?

    public init(writeId: String, globalId: String, operation: WriteOperation, expected: CanonicalPayload, modifiedAt: String? = nil) {
        self.writeId = writeId
        self.globalId = globalId
        self.operation = operation
        self.expected = expected
        self.modifiedAt = modifiedAt
    }

    /// The `written` event for a command the adapter carried out.
    public init(command: CommandPayload, modifiedAt: String? = nil) {
        self.init(
            writeId: command.writeId ?? "", globalId: command.idempotencyKey, operation: command.operation, expected: command.expected,
            modifiedAt: modifiedAt)
    }

    public var json: JSONValue {
        var o: JSONObject = [
            "writeId": .string(writeId), "globalId": .string(globalId), "operation": .string(operation.rawValue),
            "expected": expected.json
        ]
        if let modifiedAt { o["modifiedAt"] = .string(modifiedAt) }
        return .object(o)
    }

    public init(json: JSONValue) throws(PayloadError) {
        let r = try PayloadReader(json, at: "", allowed: ["writeId", "globalId", "operation", "expected", "modifiedAt"])
        writeId = try r.string("writeId")
        globalId = try r.string("globalId")
        operation = try r.enumeration("operation", default: nil)
        do {
            expected = try CanonicalPayload(json: try r.required("expected"))
        } catch {
            throw PayloadError(field: "expected." + error.field, reason: error.reason)
        }
        modifiedAt = try r.instant("modifiedAt")
    }
}

/// `failed` (adapter or mapping service → link service): a write that did not happen.
public struct FailedPayload: Sendable, Hashable {
    /// `mapping` (the payload could not be built or validated) or `adapter` (the target said no).
    public var stage: String
    public var writeId: String?
    public var globalId: String?
    public var operation: WriteOperation?
    /// `validation`, `conversion`, `unresolvedReference`, `http4xx`, `http5xx`, `timeout`, …;
    /// `exists`: a create the target refused because a record with the same natural key is there
    /// already (`existingId`). `changed`: a conditional update or archive not made because the
    /// record was modified after the request's `baseModifiedAt` (the adapter published the record
    /// as a change). `gone`: the record no longer exists (the adapter published its delete).
    public var kind: String
    public var reason: String
    /// Worth retrying by itself (5xx, 429, timeouts); otherwise it waits for a change.
    public var transient: Bool
    public var field: String?
    public var targetId: String?
    /// `exists`: the native id, in the target, of the record that has the create's natural key.
    /// The adapter published that record as a change, so the link service links it (matching by
    /// natural key) and the retried create becomes an update — unless it belongs to another
    /// entity already (a duplicate conflict).
    public var existingId: String?

    public init(
        stage: String, writeId: String?, globalId: String?, operation: WriteOperation?, kind: String, reason: String,
        transient: Bool = false, field: String? = nil, targetId: String? = nil, existingId: String? = nil
    ) {
        self.stage = stage
        self.writeId = writeId
        self.globalId = globalId
        self.operation = operation
        self.kind = kind
        self.reason = reason
        self.transient = transient
        self.field = field
        self.targetId = targetId
        self.existingId = existingId
    }

    public var json: JSONValue {
        var o: JSONObject = ["stage": .string(stage), "kind": .string(kind), "reason": .string(reason)]
        if let writeId { o["writeId"] = .string(writeId) }
        if let globalId { o["globalId"] = .string(globalId) }
        if let operation { o["operation"] = .string(operation.rawValue) }
        if transient { o["transient"] = true }
        if let field { o["field"] = .string(field) }
        if let targetId { o["targetId"] = .string(targetId) }
        if let existingId { o["existingId"] = .string(existingId) }
        return .object(o)
    }

    public init(json: JSONValue) throws(PayloadError) {
        let r = try PayloadReader(
            json, at: "",
            allowed: [
                "stage", "writeId", "globalId", "operation", "kind", "reason", "transient", "field",
                "targetId", "existingId"
            ])
        stage = try r.string("stage")
        writeId = try r.optionalString("writeId")
        globalId = try r.optionalString("globalId")
        operation = try r.optionalString("operation").map { text throws(PayloadError) in
            guard let op = WriteOperation(rawValue: text) else { throw r.fail("operation", "unknown value \"\(text)\"") }
            return op
        }
        kind = try r.string("kind")
        reason = try r.string("reason")
        switch r.optional("transient") {
        case nil: transient = false
        case .bool(let b)?: transient = b
        case let other?: throw r.fail("transient", "expected a boolean, got \(other.typeName)")
        }
        field = r.optional("field")?.string
        targetId = try r.optionalString("targetId")
        existingId = try r.optionalString("existingId")
    }
}
