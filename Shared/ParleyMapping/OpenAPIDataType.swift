import Foundation

extension OpenAPISchemas {
    /// The data type of the property at `path` (the mapping tables' native path syntax: dots,
    /// `[]` for arrays) in schema `name`, rendered for the dataflow documents; `nil` when the
    /// schema has no such property.
    ///
    /// The rendering (docs/dataflows/README.md):
    /// - `type`, or `type (format)` when the contract gives a format: `string`,
    ///   `integer (int64)`, `number (double)`, `boolean`, `string (date)`, `string (date-time)`;
    /// - a `$ref` to a named enum: `enum (OrderStatus)`; to a named object: `object (Address)`;
    ///   to anything else: what it refers to;
    /// - an inline enum: its values, `enum (pending, processing, …)`;
    /// - an array: `array of <items>`;
    /// - a single-part `allOf`/`oneOf`/`anyOf` (a common way to add `nullable` to a `$ref`):
    ///   that part;
    /// - `nullable`, `pattern`, lengths and descriptions are left out.
    public func dataType(at path: String, in name: String) -> String? {
        guard let schema = schemas[name] as? [String: Any] else { return nil }
        var current: [[String: Any]] = [schema]
        var leaf: [String: Any]?
        for var component in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
            let isArray = component.hasSuffix("[]")
            if isArray { component.removeLast(2) }
            guard !component.isEmpty else { return nil }
            var next: [[String: Any]] = []
            var found: [String: Any]?
            for s in current.flatMap({ expand($0) }) {
                guard let props = s["properties"] as? [String: Any], let p = props[component] as? [String: Any] else { continue }
                if found == nil { found = p }
                if isArray {
                    for a in expand(p) {
                        if let items = a["items"] as? [String: Any] { next.append(items) }
                    }
                } else {
                    next.append(p)
                }
            }
            guard !next.isEmpty, let found else { return nil }
            current = next
            leaf = found
        }
        return leaf.map { describe($0) }
    }

    private func describe(_ s: [String: Any], depth: Int = 0) -> String {
        guard depth < 16 else { return "unspecified" }
        if let ref = s["$ref"] as? String {
            let name = String(ref.split(separator: "/").last ?? "")
            guard let target = schemas[name] as? [String: Any] else { return name }
            if target["enum"] != nil { return "enum (\(name))" }
            if Self.types(of: target).contains("object") || target["properties"] != nil { return "object (\(name))" }
            return describe(target, depth: depth + 1)
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let parts = s[key] as? [Any], parts.count == 1, let part = parts[0] as? [String: Any] {
                return describe(part, depth: depth + 1)
            }
        }
        if let values = s["enum"] as? [Any] {
            return "enum (" + values.map { "\($0)" }.joined(separator: ", ") + ")"
        }
        let types = Self.types(of: s)
        if types == ["array"] {
            return "array of " + ((s["items"] as? [String: Any]).map { describe($0, depth: depth + 1) } ?? "unspecified")
        }
        if types.isEmpty { return s["properties"] != nil ? "object" : "unspecified" }
        let type = types.joined(separator: " or ")
        if let format = s["format"] as? String { return "\(type) (\(format))" }
        return type
    }

    /// `type` as a list: OpenAPI 3.0 has one name, 3.1 may list several (with "null").
    private static func types(of s: [String: Any]) -> [String] {
        if let t = s["type"] as? String { return [t] }
        if let list = s["type"] as? [Any] { return list.compactMap { $0 as? String }.filter { $0 != "null" } }
        return []
    }
}
