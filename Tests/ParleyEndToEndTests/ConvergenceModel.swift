import Foundation
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

// The convergence test's model of what the systems must hold (docs/testing.md, "The
// convergence test"): every record the test created is a *thing*; each edit the test makes is
// recorded as canonical field writes with the modification time the system reported, and a
// field's expected value is the last of those writes by the rule the link service applies.

/// Who wrote a field, as of when (the system's own modification time, milliseconds).
struct Stamp: Sendable, Hashable, CustomStringConvertible {
    var system: SystemName
    var at: Int64

    /// DESIGN rule 4 as `Provenance.isOverridden` (Shared/ParleyLinkCore/FieldMerge.swift) states
    /// it: the later modification wins; at the same instant the system whose name sorts first.
    func isOverridden(by other: SystemName, at time: Int64) -> Bool {
        if time != at { return time > at }
        return other == system || other.rawValue < system.rawValue
    }

    var description: String { "\(system.rawValue)@\(CivilTime.formatInstant(ms: at))" }
}

/// One real customer, product or order the test created: a record in one system, or — for the
/// pre-existing records a later create must match — in two.
struct Thing: Sendable {
    let id: Int
    let entity: CanonicalEntityType
    /// The records the test created (system → native id).
    var origins: [SystemName: String] = [:]
    /// The expected canonical state (flat paths; references as `thing:<id>`).
    var values: [String: JSONValue] = [:]
    var provenance: [String: Stamp] = [:]
    /// Systems where the test deleted the record (PowerOffice Go): it must be gone there.
    var deletedIn: Set<SystemName> = []
    /// The test's last write to the thing's record in each system (modification time, and the
    /// canonical values it wrote): an edit waits until the link service has seen it
    /// (member.source_modified_at), or the record no longer holds any of it, see ``ConvergenceRun``.
    var lastWrite: [SystemName: LastWrite] = [:]

    struct LastWrite: Sendable {
        var at: Int64
        var values: [String: JSONValue]
    }
    /// After near-simultaneous edits nothing touches the thing until every system agrees again.
    var needsFullSettle = false
    /// Products: on an order line (their SKU is then never edited: a line keeps the SKU it was
    /// written with while PowerOffice Go reports its product's current code).
    var usedOnLines = false
    var skuEdited = false
    /// An operation on it waited in vain: the test leaves it alone from then on (the checks
    /// at the end report how it differs).
    var diverged = false

    init(id: Int, entity: CanonicalEntityType) {
        self.id = id
        self.entity = entity
    }

    var label: String { "\(entity.rawValue) #\(id)" }
    var archived: Bool { values["archived"] == .bool(true) || !deletedIn.isEmpty }
    /// Archived or deleted somewhere: the test no longer edits it nor puts it on new orders.
    var frozen: Bool { archived || diverged }
    var isPerson: Bool { values["kind"] == .string("person") }

    /// The systems that must hold a record of it: where it was created, and where the flows
    /// lead from there (customerp → customwebshop → powerofficego, for all three entities).
    var expectedSystems: Set<SystemName> {
        var systems = Set(origins.keys)
        if systems.contains(.customerp) { systems.insert(.customwebshop) }
        if systems.contains(.customwebshop) { systems.insert(.powerofficego) }
        return systems.subtracting(deletedIn)
    }

    /// Applies one write to one field by the last-writer rule; `false` when an earlier-stamped
    /// write lost to what the field already had. A value the system assigns itself (an order
    /// number) only fills an empty field.
    @discardableResult
    mutating func write(_ field: String, _ value: JSONValue?, by stamp: Stamp, assigned: Bool = false) -> Bool {
        if assigned, let current = values[field], !current.isNull { return false }
        if let p = provenance[field], !p.isOverridden(by: stamp.system, at: stamp.at) { return false }
        values[field] = value.flatMap { $0.isNull ? nil : $0 }
        provenance[field] = stamp
        return true
    }

    /// Order lines as the link service merges them (docs/canonical-model.md, "Order lines"): per
    /// line (its identity: product, else SKU, and occurrence) who added it, and per member who
    /// set it, each falling back to the line's and then to `lines`' provenance.
    var lineStamps: [String: Stamp] = [:]

    static func lineIds(_ lines: [JSONObject]) -> [String] {
        var seen: [String: Int] = [:]
        return lines.map { line in
            let key = line["product"]?.string ?? "sku:" + (line["sku"]?.string ?? "")
            let n = seen[key, default: 0]
            seen[key] = n + 1
            return "\(key)#\(n)"
        }
    }

