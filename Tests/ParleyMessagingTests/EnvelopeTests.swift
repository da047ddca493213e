import Foundation
import Testing

@testable import ParleyEnvelope
@testable import ParleyJSON
@testable import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

enum Fixtures {
    static let id1 = UUID(uuidString: "0f8fad5b-d9cb-469f-a165-70867728950e")!
    static let id2 = UUID(uuidString: "7c9e6679-7425-40de-944b-e07fc1f90ae7")!
    static let id3 = UUID(uuidString: "16fd2706-8baf-433b-82eb-8c7fada847da")!
    /// 2025-01-31T12:00:00.250Z
    static let time = Date(timeIntervalSince1970: 1_738_324_800.25)
    static let trace = try! TraceContext(
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "rojo=00f067aa0ba902b7")

    static let payload: JSONValue = [
        "name": "Fjord Fisk AS",
        "creditLimit": .number(JSONNumber("12345678901234567.89")!),
        "rate": .number(JSONNumber("1e3")!),
        "tags": ["b2b", "øst"],
        "archived": false,
        "notes": nil
    ]

    static func change(trace: TraceContext? = Fixtures.trace) -> Envelope {
        try! Envelope(
            id: id1, kind: .change, system: .customerp, entityType: .customer, entityId: "C-1001", time: time,
            payload: payload, trace: trace)
    }

    /// A valid envelope document as a mutable JSON object.
    static func document() -> JSONObject {
        try! JSONValue.parse(change().encoded()).object!
    }

    static func bytes(_ object: JSONObject) -> [UInt8] {
        JSONValue.object(object).serialized()
    }
}

