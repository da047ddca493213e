import Foundation
import ParleyCanonical
import ParleyLink
import ParleyMapping
import ParleyMessaging
import ParleyPostgres
import ParleyEnvelope

/// The convergence test's checks (docs/testing.md, "What it checks").
extension ConvergenceRun {
    /// Runs the operations: a few creates in every system first, then the seed's random mix.
    /// Returns `false` when an operation waited in vain (the run then goes straight to the checks).
    func operate() async -> Bool {
        let opening: [(CanonicalEntityType, SystemName)] = [
            (.customer, .customerp), (.product, .customerp), (.product, .customerp), (.customer, .customwebshop),
            (.product, .customwebshop), (.customer, .powerofficego), (.product, .powerofficego)
        ]
        note("\(settings): \(settings.operations) operations")
        for index in 0..<settings.operations {
            progress.withLock { $0 = index }
            note("#\(index)")
            do {
                if index < opening.count {
                    try await create(opening[index].0, in: opening[index].1)
                } else {
                    try await randomOperation()
                }
            } catch let stuck as Stuck {
                problem("operation #\(index) could not go on: \(stuck)")
                guard let id = stuck.thing else {
                    progress.withLock { $0 = Int.max }
                    return false
                }
                things[id]!.diverged = true
                note("  \(things[id]!.label) is left alone from now on")
            } catch {
                problem("operation #\(index) failed: \(error)")
            }
            try? await Task.sleep(for: .milliseconds(rng.int(0...250)))
        }
        progress.withLock { $0 = Int.max }
        note("operations done")
        return true
    }

    /// Checks again and again until every check passes or the limit runs out; the last
    /// differences found (none when the systems converged).
    func converge() async -> [String] {
        let deadline = ContinuousClock.now.advanced(by: settings.convergeLimit)
        var last: [String] = []
        var rounds = 0
        // The same differences for 30 s with no write in flight or waiting (no write slot, an
        // empty outbox) and no adapter command: nothing is going to change them, so a failing
        // run does not sit out the whole limit.
        var stable: (findings: [String], since: ContinuousClock.Instant, commands: [String: Int])?
        while ContinuousClock.now < deadline {
            rounds += 1
            do { last = try await check(final: false) } catch { last = ["the check itself failed: \(error)"] }
            if last.isEmpty {
                note("converged after \(rounds) check(s)")
                return []
            }
            let commands = (try? await stack.commandsDelivered()) ?? [:]
            let idle =
                ((try? await link.query("select (select count(*) from write_slot) + (select count(*) from outbox)"))?.first
                    .flatMap { try? $0.decode(Int.self, at: 0) }) == 0
            if idle, let s = stable, s.findings == last, s.commands == commands {
                if ContinuousClock.now - s.since > .seconds(30) {
                    note("no write in flight and the same \(last.count) difference(s) for 30 s: not converging")
                    return last
                }
            } else {
                stable = idle ? (last, ContinuousClock.now, commands) : nil
            }
            try? await Task.sleep(for: .seconds(2))
        }
        note("not converged after \(settings.convergeLimit)")
        return last
    }

    /// Every check of the issue: each thing's records linked once per system where the flows
    /// lead and nowhere else, every field as the model expects (through each system's mapping),
    /// the link database's members, keys, parked, failed and conflicting entities, and (`final`)
    /// no write in flight, nothing in the outbox and nothing dead-lettered.
    func check(final: Bool) async throws -> [String] {
        let view = try await linkView()
        let all = try await systems()
        var out: [String] = []

        // The records the test created for one thing are members of one global entity.
        for thing in things.values.sorted(by: { $0.id < $1.id }) {
            var entities: [String: [String]] = [:]
            for (system, native) in thing.origins.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                guard !thing.deletedIn.contains(system) else { continue }
                guard let global = view.global(system, thing.entity, native) else {
                    out.append("\(thing.label): its \(system) record \(native) is no member of any global entity")
                    continue
                }
                entities[global, default: []].append("\(system) \(native)")
            }
            if entities.count > 1 {
                out.append(
                    "\(thing.label): its records are \(entities.count) global entities, not one: "
                        + entities.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value.joined(separator: ", "))" }.joined(separator: "; "))
            }
        }

