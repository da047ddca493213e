import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON

/// A native record normalised to the canonical model.
public struct NormalisedRecord: Sendable, Hashable {
    public var system: SystemName
    public var entity: CanonicalEntityType
    /// The record's native id (`nil` only for the expected echo of a create).
    public var nativeId: String?
    /// The record's modification time as a canonical instant, when the table maps one.
    public var modifiedAt: String?
    /// Flat canonical path → value, present values only. Reference fields are not in here
    /// (see ``references``); line objects lack their `product` for the same reason.
    public var values: [String: JSONValue]
    /// The merge fields the system carries: a carried field missing from ``values`` is empty in
    /// the system (and the link service may erase it); a field not carried is never touched.
    /// `lines` is followed by the line members the system carries (`lines.product`, `lines.sku`,
    /// …), which the link service merges one by one; a member not listed is never touched either.
    /// (The expected echo lists ``Mapper/echoFields`` instead.)
    public var carried: [String]
    /// The carried fields the system assigns itself: they fill an empty canonical field and
    /// never overwrite one (an order number, a creation date).
    public var assigned: [String] = []
    public var references: [NativeReference]
    /// The key Parley created this record with, when the system keeps it (the table's `origin`).
    public var origin: String? = nil

    /// The canonical JSON object of ``values``.
    public var canonicalJSON: JSONValue { CanonicalJSON.nest(values, entity: entity) }
}

/// A native payload to write, from canonical values.
public struct NativeWrite: Sendable, Hashable {
    /// The record in the target's write schema. Fields with no canonical value are left out.
    public var record: JSONObject
    /// Written native paths whose canonical value is empty: an update clears them (each
    /// adapter in its system's way: `null`, `""`, a JSON Patch `replace` with null); a create
    /// simply leaves them out. Line members are never listed: lines are written whole.
    public var cleared: [String]
}

/// One mapping table, compiled: converters resolved, paths parsed, rows ordered so VAT rates are
/// converted before the prices that need them. Pure and `Sendable`: any number of tasks may
/// map with one `Mapper` at once.
public struct Mapper: Sendable {
    public let table: MappingTable

    struct Row: Sendable {
        let source: MappingTable.Row
        /// Canonical paths (for a line row, the member names: `sku`, not `lines.sku`).
        let canonical: [String]
        let native: [NativePath]
        /// `nil` for `identity` and `reference`.
        let converter: (any Converter)?
        /// The entity a `reference` row points to.
        let referenced: CanonicalEntityType?
        /// The canonical path of the VAT rate (a member name for line rows).
        let vatRate: String?
        /// The JSON type the target stores a reference in (integer ids in PowerOffice Go).
        let nativeType: FieldConstraint.JSONType?

        var isGroup: Bool { canonical.count > 1 || native.count > 1 }
        var label: String { source.canonical.joined(separator: ", ") }
    }

    let recordRows: [Row]
    let lineRows: [Row]
    /// The path of the lines array (`["line_items"]`), when the table maps lines.
    let linesArray: [String]?
    let idPath: NativePath
    let modifiedAtPath: NativePath?
    let originPath: NativePath?
    let dateTime: (any Converter)?
    let validator: TargetValidator
    /// The table's carried and assigned merge fields in canonical order, computed once.
    let carried: [String]
    let assigned: [String]

