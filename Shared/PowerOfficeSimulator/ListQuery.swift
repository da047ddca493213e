/// The query string of a list request: the endpoint's filters and the `resourceParameter`
/// paging members. ASP.NET binds `[FromQuery] ResourceParameters resourceParameter` from both
/// `PageSize=…` and `resourceParameter.PageSize=…`, and names case-insensitively; so does this.
public struct ListQuery: Sendable {
    private var values: [String: String] = [:]

    public static let defaultPageSize = 5000
    public static let maxPageSize = 20_000

    public init(_ items: [(String, String)]) {
        for (name, value) in items {
            var key = name.lowercased()
            if key.hasPrefix("resourceparameter.") { key = String(key.dropFirst("resourceparameter.".count)) }
            values[key] = value
        }
    }

    public subscript(name: String) -> String? {
        guard let v = values[name.lowercased()]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        return v
    }

    public func timestamp(_ name: String) throws(GoError) -> GoTimestamp? {
        guard let raw = self[name] else { return nil }
        guard let t = GoTimestamp(parsing: raw) else { throw .badRequest("The value '\(raw)' is not valid for \(name).") }
        return t
    }

    public func bool(_ name: String) throws(GoError) -> Bool? {
        guard let raw = self[name] else { return nil }
        switch raw.lowercased() {
        case "true": return true
        case "false": return false
        default: throw .badRequest("The value '\(raw)' is not valid for \(name).")
        }
    }

    /// Comma-separated strings (`codes=A, B`).
    public func list(_ name: String) -> [String]? {
        self[name].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// `"10000-11000, 12000, 13000-"`: ranges (inclusive), single numbers and open ranges.
    public func numberRanges(_ name: String) throws(GoError) -> [ClosedRange<Int64>]? {
        guard let parts = list(name) else { return nil }
        var ranges: [ClosedRange<Int64>] = []
        for part in parts {
            let bounds = part.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            if bounds.count == 1, let n = Int64(bounds[0]) { ranges.append(n...n); continue }
            if bounds.count == 2, let lo = Int64(bounds[0]), bounds[1].isEmpty { ranges.append(lo...Int64.max); continue }
            if bounds.count == 2, let lo = Int64(bounds[0]), let hi = Int64(bounds[1]), lo <= hi { ranges.append(lo...hi); continue }
            throw .badRequest("The value '\(part)' is not a valid number or range for \(name).")
        }
        return ranges
    }

    /// `Fields` (a `resourceParameter` member: "Define desired fields that should be returned
    /// in Json (All fields by default)"): comma-separated property names of the list's DTO,
    /// matched case-insensitively; each item keeps only those (a property the record has no
    /// value for stays absent, as Go leaves out nulls). A name the DTO does not have is a 400.
    public func shape(_ items: [JSONObject], as dto: String) throws(GoError) -> [JSONObject] {
        guard let names = list("Fields"), !names.isEmpty else { return items }
        let schema = GoSchema.schema(dto)
        var keep: Set<String> = []
        for name in names {
            guard let property = schema.canonicalName(name) else { throw .badRequest("The field '\(name)' does not exist on \(dto).") }
            keep.insert(property)
        }
        return items.map { $0.filter { keep.contains($0.key) } }
    }

    /// The requested page of `items`, 1-based `PageNumber`, `PageSize` at most `MaxPageSize`.
    public func page<T>(_ items: [T]) throws(GoError) -> [T] {
        let size =
            try self["PageSize"].map { (raw: String) throws(GoError) -> Int in
                guard let n = Int(raw), n >= 1 else { throw .badRequest("PageSize must be a positive integer.") }
                guard n <= Self.maxPageSize else { throw .badRequest("PageSize cannot be larger than MaxPageSize (\(Self.maxPageSize)).") }
                return n
            } ?? Self.defaultPageSize
        let number =
            try self["PageNumber"].map { (raw: String) throws(GoError) -> Int in
                guard let n = Int(raw), n >= 1 else { throw .badRequest("PageNumber must be a positive integer.") }
                return n
            } ?? 1
        let start = (number - 1) * size
        guard start < items.count else { return [] }
        return Array(items[start..<min(items.count, start + size)])
    }
}

import Foundation
