import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
import ParleyTestSupport

/// The randomized convergence test of issue 17 (docs/testing.md, "The convergence test"): per
/// seed, the whole product as processes, random interleaved operations in all three systems
/// through their own APIs, then convergence, ten quiet seconds and every check. Knobs (environment):
///
/// - `PARLEY_CONVERGENCE_SEEDS`: `17`, `3,17`, `1-20`; unset: seed 1 without chaos and seed 2 with it
/// - `PARLEY_CONVERGENCE_CHAOS`: `1` (chaos), `0` (none, the default), `both` — for the seeds given
/// - `PARLEY_CONVERGENCE_OPS`: operations per seed (default 60)
/// - `PARLEY_CONVERGENCE_WAIT_SECONDS`, `PARLEY_CONVERGENCE_SECONDS`, `PARLEY_CONVERGENCE_RUN_MINUTES`:
///   how long one operation may wait, how long convergence may take, and one seed at most
/// - `PARLEY_CONVERGENCE_GO_LINE_ADDS=0`: no order lines added in PowerOffice Go
/// - `PARLEY_CONVERGENCE_CONFLICTS=0`: no near-simultaneous edits of one field in two systems
/// - `PARLEY_CONVERGENCE_AVOID`: operations to leave out, comma-separated (`customwebshop.lines`,
///   `lineDiscount`, `powerofficego.firstName`, `twin`, `archive`, `delete`; see ``ConvergenceRun/Settings/avoid``)
@Suite("Convergence: seeded random operations in all three systems, every service as a process", .serialized)
struct ConvergenceTests {
    struct Plan {
        var runs: [(seed: UInt64, chaos: Bool)]
        var operations: Int
        var goLineAdds: Bool
        var conflicts: Bool
        var avoid: Set<String>
        var waitSeconds: Int?
        var convergeSeconds: Int?
        var runMinutes: Int

        static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Plan {
            var runs: [(UInt64, Bool)] = [(1, false), (2, true)]
            if let text = env["PARLEY_CONVERGENCE_SEEDS"], !text.isEmpty {
                var seeds: [UInt64] = []
                for part in text.split(separator: ",") {
                    let bounds = part.split(separator: "-").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
                    if bounds.count == 2, bounds[0] <= bounds[1] {
                        seeds += Array(bounds[0]...bounds[1])
                    } else if bounds.count == 1 {
                        seeds.append(bounds[0])
                    }
                }
                let chaos = env["PARLEY_CONVERGENCE_CHAOS"] ?? "0"
                runs = seeds.flatMap { seed -> [(UInt64, Bool)] in
                    chaos == "both" ? [(seed, false), (seed, true)] : [(seed, chaos == "1" || chaos == "true" || chaos == "on")]
                }
            }
            return Plan(
                runs: runs, operations: env["PARLEY_CONVERGENCE_OPS"].flatMap { Int($0) } ?? 60,
                goLineAdds: env["PARLEY_CONVERGENCE_GO_LINE_ADDS"] != "0",
                conflicts: env["PARLEY_CONVERGENCE_CONFLICTS"] != "0",
                avoid: Set(
                    (env["PARLEY_CONVERGENCE_AVOID"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                        !$0.isEmpty
                    }),
                waitSeconds: env["PARLEY_CONVERGENCE_WAIT_SECONDS"].flatMap { Int($0) },
                convergeSeconds: env["PARLEY_CONVERGENCE_SECONDS"].flatMap { Int($0) },
                runMinutes: env["PARLEY_CONVERGENCE_RUN_MINUTES"].flatMap { Int($0) } ?? 12)
        }
    }

    struct Outcome: Sendable {
        var passed: Bool
        var report: String
    }

    @Test(
        "Random interleaved creates, edits, conflicting edits, archives and deletes in all three systems converge: every record linked once per system, every field the last write to it, nothing parked, failed or dead-lettered, then quiet; in chaos mode with every service killed once and the broker and database restarted",
        .timeLimit(.minutes(1000)))
    func convergence() async throws {
        let plan = Plan.fromEnvironment()
        let oracle = try Oracle()
        var failures: [String] = []
        var passed = 0
        var privateServers: Stack.Servers?
        var startedPrivate = false
        for (seed, chaos) in plan.runs {
            let settings = ConvergenceRun.Settings(
                seed: seed, chaos: chaos, operations: plan.operations,
                waitLimit: .seconds(plan.waitSeconds ?? (chaos ? 180 : 45)),
                convergeLimit: .seconds(plan.convergeSeconds ?? (chaos ? 300 : 120)),
                goLineAdds: plan.goLineAdds, conflicts: plan.conflicts, avoid: plan.avoid)
            var chosen = Stack.Servers.local
            if chaos {
                if privateServers == nil {
                    startedPrivate = !(try await PrivateServers.running())
                    privateServers = try await PrivateServers.up()
                }
                chosen = privateServers!
            }
            let servers = chosen
            let outcome: Outcome
            do {
                outcome = try await withDeadline(.seconds(plan.runMinutes * 60), "convergence \(settings)") {
                    try await Self.run(settings, on: servers, oracle: oracle)
                }
            } catch {
                outcome = Outcome(passed: false, report: "\(settings): \(error)")
            }
            print(outcome.report)
            if outcome.passed {
                passed += 1
            } else {
                failures.append("seed \(seed)\(chaos ? " (chaos)" : "")")
                Issue.record("convergence \(settings) failed; replay: \(Self.replay(settings))")
            }
        }
        if startedPrivate { try? await PrivateServers.control("down") }
        print("convergence: \(passed) passed, \(failures.count) failed" + (failures.isEmpty ? "" : " (\(failures.joined(separator: ", ")))"))
    }