    /// Compiles `table`. The loader has already checked every name, so a converter that does
    /// not resolve here is a programming error.
    public init(table: MappingTable, registry: ConverterRegistry = .standard) {
        self.table = table
        var records: [Row] = []
        var lines: [Row] = []
        var linesArray: [String]? = nil
        for source in table.rows {
            let native = source.native.map(NativePath.init)
            let isLine = native.contains { $0.array != nil }
            let converter: (any Converter)?
            switch source.converter {
            case "identity", "reference": converter = nil
            default:
                guard let c = registry.converter(named: source.converter) else {
                    preconditionFailure("\(table.file):\(source.line): unknown converter \(source.converter)")
                }
                converter = c
            }
            let fields = source.canonical.compactMap { CanonicalField.named($0, entity: table.entity) }
            let strip: (String) -> String = { isLine && $0.hasPrefix("lines.") ? String($0.dropFirst(6)) : $0 }
            let row = Row(
                source: source, canonical: source.canonical.map(strip), native: native, converter: converter,
                referenced: source.converter == "reference" ? fields.first?.referencedEntity : nil,
                vatRate: source.vatRate.map(strip),
                nativeType: table.constraints[source.native[0]]?.type)
            if isLine {
                lines.append(row)
                linesArray = native.first?.array
            } else {
                records.append(row)
            }
        }
        // Rows that need a VAT rate go last, so the rate is already canonical when they run.
        func ordered(_ rows: [Row]) -> [Row] { rows.filter { $0.vatRate == nil } + rows.filter { $0.vatRate != nil } }
        self.recordRows = ordered(records)
        self.lineRows = ordered(lines)
        self.linesArray = linesArray
        self.idPath = NativePath(table.id)
        self.modifiedAtPath = table.modifiedAt.map(NativePath.init)
        self.originPath = table.origin.map(NativePath.init)
        self.dateTime = registry.converter(named: "dateTime")
        self.validator = TargetValidator(table: table)
        let order = CanonicalField.fields(of: table.entity).map(\.path)
        let carried = table.carriedFields, assigned = table.assignedFields
        // `lines` is followed by the line members the table reads: the link service merges the
        // lines member by member and keeps those the system does not carry.
        let lineMembers = CanonicalField.orderLine.map(\.path).filter(table.carriedLineMembers.contains)
        self.carried = order.filter(carried.contains).flatMap { $0 == "lines" ? [$0] + lineMembers : [$0] }
        self.assigned = order.filter(assigned.contains)
    }

    /// A native record's id and modification time (ms since 1970), by the table's `id` and
    /// `modifiedAt` paths: what an adapter needs to publish and order a feed. `nil` id when the
    /// record has none.
    public func identity(of record: JSONObject) -> (id: String?, modifiedAt: Int64?) {
        var id: String? = nil
        switch NativePath.value(at: idPath.components, in: record) {
        case .string(let s)?: id = s.isEmpty ? nil : s
        case .number(let n)? where n.isInteger: id = n.text
        default: break
        }
        var modified: Int64? = nil
        if let path = modifiedAtPath, case .string(let text)? = NativePath.value(at: path.components, in: record) {
            modified = try? CivilTime.parseInstant(text)
        }
        return (id, modified)
    }

    var system: SystemName { table.system }
    var entity: CanonicalEntityType { table.entity }

    func error(_ kind: MappingError.Kind, _ field: String, canonical: String? = nil, _ reason: String) -> MappingError {
        MappingError(kind, system: system, entity: entity, field: field, canonicalField: canonical, reason: reason)
    }

    // MARK: Native → canonical

    /// Normalises a native record (the table's read schema) to canonical values, through the
    /// rows that read. Checks the result is valid canonical data.
    public func toCanonical(_ record: JSONValue) throws(MappingError) -> NormalisedRecord {
        try normalise(record, requireId: true, rows: { $0.source.direction.reads })
    }

