import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON
import Yams

/// Loads and validates mapping tables. Validation is strict, so a mistake is a startup error
/// naming the file and line, never a surprise at run time:
/// - the keys, the system and entity names, the direction are known;
/// - every canonical path is a canonical field of the entity, at most once per table;
/// - every converter is known (`identity`, `reference`, or a name in the registry), `reference`
///   only on reference fields, and a VAT-aware converter names the canonical VAT-rate path;
/// - every native path exists in the contract's read schema (read rows), write schema (write
///   rows) or both.
public struct MappingTableLoader {
    /// Paths in tables (`contract:`) are relative to this.
    public var repositoryRoot: URL
    public var registry: ConverterRegistry

    public init(repositoryRoot: URL, registry: ConverterRegistry = .standard) {
        self.repositoryRoot = repositoryRoot
        self.registry = registry
    }

    /// Converters the tables may name besides the registry's.
    public static let builtInConverters: Set<String> = ["identity", "reference"]

    /// Every `<system>/<entity>.yaml` below `directory`; all problems of all files are reported
    /// together. Two tables for the same system and entity are an error.
    public func loadAll(directory: URL) throws -> [MappingTable] {
        let fm = FileManager.default
        var files: [URL] = []
        for system in (try? fm.contentsOfDirectory(atPath: directory.path))?.sorted() ?? [] {
            let dir = directory.appendingPathComponent(system)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else { continue }
            for name in (try? fm.contentsOfDirectory(atPath: dir.path))?.sorted() ?? [] where name.hasSuffix(".yaml") {
                files.append(dir.appendingPathComponent(name))
            }
        }
        var tables: [MappingTable] = []
        var errors: [MappingTableError] = []
        var contracts: [String: OpenAPISchemas] = [:]
        for file in files {
            do {
                let table = try load(file: file, contracts: &contracts)
                if let other = tables.first(where: { $0.system == table.system && $0.entity == table.entity }) {
                    errors.append(
                        MappingTableError(
                            file: table.file, line: 1,
                            "a second table for \(table.system) \(table.entity.rawValue) (first: \(other.file))"))
                }
                tables.append(table)
            } catch let e as MappingTableErrors {
                errors += e.errors
            }
        }
        if !errors.isEmpty { throw MappingTableErrors(errors: errors) }
        return tables
    }

    public func load(file: URL) throws -> MappingTable {
        var contracts: [String: OpenAPISchemas] = [:]
        return try load(file: file, contracts: &contracts)
    }