    /// One system's edit of an order's lines, `before` and `after` as it reported them: each
    /// member it carries (`members`) that it changed on a line it had is written by the
    /// last-writer rule for that line and member; a line it added is added (after the line
    /// before it); a line it removed is removed unless the line or a member of it was set later
    /// elsewhere. A member it did not change is no write, whatever it holds (the webshop's price
    /// with VAT, PowerOffice Go's rounded one). Returns whether anything was written.
    mutating func writeLines(before: JSONValue?, after: JSONValue?, members: [String], by stamp: Stamp) -> Bool {
        let old = (before?.array ?? []).compactMap(\.object), new = (after?.array ?? []).compactMap(\.object)
        let oldIds = Self.lineIds(old), newIds = Self.lineIds(new)
        var lines = (values["lines"]?.array ?? []).compactMap(\.object)
        var ids = Self.lineIds(lines)
        func wins(_ keys: [String]) -> Bool {
            keys.allSatisfy { key in (lineStamps[key] ?? provenance["lines"]).map { $0.isOverridden(by: stamp.system, at: stamp.at) } ?? true }
            // (A line without a stamp of its own is from before lines were stamped: the lines' stamp.)
        }
        var changed = false
        for (i, id) in newIds.enumerated() {
            if let j = oldIds.firstIndex(of: id) {
                for member in members where !Self.sameMember(old[j][member], new[i][member], member) {
                    guard wins([lineStamps["\(id).\(member)"] != nil ? "\(id).\(member)" : id]) else { continue }
                    guard let k = ids.firstIndex(of: id) else { continue }
                    lines[k][member] = new[i][member]
                    lineStamps["\(id).\(member)"] = stamp
                    changed = true
                }
            } else if !ids.contains(id) {
                let previous = i > 0 ? ids.firstIndex(of: newIds[i - 1]) : nil
                let at = previous.map { $0 + 1 } ?? (i == 0 ? 0 : lines.count)
                lines.insert(new[i], at: at)
                ids.insert(id, at: at)
                lineStamps[id] = stamp
                changed = true
            }
        }
        for id in oldIds where !newIds.contains(id) {
            guard let k = ids.firstIndex(of: id) else { continue }
            let keys = [id] + lineStamps.keys.filter { $0.hasPrefix(id + ".") }
            guard wins(keys) else { continue }
            lines.remove(at: k)
            ids.remove(at: k)
            changed = true
        }
        guard changed else { return false }
        values["lines"] = .array(lines.map(JSONValue.object))
        if provenance["lines"].map({ $0.isOverridden(by: stamp.system, at: stamp.at) }) ?? true { provenance["lines"] = stamp }
        return true
    }

    static func sameMember(_ a: JSONValue?, _ b: JSONValue?, _ member: String) -> Bool {
        Canonical.equal(
            .array([.object(a.map { [member: $0] } ?? [:])]), .array([.object(b.map { [member: $0] } ?? [:])]),
            field: "lines", entity: .order, lineMembers: [member])
    }

    static func ref(_ id: Int) -> JSONValue { .string("thing:\(id)") }
    static func thingId(_ value: JSONValue?) -> Int? {
        guard let text = value?.string, text.hasPrefix("thing:") else { return nil }
        return Int(text.dropFirst(6))
    }
}

/// What the link service's database says, read in one go: which records are members of which
/// global entity, and when each member's last report was from.
struct LinkView: Sendable {
    struct Key: Hashable, Sendable {
        var system: SystemName
        var entity: CanonicalEntityType
        var nativeId: String
    }
    var members: [Key: (global: String, modified: Int64?)] = [:]
    var byGlobal: [String: [SystemName: String]] = [:]

    func global(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String) -> String? {
        members[Key(system: system, entity: entity, nativeId: id)]?.global
    }
    func modified(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String) -> Int64? {
        members[Key(system: system, entity: entity, nativeId: id)]?.modified ?? nil
    }
}

/// Every record of every simulator, by system, entity and native id.
struct SystemsView: Sendable {
    var records: [SystemName: [CanonicalEntityType: [String: JSONObject]]] = [:]

    func record(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String) -> JSONObject? {
        records[system]?[entity]?[id]
    }
}

extension SystemName {
    static let simulated: [SystemName] = [.customerp, .customwebshop, .powerofficego]
}

extension CanonicalEntityType {
    static let all: [CanonicalEntityType] = [.customer, .product, .order]
}

/// Canonical values compared as the link service compares them (the canonical hash's
/// normalisation: trimmed text, one spelling per number, absent = empty).
enum Canonical {
    static func equal(_ a: JSONValue?, _ b: JSONValue?, field: String, entity: CanonicalEntityType, lineMembers: [String]? = nil) -> Bool {
        document(a, field: field, entity: entity, lineMembers: lineMembers) == document(b, field: field, entity: entity, lineMembers: lineMembers)
    }

    static func document(_ value: JSONValue?, field: String, entity: CanonicalEntityType, lineMembers: [String]? = nil) -> JSONValue {
        var fields: [CanonicalField] = []
        if field == "lines", let lineMembers {
            fields = lineMembers.compactMap { CanonicalField.named("lines.\($0)", entity: entity) }
        } else if let f = CanonicalField.named(field, entity: entity) {
            fields = [f]
        }
        return CanonicalHash.document(flat: value.map { [field: $0] } ?? [:], entity: entity, fields: fields)
    }

    static func text(_ value: JSONValue?) -> String { value.map { $0.serializedString() } ?? "∅" }
}