    func normalise(
        _ record: JSONValue, requireId: Bool, rows include: (Row) -> Bool
    ) throws(MappingError) -> NormalisedRecord {
        guard case .object(let object) = record else {
            throw error(.invalidRecord, "", "expected the record as a JSON object, got \(record.typeName)")
        }
        var nativeId: String? = nil
        switch NativePath.value(at: idPath.components, in: object) {
        case .string(let s)? where !s.trimmingCharacters(in: .whitespaces).isEmpty: nativeId = s
        case .number(let n)? where n.isInteger: nativeId = n.text
        case nil, .null?:
            if requireId { throw error(.invalidRecord, idPath.text, "the record has no id") }
        case let other?:
            throw error(.invalidRecord, idPath.text, "the id must be a non-empty string or a whole number, got \(other.typeName)")
        }
        var modifiedAt: String? = nil
        if let path = modifiedAtPath, let dateTime {
            do {
                modifiedAt = try dateTime.toCanonical(NativePath.value(at: path.components, in: object), context: .empty)?.string
            } catch {
                throw self.error(.conversion, path.text, error.reason)
            }
        }

        var values: [String: JSONValue] = [:]
        var references: [NativeReference] = []
        for row in recordRows where include(row) {
            try read(row, from: object, into: &values, references: &references, line: nil)
        }
        let lineRows = lineRows.filter(include)
        if let linesArray, !lineRows.isEmpty {
            switch NativePath.value(at: linesArray, in: object) {
            case nil:
                break  // the record does not report its lines
            case .null?:
                values["lines"] = .array([])
            case .array(let elements)?:
                var lines: [JSONValue] = []
                for (index, element) in elements.enumerated() {
                    guard case .object(let native) = element else {
                        throw error(
                            .invalidRecord, "\(linesArray.joined(separator: "."))[\(index)]",
                            "expected a line object, got \(element.typeName)")
                    }
                    var members: [String: JSONValue] = [:]
                    for row in lineRows {
                        try read(row, from: native, into: &members, references: &references, line: index)
                    }
                    lines.append(
                        .object(
                            JSONObject(
                                CanonicalField.orderLine.compactMap { field in
                                    members[field.lineMember!].map { (field.lineMember!, $0) }
                                })))
                }
                values["lines"] = .array(lines)
            case let other?:
                throw error(.invalidRecord, linesArray.joined(separator: "."), "expected an array of lines, got \(other.typeName)")
            }
        }
        let checked = try checkCanonical(values)
        var record = NormalisedRecord(
            system: system, entity: entity, nativeId: nativeId, modifiedAt: modifiedAt, values: checked,
            carried: carried, assigned: assigned, references: references)
        if let originPath, case .string(let key)? = NativePath.value(at: originPath.components, in: object), !key.isEmpty {
            record.origin = key
        }
        return record
    }

    /// Reads one row from a native object (the record, or one line) into canonical values.
    private func read(
        _ row: Row, from object: JSONObject, into values: inout [String: JSONValue],
        references: inout [NativeReference], line: Int?
    ) throws(MappingError) {
        let field = line.map { row.native[0].text(line: $0) } ?? row.native[0].text
        if row.isGroup {
            var gathered = JSONObject()
            for path in row.native {
                if let v = NativePath.value(at: path.components, in: object) { gathered[path.components.joined(separator: ".")] = v }
            }
            let result: JSONValue?
            do {
                result = try row.converter!.toCanonical(gathered.isEmpty ? nil : .object(gathered), context: .init(siblings: object))
            } catch {
                throw self.error(.conversion, row.native.map(\.text).joined(separator: ", "), canonical: row.label, error.reason)
            }
            for path in row.canonical {
                if let v = result?[path], !v.isNull { values[path] = v }
            }
            return
        }
        let native = NativePath.value(at: row.native[0].components, in: object)
        let canonicalPath = row.canonical[0]
        if let entity = row.referenced {
            switch native {
            case nil, .null?: return
            case .string(let s)? where !s.isEmpty:
                references.append(.init(path: line.map { "lines[\($0)].\(canonicalPath)" } ?? canonicalPath, entity: entity, id: s))
            case .number(let n)? where n.isInteger:
                references.append(.init(path: line.map { "lines[\($0)].\(canonicalPath)" } ?? canonicalPath, entity: entity, id: n.text))
            case let other?:
                throw error(.conversion, field, canonical: row.label, "expected an id (text or whole number), got \(other.typeName)")
            }
            return
        }
        let value: JSONValue?
        if let converter = row.converter {
            let rate = row.vatRate.flatMap { values[$0]?.decimal }
            do {
                value = try converter.toCanonical(native, context: .init(siblings: object, vatRate: rate))
            } catch {
                throw self.error(.conversion, field, canonical: row.label, error.reason)
            }
        } else {
            value = native
        }
        if let value, !value.isNull { values[canonicalPath] = value }
    }