    private func load(file: URL, contracts: inout [String: OpenAPISchemas]) throws -> MappingTable {
        let name = relativePath(file)
        var errors: [MappingTableError] = []
        func fail(_ line: Int, _ message: String) { errors.append(MappingTableError(file: name, line: line, message)) }
        func done() throws -> Never { throw MappingTableErrors(errors: errors) }

        guard let contents = try? String(contentsOf: file, encoding: .utf8) else {
            fail(1, "cannot read the file")
            try done()
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: contents) else {
                fail(1, "the file is empty")
                try done()
            }
            root = node
        } catch {
            fail(Self.line(of: error), "not valid YAML: \(error)")
            try done()
        }
        guard let top = root.mapping else {
            fail(Self.line(root), "expected a mapping with system, entity, contract, schema, writeSchema, id, modifiedAt, fields")
            try done()
        }
        let allowed: Set<String> = ["system", "entity", "contract", "schema", "writeSchema", "id", "modifiedAt", "origin", "fields", "rules"]
        for (key, _) in top where !allowed.contains(key.string ?? "") {
            fail(Self.line(key), "unknown key \"\(key.string ?? "?")\" (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
        func text(_ key: String, required: Bool = true) -> (String, Int)? {
            guard let node = top[key] else {
                if required { fail(Self.line(root), "missing \"\(key)\"") }
                return nil
            }
            guard let s = node.string, !s.isEmpty else {
                fail(Self.line(node), "\"\(key)\" must be a non-empty text")
                return nil
            }
            return (s, Self.line(node))
        }

        let system = text("system").flatMap { s, line -> SystemName? in
            guard let v = SystemName(rawValue: s) else { fail(line, "\"\(s)\" is not a system name (\(SystemName.rule))"); return nil }
            return v
        }
        let entity = text("entity").flatMap { s, line -> CanonicalEntityType? in
            guard let v = CanonicalEntityType(rawValue: s) else {
                fail(line, "unknown entity \"\(s)\" (customer, order or product)")
                return nil
            }
            return v
        }
        let contractPath = text("contract")
        let readSchema = text("schema")
        let writeSchema = text("writeSchema", required: false) ?? readSchema
        let idPath = text("id")
        let modifiedAt = text("modifiedAt", required: false)
        let origin = text("origin", required: false)

        var schemas: OpenAPISchemas?
        if let (path, line) = contractPath {
            if let cached = contracts[path] {
                schemas = cached
            } else {
                let url = repositoryRoot.appendingPathComponent(path)
                do {
                    let s = try OpenAPISchemas(yaml: String(contentsOf: url, encoding: .utf8))
                    contracts[path] = s
                    schemas = s
                } catch {
                    fail(line, "cannot load the contract \(path): \(error)")
                }
            }
        }
        if let schemas {
            for (s, line) in [readSchema, writeSchema].compactMap({ $0 }) where !schemas.has(schema: s) {
                fail(line, "the contract has no schema \"\(s)\"")
            }
        }
        func checkNative(_ path: String, line: Int, direction: MappingTable.Direction) {
            guard let schemas else { return }
            if direction.reads, let (s, _) = readSchema, schemas.has(schema: s), !schemas.contains(path: path, in: s) {
                fail(line, "\"\(path)\" is not a field of \(s)")
            }
            if direction.writes, let (s, _) = writeSchema, schemas.has(schema: s), !schemas.contains(path: path, in: s) {
                fail(line, "\"\(path)\" is not a field of \(s)")
            }
        }
        if let (path, line) = idPath { checkNative(path, line: line, direction: .read) }
        if let (path, line) = modifiedAt { checkNative(path, line: line, direction: .read) }
        if let (path, line) = origin { checkNative(path, line: line, direction: .read) }

        var rows: [MappingTable.Row] = []
        var seen: [String: Int] = [:]
        if let fields = top["fields"] {
            if let list = fields.sequence {
                for item in list {
                    if let row = parseRow(item, entity: entity, fail: fail, checkNative: checkNative) {
                        for path in row.canonical {
                            if let first = seen[path] {
                                fail(row.line, "canonical field \"\(path)\" is mapped twice (first on line \(first))")
                            } else {
                                seen[path] = row.line
                            }
                        }
                        rows.append(row)
                    }
                }
            } else {
                fail(Self.line(fields), "\"fields\" must be a list of rows")
            }
        } else {
            fail(Self.line(root), "missing \"fields\"")
        }
        var rules: [MappingTable.Rule] = []
        if let node = top["rules"] {
            if let list = node.sequence {
                for item in list {
                    guard let rule = parseRule(item, fail: fail) else { continue }
                    for path in rule.paths { checkNative(path, line: rule.line, direction: .write) }
                    rules.append(rule)
                }
            } else {
                fail(Self.line(node), "\"rules\" must be a list of rules")
            }
        }
        guard errors.isEmpty, let system, let entity, let (contract, _) = contractPath, let (schema, _) = readSchema,
            let (write, _) = writeSchema, let (id, _) = idPath, let schemas
        else { try done() }
        // What the write schema says about every written path, and what it requires (of the
        // record, and of each line when the table maps lines).
        var constraints: [String: FieldConstraint] = [:]
        for row in rows where row.direction.writes {
            for path in row.native { constraints[path] = schemas.constraint(path: path, in: write) }
        }
        var required = schemas.required(in: write)
        if let linePath = rows.lazy.flatMap(\.native).first(where: { $0.contains("[].") }) {
            let array = String(linePath[..<linePath.range(of: "[].")!.lowerBound])
            required += schemas.required(in: write, arrayPath: array.split(separator: ".").map(String.init))
                .map { "\(array)[].\($0)" }
        }
        var table = MappingTable(
            system: system, entity: entity, contract: contract, schema: schema, writeSchema: write,
            id: id, modifiedAt: modifiedAt?.0, rows: rows, rules: rules, constraints: constraints,
            requiredPaths: required, file: name)
        table.origin = origin?.0
        return table
    }

    private func parseRow(
        _ node: Node, entity: CanonicalEntityType?, fail: (Int, String) -> Void,
        checkNative: (String, Int, MappingTable.Direction) -> Void
    ) -> MappingTable.Row? {
        let line = Self.line(node)
        guard let row = node.mapping else {
            fail(line, "a row must be a mapping with canonical, native and converter")
            return nil
        }
        let allowed: Set<String> = ["canonical", "native", "converter", "direction", "vatRate", "assigned"]
        for (key, _) in row where !allowed.contains(key.string ?? "") {
            fail(Self.line(key), "unknown key \"\(key.string ?? "?")\" in a row (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
        func paths(_ key: String) -> [String]? {
            guard let n = row[key] else {
                fail(line, "the row has no \"\(key)\"")
                return nil
            }
            if let s = n.string, !s.isEmpty { return [s] }
            if let seq = n.sequence {
                let list = seq.compactMap(\.string).filter { !$0.isEmpty }
                if !list.isEmpty, list.count == seq.count { return list }
            }
            fail(Self.line(n), "\"\(key)\" must be a path or a list of paths")
            return nil
        }
        let canonical = paths("canonical")
        let native = paths("native")
        let converter =
            row["converter"].map { n -> String? in
                guard let s = n.string, !s.isEmpty else {
                    fail(Self.line(n), "\"converter\" must be a name")
                    return nil
                }
                return s
            } ?? "identity"
        var direction = MappingTable.Direction.both
        if let n = row["direction"] {
            if let s = n.string, let d = MappingTable.Direction(rawValue: s) {
                direction = d
            } else {
                fail(Self.line(n), "\"direction\" must be both, read or write")
            }
        }
        let vatRate = row["vatRate"]?.string
        var assigned = false
        if let n = row["assigned"] {
            if let b = n.bool {
                assigned = b
            } else {
                fail(Self.line(n), "\"assigned\" must be true or false")
            }
        }
        if assigned && direction != .read {
            fail(line, "\"assigned\" is only for read rows: a value the system assigns cannot be written")
        }

        guard let canonical, let native, let converter else { return nil }
        var fields: [CanonicalField] = []
        if let entity {
            for path in canonical {
                if let f = CanonicalField.named(path, entity: entity) {
                    fields.append(f)
                } else {
                    fail(line, "\"\(path)\" is not a canonical \(entity.rawValue) field (see docs/canonical-model.md)")
                }
            }
        }
        if !Self.builtInConverters.contains(converter) && !registry.contains(converter) {
            fail(Self.line(row["converter"] ?? node), "unknown converter \"\(converter)\" (see docs/converters.md)")
        }
        if converter == "reference", fields.contains(where: { $0.kind != .reference }) {
            fail(line, "the reference converter is only for reference fields")
        }
        if fields.contains(where: { $0.kind == .reference }) && converter != "reference" {
            fail(line, "a reference field needs the reference converter")
        }
        if canonical.count > 1 || native.count > 1, converter != "personName" {
            fail(line, "only the personName converter maps several fields at once")
        }
        let needsRate = converter.hasPrefix("vatInclusivePrice")
        if needsRate {
            if let vatRate, let entity {
                if CanonicalField.named(vatRate, entity: entity)?.kind != .decimal {
                    fail(line, "vatRate \"\(vatRate)\" is not a canonical decimal field")
                }
            } else if vatRate == nil {
                fail(line, "the \(converter) converter needs \"vatRate\": the canonical path of the VAT rate")
            }
        } else if vatRate != nil {
            fail(line, "\"vatRate\" is only for VAT-aware converters")
        }
        for path in native { checkNative(path, line, direction) }
        return MappingTable.Row(
            canonical: canonical, native: native, converter: converter, direction: direction,
            vatRate: vatRate, assigned: assigned, line: line)
    }

    /// One of `{required: P, when: B}`, `{required: P, unless: B}`, `{together: [P, Q]}`,
    /// `{range: P, min: X, max: Y}`, `{maxLength: P, length: N}`.
    private func parseRule(_ node: Node, fail: (Int, String) -> Void) -> MappingTable.Rule? {
        let line = Self.line(node)
        guard let rule = node.mapping else {
            fail(line, "a rule must be a mapping such as {required: Name}")
            return nil
        }
        let keys = Set(rule.keys.compactMap(\.string))
        func path(_ key: String) -> String? {
            guard let s = rule[key]?.string, !s.isEmpty else {
                fail(line, "\"\(key)\" must be a native path")
                return nil
            }
            return s
        }
        func number(_ key: String) -> Decimal? {
            guard let n = rule[key] else { return nil }
            guard let s = n.string, let d = Decimal(string: s, locale: Locale(identifier: "en_US_POSIX")) else {
                fail(Self.line(n), "\"\(key)\" must be a number")
                return nil
            }
            return d
        }
        func only(_ allowed: Set<String>) -> Bool {
            let extra = keys.subtracting(allowed)
            if !extra.isEmpty { fail(line, "unknown key \"\(extra.sorted()[0])\" in a rule (allowed: \(allowed.sorted().joined(separator: ", ")))") }
            return extra.isEmpty
        }
        if keys.contains("required") {
            guard only(["required", "when", "unless"]), let p = path("required") else { return nil }
            let when = keys.contains("when") ? path("when") : nil
            let unless = keys.contains("unless") ? path("unless") : nil
            return .init(.required(p, when: when, unless: unless), line: line)
        }
        if keys.contains("together") {
            guard only(["together"]) else { return nil }
            let list = rule["together"]?.sequence?.compactMap(\.string) ?? []
            guard list.count >= 2 else {
                fail(line, "\"together\" must list at least two native paths")
                return nil
            }
            return .init(.together(list), line: line)
        }
        if keys.contains("range") {
            guard only(["range", "min", "max"]), let p = path("range") else { return nil }
            let min = number("min"), max = number("max")
            guard min != nil || max != nil else {
                fail(line, "a range needs min, max or both")
                return nil
            }
            return .init(.range(p, min: min, max: max), line: line)
        }
        if keys.contains("maxLength") {
            guard only(["maxLength", "length"]), let p = path("maxLength") else { return nil }
            guard let n = rule["length"]?.int, n > 0 else {
                fail(line, "\"length\" must be a positive whole number")
                return nil
            }
            return .init(.maxLength(p, n), line: line)
        }
        fail(line, "unknown rule (required, together, range or maxLength)")
        return nil
    }

    private func relativePath(_ file: URL) -> String {
        let root = repositoryRoot.standardizedFileURL.path
        let path = file.standardizedFileURL.path
        return path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }

    static func line(_ node: Node) -> Int { node.mark.map { $0.line } ?? 1 }

    static func line(of error: any Error) -> Int {
        if let e = error as? YamlError {
            switch e {
            case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
                return mark.line
            default:
                return 1
            }
        }
        return 1
    }
}
