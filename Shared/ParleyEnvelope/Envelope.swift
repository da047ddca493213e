import Foundation
import ParleyJSON
import ParleyCore

/// The one envelope every Parley message travels in: versioned JSON
/// (schema: `docs/schemas/envelope.v1.schema.json`, rules: `docs/envelope.md`).
///
/// An `Envelope` value is always valid: the initializer checks every field, so ``encoded()``
/// cannot produce a document that ``decode(_:)`` or the schema would reject. `time` is kept at
/// millisecond precision (the precision on the wire), so `decode(e.encoded()) == e`.
public struct Envelope: Sendable, Equatable {
    /// The major version this build writes and reads. Additive changes keep it; breaking
    /// changes bump it.
    public static let currentVersion = 1

    public let version: Int
    /// This message's id (a random UUID, lower-case on the wire). Consumers deduplicate by it.
    public let id: UUID
    /// The id of the first message of the causal chain; equal to `id` for a chain's first message.
    public let correlationId: UUID
    /// The id of the message that caused this one; `nil` for a chain's first message.
    public let causationId: UUID?
    public let kind: MessageKind
    public let system: SystemName
    public let entityType: EntityType
    /// The native id in `system` or the global id, depending on `kind`. Never empty.
    public let entityId: String
    /// When the event happened (for a captured change: the source's modification time),
    /// at millisecond precision.
    public let time: Date
    public let payload: JSONValue
    public let trace: TraceContext?

    /// - Parameters:
    ///   - correlationId: defaults to `id` (a new chain). Use ``caused(by:id:kind:system:entityType:entityId:time:payload:)``
    ///     to continue a chain.
    ///   - time: rounded to the nearest millisecond; must fall in the years 0000–9999.
    public init(
        id: UUID = .random(),
        correlationId: UUID? = nil,
        causationId: UUID? = nil,
        kind: MessageKind,
        system: SystemName,
        entityType: EntityType,
        entityId: String,
        time: Date = Date(),
        payload: JSONValue,
        trace: TraceContext? = nil
    ) throws(EnvelopeError) {
        guard !entityId.isEmpty else { throw .invalidValue(field: "entityId", reason: "must not be empty") }
        let milliseconds = RFC3339.milliseconds(time)
        guard RFC3339.range.contains(milliseconds) else {
            throw .invalidValue(field: "time", reason: "must be between the years 0000 and 9999")
        }
        self.version = Envelope.currentVersion
        self.id = id
        self.correlationId = correlationId ?? id
        self.causationId = causationId
        self.kind = kind
        self.system = system
        self.entityType = entityType
        self.entityId = entityId
        self.time = RFC3339.date(milliseconds: milliseconds)
        self.payload = payload
        self.trace = trace
    }

    /// A message caused by `cause`: same `correlationId`, `causationId = cause.id`, and the
    /// cause's trace context. `system`, `entityType` and `entityId` default to the cause's.
    public static func caused(
        by cause: Envelope,
        id: UUID = .random(),
        kind: MessageKind,
        system: SystemName? = nil,
        entityType: EntityType? = nil,
        entityId: String? = nil,
        time: Date = Date(),
        payload: JSONValue
    ) throws(EnvelopeError) -> Envelope {
        try Envelope(
            id: id,
            correlationId: cause.correlationId,
            causationId: cause.id,
            kind: kind,
            system: system ?? cause.system,
            entityType: entityType ?? cause.entityType,
            entityId: entityId ?? cause.entityId,
            time: time,
            payload: payload,
            trace: cause.trace)
    }

    /// `time` as it appears on the wire: RFC 3339, UTC, milliseconds, e.g. `2025-01-31T12:00:00.000Z`.
    public var timeText: String { RFC3339.format(milliseconds: RFC3339.milliseconds(time)) }

    /// `id` as it appears on the wire (lower-case), e.g. for AMQP `message_id`.
    public var idText: String { id.lowercasedString }

    /// `correlationId` as it appears on the wire, e.g. for AMQP `correlation_id`.
    public var correlationIdText: String { correlationId.lowercasedString }

    // MARK: - Encoding

    /// The envelope as a JSON object, fields in documentation order, payload last.
    public var jsonValue: JSONValue {
        var object = JSONObject()
        object["version"] = .number(JSONNumber(version))
        object["id"] = .string(idText)
        object["correlationId"] = .string(correlationIdText)
        if let causationId { object["causationId"] = .string(causationId.lowercasedString) }
        object["kind"] = .string(kind.rawValue)
        object["system"] = .string(system.rawValue)
        object["entityType"] = .string(entityType.rawValue)
        object["entityId"] = .string(entityId)
        object["time"] = .string(timeText)
        if let trace {
            var traceObject = JSONObject()
            traceObject["traceparent"] = .string(trace.traceparent)
            if let tracestate = trace.tracestate { traceObject["tracestate"] = .string(tracestate) }
            object["trace"] = .object(traceObject)
        }
        object["payload"] = payload
        return .object(object)
    }