    /// Decodes the values as the entity (checking every kind) and returns the entity's own flat
    /// form, so canonical values always have one spelling.
    func checkCanonical(_ values: [String: JSONValue]) throws(MappingError) -> [String: JSONValue] {
        do {
            switch entity {
            case .customer: return try Customer(canonicalFieldValues: values).canonicalFieldValues
            case .product: return try Product(canonicalFieldValues: values).canonicalFieldValues
            case .order: return try Order(canonicalFieldValues: values).canonicalFieldValues
            }
        } catch {
            throw self.error(.invalidCanonical, error.path, error.reason)
        }
    }

    // MARK: Canonical → native

    /// Denormalises canonical values to a native payload in the table's write schema, through
    /// the rows that write, then validates it against the target's contract and rules.
    ///
    /// - Parameters:
    ///   - values: flat canonical values (``CanonicalJSON/flatten(_:entity:)``), references as
    ///     global refs (`customer/<uuid>`).
    ///   - targetIds: the target's native id of every global ref the values name, keyed by the
    ///     ref's text. A reference missing here is an ``MappingError/Kind/unresolvedReference``.
    public func toNative(_ values: [String: JSONValue], targetIds: [String: String] = [:]) throws(MappingError) -> NativeWrite {
        let values = try checkCanonical(values)
        var record = JSONObject()
        var cleared: [String] = []
        let siblings = JSONObject(values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        for row in recordRows where row.source.direction.writes {
            try write(row, from: values, siblings: siblings, targetIds: targetIds, into: &record, cleared: &cleared, line: nil)
        }
        if let linesArray, case .array(let lines)? = values["lines"] {
            let rows = lineRows.filter { $0.source.direction.writes }
            if !rows.isEmpty {
                var native: [JSONValue] = []
                for (index, line) in lines.enumerated() {
                    let object = line.object ?? JSONObject()
                    let members = Dictionary(uniqueKeysWithValues: object.map { ($0.key, $0.value) })
                    var element = JSONObject()
                    var ignored: [String] = []
                    for row in rows {
                        try write(row, from: members, siblings: object, targetIds: targetIds, into: &element, cleared: &ignored, line: index)
                    }
                    native.append(.object(element))
                }
                record.set(.array(native), at: linesArray)
            }
        }
        try validator.validate(record)
        return NativeWrite(record: record, cleared: cleared)
    }

    /// Writes one row from canonical values (the record's, or one line's members).
    private func write(
        _ row: Row, from values: [String: JSONValue], siblings: JSONObject, targetIds: [String: String],
        into record: inout JSONObject, cleared: inout [String], line: Int?
    ) throws(MappingError) {
        let label = line.map { "lines[\($0)].\(row.canonical[0])" } ?? row.label
        if row.isGroup {
            let present = row.canonical.compactMap { path in values[path].map { (path, $0) } }
            if present.isEmpty {
                cleared += row.native.map(\.text).filter { table.constraints[$0]?.nullable ?? true }
                return
            }
            let result: JSONValue?
            do {
                result = try row.converter!.toNative(.object(JSONObject(present)), context: .init(siblings: siblings))
            } catch {
                throw self.error(.conversion, row.native.map(\.text).joined(separator: ", "), canonical: label, error.reason)
            }
            for path in row.native {
                if let v = result?[path.components.joined(separator: ".")] { record.set(v, at: path.components) }
            }
            return
        }
        let path = row.native[0]
        let field = line.map { path.text(line: $0) } ?? path.text
        let canonical = values[row.canonical[0]]
        var value: JSONValue?
        if row.referenced != nil {
            if let canonical {
                guard case .string(let ref) = canonical, let id = targetIds[ref] ?? targetIds[ref.lowercased()] else {
                    throw error(
                        .unresolvedReference, field, canonical: label,
                        "\(canonical.string ?? canonical.description) has no record in \(system) yet")
                }
                if row.nativeType == .integer {
                    guard let number = JSONNumber(id), number.isInteger else {
                        throw error(.unresolvedReference, field, canonical: label, "\(system) ids are whole numbers, got \"\(id)\"")
                    }
                    value = .number(number)
                } else {
                    value = .string(id)
                }
            }
        } else if let converter = row.converter {
            let rate = row.vatRate.flatMap { values[$0]?.decimal }
            do {
                value = try converter.toNative(canonical, context: .init(siblings: siblings, vatRate: rate))
            } catch {
                throw self.error(.conversion, field, canonical: label, error.reason)
            }
        } else {
            value = canonical
        }
        if let value, !value.isNull {
            record.set(value, at: path.components)
        } else if table.constraints[path.text]?.nullable ?? true {
            // Only what the target can hold empty is cleared; a required or non-nullable field
            // with no canonical value is left as the target has it.
            cleared.append(field)
        }
    }

    // MARK: Echo

    /// The fields an echo is compared on: the merge fields the table both writes and reads; for
    /// order lines, `lines` when every line member it reads is also written, else the line
    /// members it does (`lines.sku`, …: PowerOffice Go computes a line's `VatRate` itself, so
    /// only the members Parley wrote can be expected back). ``CanonicalHash`` accepts both forms.
    public var echoFields: [String] {
        let both = table.rows.filter { $0.direction == .both }.flatMap(\.canonical)
        let readOnlyLineMembers = table.rows.contains { $0.direction == .read && $0.canonical.contains { $0.hasPrefix("lines.") } }
        var fields: [String] = []
        for field in CanonicalField.fields(of: entity) {
            if field.path == "lines" {
                let members = lineMembersBothWays
                if members.isEmpty { continue }
                if readOnlyLineMembers {
                    fields += CanonicalField.orderLine.map(\.path).filter(members.contains)
                } else {
                    fields.append("lines")
                }
            } else if both.contains(field.path) {
                fields.append(field.path)
            }
        }
        return fields
    }

    /// The line members the table both writes and reads (`lines.sku`, …).
    var lineMembersBothWays: [String] {
        table.rows.filter { $0.direction == .both }.flatMap(\.canonical).filter { $0.hasPrefix("lines.") }
    }

    /// What the target will report back after `write` is applied: the written record read
    /// through the rows that both write and read (normalise ∘ denormalise, DESIGN rule 5). The
    /// link service keeps it as the target's last-known state, so the echo of our own write,
    /// lossy mappings included, is recognised and dropped. `carried` is ``echoFields``: a field
    /// the target computes itself (an order number) is not expected.
    ///
    /// A line member no line of the write carries is not expected either: the target fills it
    /// as it likes (the webshop names a line after its product when the line comes without a
    /// name), and that is no edit of the target's.
    public func expectedEcho(of write: NativeWrite) throws(MappingError) -> NormalisedRecord {
        var echo = try normalise(.object(write.record), requireId: false, rows: { $0.source.direction == .both })
        echo.carried = echoFields
        if case .array(let lines)? = echo.values["lines"] {
            // References are not among the values: a line's `product` is written when it refers.
            let referred = echo.references.compactMap { reference -> String? in
                guard reference.path.hasPrefix("lines["), let member = reference.path.split(separator: ".").last else { return nil }
                return "lines." + member
            }
            let written = Set(lines.flatMap { $0.object?.keys ?? [] }.map { "lines." + $0 } + referred)
            let members = echo.carried.contains("lines") ? lineMembersBothWays : echo.carried.filter { $0.hasPrefix("lines.") }
            if members.contains(where: { !written.contains($0) }) {
                let kept = CanonicalField.orderLine.map(\.path).filter { members.contains($0) && written.contains($0) }
                echo.carried = echo.carried.flatMap { field -> [String] in
                    if field == "lines" { return kept }
                    return field.hasPrefix("lines.") ? (kept.contains(field) ? [field] : []) : [field]
                }
            }
        }
        echo.assigned = []
        return echo
    }
}

extension MappingError.Kind {
    /// Whether the failure is about the data (a person fixes it at the source) rather than
    /// about order of arrival (an unresolved reference resolves itself once the link exists).
    public var isDataProblem: Bool { self != .unresolvedReference }
}
