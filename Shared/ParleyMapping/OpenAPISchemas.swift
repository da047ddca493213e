import Foundation
import Yams

/// The schemas of an OpenAPI document, enough to answer "does this native path exist in that
/// schema?" — following `$ref`, `allOf`/`oneOf`/`anyOf` and array `items`.
public struct OpenAPISchemas: @unchecked Sendable {
    // Parsed YAML (dictionaries, arrays, scalars); never mutated after init.
    let schemas: [String: Any]

    public init(yaml: String) throws {
        guard let root = try Yams.load(yaml: yaml) as? [String: Any] else {
            throw SchemaError("not an OpenAPI document (no top-level mapping)")
        }
        guard let components = root["components"] as? [String: Any],
              let schemas = components["schemas"] as? [String: Any]
        else { throw SchemaError("the document has no components.schemas") }
        self.schemas = schemas
    }

    public struct SchemaError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public func has(schema name: String) -> Bool { schemas[name] != nil }

    /// Whether `path` (dot-separated; a component ending in `[]` is an array whose items the
    /// rest of the path continues in) names a property of schema `name`.
    public func contains(path: String, in name: String) -> Bool {
        guard let schema = schemas[name] else { return false }
        var current: [[String: Any]] = [schema as? [String: Any] ?? [:]]
        for var component in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
            let isArray = component.hasSuffix("[]")
            if isArray { component.removeLast(2) }
            guard !component.isEmpty else { return false }
            var next: [[String: Any]] = []
            for s in current.flatMap({ expand($0) }) {
                guard let props = s["properties"] as? [String: Any], let p = props[component] as? [String: Any] else { continue }
                if isArray {
                    for a in expand(p) {
                        if let items = a["items"] as? [String: Any] { next.append(items) }
                    }
                } else {
                    next.append(p)
                }
            }
            guard !next.isEmpty else { return false }
            current = next
        }
        return true
    }

    /// A schema with its `$ref`s resolved and its `allOf`/`oneOf`/`anyOf` parts spread out.
    func expand(_ schema: [String: Any], depth: Int = 0) -> [[String: Any]] {
        guard depth < 32 else { return [] }
        var out: [[String: Any]] = []
        if let ref = schema["$ref"] as? String {
            let name = String(ref.split(separator: "/").last ?? "")
            if let target = schemas[name] as? [String: Any] { out += expand(target, depth: depth + 1) }
        } else {
            out.append(schema)
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for part in schema[key] as? [Any] ?? [] {
                if let p = part as? [String: Any] { out += expand(p, depth: depth + 1) }
            }
        }
        return out
    }
}