@Suite("Envelope")
struct EnvelopeTests {
    @Test func encodesFieldsInDocumentedOrderWithExactNumbers() {
        let text = String(decoding: Fixtures.change().encoded(), as: UTF8.self)
        #expect(
            text
                == #"{"version":1,"id":"0f8fad5b-d9cb-469f-a165-70867728950e","correlationId":"0f8fad5b-d9cb-469f-a165-70867728950e","kind":"change","system":"customerp","entityType":"customer","entityId":"C-1001","time":"2025-01-31T12:00:00.250Z","trace":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=00f067aa0ba902b7"},"payload":{"name":"Fjord Fisk AS","creditLimit":12345678901234567.89,"rate":1e3,"tags":["b2b","øst"],"archived":false,"notes":null}}"#
        )
    }

    @Test func roundTrip() throws {
        let first = Fixtures.change()
        let second = try Envelope.caused(
            by: first, id: Fixtures.id2, kind: .canonical, entityId: "global-1", time: Date(), payload: ["x": 1])
        for original in [first, second, Fixtures.change(trace: nil)] {
            let bytes = original.encoded()
            let decoded = try Envelope.decode(bytes)
            #expect(decoded == original)
            #expect(decoded.encoded() == bytes)
            #expect(try Envelope.decode(original.encodedData()) == original)
        }
    }

    @Test func roundTripKeepsPayloadNumbersByteExact() throws {
        let decoded = try Envelope.decode(Fixtures.change().encoded())
        #expect(decoded.payload["creditLimit"]?.number?.text == "12345678901234567.89")
        #expect(decoded.payload["creditLimit"]?.decimal == Decimal(string: "12345678901234567.89"))
        #expect(decoded.payload["rate"]?.number?.text == "1e3")
    }

    @Test func newChainCorrelatesToItself() {
        let envelope = Fixtures.change()
        #expect(envelope.correlationId == envelope.id)
        #expect(envelope.causationId == nil)
        #expect(envelope.version == 1)
    }

    @Test func causedByChainsIdsAndCopiesTrace() throws {
        let change = Fixtures.change()
        let canonical = try Envelope.caused(
            by: change, id: Fixtures.id2, kind: .canonical, entityId: "global-7", payload: ["name": "Fjord Fisk AS"])
        let command = try Envelope.caused(
            by: canonical, id: Fixtures.id3, kind: .command, system: .customwebshop, payload: ["op": "create"])

        #expect(canonical.correlationId == change.id)
        #expect(canonical.causationId == change.id)
        #expect(canonical.trace == change.trace)
        #expect(canonical.system == .customerp)
        #expect(canonical.entityType == .customer)
        #expect(canonical.entityId == "global-7")

        #expect(command.correlationId == change.id)
        #expect(command.causationId == canonical.id)
        #expect(command.trace == change.trace)
        #expect(command.system == .customwebshop)
        #expect(command.entityId == "global-7")

        let decoded = try Envelope.decode(command.encoded())
        #expect(decoded.correlationId == Fixtures.id1)
        #expect(decoded.causationId == Fixtures.id2)
    }

    @Test func unknownFieldsAreIgnoredAndNullOptionalsAreAbsent() throws {
        var document = Fixtures.document()
        document["futureField"] = ["anything": [1, 2, 3]]
        document["causationId"] = .null
        document["trace"] = .null
        let decoded = try Envelope.decode(Fixtures.bytes(document))
        #expect(decoded == Fixtures.change(trace: nil))
    }

    @Test func versionOneSpelledAsDecimalIsVersionOne() throws {
        var document = Fixtures.document()
        document["version"] = .number(JSONNumber("1.0")!)
        #expect(try Envelope.decode(Fixtures.bytes(document)) == Fixtures.change())
    }

    @Test func extensibleNames() throws {
        let envelope = try Envelope(
            kind: "replay", system: "shopify2", entityType: "salesOrder", entityId: "1", payload: [:])
        let decoded = try Envelope.decode(envelope.encoded())
        #expect(decoded.kind.rawValue == "replay")
        #expect(decoded.system == SystemName(rawValue: "shopify2"))
        #expect(decoded.entityType.rawValue == "salesOrder")
        #expect(MessageKind(rawValue: "sync-request") == nil)
        #expect(MessageKind(rawValue: "SyncRequest") == nil)
        #expect(SystemName(rawValue: "powerOfficeGo") == nil)
        #expect(EntityType(rawValue: "") == nil)
        #expect(EntityType(rawValue: String(repeating: "a", count: 65)) == nil)
    }

    @Test func initRejectsEmptyEntityIdAndUnrepresentableTime() {
        #expect(throws: EnvelopeError.invalidValue(field: "entityId", reason: "must not be empty")) {
            try Envelope(kind: .change, system: .customerp, entityType: .customer, entityId: "", payload: nil)
        }
        #expect(throws: EnvelopeError.invalidValue(field: "time", reason: "must be between the years 0000 and 9999")) {
            try Envelope(
                kind: .change, system: .customerp, entityType: .customer, entityId: "1",
                time: Date(timeIntervalSince1970: 300_000_000_000), payload: nil)
        }
    }

    @Test func traceContextParts() throws {
        let trace = Fixtures.trace
        #expect(trace.traceId == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(trace.parentId == "00f067aa0ba902b7")
        #expect(trace.flags == "01")
        #expect(try TraceContext(traceparent: trace.traceparent, tracestate: "").tracestate == nil)
    }
}