        // Every record of every system is one thing's, and each thing has one record where the
        // flows lead, agreeing with the model field by field.
        var seen: [Int: [SystemName: [String]]] = [:]
        for system in SystemName.simulated {
            for entity in CanonicalEntityType.all {
                for (native, record) in (all.records[system]?[entity] ?? [:]).sorted(by: { $0.key < $1.key }) {
                    guard let id = thing(of: system, entity, native, view) else {
                        out.append(
                            "\(system) \(entity.rawValue) \(native) is no record the test made nor linked to one "
                                + "(global entity \(view.global(system, entity, native) ?? "none")): \(Self.short(.object(record)))")
                        continue
                    }
                    seen[id, default: [:]][system, default: []].append(native)
                }
            }
        }
        for thing in things.values.sorted(by: { $0.id < $1.id }) {
            for system in SystemName.simulated {
                let natives = seen[thing.id]?[system] ?? []
                if thing.expectedSystems.contains(system) {
                    if natives.isEmpty {
                        out.append("\(thing.label) has no record in \(system)")
                    } else if natives.count > 1 {
                        out.append("\(thing.label) has \(natives.count) records in \(system): \(natives.joined(separator: ", "))")
                    } else if let record = all.record(system, thing.entity, natives[0]) {
                        out += differences(thing, system, record, view)
                    }
                } else if !natives.isEmpty {
                    out.append(
                        "\(thing.label) has a record in \(system), where no flow leads it\(thing.deletedIn.contains(system) ? " (deleted there)" : ""): \(natives.joined(separator: ", "))"
                    )
                }
            }
        }