    static func replay(_ settings: ConvergenceRun.Settings) -> String {
        "PARLEY_CONVERGENCE_SEEDS=\(settings.seed) PARLEY_CONVERGENCE_CHAOS=\(settings.chaos ? 1 : 0) PARLEY_CONVERGENCE_OPS=\(settings.operations)"
            + (settings.goLineAdds ? "" : " PARLEY_CONVERGENCE_GO_LINE_ADDS=0") + (settings.conflicts ? "" : " PARLEY_CONVERGENCE_CONFLICTS=0")
            + (settings.avoid.isEmpty ? "" : " PARLEY_CONVERGENCE_AVOID=\(settings.avoid.sorted().joined(separator: ","))")
            + " swift test --filter Convergence"
    }

    /// One seed, start to end; the report says what happened and, when it failed, everything
    /// needed to understand it (the operations, the model, the differences, where the logs are).
    static func run(_ settings: ConvergenceRun.Settings, on servers: Stack.Servers, oracle: Oracle) async throws -> Outcome {
        try await Stack.run("convergence-\(settings.seed)\(settings.chaos ? "-chaos" : "")", on: servers) { stack in
            let progress = Locked(0)
            let run = ConvergenceRun(settings: settings, stack: stack, oracle: oracle, progress: progress)
            // A process that exits by itself is a failure; it is started again so the run can go on.
            let supervisor = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if let gone = try? stack.restartExited(), !gone.isEmpty {
                        for process in gone { await run.problem("\(process) exited by itself (its log: \(stack.logs.path)); started again") }
                    }
                }
            }
            var chaos: Task<Void, Never>?
            if settings.chaos {
                let labels = Stack.services.flatMap { stack.labels(of: $0) }
                let events = Chaos.schedule(seed: settings.seed, operations: settings.operations, labels: labels)
                await run.note("chaos schedule: " + events.map { "#\($0.atOperation) \($0.action)" }.joined(separator: "; "))
                chaos = Task { await Chaos.run(events, stack: stack, progress: progress, note: { await run.note($0) }) }
            }
            do { try await stack.startTrace() } catch { await run.note("no message trace: \(error)") }
            let started = ContinuousClock.now
            let completed = await run.operate()
            await chaos?.value
            let operated = ContinuousClock.now - started
            var divergences = await run.converge()
            let converged = ContinuousClock.now - started
            var quietWrites = 0
            if divergences.isEmpty {
                quietWrites = (try? await stack.quietWrites(window: .seconds(10))) ?? -1
                do { divergences = try await run.check(final: true) } catch { divergences = ["the final check failed: \(error)"] }
            }
            supervisor.cancel()
            let (log, problems) = await run.report()
            let model = await run.modelDump()
            let dump = await run.linkDump()
            await run.close()
            var findings = problems + divergences
            if quietWrites != 0 {
                findings.append(
                    quietWrites < 0
                        ? "the quiet check could not read the adapters' metrics" : "\(quietWrites) writes in the ten quiet seconds after convergence")
            }
            let passed = findings.isEmpty && completed
            var report =
                "convergence \(settings): \(passed ? "passed" : "FAILED") — operations \(operated.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 0)))), "
                + "converged after \(converged.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 0))))"
            if !passed {
                report +=
                    "\n  replay: \(replay(settings))\n  logs: \(stack.logs.path)\n  findings:\n"
                    + findings.map { "    - \($0)" }.joined(separator: "\n")
                    + "\n  operations:\n" + log.map { "    \($0)" }.joined(separator: "\n")
                    + "\n  model:\n" + model.map { "    \($0)" }.joined(separator: "\n")
            }
            try? (report + (passed ? "\n  operations:\n" + log.map { "    \($0)" }.joined(separator: "\n") : "") + "\n")
                .write(to: stack.logs.appendingPathComponent("convergence.log"), atomically: true, encoding: .utf8)
            if !passed {
                try? dump.write(to: stack.logs.appendingPathComponent("link-database.txt"), atomically: true, encoding: .utf8)
                let trace = (try? await stack.drainTrace()) ?? []
                try? (trace.joined(separator: "\n") + "\n").write(
                    to: stack.logs.appendingPathComponent("messages.txt"), atomically: true, encoding: .utf8)
            }
            return Outcome(passed: passed, report: report)
        }
    }
}
