import Foundation
import ParleyCanonical
import ParleyCore
import ParleyEnvelope
import ParleyJSON

/// Checks a native payload against what its target accepts, before anything is written:
/// the contract's write schema (types, `nullable`, `required`, `maxLength`, `enum`,
/// `minimum`/`maximum`, formats `int64`/`int32`/`date`/`uuid`) and the table's own `rules`
/// (docs/mappings.md). The first problem is thrown as a ``MappingError`` of kind `validation`
/// naming the native field (`SalesOrderLines[1].Allowance`) and the reason.
struct TargetValidator: Sendable {
    let table: MappingTable
    /// The constraints with their paths parsed once, in a stable order.
    let constraints: [(NativePath, FieldConstraint)]
    let required: [NativePath]

    init(table: MappingTable) {
        self.table = table
        constraints = table.constraints.sorted { $0.key < $1.key }.map { (NativePath($0.key), $0.value) }
        required = table.requiredPaths.map(NativePath.init)
    }

    func fail(_ field: String, _ reason: String) -> MappingError {
        MappingError(.validation, system: table.system, entity: table.entity, field: field, reason: reason)
    }

    func validate(_ record: JSONObject) throws(MappingError) {
        for (path, constraint) in constraints {
            for (field, value) in values(at: path, in: record) {
                if let value { try check(value, constraint, field: field) }
            }
        }
        for path in required {
            for (field, value) in values(at: path, in: record) where isEmpty(value) {
                throw fail(field, "is required by \(table.writeSchema)")
            }
        }
        for rule in table.rules {
            try apply(rule, to: record)
        }
    }

    func values(at path: String, in record: JSONObject) -> [(String, JSONValue?)] {
        values(at: NativePath(path), in: record)
    }

    /// The values at a native path: one for a record path, one per line for a line path
    /// (`SalesOrderLines[].Allowance` → `SalesOrderLines[0].Allowance`, …), each with its
    /// field name for errors. A line path with no lines gives nothing to check.
    func values(at native: NativePath, in record: JSONObject) -> [(String, JSONValue?)] {
        let path = native.text
        guard let array = native.array else { return [(path, NativePath.value(at: native.components, in: record))] }
        guard case .array(let lines)? = NativePath.value(at: array, in: record) else { return [] }
        return lines.enumerated().map { index, line in
            (native.text(line: index), line.object.flatMap { NativePath.value(at: native.components, in: $0) })
        }
    }

    func isEmpty(_ value: JSONValue?) -> Bool {
        switch value {
        case nil, .null?: true
        case .string(let s)?: s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        default: false
        }
    }

    func check(_ value: JSONValue, _ c: FieldConstraint, field: String) throws(MappingError) {
        if case .null = value {
            if !c.nullable { throw fail(field, "must not be null") }
            return
        }
        if let type = c.type {
            let ok: Bool =
                switch (type, value) {
                case (.string, .string), (.boolean, .bool), (.number, .number), (.object, .object), (.array, .array): true
                case (.integer, .number(let n)): n.isInteger
                default: false
                }
            if !ok { throw fail(field, "must be \(type == .integer ? "a whole number" : "a \(type.rawValue)"), got \(value.typeName) \(value)") }
        }
        if case .number(let n) = value {
            let limits: ClosedRange<Decimal>? =
                switch c.format {
                case "int64": Decimal(Int64.min)...Decimal(Int64.max)
                case "int32": Decimal(Int32.min)...Decimal(Int32.max)
                default: nil
                }
            if let limits, let d = n.decimal, !limits.contains(d) { throw fail(field, "\(n) does not fit \(c.format!)") }
            if let d = n.decimal {
                if let min = c.minimum, d < min { throw fail(field, "\(n) is below the minimum \(min)") }
                if let max = c.maximum, d > max { throw fail(field, "\(n) is above the maximum \(max)") }
            }
        }
        if case .string(let s) = value {
            // Lengths in UTF-16 code units, as the .NET and JavaScript back ends count them.
            let length = s.utf16.count
            if let max = c.maxLength, length > max { throw fail(field, "is \(length) characters long, at most \(max) allowed") }
            if let min = c.minLength, length < min { throw fail(field, "is \(length) characters long, at least \(min) needed") }
            if !c.allowed.isEmpty, !c.allowed.contains(s) {
                throw fail(field, "\"\(s)\" is not one of \(c.allowed.joined(separator: ", "))")
            }
            if let pattern = c.pattern, s.range(of: pattern, options: .regularExpression) == nil {
                throw fail(field, "\"\(s)\" does not match \(pattern)")
            }
            switch c.format {
            case "date":
                if CalendarDate(s) == nil { throw fail(field, "\"\(s)\" is not a date (YYYY-MM-DD)") }
            case "uuid":
                if UUID(uuidString: s) == nil { throw fail(field, "\"\(s)\" is not a UUID") }
            default: break
            }
        }
    }

    func apply(_ rule: MappingTable.Rule, to record: JSONObject) throws(MappingError) {
        switch rule.kind {
        case .required(let path, let when, let unless):
            func isTrue(_ p: String) -> Bool { NativePath.value(at: NativePath(p).components, in: record) == .bool(true) }
            if let when, !isTrue(when) { return }
            if let unless, isTrue(unless) { return }
            for (field, value) in values(at: path, in: record) where isEmpty(value) {
                let condition = when.map { " when \($0) is true" } ?? unless.map { " unless \($0) is true" } ?? ""
                throw fail(field, "is required by \(table.system)\(condition)")
            }
        case .together(let paths):
            let present = paths.filter { p in !isEmpty(values(at: p, in: record).first?.1) }
            if !present.isEmpty, present.count < paths.count {
                let missing = paths.filter { !present.contains($0) }
                throw fail(missing[0], "must be set together with \(present.joined(separator: ", ")) in \(table.system)")
            }
        case .range(let path, let min, let max):
            for (field, value) in values(at: path, in: record) {
                guard let value, !value.isNull else { continue }
                guard let d = value.decimal else { throw fail(field, "must be a number, got \(value.typeName)") }
                if let min, d < min { throw fail(field, "\(value) is below \(min), the least \(table.system) accepts") }
                if let max, d > max { throw fail(field, "\(value) is above \(max), the most \(table.system) accepts") }
            }
        case .maxLength(let path, let limit):
            for (field, value) in values(at: path, in: record) {
                if case .string(let s)? = value, s.utf16.count > limit {
                    throw fail(field, "is \(s.utf16.count) characters long, \(table.system) accepts at most \(limit)")
                }
            }
        }
    }
}
