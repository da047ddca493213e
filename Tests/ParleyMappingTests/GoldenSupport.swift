import Foundation
import Testing
import ParleyCanonical
import ParleyCore
import ParleyMessaging
@testable import ParleyMapping
import ParleyJSON
import ParleyEnvelope

/// Shared fixtures for the golden, round-trip and flow tests: the repository's real tables, the
/// native records in `Golden/records/`, and golden files compared byte for byte.
///
/// To accept new output after a deliberate change: `PARLEY_UPDATE_GOLDEN=1 swift test --filter
/// ParleyMappingTests`, then read the diff of `Tests/ParleyMappingTests/Golden/` before committing.
enum Golden {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static let mappings: Mappings = {
        do {
            return try Mappings.load(repositoryRoot: root)
        } catch {
            fatalError("the repository's mapping tables do not load:\n\(error)")
        }
    }()

    static func mapper(_ system: SystemName, _ entity: CanonicalEntityType) -> Mapper {
        guard let mapper = mappings.mapper(system: system, entity: entity) else { fatalError("no table for \(system) \(entity)") }
        return mapper
    }

    /// A native record from `Golden/records/<system>-<entity>.json`.
    static func record(_ system: SystemName, _ entity: CanonicalEntityType) throws -> JSONValue {
        let url = directory.appendingPathComponent("records/\(system)-\(entity.rawValue).json")
        return try JSONValue.parse(String(contentsOf: url, encoding: .utf8))
    }

    /// A stand-in for the link service's identity table: the same native id always gets the same
    /// global id (a name-based UUID), so goldens are stable.
    static func globalRef(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String) -> String {
        var bytes = Array(SHA256.hash(Array("\(system)/\(entity.rawValue)/\(id)".utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let uuid = UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
        return GlobalRef(entity, id: uuid).description
    }

    /// What the link service does with a normalised record: its native references become
    /// global refs in the canonical values.
    static func resolve(_ record: NormalisedRecord) -> [String: JSONValue] {
        var values = record.values
        for reference in record.references {
            let ref = JSONValue.string(globalRef(record.system, reference.entity, reference.id))
            if reference.path.hasPrefix("lines["), let close = reference.path.firstIndex(of: "]"),
                let index = Int(reference.path[reference.path.index(reference.path.startIndex, offsetBy: 6)..<close]),
                case .array(var lines)? = values["lines"], lines.indices.contains(index), case .object(var line) = lines[index]
            {
                line[String(reference.path[reference.path.index(close, offsetBy: 2)...])] = ref
                lines[index] = .object(line)
                values["lines"] = .array(lines)
            } else {
                values[reference.path] = ref
            }
        }
        return values
    }

    /// Compares `value` with the golden file `name` (pretty JSON, sorted keys), or rewrites the
    /// file when `PARLEY_UPDATE_GOLDEN=1`.
    static func check(_ value: JSONValue, against name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = directory.appendingPathComponent(name)
        let text = pretty(value) + "\n"
        if ProcessInfo.processInfo.environment["PARLEY_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = (try? String(contentsOf: url, encoding: .utf8)) ?? "(missing)"
        #expect(
            text == expected,
            "\(name) differs from the golden file; if the change is intended, run PARLEY_UPDATE_GOLDEN=1 swift test --filter ParleyMappingTests and review the diff.\n--- got:\n\(text)",
            sourceLocation: sourceLocation)
    }

    /// JSON with two-space indents and sorted keys; numbers verbatim.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let elements):
            if elements.isEmpty { return "[]" }
            return "[\n" + elements.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let object):
            if object.isEmpty { return "{}" }
            return "{\n"
                + object.membersSortedByKey.map { inner + JSONValue.string($0.key).description + ": " + pretty($0.value, indent: inner) }
                .joined(separator: ",\n") + "\n\(indent)}"
        default:
            return value.description
        }
    }
}
