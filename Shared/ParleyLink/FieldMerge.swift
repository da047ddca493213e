import Foundation
import ParleyCanonical
import ParleyMessaging

/// Who set a canonical field, and as of when (the source's modification time).
public struct Provenance: Sendable, Hashable {
    public var system: SystemName
    /// Milliseconds since 1970, the source's modification time of the change that set it.
    public var modifiedAt: Int64

    public init(system: SystemName, modifiedAt: Int64) {
        self.system = system
        self.modifiedAt = modifiedAt
    }

    /// Whether a change from `other` at `time` wins over this: the later modification wins;
    /// at the same instant the system whose name sorts first wins, so every replica decides the
    /// same way (DESIGN rule 4).
    public func isOverridden(by other: SystemName, at time: Int64) -> Bool {
        if time != modifiedAt { return time > modifiedAt }
        return other == system || other.rawValue < system.rawValue
    }
}

/// A global entity's canonical state: flat canonical values (references as global refs) and,
/// per merge field, who set it. A field with provenance and no value was erased by that system.
public struct GlobalState: Sendable, Hashable {
    public var entity: CanonicalEntityType
    public var values: [String: JSONValue]
    public var provenance: [String: Provenance]

    public init(entity: CanonicalEntityType, values: [String: JSONValue] = [:], provenance: [String: Provenance] = [:]) {
        self.entity = entity
        self.values = values
        self.provenance = provenance
    }
}

/// What the link service last knew a member to hold: the fields it carries (merge fields, or
/// line members such as `lines.sku` for the lines when only those are known) and their values.
/// It is the last change seen from the member, or — after Parley wrote to it — the expected echo
/// of that write, so the echo compares equal and is dropped (DESIGN rule 5).
public struct Snapshot: Sendable, Hashable {
    public var fields: [String]
    public var values: [String: JSONValue]

    public init(fields: [String], values: [String: JSONValue]) {
        self.fields = fields
        self.values = values
    }
}

/// A change from one system, normalised and with references resolved to global refs.
public struct IncomingChange: Sendable, Hashable {
    public var system: SystemName
    public var modifiedAt: Int64
    public var values: [String: JSONValue]
    /// The merge fields the system carries (absent from `values` means empty there).
    public var carried: [String]
    /// Carried fields the system assigns itself: they only fill empty fields.
    public var assigned: Set<String>

    public init(system: SystemName, modifiedAt: Int64, values: [String: JSONValue], carried: [String], assigned: Set<String> = []) {
        self.system = system
        self.modifiedAt = modifiedAt
        self.values = values
        self.carried = carried
        self.assigned = assigned
    }
}

/// Field-level merge (DESIGN rules 4 and 5), a pure function.
public enum FieldMerge {
    public struct Result: Sendable, Hashable {
        public var state: GlobalState
        /// The merge fields whose canonical value changed, in canonical order.
        public var changed: [String]
        /// The member's new snapshot: what it just reported.
        public var snapshot: Snapshot
    }

    /// Applies `change` to `state`. Only the fields the source carries take part, and of those
    /// only the ones that differ from what was last known of the source (`snapshot`): a field
    /// the source did not touch since then — the echo of our own write included — changes
    /// nothing. Without a snapshot (the first report of a record, e.g. one that just matched
    /// an existing entity) an empty field is not an edit and erases nothing. A value the source assigns itself only fills an empty field. A field set
    /// later elsewhere keeps its value (last writer wins by the source's modification time).
    ///
    /// `written` is for a change the source reported while Parley's write to it was in flight
    /// (held until that write was answered), which may be from before or after the write landed:
    /// a field equal to what was written (the write's expected echo) is no edit either, so only
    /// what differs from both the snapshot from before the write and the write is the source's.
    public static func apply(_ change: IncomingChange, to state: GlobalState, snapshot: Snapshot?, written: Snapshot? = nil) -> Result {
        var state = state
        var changed: [String] = []
        let entity = state.entity
        for field in CanonicalField.fields(of: entity) where change.carried.contains(field.path) {
            let path = field.path
            let incoming = change.values[path]
            if let snapshot, equal(incoming, snapshot.values[path], field: path, entity: entity, fields: snapshot.fields) {
                continue  // unchanged in the source since we last knew it
            }
            if let written, written.fields.contains(where: { $0 == path || $0.hasPrefix(path + ".") }),
               equal(incoming, written.values[path], field: path, entity: entity, fields: written.fields) {
                continue  // the echo of the write that was in flight
            }
            let current = state.values[path]
            // First contact (a record that just joined by matching): what it lacks is not an
            // edit, so its empty fields fill nothing and erase nothing.
            if snapshot == nil, !isPresent(incoming, field: path, entity: entity) { continue }
            if change.assigned.contains(path), isPresent(current, field: path, entity: entity) { continue }
            if let p = state.provenance[path], !p.isOverridden(by: change.system, at: change.modifiedAt) { continue }
            if equal(incoming, current, field: path, entity: entity, fields: nil) {
                state.provenance[path] = Provenance(system: change.system, modifiedAt: change.modifiedAt)
                continue
            }
            state.values[path] = incoming
            state.provenance[path] = Provenance(system: change.system, modifiedAt: change.modifiedAt)
            changed.append(path)
        }
        return Result(state: state, changed: changed, snapshot: reported(by: change))
    }

    /// What a change says its system holds now: the member's next snapshot.
    public static func reported(by change: IncomingChange) -> Snapshot {
        let carried = Set(change.carried)
        return Snapshot(fields: change.carried, values: change.values.filter { carried.contains($0.key) })
    }

    /// Two values of one field compare equal as the canonical hash sees them (trimmed text,
    /// one spelling per number, absent = empty). For the lines, `fields` may name only line
    /// members (`lines.sku`, …): then only those members are compared.
    public static func equal(
        _ a: JSONValue?, _ b: JSONValue?, field: String, entity: CanonicalEntityType, fields: [String]?
    ) -> Bool {
        var compared: [CanonicalField] = []
        if field == "lines", let fields, !fields.contains("lines") {
            compared = fields.filter { $0.hasPrefix("lines.") }.compactMap { CanonicalField.named($0, entity: entity) }
        }
        if compared.isEmpty, let f = CanonicalField.named(field, entity: entity) {
            // One plain field: its document is its normalised value or nothing, so comparing
            // those is comparing the documents, without building them.
            if f.kind != .lines && f.lineMember == nil {
                return a.flatMap { CanonicalHash.normalize($0, kind: f.kind) } == b.flatMap { CanonicalHash.normalize($0, kind: f.kind) }
            }
            compared = [f]
        }
        let left = CanonicalHash.document(flat: a.map { [field: $0] } ?? [:], entity: entity, fields: compared)
        let right = CanonicalHash.document(flat: b.map { [field: $0] } ?? [:], entity: entity, fields: compared)
        return left == right
    }

    static func isPresent(_ value: JSONValue?, field: String, entity: CanonicalEntityType) -> Bool {
        !equal(value, nil, field: field, entity: entity, fields: nil)
    }
}
