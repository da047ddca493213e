import Foundation
import ParleyCanonical
import ParleyJSON
import ParleyEnvelope

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
/// Order lines have it per line and member as well (`lines[<identity>]`, who added the line,
/// and `lines[<identity>].<member>` where a member was set by another change; see
/// ``FieldMerge/mergeLines(_:into:snapshot:written:)``); `lines` itself is the last change of
/// any line.
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

/// What the link service last knew a member to hold: the fields it carries (merge fields, and
/// for the lines `lines` and/or the line members known, such as `lines.sku`) and their values.
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
    /// The merge fields the system carries (absent from `values` means empty there), and for
    /// order lines the line members it carries (`lines`, `lines.product`, `lines.quantity`, …;
    /// `lines` alone means every member).
    public var carried: [String]
    /// Carried fields the system assigns itself: they only fill empty fields.
    public var assigned: Set<String>
    /// The canonical `vatRate` of products the change's lines refer to (product ref → rate), for
    /// a line the source adds without a VAT rate because it does not carry `lines.vatRate`
    /// (PowerOffice Go): such a line takes its product's rate (``productsNeedingVatRate``; the
    /// link engine looks them up, the merge only reads them).
    public var productVatRates: [String: JSONValue]

    public init(
        system: SystemName, modifiedAt: Int64, values: [String: JSONValue], carried: [String], assigned: Set<String> = [],
        productVatRates: [String: JSONValue] = [:]
    ) {
        self.system = system
        self.modifiedAt = modifiedAt
        self.values = values
        self.carried = carried
        self.assigned = assigned
        self.productVatRates = productVatRates
    }

    /// The line members the source carries (`sku`, `quantity`, …), `nil` when it carries no lines.
    public var carriedLineMembers: Set<String>? { FieldMerge.lineMembers(listedIn: carried) }

    /// The products (global refs) of the change's lines when the source does not carry the lines'
    /// VAT rate: the ones whose `vatRate` ``productVatRates`` should hold.
    public var productsNeedingVatRate: [String] {
        guard let members = carriedLineMembers, !members.contains("vatRate"), case .array(let lines)? = values["lines"] else { return [] }
        var products: [String] = []
        for line in lines {
            if case .string(let product)? = line["product"], !products.contains(product) { products.append(product) }
        }
        return products
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
    /// an existing entity) an empty field is not an edit and erases nothing. A value the source
    /// assigns itself only fills an empty field. A field set later elsewhere keeps its value
    /// (last writer wins by the source's modification time).
    ///
    /// Order lines are merged line by line and member by member (``mergeLines(_:into:snapshot:written:)``),
    /// and a derived field (a person's full name, ``DerivedField``) follows the fields it is
    /// derived from when the source does not carry it.
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
            if field.kind == .lines {
                if mergeLines(change, into: &state, snapshot: snapshot, written: written) { changed.append(path) }
                continue
            }
            let incoming = change.values[path]
            if let snapshot, equal(incoming, snapshot.values[path], field: path, entity: entity, fields: snapshot.fields) {
                continue  // unchanged in the source since we last knew it
            }
            if let written, written.fields.contains(path),
                equal(incoming, written.values[path], field: path, entity: entity, fields: written.fields)
            {
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
        // Derived fields the source cannot say follow what it changed (a person's full name
        // after the webshop's first-name edit), unless set later elsewhere.
        for derived in DerivedField.fields(of: entity)
        where !change.carried.contains(derived.path) && derived.inputs.contains(where: changed.contains) {
            guard let value = derived.derive(state.values),
                !equal(value, state.values[derived.path], field: derived.path, entity: entity, fields: nil)
            else { continue }
            if let p = state.provenance[derived.path], !p.isOverridden(by: change.system, at: change.modifiedAt) { continue }
            state.values[derived.path] = value
            state.provenance[derived.path] = Provenance(system: change.system, modifiedAt: change.modifiedAt)
            changed = CanonicalField.fields(of: entity).map(\.path).filter { $0 == derived.path || changed.contains($0) }
        }
        return Result(state: state, changed: changed, snapshot: reported(by: change))
    }

    /// What a change says its system holds now: the member's next snapshot.
    public static func reported(by change: IncomingChange) -> Snapshot {
        let carried = Set(change.carried)
        return Snapshot(fields: change.carried, values: change.values.filter { carried.contains($0.key) })
    }

    /// The line members (`sku`, …) a list of carried fields names: the `lines.` entries, or
    /// every member when it names only `lines`; `nil` when it names no lines at all.
    public static func lineMembers(listedIn fields: [String]) -> Set<String>? {
        let members = Set(fields.lazy.filter { $0.hasPrefix("lines.") }.map { String($0.dropFirst("lines.".count)) })
        if !members.isEmpty { return members }
        return fields.contains("lines") ? allLineMembers : nil
    }

    static let allLineMembers = Set(CanonicalField.orderLine.compactMap(\.lineMember))

    /// Two values of one field compare equal as the canonical hash sees them (trimmed text,
    /// one spelling per number, absent = empty). For the lines, `fields` may name line members
    /// (`lines.sku`, …): then only those members are compared (with or without `lines` itself).
    public static func equal(
        _ a: JSONValue?, _ b: JSONValue?, field: String, entity: CanonicalEntityType, fields: [String]?
    ) -> Bool {
        var compared: [CanonicalField] = []
        if field == "lines", let fields {
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

// MARK: - Order lines

extension FieldMerge {
    /// The provenance key of a line (`lines[product/…#0]`: who added it) and of one of its
    /// members (`lines[product/…#0].quantity`: who set it, kept only where that differs from
    /// the line's).
    public static func provenanceKey(_ line: OrderLineIdentity, member: String? = nil) -> String {
        "lines[\(line)]" + (member.map { "." + $0 } ?? "")
    }

    /// Merges the source's order lines into the state's, line by line and member by member
    /// (docs/canonical-model.md, "Order lines"); returns whether the lines changed.
    ///
    /// Lines are matched by ``OrderLineIdentity`` (product, else SKU, and occurrence) between the
    /// change, the state, the source's snapshot and what was written to it. For each line the
    /// source has, each member it carries is an edit when it differs from the snapshot (and from
    /// what was written, for a held change) — as for a plain field — and wins when it is newer
    /// than who set that member (per line and member provenance; last writer wins, ties by
    /// system name). A member the source does not carry keeps its value: PowerOffice Go's edit of
    /// a quantity keeps the ERP's VAT rates, the webshop's keeps the discounts. A member a
    /// snapshot does not list (the target fills it as it likes) is no edit. A line the source
    /// added (not in its snapshot, nor in what was written) is added, after the line before it in
    /// the source, with only the members the source carries — and, when the source carries no
    /// VAT rate, its product's `vatRate` (``IncomingChange/productVatRates``). A line the source
    /// removed is removed, unless a member of it was set later elsewhere. An edit of a line the
    /// state no longer has brings it back if it is newer than the last change of the lines.
    /// Lines the source has never seen stay. Lines not reported at all (no `lines` in the
    /// change) are no edit; a reorder alone is none either.
    static func mergeLines(_ change: IncomingChange, into state: inout GlobalState, snapshot: Snapshot?, written: Snapshot?) -> Bool {
        guard var merge = LineMerge(change, state: state, snapshot: snapshot, written: written) else { return false }
        merge.mergeReported()
        merge.removeDropped()
        // No lines yet: the source's `[]` says the order has none.
        let fills = state.values["lines"] == nil && merge.previous?.hadValue != true && merge.echo?.hadValue != true
        guard merge.changed || merge.touched || fills else { return false }
        merge.write(into: &state)
        return merge.changed || fills
    }

    /// One change's lines merged into the state's (``mergeLines(_:into:snapshot:written:)``),
    /// step by step: the lines the source reports, the lines it removed, the result written back.
    struct LineMerge {
        let change: IncomingChange
        let carriedMembers: Set<String>
        /// The line members the source carries, in canonical order.
        let members: [String]
        let reported: Provenance
        let incoming: LineSet
        /// The source's snapshot of the lines; `nil` when it says nothing of lines (the first contact).
        let previous: LineSet?
        /// What was written to the source, for a held change.
        let echo: LineSet?
        /// Who last changed the lines as a whole.
        let linesProvenance: Provenance?
        let currentIds: [OrderLineIdentity]
        let index: [OrderLineIdentity: Int]
        /// The state's lines, with their provenance (a line's own, else the lines' as a whole:
        /// states from before lines were merged by member have only that).
        var work: [WorkLine]
        /// Lines the source has and the state does not, each after the state's line it follows.
        var added: [(after: Int?, line: WorkLine)] = []
        var changed = false
        /// A member's provenance moved (an edit to the value it already had).
        var touched = false

        init?(_ change: IncomingChange, state: GlobalState, snapshot: Snapshot?, written: Snapshot?) {
            guard let carried = change.carriedLineMembers, case .array(let lines)? = change.values["lines"] else { return nil }
            self.change = change
            carriedMembers = carried
            members = CanonicalField.orderLine.compactMap(\.lineMember).filter(carried.contains)
            reported = Provenance(system: change.system, modifiedAt: change.modifiedAt)
            incoming = LineSet(lines, listed: carried)
            previous = snapshot.flatMap(LineSet.init(snapshot:))
            echo = written.flatMap(LineSet.init(snapshot:))
            linesProvenance = state.provenance["lines"]
            let currentLines = state.values["lines"]?.array ?? []
            currentIds = OrderLineIdentity.identities(of: currentLines)
            work = zip(currentLines, currentIds).map { line, id in
                var provenance: [String: Provenance] = [:]
                for member in FieldMerge.allLineMembers { provenance[member] = state.provenance[FieldMerge.provenanceKey(id, member: member)] }
                return WorkLine(
                    values: line.object ?? JSONObject(), base: state.provenance[FieldMerge.provenanceKey(id)] ?? state.provenance["lines"],
                    members: provenance, removed: false)
            }
            index = Dictionary(uniqueKeysWithValues: currentIds.enumerated().map { ($1, $0) })
        }

        /// Whether the change wins over what `p` set (last writer wins, ties by system name).
        func wins(_ p: Provenance?) -> Bool { p.map { $0.isOverridden(by: change.system, at: change.modifiedAt) } ?? true }

        /// Whether the source's line `id` (its `member`, or with `nil` whether it has the line
        /// at all) is an edit: it differs from the snapshot and, for a held change, from what
        /// was written. Without a snapshot only what the source has counts.
        func isEdit(_ id: OrderLineIdentity, _ member: String?) -> Bool {
            let line = incoming.lines[id]
            if let previous {
                if !previous.differs(line, id, member) { return false }
            } else {
                guard let line else { return false }
                if let member, !FieldMerge.present(line[member], member) { return false }
            }
            if let echo, !echo.differs(line, id, member) { return false }
            return true
        }

        /// The lines the source has: members of lines the state has; lines it does not, each to
        /// go after the line it follows in the source, and after the state's lines with its key
        /// (its occurrence is above theirs) and the ones of its key added before it.
        mutating func mergeReported() {
            var anchor: Int? = nil
            var lastOfKey: [String: Int] = [:]
            for (i, id) in currentIds.enumerated() { lastOfKey[id.key] = i }
            for id in incoming.order {
                let line = incoming.lines[id]!
                if let i = index[id] {
                    for member in members where isEdit(id, member) && wins(work[i].provenance(member)) {
                        touched = true
                        work[i].members[member] = reported
                        if FieldMerge.sameMember(line[member], work[i].values[member], member) { continue }
                        work[i].values[member] = line[member]
                        changed = true
                    }
                    anchor = i
                    continue
                }
                // New at the source, or removed elsewhere since the source last reported it: an
                // edit of it newer than the last change of the lines brings it back.
                let isNew = isEdit(id, nil)
                guard isNew || (members.contains { isEdit(id, $0) } && wins(linesProvenance)) else { continue }
                let after = [anchor, lastOfKey[id.key]].compactMap { $0 }.max()
                if let after { lastOfKey[id.key] = after }
                added.append((after, WorkLine(values: addedValues(line), base: reported, members: [:], removed: false)))
                changed = true
            }
        }

        /// A line the source added, with the members it carries and — when it carries no VAT
        /// rate — its product's.
        func addedValues(_ line: JSONObject) -> JSONObject {
            var values = JSONObject(members.compactMap { member in line[member].map { (member, $0) } })
            if !carriedMembers.contains("vatRate"), values["vatRate"] == nil, case .string(let product)? = values["product"],
                let rate = change.productVatRates[product], !rate.isNull
            {
                values["vatRate"] = rate  // the product's, for a line the source cannot give one
            }
            return values
        }

        /// The lines the source removed since its snapshot (not the echo of Parley's removal):
        /// removed unless a member of it was set later elsewhere.
        mutating func removeDropped() {
            for id in previous?.order ?? [] where incoming.lines[id] == nil && isEdit(id, nil) {
                guard let i = index[id], !work[i].removed, work[i].allProvenance.allSatisfy(wins) else { continue }
                work[i].removed = true
                changed = true
            }
        }

        /// The new lines: the state's in their order, the added ones after theirs (at the start
        /// when they follow none, before the first line the source has too).
        func result() -> [WorkLine] {
            var result: [WorkLine] = []
            let leading = added.filter { $0.after == nil }.map(\.line)
            let firstKept = incoming.order.lazy.compactMap { index[$0] }.first
            for i in work.indices {
                if i == firstKept { result += leading }
                if !work[i].removed { result.append(work[i]) }
                result += added.filter { $0.after == i }.map(\.line)
            }
            if firstKept == nil { result += leading }
            return result
        }

        /// The merged lines and their provenance, into the state.
        func write(into state: inout GlobalState) {
            let result = result()
            state.values["lines"] = .array(result.map { .object($0.values) })
            for key in state.provenance.keys where key.hasPrefix("lines[") { state.provenance[key] = nil }
            for (line, id) in zip(result, OrderLineIdentity.identities(of: result.map { .object($0.values) })) {
                if let base = line.base { state.provenance[FieldMerge.provenanceKey(id)] = base }
                for (member, p) in line.members where p != line.base { state.provenance[FieldMerge.provenanceKey(id, member: member)] = p }
            }
            if wins(state.provenance["lines"]) { state.provenance["lines"] = reported }
        }
    }

    /// One line of the state while it is merged: its members and who set them.
    struct WorkLine {
        var values: JSONObject
        /// Who added the line (or set the lines as a whole, before they were merged by member).
        var base: Provenance?
        /// Who set a member, where known apart from ``base``.
        var members: [String: Provenance]
        var removed: Bool

        func provenance(_ member: String) -> Provenance? { members[member] ?? base }
        var allProvenance: [Provenance?] { [base] + members.values.map { $0 } }
    }

    /// One version of an order's lines (the change's, a snapshot's), by identity.
    struct LineSet {
        var lines: [OrderLineIdentity: JSONObject]
        var order: [OrderLineIdentity]
        /// The members this version is known to hold; the others it may hold as it likes.
        var listed: Set<String>
        /// Whether it has lines at all (`lines` absent: it has none it reported).
        var hadValue: Bool

        init(_ lines: [JSONValue], listed: Set<String>, hadValue: Bool = true) {
            order = OrderLineIdentity.identities(of: lines)
            self.lines = Dictionary(zip(order, lines.map { $0.object ?? JSONObject() }), uniquingKeysWith: { a, _ in a })
            self.listed = listed
            self.hadValue = hadValue
        }

        /// A snapshot's lines; `nil` when the snapshot does not cover lines.
        init?(snapshot: Snapshot) {
            guard let listed = FieldMerge.lineMembers(listedIn: snapshot.fields) else { return nil }
            self.init(snapshot.values["lines"]?.array ?? [], listed: listed, hadValue: snapshot.values["lines"] != nil)
        }

        /// Whether `line` (the source's line `id`, `nil` when it has none) differs from this
        /// version in `member`, or with `nil` in having the line at all. A member this version
        /// does not list is taken as unchanged.
        func differs(_ line: JSONObject?, _ id: OrderLineIdentity, _ member: String?) -> Bool {
            let theirs = lines[id]
            guard let line, let theirs else { return (line == nil) != (theirs == nil) }
            guard let member, listed.contains(member) else { return false }
            return !FieldMerge.sameMember(line[member], theirs[member], member)
        }
    }

    /// One member of two lines compared as the canonical hash sees it.
    static func sameMember(_ a: JSONValue?, _ b: JSONValue?, _ member: String) -> Bool {
        let kind = CanonicalField.named("lines." + member, entity: .order)?.kind ?? .text
        return a.flatMap { CanonicalHash.normalize($0, kind: kind) } == b.flatMap { CanonicalHash.normalize($0, kind: kind) }
    }

    static func present(_ value: JSONValue?, _ member: String) -> Bool { !sameMember(value, nil, member) }
}
