// parley-bench mapping: how many messages per second one core of the mapping service converts,
// with the repository's real tables and the golden native records, against the message plumbing
// alone (decode + encode of the same bytes, no mapping) measured in the same run. No broker, no
// database: `MappingProcessor` is pure. Usage: parley-bench mapping [--repository DIR] [--runs R]
// [--seconds S] [--threads N].
import ArgumentParser
import Foundation
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

struct MappingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mapping",
        abstract: "Canonical conversions per second per core: change → canonical and syncRequest → command vs the envelope plumbing alone.")

    @Option(help: "Repository root: its mappings/ are loaded, its Golden records are the inputs.") var repository = "."
    @Option(help: "Directory of native records <system>-<entity>.json (default: <repository>/Tests/ParleyMappingTests/Golden/records).")
    var records: String?
    @Option(help: "Runs; medians are reported.") var runs = 5
    @Option(help: "Seconds per measurement (conversion counts are calibrated once, before the runs).") var seconds = 0.25
    @Option(
        help:
            "Tasks converting in parallel in each measurement; figures are per core (total / N). The tasks share Swift's cooperative pool, one thread per core, so N above the core count only divides the cores further."
    ) var threads = 1

    /// One table's inputs (or all of them, for the mix), as they arrive on the wire.
    struct Workload: Sendable {
        let name: String
        let change: [[UInt8]]
        let syncRequest: [[UInt8]]
    }

    /// What one measurement does to each input message.
    enum Step: String, Sendable, CaseIterable {
        /// change bytes → Envelope.decode → encoded(): the plumbing a normalise pays anyway.
        case changePlumbing = "change plumbing"
        /// change bytes → Envelope.decode → process(change:) → canonical envelope bytes.
        case normalise
        /// syncRequest bytes → Envelope.decode → encoded().
        case syncRequestPlumbing = "syncRequest plumbing"
        /// syncRequest bytes → Envelope.decode → process(syncRequest:) → command envelope bytes.
        case denormalise
    }

    struct Variant: Sendable {
        let workload: Workload
        let step: Step
        var key: String { "\(workload.name)/\(step.rawValue)" }
        var inputs: [[UInt8]] {
            switch step {
            case .changePlumbing, .normalise: workload.change
            case .syncRequestPlumbing, .denormalise: workload.syncRequest
            }
        }
    }

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    }

    func run() async throws {
        let root = URL(fileURLWithPath: repository)
        let mappings = try Mappings.load(repositoryRoot: root)
        let processor = MappingProcessor(mappings: mappings)
        let recordDirectory =
            records.map { URL(fileURLWithPath: $0) }
            ?? root.appendingPathComponent("Tests/ParleyMappingTests/Golden/records")
        let workloads = try Self.workloads(
            mappings: mappings, processor: processor, records: recordDirectory,
            mappingsDirectory: root.appendingPathComponent("mappings"))
        let mix = Workload(name: "all tables (mix)", change: workloads.flatMap(\.change), syncRequest: workloads.flatMap(\.syncRequest))
        let variants = (workloads + [mix]).flatMap { w in Step.allCases.map { Variant(workload: w, step: $0) } }

        print(
            "parley-bench mapping: \(workloads.count) tables from \(root.standardizedFileURL.path)/mappings, \(runs) runs, "
                + "~\(seconds) s per measurement, \(threads) thread\(threads == 1 ? "" : "s") "
                + "(\(ProcessInfo.processInfo.activeProcessorCount) cores)")
        print(
            threads == 1
                ? "One conversion at a time on one thread: conversions/s here are per core."
                : "\(threads) tasks convert in parallel; conversions/s below are per core (total / \(threads)), the total is \(threads)× them.")
        print("")

        // Calibrate (and warm up): the number of conversions each variant needs for ~`seconds`,
        // a whole number of passes over its inputs so the mix weighs every table equally.
        var counts: [String: Int] = [:]
        for variant in variants {
            var passes = 1
            while true {
                let start = ContinuousClock.now
                _ = try Self.convert(variant.step, variant.inputs, processor: processor, count: passes * variant.inputs.count)
                let elapsed = (ContinuousClock.now - start).seconds
                if elapsed >= 0.05 {
                    passes = max(1, Int((Double(passes) * seconds / elapsed).rounded()))
                    break
                }
                passes *= elapsed < 0.005 ? 10 : 2
            }
            counts[variant.key] = passes * variant.inputs.count
        }

        var rates: [String: [Double]] = [:]
        var cpu: [String: [Double]] = [:]
        for run in 1...runs {
            let runStart = ContinuousClock.now
            // Rotate which variant goes first, by a different stretch each run, so warm-up and
            // the neighbours' noise fall on all of them.
            let offset = (run - 1) * max(1, variants.count / runs)
            for i in 0..<variants.count {
                let variant = variants[(i + offset) % variants.count]
                let count = counts[variant.key]!
                let c0 = Measure.cpuSeconds()
                let elapsed = try await Self.measure(variant, processor: processor, count: count, tasks: threads)
                let cpuSeconds = Measure.cpuSeconds() - c0
                rates[variant.key, default: []].append(Double(count) / elapsed)  // per task, i.e. per core
                cpu[variant.key, default: []].append(cpuSeconds / Double(count * threads) * 1e6)
            }
            let r = { (step: Step) in rates["\(mix.name)/\(step.rawValue)"]!.last! }
            print(
                String(
                    format: "run %d (%.0f s): all tables normalise %.0f/s (%.3fx plumbing), denormalise %.0f/s (%.3fx plumbing)",
                    run, (ContinuousClock.now - runStart).seconds,
                    r(.normalise), r(.normalise) / r(.changePlumbing), r(.denormalise), r(.denormalise) / r(.syncRequestPlumbing)))
        }

        let median = Measure.median
        func ratio(_ a: String, _ b: String) -> Double { median(zip(rates[a]!, rates[b]!).map { $0 / $1 }) }
        for (title, base, step, side) in [
            (
                "normalise: change envelope bytes → Envelope.decode → process(change:) → canonical envelope bytes",
                Step.changePlumbing, Step.normalise, \Workload.change
            ),
            (
                "denormalise: syncRequest envelope bytes → Envelope.decode → process(syncRequest:) → command envelope bytes",
                Step.syncRequestPlumbing, Step.denormalise, \Workload.syncRequest
            )
        ] {
            print("")
            print(title)
            print(
                "baseline = Envelope.decode + encoded() of the same bytes; ratio = conversions/s ÷ baseline's (median of the runs' ratios); "
                    + "+µs = what the mapping adds per conversion")
            print("table                   in B |  baseline/s     µs |  mapping/s     µs  CPU µs |  ratio    +µs")
            for w in workloads + [mix] {
                let b = "\(w.name)/\(base.rawValue)", m = "\(w.name)/\(step.rawValue)"
                let bytes = w[keyPath: side].map(\.count).reduce(0, +) / w[keyPath: side].count
                let baseRate = median(rates[b]!), rate = median(rates[m]!)
                print(
                    w.name.padding(toLength: 22, withPad: " ", startingAt: 0)
                        + String(
                            format: " %5d | %10.0f %6.2f | %10.0f %6.2f %7.2f | %5.3fx %6.2f",
                            bytes, baseRate, 1e6 / baseRate, rate, 1e6 / rate, median(cpu[m]!),
                            ratio(m, b), 1e6 / rate - 1e6 / baseRate))
            }
        }
        print("")
        let (n, d) = (median(rates["\(mix.name)/normalise"]!), median(rates["\(mix.name)/denormalise"]!))
        print(String(format: "all tables, per core: normalise %.0f conversions/s, denormalise %.0f conversions/s", n, d))
        if threads > 1 {
            print(
                String(
                    format: "all tables, %d threads in total: normalise %.0f conversions/s, denormalise %.0f conversions/s",
                    threads, n * Double(threads), d * Double(threads)))
        }
    }

    // MARK: Inputs

    /// For each table, a change envelope carrying the golden native record, and a syncRequest
    /// envelope that writes its normalised form back into the same system as an update (what the
    /// link service would send): references resolved to global refs, targetIds mapping them back.
    static func workloads(mappings: Mappings, processor: MappingProcessor, records: URL, mappingsDirectory: URL) throws -> [Workload] {
        var refs = GlobalRefs()
        var workloads: [Workload] = []
        for table in mappings.tables {
            let (system, entity) = (table.system, table.entity)
            let name = "\(system.rawValue) \(entity.rawValue)"
            let file = records.appendingPathComponent("\(system.rawValue)-\(entity.rawValue).json")
            guard let data = FileManager.default.contents(atPath: file.path) else {
                throw Failure("no input record for \(name): \(file.path)")
            }
            let record = try JSONValue.parse(data)
            let mapper = mappings.mapper(system: system, entity: entity)!
            let normalised = try mapper.toCanonical(record)
            guard let nativeId = normalised.nativeId else { throw Failure("\(file.path): the record has no id") }

            let change = try Envelope(
                kind: .change, system: system, entityType: entity.messagingEntityType, entityId: nativeId,
                payload: ChangePayload(record: record).json)
            let globalId = refs.ref(system, entity, nativeId)
            let request = SyncRequestPayload(
                operation: .update, targetId: nativeId, entity: CanonicalJSON.nest(refs.resolve(normalised), entity: entity),
                targetIds: Dictionary(normalised.references.map { (refs.ref(system, $0.entity, $0.id), $0.id) }, uniquingKeysWith: { a, _ in a }),
                writeId: "bench-write")
            let syncRequest = try Envelope(
                kind: .syncRequest, system: system, entityType: entity.messagingEntityType,
                entityId: String(globalId.split(separator: "/").last!), payload: request.json)

            // Time only the paths the service takes for good data: a rejection or a `failed`
            // event would measure error handling instead.
            let canonical = try processor.process(change: change)
            guard canonical.envelope.kind == .canonical else { throw Failure("\(name): change gave \(canonical.envelope.kind)") }
            let command = try processor.process(syncRequest: syncRequest)
            guard command.envelope.kind == .command else {
                throw Failure("\(name): syncRequest gave \(command.envelope.kind): \(command.envelope.payload)")
            }
            workloads.append(Workload(name: name, change: [change.encoded()], syncRequest: [syncRequest.encoded()]))
        }
        guard !workloads.isEmpty else { throw Failure("no mapping tables in \(mappingsDirectory.path)") }
        return workloads
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// A stand-in for the link service's identity table: one global ref per native id.
    struct GlobalRefs {
        var refs: [String: String] = [:]

        mutating func ref(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String) -> String {
            let key = "\(system.rawValue)/\(entity.rawValue)/\(id)"
            if let ref = refs[key] { return ref }
            let ref = GlobalRef(entity, id: UUID()).description
            refs[key] = ref
            return ref
        }

        /// What the link service does with a normalised record: its native references become
        /// global refs in the canonical values (a line's at `lines[i].product`).
        mutating func resolve(_ record: NormalisedRecord) -> [String: JSONValue] {
            var values = record.values
            for reference in record.references {
                let ref = JSONValue.string(self.ref(record.system, reference.entity, reference.id))
                if reference.path.hasPrefix("lines["), let close = reference.path.firstIndex(of: "]"),
                    let index = Int(reference.path[reference.path.index(reference.path.startIndex, offsetBy: 6)..<close]),
                    case .array(var lines)? = values["lines"], lines.indices.contains(index), case .object(var line) = lines[index]
                {
                    line[String(reference.path[reference.path.index(close, offsetBy: 2)...])] = ref
                    lines[index] = .object(line)
                    values["lines"] = .array(lines)
                } else {
                    values[reference.path] = ref
                }
            }
            return values
        }
    }

    // MARK: Timing

    /// Wall-clock seconds for `tasks` tasks, each converting `count` messages.
    static func measure(_ variant: Variant, processor: MappingProcessor, count: Int, tasks: Int) async throws -> Double {
        let (step, inputs) = (variant.step, variant.inputs)
        let start = ContinuousClock.now
        let bytes = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<tasks {
                group.addTask { try convert(step, inputs, processor: processor, count: count) }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = (ContinuousClock.now - start).seconds
        precondition(bytes > 0)  // the outputs are used
        return elapsed
    }

    /// `count` conversions, cycling through `inputs`; returns the output bytes.
    @inline(never)
    static func convert(_ step: Step, _ inputs: [[UInt8]], processor: MappingProcessor, count: Int) throws -> Int {
        var bytes = 0
        var next = 0
        for _ in 0..<count {
            let input = inputs[next]
            next = next + 1 == inputs.count ? 0 : next + 1
            switch step {
            case .changePlumbing, .syncRequestPlumbing:
                bytes &+= try Envelope.decode(input).encoded().count
            case .normalise:
                bytes &+= try processor.process(change: Envelope.decode(input)).envelope.encoded().count
            case .denormalise:
                bytes &+= try processor.process(syncRequest: Envelope.decode(input)).envelope.encoded().count
            }
        }
        return bytes
    }
}
