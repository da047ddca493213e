import Foundation
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyPostgres
import ParleyTestSupport
import ParleyJSON
import ParleyEnvelope

/// One seed of the convergence test (docs/testing.md): random operations through the systems'
/// own APIs, the model of what every field must end as, then convergence, quiet and the checks.
actor ConvergenceRun {
    struct Settings: Sendable, CustomStringConvertible {
        var seed: UInt64
        var chaos: Bool
        var operations: Int
        /// How long one operation may wait for what it needs (a record's copy, an earlier
        /// edit seen everywhere) before the run stops and reports what did not arrive.
        var waitLimit: Duration
        /// How long the systems may take to agree once the operations are done.
        var convergeLimit: Duration
        /// Lines added to an order in PowerOffice Go, which carries no VAT rate (see docs/testing.md).
        var goLineAdds: Bool
        /// Near-simultaneous edits of one field in two systems.
        var conflicts: Bool = true
        /// Edits left out, to look at one divergence at a time: `<group>` (`lineDiscount`),
        /// `<system>.<group>` (`customwebshop.lineQuantity`), `<system>.lines` (every line edit
        /// there), `twin`, `archive`, `delete`.
        var avoid: Set<String> = []

        var description: String { "seed \(seed)\(chaos ? " (chaos)" : ""), \(operations) operations" }
    }

    struct Stuck: Error, CustomStringConvertible {
        let description: String
        /// The thing that did not get where it should (the run goes on without it).
        var thing: Int? = nil
    }

    let settings: Settings
    let stack: Stack
    let oracle: Oracle
    let link: PostgresPool
    var rng: SeededRandom
    var fresh: FreshValues
    var things: [Int: Thing] = [:]
    var nextThing = 1
    /// Edits made at most once per thing (`<thing>/<group>`: a product's type flips once).
    var once: Set<String> = []
    /// Thing → its global id, once the link service has seen one of its records.
    var globals: [Int: String] = [:]
    var log: [String] = []
    /// Found while the operations ran (a process that exited by itself, a refused request).
    var problems: [String] = []
    let started = ContinuousClock.now
    /// The index of the operation being performed (the chaos schedule follows it).
    let progress: Locked<Int>

    init(settings: Settings, stack: Stack, oracle: Oracle, progress: Locked<Int>) {
        self.settings = settings
        self.stack = stack
        self.oracle = oracle
        self.progress = progress
        link = PostgresPool(configuration: stack.database, maxConnections: 2)
        rng = SeededRandom(seed: settings.seed)
        fresh = FreshValues(seed: settings.seed)
    }

    func close() async { await link.close() }

    func note(_ line: String) {
        let elapsed = ContinuousClock.now - started
        let ms = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        log.append(String(format: "%7.2fs ", Double(ms) / 1000) + line)
    }

    func problem(_ line: String) {
        problems.append(line)
        note("PROBLEM " + line)
    }

    func report() -> (log: [String], problems: [String]) { (log, problems) }

    // MARK: Reading the systems and the link database

    func systems(_ which: [SystemName] = SystemName.simulated) async throws -> SystemsView {
        var view = SystemsView()
        for system in which {
            var byEntity: [CanonicalEntityType: [String: JSONObject]] = [:]
            for entity in CanonicalEntityType.all {
                var records: [String: JSONObject] = [:]
                for record in try await stack.records(system, entity) {
                    if let id = Oracle.id(of: record, in: system) { records[id] = record }
                }
                byEntity[entity] = records
            }
            view.records[system] = byEntity
        }
        return view
    }

    /// The link database's members; tried again while the database is away (chaos mode restarts
    /// it), for up to the wait limit: a write the test made must be recorded whatever happens.
    func linkView() async throws -> LinkView {
        let deadline = ContinuousClock.now.advanced(by: settings.waitLimit)
        while true {
            do {
                return try await readLinkView()
            } catch {
                if ContinuousClock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    private func readLinkView() async throws -> LinkView {
        var view = LinkView()
        let rows = try await link.query(
            """
            select system, entity_type, native_id, global_id::text, (extract(epoch from source_modified_at) * 1000)::bigint from member
            """)
        for row in rows {
            guard let system = SystemName(rawValue: try row.decode(String.self, at: 0)),
                let entity = CanonicalEntityType(rawValue: try row.decode(String.self, at: 1))
            else { continue }
            let id = try row.decode(String.self, at: 2), global = try row.decode(String.self, at: 3)
            view.members[.init(system: system, entity: entity, nativeId: id)] = (global, try row.decode(Int64?.self, at: 4))
            view.byGlobal[global, default: [:]][system] = id
        }
        // A thing's global id: the entity its first record the link service saw belongs to.
        for (id, thing) in things where globals[id] == nil {
            for (system, nativeId) in thing.origins.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                if let global = view.global(system, thing.entity, nativeId) { globals[id] = global; break }
            }
        }
        return view
    }

    /// The thing a system's record is: one the test created there, or a record the link service
    /// linked to a thing's entity.
    func thing(of system: SystemName, _ entity: CanonicalEntityType, _ id: String, _ view: LinkView) -> Int? {
        if let t = things.values.first(where: { $0.entity == entity && $0.origins[system] == id }) { return t.id }
        guard let global = view.global(system, entity, id) else { return nil }
        return globals.first { $0.value == global && things[$0.key]?.entity == entity }?.key
    }

    /// The native id of a thing's record in a system: its own, or the copy the link service made.
    func nativeId(_ thing: Thing, in system: SystemName, _ view: LinkView) -> String? {
        if let own = thing.origins[system] { return own }
        guard let global = globals[thing.id] else { return nil }
        return view.byGlobal[global]?[system]
    }

    // MARK: Canonical terms

    /// A system's record as model values: canonical values with references as things.
    func modelValues(_ record: NormalisedRecord, _ view: LinkView) -> [String: JSONValue] {
        var values = record.values
        for reference in record.references {
            let ref: JSONValue =
                thing(of: record.system, reference.entity, reference.id, view).map(Thing.ref)
                ?? .string("unknown \(reference.entity.rawValue) \(reference.id)")
            if reference.path.hasPrefix("lines["), let close = reference.path.firstIndex(of: "]"),
                let index = Int(reference.path[reference.path.index(reference.path.startIndex, offsetBy: 6)..<close]),
                case .array(var lines)? = values["lines"], index < lines.count, case .object(var line) = lines[index]
            {
                line["product"] = ref
                lines[index] = .object(line)
                values["lines"] = .array(lines)
            } else {
                values[reference.path] = ref
            }
        }
        return values
    }

    func modifiedAt(_ record: NormalisedRecord) -> Int64? {
        record.modifiedAt.flatMap { try? CivilTime.parseInstant($0) }
    }

    /// The line members a system reads (`sku`, `quantity`, …; not `product`).
    func lineMembers(_ system: SystemName) -> Set<String> {
        guard let table = oracle.mappings.mapper(system: system, entity: .order)?.table else { return [] }
        return Set(table.rows.filter { $0.direction.reads }.flatMap(\.canonical).filter { $0.hasPrefix("lines.") }.map { String($0.dropFirst(6)) })
            .subtracting(["product"])
    }

    /// What `system` reports after Parley wrote the thing's expected state into it: the mapping's
    /// own normalise ∘ denormalise (lossy conversions applied), references written as stand-ins
    /// and compared apart.
    func echo(_ thing: Thing, in system: SystemName) throws -> NormalisedRecord {
        guard let mapper = oracle.mappings.mapper(system: system, entity: thing.entity) else {
            throw Stuck(description: "no table for \(system) \(thing.entity)")
        }
        var values = thing.values
        var targetIds: [String: String] = [:]
        func standIn(_ value: JSONValue?, _ entity: CanonicalEntityType) -> JSONValue? {
            guard let id = Thing.thingId(value) else { return value }
            let ref = GlobalRef(entity, id: UUID(uuidString: String(format: "00000000-0000-4000-8000-%012d", id))!).description
            targetIds[ref] = "1"
            return .string(ref)
        }
        if thing.entity == .order {
            values["customer"] = standIn(values["customer"], .customer)
            if case .array(let lines)? = values["lines"] {
                values["lines"] = .array(
                    lines.map { line in
                        guard case .object(var o) = line else { return line }
                        o["product"] = standIn(o["product"], .product)
                        return .object(o)
                    })
            }
        }
        return try mapper.expectedEcho(of: mapper.toNative(values, targetIds: targetIds))
    }

    /// Where a system's record of a thing differs from the thing's expected state (through the
    /// system's mapping), over `only` or every field the system carries; `[]` when it agrees.
    func differences(_ thing: Thing, _ system: SystemName, _ record: JSONObject, _ view: LinkView, only: Set<String>? = nil) -> [String] {
        let actual: NormalisedRecord, expected: NormalisedRecord
        do {
            actual = try oracle.canonical(system, thing.entity, record)
            expected = try echo(thing, in: system)
        } catch {
            return ["\(thing.label) in \(system): cannot compare: \(error)"]
        }
        var out: [String] = []
        let actualValues = modelValues(actual, view)
        func wanted(_ field: String) -> Bool { only.map { $0.contains(field) } ?? true }
        let lineFields = expected.carried.filter { $0 == "lines" || $0.hasPrefix("lines.") }
        for field in expected.carried where !lineFields.contains(field) && wanted(field) {
            if !Canonical.equal(expected.values[field], actual.values[field], field: field, entity: thing.entity) {
                out.append(
                    "\(thing.label) \(field) in \(system): expected \(Canonical.text(expected.values[field])) "
                        + "(model \(Canonical.text(thing.values[field])) by \(thing.provenance[field]?.description ?? "nobody")) "
                        + "but it has \(Canonical.text(actual.values[field]))")
            }
        }
        if !lineFields.isEmpty && wanted("lines") {
            let members =
                lineFields.contains("lines")
                ? Array(lineMembers(system)).sorted() : lineFields.map { String($0.dropFirst(6)) }.filter { $0 != "product" }
            if !Canonical.equal(expected.values["lines"], actual.values["lines"], field: "lines", entity: .order, lineMembers: members) {
                out.append(
                    "\(thing.label) lines in \(system) (\(members.joined(separator: ","))): expected "
                        + "\(Canonical.document(expected.values["lines"], field: "lines", entity: .order, lineMembers: members).serializedString()) "
                        + "(by \(thing.provenance["lines"]?.description ?? "nobody")) but it has "
                        + "\(Canonical.document(actual.values["lines"], field: "lines", entity: .order, lineMembers: members).serializedString())")
            }
            let want = (thing.values["lines"]?.array ?? []).map { $0.object?["product"] }
            let have = (actualValues["lines"]?.array ?? []).map { $0.object?["product"] }
            if want.count == have.count, zip(want, have).contains(where: { $0 != $1 }) {
                out.append("\(thing.label) line products in \(system): expected \(want.map(Canonical.text)) but it has \(have.map(Canonical.text))")
            }
        }
        if thing.entity == .order, wanted("customer"), thing.values["customer"] != actualValues["customer"] {
            out.append(
                "\(thing.label) customer in \(system): expected \(Canonical.text(thing.values["customer"])) but it refers to \(Canonical.text(actualValues["customer"]))"
            )
        }
        if wanted("archived"), oracle.mappings.mapper(system: system, entity: thing.entity)?.table.carriedFields.contains("archived") == true {
            let has = actual.values["archived"] == .bool(true)
            if has != thing.archived {
                out.append("\(thing.label) archived in \(system): expected \(thing.archived) but it has \(has)")
            }
        }
        return out
    }

    // MARK: Waiting for what an operation needs

    /// Waits until `condition` holds (re-read every 250 ms); `Stuck` after the run's wait limit.
    func waitFor(_ what: String, thing: Int? = nil, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: settings.waitLimit)
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                if try await condition() { return }
                lastError = nil
            } catch { lastError = error }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw Stuck(description: "waited \(settings.waitLimit) for \(what)" + (lastError.map { " (last error: \($0))" } ?? ""), thing: thing)
    }

    /// Waits until the thing has a record in `system` that the link service has seen, and
    /// returns its native id and the record.
    func present(_ id: Int, in system: SystemName) async throws -> (String, JSONObject) {
        var found: (String, JSONObject)?
        try await waitFor("\(things[id]!.label) to have a record in \(system) the link service knows", thing: id) {
            let view = try await linkView()
            let thing = things[id]!
            guard let native = nativeId(thing, in: system, view), view.global(system, thing.entity, native) != nil,
                let record = try await systems([system]).record(system, thing.entity, native)
            else { return false }
            found = (native, record)
            return true
        }
        return found!
    }

    /// Whether every system that should hold the thing holds it with `fields` (all when `nil`)
    /// as the model expects, and the link service has seen the test's last write in each.
    func settled(_ id: Int, fields: Set<String>?) async throws -> [String] {
        let thing = things[id]!
        let view = try await linkView()
        let systems = try await systems(Array(thing.expectedSystems))
        var waiting: [String] = []
        for system in thing.expectedSystems.sorted(by: { $0.rawValue < $1.rawValue }) {
            guard let native = nativeId(thing, in: system, view), let record = systems.record(system, thing.entity, native) else {
                waiting.append("no record in \(system) yet")
                continue
            }
            // A write the link service has not seen yet could still reach it with a later
            // modification time; once the record holds none of it (Parley overwrote it: a lost
            // edit, which the field checks report when it should have won), it cannot.
            if let written = thing.lastWrite[system], (view.modified(system, thing.entity, native) ?? 0) < written.at,
                let current = try? modelValues(oracle.canonical(system, thing.entity, record), view),
                written.values.contains(where: { field, value in
                    field == "customer"
                        ? current[field] == value
                        : Canonical.equal(
                            current[field], value, field: field, entity: thing.entity,
                            lineMembers: field == "lines" ? Array(lineMembers(system)).sorted() + ["product"] : nil)
                })
            {
                waiting.append("the link service has not seen the test's write in \(system) of \(CivilTime.formatInstant(ms: written.at))")
            }
            waiting += differences(thing, system, record, view, only: fields)
        }
        return waiting
    }

    func waitSettled(_ id: Int, fields: Set<String>?) async throws {
        var last: [String] = []
        do {
            try await waitFor(
                "\(things[id]!.label) \(fields.map { $0.sorted().joined(separator: ",") } ?? "all fields") to agree everywhere", thing: id
            ) {
                last = try await settled(id, fields: fields)
                return last.isEmpty
            }
        } catch let stuck as Stuck {
            throw Stuck(description: stuck.description + ": " + last.joined(separator: "; "), thing: id)
        }
        if fields == nil { things[id]!.needsFullSettle = false }
    }

    // MARK: Recording what the test wrote

    /// Records the fields of `candidates` that differ between a system's record before and
    /// after one of the test's writes, at the record's new modification time. `before` is `nil`
    /// for a create. Returns the fields it recorded.
    @discardableResult
    func recordWrite(_ id: Int, _ system: SystemName, before: JSONObject?, after: JSONObject, candidates: Set<String>?, what: String) async throws
        -> [String]
    {
        let view = try await linkView()
        let thing = things[id]!
        let afterRecord = try oracle.canonical(system, thing.entity, after)
        guard let at = modifiedAt(afterRecord) else { throw Stuck(description: "\(system) reported no modification time for \(thing.label)") }
        let beforeValues = try before.map { modelValues(try oracle.canonical(system, thing.entity, $0), view) } ?? [:]
        var afterValues = modelValues(afterRecord, view)
        let stamp = Stamp(system: system, at: at)
        let assigned = Set(afterRecord.assigned)
        var fields = afterRecord.carried
        if thing.entity == .order { fields.append("customer") }
        var recorded: [String] = []
        var lost: [String] = []
        for field in fields where candidates.map({ $0.contains(field) }) ?? true {
            let members = field == "lines" ? Array(lineMembers(system)).sorted() + ["product"] : nil
            let same =
                field == "customer"
                ? beforeValues[field] == afterValues[field]
                : Canonical.equal(beforeValues[field], afterValues[field], field: field, entity: thing.entity, lineMembers: members)
            if before != nil, same { continue }
            if before == nil, afterValues[field] == nil { continue }  // a create's empty field is no write (rule 4: first contact erases nothing)
            if field == "lines" { afterValues["lines"] = completeLines(afterValues["lines"], from: system, previous: thing.values["lines"]) }
            if field == "lines", before != nil {
                // Line by line and member by member, as the link service merges them.
                let carried = Array(lineMembers(system).subtracting(["product"])).sorted()
                if things[id]!.writeLines(before: beforeValues["lines"], after: afterValues["lines"], members: carried, by: stamp) {
                    recorded.append(field)
                } else {
                    lost.append(field)
                }
                continue
            }
            if things[id]!.write(field, afterValues[field], by: stamp, assigned: assigned.contains(field)) {
                if field == "lines" {
                    for line in Thing.lineIds((afterValues["lines"]?.array ?? []).compactMap(\.object)) { things[id]!.lineStamps[line] = stamp }
                }
                recorded.append(field)
            } else {
                lost.append(field)
            }
        }
        // A person's full name is first and last name: a system that carries only those (the
        // webshop) still changes it everywhere the full name is kept (the ERP's `name`).
        if things[id]!.isPerson, !recorded.contains("name"), recorded.contains("firstName") || recorded.contains("lastName"),
            let first = things[id]!.values["firstName"]?.string, let last = things[id]!.values["lastName"]?.string
        {
            if things[id]!.write("name", .string("\(first) \(last)"), by: stamp) { recorded.append("name (derived)") }
        }
        if !recorded.isEmpty || !lost.isEmpty {
            // What the record now holds of the fields written (as the system reports it).
            var written: [String: JSONValue] = [:]
            for field in recorded + lost where !field.hasSuffix("(derived)") { written[field] = afterValues[field] ?? .null }
            things[id]!.lastWrite[system] = Thing.LastWrite(at: max(things[id]!.lastWrite[system]?.at ?? 0, at), values: written)
        }
        note(
            "  \(what): \(thing.label) in \(system) at \(stamp.description): wrote \(recorded.isEmpty ? "nothing" : recorded.joined(separator: ", "))"
                + (lost.isEmpty ? "" : "; lost to later writes: \(lost.joined(separator: ", "))")
                + (recorded.isEmpty
                    ? "" : " → " + recorded.compactMap { f in things[id]!.values[f].map { "\(f)=\(Self.short($0))" } }.joined(separator: " ")))
        return recorded
    }

    static func short(_ value: JSONValue) -> String {
        let text = value.serializedString()
        return text.count > 160 ? String(text.prefix(157)) + "…" : text
    }

    /// A system's lines as the canonical lines they become: the members it does not carry
    /// (the webshop's discount, PowerOffice Go's VAT rate) are the same line's before the edit —
    /// the line of the same product (DESIGN rule 4: a system that lacks a field never erases it
    /// elsewhere). A line of a product the order did not have before gets none, except a VAT
    /// rate from PowerOffice Go, which is the product's own (docs/testing.md).
    func completeLines(_ lines: JSONValue?, from system: SystemName, previous: JSONValue?) -> JSONValue? {
        guard case .array(let new)? = lines else { return lines }
        let all: Set<String> = ["sku", "description", "quantity", "unitPriceExclVat", "discountPercent", "vatRate"]
        let lacking = all.subtracting(lineMembers(system))
        guard !lacking.isEmpty else { return lines }
        var old = (previous?.array ?? []).compactMap(\.object)
        return .array(
            new.map { value in
                guard case .object(var line) = value else { return value }
                if let i = old.firstIndex(where: { $0["product"] == line["product"] && line["product"] != nil }) {
                    for member in lacking { line[member] = old[i][member] }
                    old.remove(at: i)
                } else if lacking.contains("vatRate"), let product = Thing.thingId(line["product"]), let rate = things[product]?.values["vatRate"] {
                    line["vatRate"] = rate
                }
                return .object(line)
            })
    }

    func newThing(_ entity: CanonicalEntityType) -> Int {
        let id = nextThing
        nextThing += 1
        things[id] = Thing(id: id, entity: entity)
        return id
    }
}