@Suite("Envelope time")
struct EnvelopeTimeTests {
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000.123, "2023-11-14T22:13:20.123Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
        (951_782_400.0, "2000-02-29T00:00:00.000Z"),
        (0.0004, "1970-01-01T00:00:00.000Z"),
        (0.0006, "1970-01-01T00:00:00.001Z"),
        (253_402_300_799.999, "9999-12-31T23:59:59.999Z"),
        (-62_167_219_200.0, "0000-01-01T00:00:00.000Z")
    ])
    func encodesUTCWithMilliseconds(_ seconds: Double, _ expected: String) throws {
        let envelope = try Envelope(
            kind: .change, system: .customerp, entityType: .customer, entityId: "1",
            time: Date(timeIntervalSince1970: seconds), payload: nil)
        #expect(envelope.timeText == expected)
        #expect(envelope.jsonValue["time"]?.string == expected)
        #expect(try Envelope.decode(envelope.encoded()).time == envelope.time)
    }

    @Test(arguments: [
        ("2025-01-31T12:00:00.250Z", "2025-01-31T12:00:00.250Z"),
        ("2025-01-31T13:00:00.25+01:00", "2025-01-31T12:00:00.250Z"),
        ("2025-01-31T07:30:00.25-04:30", "2025-01-31T12:00:00.250Z"),
        ("2025-01-31t12:00:00.250z", "2025-01-31T12:00:00.250Z"),
        ("2025-01-31T12:00:00Z", "2025-01-31T12:00:00.000Z"),
        ("2025-01-31T12:00:00.1235Z", "2025-01-31T12:00:00.124Z"),
        ("2025-01-31T12:00:00.9999Z", "2025-01-31T12:00:01.000Z"),
        ("2025-01-01T00:30:00+01:00", "2024-12-31T23:30:00.000Z"),
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"),
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00.000Z")
    ])
    func decodesOffsets(_ wire: String, _ normalized: String) throws {
        var document = Fixtures.document()
        document["time"] = .string(wire)
        let decoded = try Envelope.decode(Fixtures.bytes(document))
        #expect(decoded.timeText == normalized)
    }

    @Test(arguments: [
        "2025-01-31 12:00:00Z", "2025-01-31T12:00:00", "2025-01-31T12:00:00.Z", "2025-1-31T12:00:00Z",
        "2025-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2025-04-31T00:00:00Z", "2025-01-31T24:00:00Z",
        "2025-01-31T12:00:00+0100", "2025-01-31T12:00:00+24:00", "2025-01-31T12:00:00Zjunk", ""
    ])
    func rejectsInvalidTimes(_ wire: String) {
        var document = Fixtures.document()
        document["time"] = .string(wire)
        do {
            _ = try Envelope.decode(Fixtures.bytes(document))
            Issue.record("accepted invalid time \(wire)")
        } catch {
            guard case .invalidValue(field: "time", let reason) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(reason.contains(#"got ""# + wire))
        }
    }
}

@Suite("Envelope decode errors")
struct EnvelopeDecodeErrorTests {
    static let requiredFields = ["version", "id", "correlationId", "kind", "system", "entityType", "entityId", "time", "payload"]

    @Test(arguments: requiredFields)
    func missingRequiredField(_ field: String) {
        var document = Fixtures.document()
        document[field] = nil
        #expect(throws: EnvelopeError.missingField(field)) { try Envelope.decode(Fixtures.bytes(document)) }
    }

    @Test func missingTraceparent() {
        var document = Fixtures.document()
        document["trace"] = ["tracestate": "a=b"]
        #expect(throws: EnvelopeError.missingField("trace.traceparent")) { try Envelope.decode(Fixtures.bytes(document)) }
    }

    @Test(
        arguments: [
            ("version", JSONValue.string("1"), "an integer", "string"),
            ("id", 42, "a string", "number"),
            ("correlationId", nil, "a string", "null"),
            ("causationId", [1], "a string", "array"),
            ("kind", true, "a string", "boolean"),
            ("system", ["name": "customerp"], "a string", "object"),
            ("entityType", 1, "a string", "number"),
            ("entityId", 1001, "a string", "number"),
            ("time", 1_738_324_800, "a string", "number"),
            ("trace", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "an object", "string")
        ] as [(String, JSONValue, String, String)])
    func wrongType(_ field: String, _ value: JSONValue, _ expected: String, _ found: String) {
        var document = Fixtures.document()
        document[field] = value
        #expect(throws: EnvelopeError.wrongType(field: field, expected: expected, found: found)) {
            try Envelope.decode(Fixtures.bytes(document))
        }
    }

    @Test func wrongTypeInsideTrace() {
        var document = Fixtures.document()
        document["trace"] = ["traceparent": 1, "tracestate": "x"]
        #expect(throws: EnvelopeError.wrongType(field: "trace.traceparent", expected: "a string", found: "number")) {
            try Envelope.decode(Fixtures.bytes(document))
        }
        document["trace"] = ["traceparent": .string(Fixtures.trace.traceparent), "tracestate": 5]
        #expect(throws: EnvelopeError.wrongType(field: "trace.tracestate", expected: "a string", found: "number")) {
            try Envelope.decode(Fixtures.bytes(document))
        }
    }

    @Test func unsupportedVersions() {
        var document = Fixtures.document()
        document["version"] = 2
        #expect(throws: EnvelopeError.unsupportedVersion(2)) { try Envelope.decode(Fixtures.bytes(document)) }

        // A future major version is rejected as such even when its fields look different.
        let v3: JSONValue = ["version": 3, "headers": [:], "body": "…"]
        #expect(throws: EnvelopeError.unsupportedVersion(3)) { try Envelope.decode(v3.serialized()) }

        for bad in ["0", "-1", "1.5", "99999999999999999999999"] {
            document["version"] = .number(JSONNumber(bad)!)
            #expect(throws: EnvelopeError.invalidValue(field: "version", reason: "must be a positive integer, got \"\(bad)\"")) {
                try Envelope.decode(Fixtures.bytes(document))
            }
        }
    }

    @Test(arguments: [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  // upper-case hex
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // unknown version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  // short flags
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bg-01",  // not hex
        ""
    ])
    func badTraceparent(_ traceparent: String) {
        var document = Fixtures.document()
        document["trace"] = ["traceparent": .string(traceparent)]
        do {
            _ = try Envelope.decode(Fixtures.bytes(document))
            Issue.record("accepted traceparent \(traceparent)")
        } catch {
            #expect(error.field == "trace.traceparent")
            guard case .invalidValue = error else {
                Issue.record("expected invalidValue, got \(error)")
                return
            }
        }
        #expect(throws: EnvelopeError.self) { try TraceContext(traceparent: traceparent) }
    }

    @Test func badTracestate() {
        var document = Fixtures.document()
        document["trace"] = ["traceparent": .string(Fixtures.trace.traceparent), "tracestate": "a=\u{1}"]
        #expect(throws: EnvelopeError.invalidValue(field: "trace.tracestate", reason: "must be at most 512 printable ASCII characters")) {
            try Envelope.decode(Fixtures.bytes(document))
        }
    }

    @Test(
        arguments: [
            ("id", JSONValue.string("0F8FAD5B-D9CB-469F-A165-70867728950E")),
            ("id", "not-a-uuid"),
            ("correlationId", "0f8fad5bd9cb469fa16570867728950e"),
            ("causationId", "{0f8fad5b-d9cb-469f-a165-70867728950e}"),
            ("kind", "Change"),
            ("kind", "sync-request"),
            ("kind", ""),
            ("system", "PowerOfficeGo"),
            ("system", "power_office"),
            ("entityType", "Customer"),
            ("entityId", "")
        ] as [(String, JSONValue)])
    func invalidValue(_ field: String, _ value: JSONValue) {
        var document = Fixtures.document()
        document[field] = value
        do {
            _ = try Envelope.decode(Fixtures.bytes(document))
            Issue.record("accepted \(field) = \(value)")
        } catch {
            guard case .invalidValue(field: field, let reason) = error else {
                Issue.record("expected invalidValue for \(field), got \(error)")
                return
            }
            #expect(reason.hasPrefix("must"))
            #expect(error.description.contains("\"\(field)\""))
        }
    }

    @Test func malformedJSONCarriesOffset() {
        let bytes = Array(#"{"version":1,}"#.utf8)
        #expect(throws: EnvelopeError.malformedJSON(JSONParseError(offset: 13, reason: .trailingComma))) {
            try Envelope.decode(bytes)
        }
        #expect(throws: EnvelopeError.malformedJSON(JSONParseError(offset: 0, reason: .emptyInput))) {
            try Envelope.decode(Data())
        }
        do {
            _ = try Envelope.decode(Array("{\"version\":01}".utf8))
        } catch {
            #expect(error.description == "envelope: malformed JSON at byte 11: numbers must not have leading zeros")
        }
    }

    @Test func notAnObject() {
        #expect(throws: EnvelopeError.notAnObject(found: "array")) { try Envelope.decode(Array("[]".utf8)) }
    }

    @Test func messagesNameFieldAndReason() {
        #expect(EnvelopeError.missingField("kind").description == #"envelope: missing required field "kind""#)
        #expect(
            EnvelopeError.wrongType(field: "time", expected: "a string", found: "number").description
                == #"envelope: field "time" must be a string, found number"#)
        #expect(EnvelopeError.unsupportedVersion(2).description == "envelope: unsupported version 2 (this build reads version 1)")
        #expect(EnvelopeError.quote(String(repeating: "x", count: 100)).count == 83)
    }
}
