import Foundation
import Testing

@testable import ParleyEnvelope
@testable import ParleyJSON
@testable import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

/// Checks docs/schemas/envelope.v1.schema.json against what the Swift code actually does:
/// envelopes the encoder writes must conform, and documents the decoder rejects for field
/// reasons must be rejected by the schema too. The schema is evaluated by Python's
/// `jsonschema` (Tests/schema/check_envelope_schema.py), an independent implementation.
@Suite("Envelope JSON Schema")
struct EnvelopeSchemaTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // ParleyMessagingTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    static func validExamples() throws -> [String: Envelope] {
        var examples: [String: Envelope] = [:]
        examples["change-traced"] = Fixtures.change()
        examples["change-untraced"] = Fixtures.change(trace: nil)
        var cause = Fixtures.change()
        let kinds: [MessageKind] = [.canonical, .syncRequest, .command, .written, .failed]
        let systems: [SystemName] = [.customerp, .customwebshop, .powerofficego]
        let types: [EntityType] = [.customer, .order, .product]
        for (index, kind) in kinds.enumerated() {
            let next = try Envelope.caused(
                by: cause, kind: kind, system: systems[index % 3], entityType: types[index % 3],
                entityId: "entity-\(index)", payload: ["step": .number(JSONNumber(index))])
            examples["chain-\(index)-\(kind)"] = next
            cause = next
        }
        examples["trace-without-state"] = try Envelope(
            kind: .written, system: .powerofficego, entityType: .order, entityId: "SO-1",
            payload: ["lines": [["amount": .number(JSONNumber("-0.10")!)]]],
            trace: TraceContext(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"))
        examples["scalar-payload"] = try Envelope(
            kind: "replay", system: "shopify2", entityType: "salesOrder", entityId: "42",
            time: Date(timeIntervalSince1970: 0), payload: nil)
        return examples
    }

    /// Documents the decoder rejects, each broken in one field. Named `<field>--<how>`: the
    /// script checks the schema rejects them because of that field.
    static func invalidExamples() -> [String: JSONObject] {
        func broken(_ change: (inout JSONObject) -> Void) -> JSONObject {
            var document = Fixtures.document()
            change(&document)
            return document
        }
        return [
            "id--missing": broken { $0["id"] = nil },
            "payload--missing": broken { $0["payload"] = nil },
            "time--missing": broken { $0["time"] = nil },
            "version--2": broken { $0["version"] = 2 },
            "version--string": broken { $0["version"] = "1" },
            "id--upper-case": broken { $0["id"] = "0F8FAD5B-D9CB-469F-A165-70867728950E" },
            "correlationId--not-uuid": broken { $0["correlationId"] = "abc" },
            "causationId--number": broken { $0["causationId"] = 7 },
            "kind--kebab-case": broken { $0["kind"] = "sync-request" },
            "system--upper-case": broken { $0["system"] = "PowerOfficeGo" },
            "entityType--capitalised": broken { $0["entityType"] = "Customer" },
            "entityId--empty": broken { $0["entityId"] = "" },
            "entityId--number": broken { $0["entityId"] = 1001 },
            "time--without-zone": broken { $0["time"] = "2025-01-31T12:00:00" },
            "time--space-separator": broken { $0["time"] = "2025-01-31 12:00:00Z" },
            "trace--traceparent-upper-case": broken {
                $0["trace"] = ["traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"]
            },
            "trace--traceparent-zero-trace-id": broken {
                $0["trace"] = ["traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"]
            },
            "trace--missing-traceparent": broken { $0["trace"] = ["tracestate": "a=b"] },
            "trace--string": broken { $0["trace"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }
        ]
    }

    @Test func encoderOutputConformsAndBrokenDocumentsAreRejected() throws {
        let fileManager = FileManager.default
        let directory = fileManager.temporaryDirectory.appendingPathComponent("parley-envelope-schema-\(UUID().uuidString)")
        let validDirectory = directory.appendingPathComponent("valid")
        let invalidDirectory = directory.appendingPathComponent("invalid")
        try fileManager.createDirectory(at: validDirectory, withIntermediateDirectories: true)
        try fileManager.createDirectory(at: invalidDirectory, withIntermediateDirectories: true)
        defer { try? fileManager.removeItem(at: directory) }

        for (name, envelope) in try Self.validExamples() {
            try envelope.encodedData().write(to: validDirectory.appendingPathComponent("\(name).json"))
        }
        try Data(Self.documentedExample().utf8).write(to: validDirectory.appendingPathComponent("docs-example.json"))
        for (name, document) in Self.invalidExamples() {
            let bytes = Fixtures.bytes(document)
            // The decoder must agree with the schema about every broken document.
            #expect(throws: EnvelopeError.self, "decoder accepted \(name)") { try Envelope.decode(bytes) }
            try Data(bytes).write(to: invalidDirectory.appendingPathComponent("\(name).json"))
        }

        let script = Self.repositoryRoot.appendingPathComponent("Tests/schema/check_envelope_schema.py")
        let schema = Self.repositoryRoot.appendingPathComponent("docs/schemas/envelope.v1.schema.json")
        let result = try runPython(
            script: script, arguments: ["--schema", schema.path, "--valid", validDirectory.path, "--invalid", invalidDirectory.path])

        switch result.status {
        case 0:
            #expect(result.output.contains("\(try Self.validExamples().count + 1 + Self.invalidExamples().count)/"))
        case 3:
            Issue.record("The Python package jsonschema is missing (pip install jsonschema, or apt install python3-jsonschema):\n\(result.output)")
        default:
            Issue.record("Schema check failed (exit \(result.status)):\n\(result.output)")
        }
    }

    /// The first ```json block of docs/envelope.md.
    static func documentedExample() throws -> String {
        let markdown = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/envelope.md"), encoding: .utf8)
        guard let start = markdown.range(of: "```json\n"),
            let end = markdown.range(of: "\n```", range: start.upperBound..<markdown.endIndex)
        else {
            Issue.record("docs/envelope.md has no ```json example")
            return ""
        }
        return String(markdown[start.upperBound..<end.lowerBound])
    }

    @Test func documentedExampleDecodes() throws {
        let envelope = try Envelope.decode(Array(try Self.documentedExample().utf8))
        #expect(envelope.kind == .canonical)
        #expect(envelope.causationId == envelope.correlationId)
        #expect(envelope.timeText == "2025-01-31T12:00:00.250Z")
        #expect(envelope.payload["creditLimit"]?.number?.text == "12345678901234567.89")
        // The documentation shows the wire field order.
        #expect(try JSONValue.parse(envelope.encoded()).object?.keys == JSONValue.parse(Self.documentedExample()).object?.keys)
    }

    private func runPython(script: URL, arguments: [String]) throws -> (status: Int32, output: String) {
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let python = searchPath.split(separator: ":")
            .map { URL(fileURLWithPath: String($0)).appendingPathComponent("python3") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
        guard let python else {
            Issue.record("python3 is not on PATH (\(searchPath)); it is needed to check the envelope JSON Schema")
            return (-1, "")
        }
        let process = Process()
        process.executableURL = python
        process.arguments = [script.path] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
