import Foundation
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

/// How the end-to-end tests decide that two systems hold the same thing: both records are read
/// into canonical terms with the repository's mapping tables (whose conversions the mapping
/// tests pin down field by field) and compared over every field both systems carry. Values a
/// system assigns itself (order numbers, dates) are left out, and references are compared by
/// what they point at (the customer's e-mail, the product's SKU), not by ids.
struct Oracle: Sendable {
    let mappings: Mappings

    init() throws {
        mappings = try Mappings.load(repositoryRoot: Stack.root)
    }

    func canonical(_ system: SystemName, _ entity: CanonicalEntityType, _ record: JSONObject) throws -> NormalisedRecord {
        guard let mapper = mappings.mapper(system: system, entity: entity) else {
            throw Stack.HTTPError(description: "no table for \(system) \(entity)")
        }
        return try mapper.toCanonical(.object(record))
    }

    /// The fields of `a` and `b` (two systems' records of one thing) that differ, as readable lines.
    /// `b` is compared with what it should report after Parley wrote `a`'s state into it: `a`
    /// read into canonical terms, written in `b`'s terms and read back (the mapping's own
    /// normalise ∘ denormalise), so rounding through a VAT-inclusive price or a company having no
    /// contact names in PowerOffice Go is expected, not a difference.
    func differences(
        _ a: (SystemName, JSONObject), _ b: (SystemName, JSONObject), _ entity: CanonicalEntityType,
        in stack: Stack
    ) async throws -> [String] {
        let ra = try canonical(a.0, entity, a.1), rb = try canonical(b.0, entity, b.1)
        let expected = try echo(of: ra, in: b.0, referencesLike: rb)
        let skipped = Set(ra.assigned).union(rb.assigned).union(ra.references.map(\.path)).union(rb.references.map(\.path))
        // A field empty at the source is not compared: the source may simply not hold it there
        // (a company in PowerOffice Go has no contact names), and rule 4 keeps the others' value.
        let fields = Set(ra.carried).intersection(expected.carried).subtracting(skipped).filter { ra.values[$0] != nil }.sorted()
        var problems: [String] = []
        for field in fields where !Self.same(expected.values[field], rb.values[field]) {
            problems.append(
                "\(field): \(b.0) should report \(expected.values[field]?.serializedString() ?? "nil") (from \(a.0) "
                    + "\(ra.values[field]?.serializedString() ?? "nil")) but has \(rb.values[field]?.serializedString() ?? "nil")")
        }
        // References: what each side's reference points at, by natural key.
        let pa = try await referenceKeys(ra, in: stack), pb = try await referenceKeys(rb, in: stack)
        for (path, key) in pa where pb[path] != key {
            problems.append("\(path): \(a.0) refers to \(key) but \(b.0) to \(pb[path] ?? "nothing")")
        }
        return problems
    }

    /// What `system` reports back after being written `record`'s values. References are written
    /// as the ids `like` (the target's record) has at the same paths; they are compared apart.
    func echo(of record: NormalisedRecord, in system: SystemName, referencesLike like: NormalisedRecord) throws -> NormalisedRecord {
        guard let mapper = mappings.mapper(system: system, entity: record.entity) else {
            throw Stack.HTTPError(description: "no table for \(system)")
        }
        var values = record.values
        var targetIds: [String: String] = [:]
        for reference in record.references {
            let global = GlobalRef(reference.entity, id: UUID()).description
            CanonicalJSON.set(global, atReference: reference.path, in: &values)
            targetIds[global] = like.references.first { $0.path == reference.path }?.id ?? "0"
        }
        return try mapper.expectedEcho(of: try mapper.toNative(values, targetIds: targetIds))
    }

    /// `path → natural key` of every reference in a record (`customer → email`, `lines[0].product → SKU`).
    func referenceKeys(_ record: NormalisedRecord, in stack: Stack) async throws -> [String: String] {
        var keys: [String: String] = [:]
        for reference in record.references {
            let all = try await stack.records(record.system, reference.entity)
            guard let target = all.first(where: { Self.id(of: $0, in: record.system) == reference.id }) else {
                keys[reference.path] = "missing \(reference.entity) \(reference.id)"
                continue
            }
            let values = try canonical(record.system, reference.entity, target).values
            keys[reference.path] = (reference.entity == .product ? values["sku"] : values["email"])?.string?.lowercased() ?? "?"
        }
        return keys
    }

    static func id(of record: JSONObject, in system: SystemName) -> String? {
        let value = system == .powerofficego ? record["Id"] : record["id"]
        switch value {
        case .string(let s)?: return s
        case .number(let n)?: return n.description
        default: return nil
        }
    }

    /// Equal as canonical values: numbers by value, arrays element by element, objects over
    /// the keys both have (a line field one system lacks is not a difference).
    static func same(_ a: JSONValue?, _ b: JSONValue?) -> Bool {
        switch (a, b) {
        case (nil, nil), (.null?, nil), (nil, .null?): return true
        case (.number(let x)?, .number(let y)?): return x.decimal == y.decimal
        case (.array(let x)?, .array(let y)?): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x)?, .object(let y)?):
            let keys = Set(x.keys).intersection(y.keys).subtracting(["product"])
            return keys.allSatisfy { same(x[$0], y[$0]) }
        default: return a == b
        }
    }
}
