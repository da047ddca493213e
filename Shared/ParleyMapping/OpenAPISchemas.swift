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
        walk(path: path, in: name) != nil
    }

    /// The `enum` values of the property at `path` in schema `name` (following `$ref`, so a
    /// property that refers to a named enum schema has its values); `nil` when the property
    /// does not exist or has no `enum`.
    public func enumValues(path: String, in name: String) -> [String]? {
        guard let last = walk(path: path, in: name)?.last else { return nil }
        let values = last.flatMap { expand($0) }.compactMap { $0["enum"] as? [Any] }.flatMap { $0 }
        return values.isEmpty ? nil : values.map { $0 as? String ?? String(describing: $0) }
    }

    /// Whether the property at `path` in schema `name`, or a property on the way to it (such as
    /// the array of `SalesOrderLines[]`), is marked `readOnly`: a system computes it, and a
    /// table must not write it.
    public func isReadOnly(path: String, in name: String) -> Bool {
        guard let steps = walk(path: path, in: name) else { return false }
        return steps.contains { $0.flatMap { expand($0) }.contains { $0["readOnly"] as? Bool == true } }
    }

    /// The property schemas `path` passes through in schema `name`, one list per path component
    /// (several when `allOf` parts both declare it), or `nil` when the path does not exist.
    private func walk(path: String, in name: String) -> [[[String: Any]]]? {
        guard let schema = schemas[name] else { return nil }
        var current: [[String: Any]] = [schema as? [String: Any] ?? [:]]
        var steps: [[[String: Any]]] = []
        for var component in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
            let isArray = component.hasSuffix("[]")
            if isArray { component.removeLast(2) }
            guard !component.isEmpty else { return nil }
            var matched: [[String: Any]] = []
            for s in current.flatMap({ expand($0) }) {
                guard let props = s["properties"] as? [String: Any], let p = props[component] as? [String: Any] else { continue }
                matched.append(p)
            }
            guard !matched.isEmpty else { return nil }
            steps.append(matched)
            if isArray {
                current = matched.flatMap { expand($0) }.compactMap { $0["items"] as? [String: Any] }
                guard !current.isEmpty else { return nil }
            } else {
                current = matched
            }
        }
        return steps
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