        // The link database.
        let rows = try await link.query(
            """
            select g.id::text, g.entity_type, (select count(*) from member m where m.global_id = g.id)::int,
                   coalesce((select string_agg(m.system || ' ' || m.native_id, ', ' order by m.system) from member m where m.global_id = g.id), '')
            from global_entity g order by g.created_at
            """)
        let known = Set(globals.values)
        for row in rows {
            let global = try row.decode(String.self, at: 0), type = try row.decode(String.self, at: 1)
            let members = try row.decode(Int.self, at: 2), list = try row.decode(String.self, at: 3)
            if members == 0 {
                out.append("global \(type) \(global) has no member (an entity made for a reference that nothing filled)")
            } else if !known.contains(global) {
                out.append("global \(type) \(global) (\(list)) is no thing's entity")
            }
        }
        var keysByEntity: [String: Set<String>] = [:]
        for row in try await link.query("select entity_type, kind, value, global_id::text from natural_key") {
            keysByEntity[try row.decode(String.self, at: 3), default: []].insert(
                "\(try row.decode(String.self, at: 1))=\(try row.decode(String.self, at: 2))")
        }
        for row in try await link.query(
            """
            select entity_type, kind, value, string_agg(global_id::text, ', ') from natural_key group by 1, 2, 3 having count(*) > 1
            """)
        {
            out.append(
                "natural key \(try row.decode(String.self, at: 0)) \(try row.decode(String.self, at: 1))=\(try row.decode(String.self, at: 2)) "
                    + "is on more than one entity: \(try row.decode(String.self, at: 3))")
        }
        for thing in things.values.sorted(by: { $0.id < $1.id }) where thing.entity != .order {
            guard let global = globals[thing.id] else { continue }
            var expected: Set<String> = []
            if thing.entity == .product {
                if let sku = NaturalKeys.sku(thing.values["sku"]?.string) { expected.insert("sku=\(sku)") }
            } else {
                if let org = NaturalKeys.organizationNumber(thing.values["organizationNumber"]?.string) {
                    expected.insert("organizationNumber=\(org)")
                }
                if let email = NaturalKeys.email(thing.values["email"]?.string) { expected.insert("email=\(email)") }
            }
            let stored = keysByEntity[global] ?? []
            if stored != expected {
                out.append("\(thing.label): natural keys \(stored.sorted()) stored, \(expected.sorted()) expected")
            }
        }
        for row in try await link.query("select global_id::text, system, waiting_for::text, reason from parked") {
            out.append(
                "parked: \(try row.decode(String.self, at: 0)) for \(try row.decode(String.self, at: 1)), waiting for "
                    + "\(try row.decode(String.self, at: 2)): \(try row.decode(String.self, at: 3))")
        }
        for row in try await link.query("select global_id::text, system, kind, reason, transient, attempts from failed") {
            out.append(
                "failed: \(try row.decode(String.self, at: 0)) in \(try row.decode(String.self, at: 1)) (\(try row.decode(String.self, at: 2)), "
                    + "transient \(try row.decode(Bool.self, at: 4)), \(try row.decode(Int.self, at: 5)) attempts): \(try row.decode(String.self, at: 3))"
            )
        }
        for row in try await link.query("select global_id::text, system, native_id, reason from conflict") {
            out.append(
                "conflict: \(try row.decode(String.self, at: 1)) \(try row.decode(String.self, at: 2)) on \(try row.decode(String.self, at: 0)): "
                    + "\(try row.decode(String.self, at: 3))")
        }
        if final {
            for row in try await link.query("select global_id::text, system, operation, pending from write_slot") {
                out.append(
                    "write still in flight: \(try row.decode(String.self, at: 2)) of \(try row.decode(String.self, at: 0)) in \(try row.decode(String.self, at: 1))"
                )
            }
            // A row whose message went out but whose delete did not (the link service killed
            // in between) waits out its claim before the sweep sends it again: the outbox
            // drains within that, or it is stuck.
            let drained = ContinuousClock.now.advanced(by: OutboxRelay.claim + .seconds(15))
            var count = 0
            repeat {
                count = try await link.query("select count(*)::int from outbox").first?.decode(Int.self, at: 0) ?? 0
                if count > 0 { try await Task.sleep(for: .seconds(1)) }
            } while count > 0 && ContinuousClock.now < drained
            if count > 0 { out.append("\(count) messages left in the outbox \(OutboxRelay.claim + .seconds(15)) after convergence") }
            out += try await stack.deadLettered().map { "dead-lettered: \($0)" }
        }
        return out
    }

    /// The link service's tables as text, for the record of a failed run (the database is
    /// dropped with the stack).
    func linkDump() async -> String {
        var out = ""
        let queries = [
            "global_entity": "select id, entity_type, state::text, provenance::text from global_entity order by created_at",
            "member": "select global_id, system, entity_type, native_id, source_modified_at, snapshot::text from member order by global_id, system",
            "natural_key": "select global_id, entity_type, kind, value from natural_key order by global_id",
            "write_slot": "select global_id, system, operation, pending, held::text from write_slot",
            "parked": "select global_id, system, waiting_for::text, reason from parked",
            "failed": "select global_id, system, kind, reason, transient, attempts from failed",
            "conflict": "select global_id, system, native_id, member_id, reason from conflict"
        ]
        for (table, sql) in queries.sorted(by: { $0.key < $1.key }) {
            out += "== \(table)\n"
            do {
                for row in try await link.query("select row_to_json(t)::text from (\(sql)) t") {
                    out += ((try? row.decode(String.self, at: 0)) ?? "?") + "\n"
                }
            } catch { out += "(\(error))\n" }
        }
        return out
    }

    /// The run's summary for the report: the things and their expected values.
    func modelDump() -> [String] {
        things.values.sorted { $0.id < $1.id }.map { thing in
            "\(thing.label) origins \(thing.origins.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: ",")) "
                + "global \(globals[thing.id] ?? "?")\(thing.deletedIn.isEmpty ? "" : " deleted in \(thing.deletedIn.map(\.rawValue).sorted())"): "
                + thing.values.sorted { $0.key < $1.key }.map {
                    "\($0.key)=\(Self.short($0.value)) [\(thing.provenance[$0.key]?.description ?? "-")]"
                }.joined(separator: " ")
        }
    }
}