    /// Compact UTF-8 JSON; payload numbers exactly as given.
    public func encoded() -> [UInt8] { jsonValue.serialized() }

    public func encodedData() -> Data { Data(encoded()) }

    // MARK: - Decoding

    /// Decodes and validates an envelope. Unknown top-level fields are ignored (forward
    /// compatible within a major version); an unknown major version is rejected before any
    /// other field is looked at, since its fields may mean something else.
    public static func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(EnvelopeError) -> Envelope {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw .malformedJSON(error)
        }
        return try decode(parsed: document)
    }

    /// Validates an already parsed envelope document.
    public static func decode(parsed document: JSONValue) throws(EnvelopeError) -> Envelope {
        guard case .object(let fields) = document else { throw .notAnObject(found: document.typeName) }
        let reader = FieldReader(fields: fields, prefix: "")

        let versionNumber = try reader.required("version", "an integer") { $0.number }
        guard let version = versionNumber.int, version >= 1 else {
            throw .invalidValue(field: "version", reason: "must be a positive integer, got \(EnvelopeError.quote(versionNumber.text))")
        }
        guard version == currentVersion else { throw .unsupportedVersion(version) }

        let id = try reader.uuid("id")
        let correlationId = try reader.uuid("correlationId")
        let causationId = try reader.optional("causationId") { () throws(EnvelopeError) in try reader.uuid("causationId") }
        let kind = try reader.identifier("kind", MessageKind.init(rawValue:), rule: MessageKind.rule)
        let system = try reader.identifier("system", SystemName.init(rawValue:), rule: SystemName.rule)
        let entityType = try reader.identifier("entityType", EntityType.init(rawValue:), rule: EntityType.rule)
        let entityId = try reader.required("entityId", "a string") { $0.string }
        let timeText = try reader.required("time", "a string") { $0.string }
        let milliseconds: Int64
        switch RFC3339.parse(timeText) {
        case .success(let value): milliseconds = value
        case .failure(let failure): throw .invalidValue(field: "time", reason: "\(failure.reason), got \(EnvelopeError.quote(timeText))")
        }
        guard let payload = fields["payload"] else { throw .missingField("payload") }
        let trace = try reader.optional("trace") { () throws(EnvelopeError) -> TraceContext in
            let traceFields = try reader.required("trace", "an object") { $0.object }
            let traceReader = FieldReader(fields: traceFields, prefix: "trace.")
            let traceparent = try traceReader.required("traceparent", "a string") { $0.string }
            let tracestate = try traceReader.optional("tracestate") { () throws(EnvelopeError) in
                try traceReader.required("tracestate", "a string") { $0.string }
            }
            return try TraceContext(traceparent: traceparent, tracestate: tracestate)
        }

        return try Envelope(
            id: id,
            correlationId: correlationId,
            causationId: causationId,
            kind: kind,
            system: system,
            entityType: entityType,
            entityId: entityId,
            time: RFC3339.date(milliseconds: milliseconds),
            payload: payload,
            trace: trace)
    }
}

/// Typed access to an object's fields with errors that name the field.
private struct FieldReader {
    let fields: JSONObject
    let prefix: String

    func required<T>(_ name: String, _ expected: String, _ extract: (JSONValue) -> T?) throws(EnvelopeError) -> T {
        guard let value = fields[name] else { throw .missingField(prefix + name) }
        guard let result = extract(value) else {
            throw .wrongType(field: prefix + name, expected: expected, found: value.typeName)
        }
        return result
    }

    /// Absent or `null` is `nil`; anything else goes through `read`.
    func optional<T>(_ name: String, _ read: () throws(EnvelopeError) -> T) throws(EnvelopeError) -> T? {
        guard let value = fields[name], value != .null else { return nil }
        return try read()
    }

    func uuid(_ name: String) throws(EnvelopeError) -> UUID {
        let text = try required(name, "a string") { $0.string }
        guard Identifier.isLowerUUID(text), let uuid = UUID(text: text) else {
            throw .invalidValue(field: prefix + name, reason: "must be a lower-case UUID (8-4-4-4-12 hex digits), got \(EnvelopeError.quote(text))")
        }
        return uuid
    }

    func identifier<T>(_ name: String, _ make: (String) -> T?, rule: String) throws(EnvelopeError) -> T {
        let text = try required(name, "a string") { $0.string }
        guard let value = make(text) else {
            throw .invalidValue(field: prefix + name, reason: "must be \(rule), got \(EnvelopeError.quote(text))")
        }
        return value
    }
}
