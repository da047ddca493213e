// parley-bench link: canonical changes per second through the real link service (consumers,
// engine, outbox relay, maintenance) on the local PostgreSQL and RabbitMQ, against pgbench
// writing the same rows in the same run. Everything happens in a scratch database
// (parley_bench_<random>) and a scratch vhost, both dropped afterwards. Usage: parley-bench link
// [--messages N] [--runs R] [--batch-sizes 1 100] [--clients C] [--pgbench-seconds S]
// [--repository DIR]. Needs PARLEY_DATABASE_URL, PARLEY_AMQP_URL, PARLEY_AMQP_MANAGEMENT_URL.
import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyLink
import ParleyLinkCore
import ParleyMapping
import ParleyMessaging
import ParleyPostgres
import ServiceLifecycle
import ParleyJSON
import ParleyEnvelope

struct LinkBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Canonical changes per second through the link service (broker → engine → outbox → broker) vs pgbench writing the same rows.")

    @Option(help: "Canonical messages per link measurement (distinct new ERP customers).") var messages = 20_000
    @Option(help: "Runs; medians are reported.") var runs = 3
    @Option(
        parsing: .upToNextOption,
        help: "The link consumer's batch sizes (messages per transaction) to measure; pgbench uses the same rows per transaction.")
    var batchSizes: [Int] = [1, 100]
    @Option(
        help:
            "pgbench clients (-c/-j). The link service handles link.canonical on one consumer, one transaction at a time: 1 is the like-for-like figure."
    )
    var clients = 1
    @Option(help: "Seconds per pgbench measurement.") var pgbenchSeconds = 5
    @Option(help: "Batches the link service's consumers handle at once (link-service --transactions; its default).") var transactions = 4
    @Option(help: "Database connections of the link service's pool (default: link-service's, 2 × transactions + 2).") var connections: Int?
    @Option(help: "Repository root (its mappings/ build the canonical messages and the written fields).") var repository = "."
    @Option(help: "pgbench executable (default: on PATH, else /usr/lib/postgresql/*/bin/pgbench).") var pgbench: String?
    @Flag(help: "Skip the engine-only variant (the same messages handled in-process, no broker).") var noEngineOnly = false
    @Option(help: "Give up on a measurement after this many seconds.") var timeout = 900.0

    func validate() throws {
        guard runs >= 1, messages >= 1, clients >= 1, pgbenchSeconds >= 1 else {
            throw ValidationError("--runs, --messages, --clients, --pgbench-seconds must be positive")
        }
        guard !batchSizes.isEmpty, batchSizes.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--batch-sizes must be positive") }
    }

    // MARK: Variants

    enum Variant: Hashable, CustomStringConvertible {
        /// The real LinkService: N messages pre-published to parley.canonical.
        case link(Int)
        /// LinkEngine.handle in the bench process: the consumer's transaction loop without the broker.
        case engine(Int)
        /// pgbench inserting the rows one change ends with, `batch` changes per transaction.
        case pgChange(Int)
        /// pgbench upserting one global_entity row (jsonb state), `batch` per transaction.
        case pgEntity(Int)

        var description: String {
            switch self {
            case .link(let b): "link service b=\(b)"
            case .engine(let b): "engine only b=\(b)"
            case .pgChange(let b): "pgbench change rows b=\(b)"
            case .pgEntity(let b): "pgbench entity upsert b=\(b)"
            }
        }
    }

    struct Sample {
        /// Changes (or pgbench row units) per second.
        var rate: Double
        /// For the link service: changes/s until the last one was committed (before the relay caught up).
        var processedRate: Double?
        /// pgbench transactions per second.
        var tps: Double?
        /// µs of this process's CPU per change, and of the whole machine's (all processes, excluding steal).
        var clientCPU: Double
        var machineCPU: Double
        /// µs per change of the scratch database's PostgreSQL backends, and of the broker (beam.smp).
        var postgresCPU: Double = .nan
        var brokerCPU: Double = .nan
    }

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let databaseURL = env["PARLEY_DATABASE_URL"], let amqpURL = env["PARLEY_AMQP_URL"],
            let managementURL = env["PARLEY_AMQP_MANAGEMENT_URL"]
        else {
            throw ValidationError("set PARLEY_DATABASE_URL, PARLEY_AMQP_URL and PARLEY_AMQP_MANAGEMENT_URL (source /var/tmp/parley-local/parley.env)")
        }
        _ = ServiceLogging.bootstrap(level: "warning", label: "parley-bench")
        let pgbenchPath = try pgbench ?? Self.findPgbench()
        let database = try PostgresConfiguration(url: databaseURL)
        let broker = try AMQPEndpoint(url: amqpURL)
        let management = Management(base: managementURL, user: broker.user, password: broker.password)

        let mappings = try Mappings.load(repositoryRoot: URL(fileURLWithPath: repository))
        let engine = LinkEngine(configuration: LinkConfiguration(writtenFields: mappings.writtenFields))
        let processor = MappingProcessor(mappings: mappings)
        let t0 = ContinuousClock.now
        let canonical = try Self.canonicalMessages(count: messages, processor: processor)
        let normaliseSeconds = (ContinuousClock.now - t0).seconds

        print(
            "parley-bench link: \(messages) canonical messages (new customerp customers), batch sizes \(batchSizes.map(String.init).joined(separator: ", ")), link service \(transactions) transaction\(transactions == 1 ? "" : "s") at once per queue, "
                + "\(runs) runs, pgbench \(pgbenchSeconds) s × \(clients) client\(clients == 1 ? "" : "s") (\(ProcessInfo.processInfo.activeProcessorCount) cores)"
        )
        print("database: \(database)  broker: \(broker)  pgbench: \(pgbenchPath)")
        print(
            String(
                format: "(built the messages through MappingProcessor in %.1f s: %.0f normalises/s, not part of any figure)",
                normaliseSeconds, Double(messages) / normaliseSeconds))

        // The row shapes pgbench writes come from the engine itself: one message handled in a
        // scratch database, its rows read back.
        let sample = try await withScratchDatabase(database) { pool in
            try await Self.sampleRows(pool: pool, engine: engine, message: canonical[0])
        }
        print(
            String(
                format: "one change writes: global_entity state %d B + provenance %d B, member snapshot %d B, outbox body %d B",
                sample.state.utf8.count, sample.provenance.utf8.count, sample.snapshot.utf8.count, sample.body.count))
        try Self.measureRules(canonical, configuration: engine.configuration, runs: runs)
        print("")

        var variants: [Variant] = []
        for b in batchSizes {
            variants.append(.link(b))
            if !noEngineOnly { variants.append(.engine(b)) }
            variants.append(.pgChange(b))
            variants.append(.pgEntity(b))
        }
        var samples: [Variant: [Sample]] = [:]
        for run in 1...runs {
            let offset = (run - 1) * max(1, variants.count / runs)
            for i in 0..<variants.count {
                let variant = variants[(i + offset) % variants.count]
                let machine0 = Self.machineBusySeconds()
                var s: Sample
                switch variant {
                case .link(let b):
                    s = try await measureLink(
                        batchSize: b, messages: canonical, engine: engine, database: database,
                        broker: broker, management: management)
                case .engine(let b):
                    s = try await measureEngine(batchSize: b, messages: canonical, engine: engine, database: database)
                case .pgChange(let b), .pgEntity(let b):
                    let change: Bool = if case .pgChange = variant { true } else { false }
                    s = try await measurePgbench(change ? .change : .entity, batch: b, sample: sample, database: database, path: pgbenchPath)
                }
                // The whole machine's busy time (neighbours included; setup, pre-publishing and
                // pgbench's calibration too), per change: a sanity check on the split above.
                let machineSeconds = Self.machineBusySeconds() - machine0
                s.machineCPU = machineSeconds / Double(messages) * 1e6
                if case .pgChange = variant { s.machineCPU = .nan }
                if case .pgEntity = variant { s.machineCPU = .nan }
                samples[variant, default: []].append(s)
                print(
                    "run \(run)  " + variant.description.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: " %9.0f /s", s.rate)
                        + (s.processedRate.map { String(format: "  (all committed at %.0f/s)", $0) } ?? "")
                        + (s.tps.map { String(format: "  (%.0f tx/s)", $0) } ?? "")
                        + String(format: "   CPU µs/change: client %.0f, postgres %.0f, broker %.0f", s.clientCPU, s.postgresCPU, s.brokerCPU))
            }
        }
        report(variants: variants, samples: samples)
    }

    func report(variants: [Variant], samples: [Variant: [Sample]]) {
        let median = Measure.median
        func m(_ v: Variant, _ key: (Sample) -> Double?) -> Double? {
            let xs = samples[v]?.compactMap(key) ?? []
            return xs.isEmpty ? nil : median(xs)
        }
        func ratio(_ a: Variant, _ b: Variant) -> Double? {
            guard let xs = samples[a], let ys = samples[b], xs.count == ys.count else { return nil }
            return median(zip(xs, ys).map { $0.rate / $1.rate })
        }
        print("")
        print("medians over \(runs) runs; a 'change' = one canonical message (link) or the rows one change ends with (pgbench change rows)")
        print(
            "CPU µs per change: client = this process (the link service runs in it), postgres = the scratch database's backends, broker = beam.smp (shared)"
        )
        print("variant                       changes|rows/s       tx/s   client µs  postgres µs  broker µs")
        for v in variants {
            let tps: Double? =
                switch v {
                case .pgChange, .pgEntity: m(v) { $0.tps }
                case .link(let b), .engine(let b): m(v) { $0.rate / Double(b) }
                }
            let client: Double =
                switch v {
                case .pgChange, .pgEntity: .nan
                case .link, .engine: m(v) { $0.clientCPU }!
                }
            print(
                v.description.padding(toLength: 30, withPad: " ", startingAt: 0)
                    + String(
                        format: " %12.0f %10.0f  %10.0f  %11.0f %10.0f", m(v) { $0.rate }!, tps ?? .nan, client,
                        m(v) { $0.postgresCPU }!, m(v) { $0.brokerCPU }!))
        }
        for b in batchSizes {
            if let committed = m(.link(b), { $0.processedRate }) {
                print(
                    String(
                        format: "link service b=%d: all %d messages committed at %.0f/s (before the relay's last confirms)", b, messages, committed))
            }
        }
        print("")
        for b in batchSizes {
            var line = "b=\(b): link service / pgbench change rows " + String(format: "%.3fx", ratio(.link(b), .pgChange(b)) ?? .nan)
            line += ", / pgbench entity upsert " + String(format: "%.3fx", ratio(.link(b), .pgEntity(b)) ?? .nan)
            if !noEngineOnly {
                line += ", link service / engine only " + String(format: "%.3fx", ratio(.link(b), .engine(b)) ?? .nan)
                line += ", engine only / pgbench change rows " + String(format: "%.3fx", ratio(.engine(b), .pgChange(b)) ?? .nan)
            }
            print(line)
        }
        if let best = batchSizes.compactMap({ b in m(.link(b)) { $0.rate }.map { (b, $0) } }).max(by: { $0.1 < $1.1 }) {
            let goal = 5000.0
            print(
                String(format: "goal >= %.0f canonical changes/s: best median %.0f/s at b=%d: ", goal, best.1, best.0)
                    + (best.1 >= goal ? "met" : String(format: "not met (%.1fx short)", goal / best.1)))
        }
    }

    // MARK: Messages

    /// `count` canonical envelopes for distinct new ERP customers (valid organisation number and
    /// e-mail each, so each is matched by both keys and found new), through the mapping service's
    /// `process(change:)` exactly as the mapping service makes them.
    /// The link rules alone: the same messages through ``MemoryLinkStore`` (no database, no
    /// broker), a fresh store per run; prints the median rate and CPU per change. What the
    /// rules cost of the engine's client CPU, measured in the same run as the rest.
    static func measureRules(_ messages: [Envelope], configuration: LinkConfiguration, runs: Int) throws {
        let now = Date()
        var rates: [Double] = [], cpu: [Double] = []
        for _ in 0..<max(1, runs) {
            let store = MemoryLinkStore(configuration: configuration)
            let (start, startCPU) = (ContinuousClock.now, CPUSampler.threadCPUSeconds())
            for message in messages { _ = try store.deliver(message, now: now) }
            let (seconds, cpuSeconds) = ((ContinuousClock.now - start).seconds, CPUSampler.threadCPUSeconds() - startCPU)
            guard store.outbox.count == messages.count else {
                throw ValidationError("rules alone: \(store.outbox.count) sync requests for \(messages.count) new customers")
            }
            rates.append(Double(messages.count) / seconds)
            cpu.append(cpuSeconds * 1e6 / Double(messages.count))
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        print(
            String(
                format: "rules alone (MemoryLinkStore, no database): %.0f changes/s, %.0f µs CPU per change (median of %d runs: %@)",
                median(rates), median(cpu), rates.count, rates.map { String(format: "%.0f", $0) }.joined(separator: ", ")))
    }

    static func canonicalMessages(count: Int, processor: MappingProcessor) throws -> [Envelope] {
        var result: [Envelope] = []
        result.reserveCapacity(count)
        var base = 91_000_000 - 1
        for i in 0..<count {
            var org: String?
            while org == nil {
                base += 1
                org = organizationNumber(base)
            }
            let id = "BENCH-\(i)"
            let record: JSONValue = .object([
                "id": .string(id), "customerType": "COMPANY", "name": .string("Bench Kunde \(i) AS"),
                "orgNo": .string(org!), "email": .string("kunde\(i)@bench.example.no"), "phone": .string("+47 22 \(10_000 + i % 90_000)")
            ])
            let change = try Envelope(
                kind: .change, system: .customerp, entityType: CanonicalEntityType.customer.messagingEntityType, entityId: id,
                payload: ChangePayload(record: record).json)
            let output = try processor.process(change: change).envelope
            guard output.kind == .canonical else { throw Failure("customer \(id) gave \(output.kind): \(output.payload)") }
            result.append(output)
        }
        return result
    }

    /// A 9-digit Norwegian organisation number with a valid mod-11 check digit, from an 8-digit base.
    static func organizationNumber(_ base: Int) -> String? {
        let digits = String(base).compactMap { $0.wholeNumberValue }
        guard digits.count == 8 else { return nil }
        let sum = zip(digits, [3, 2, 7, 6, 5, 4, 3, 2]).reduce(0) { $0 + $1.0 * $1.1 }
        var check = 11 - sum % 11
        if check == 11 { check = 0 }
        guard check != 10 else { return nil }
        return String(base) + String(check)
    }

    // MARK: Link service

    func measureLink(
        batchSize: Int, messages: [Envelope], engine: LinkEngine, database: PostgresConfiguration,
        broker: AMQPEndpoint, management: Management
    ) async throws -> Sample {
        let vhost = "parley_bench_" + Self.randomSuffix()
        try await management.createVhost(vhost, user: broker.user)
        do {
            var endpoint = broker
            endpoint.vhost = vhost
            let amqp = AMQPConfiguration(endpoints: [endpoint], connectionName: "parley-bench-link")
            let sample = try await withScratchDatabase(database) { pool in
                try await runLink(
                    batchSize: batchSize, messages: messages, engine: engine, pool: pool, amqp: amqp,
                    vhost: vhost, management: management)
            }
            try await management.deleteVhost(vhost)
            return sample
        } catch {
            try? await management.deleteVhost(vhost)
            throw error
        }
    }

    func runLink(
        batchSize: Int, messages: [Envelope], engine: LinkEngine, pool: PostgresPool, amqp: AMQPConfiguration,
        vhost: String, management: Management
    ) async throws -> Sample {
        // Pre-publish everything (the publisher declares Parley's topology in the vhost first).
        let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
        let routingKey = ParleyTopology.routingKey(system: .customerp, entityType: CanonicalEntityType.customer.messagingEntityType)
        var next = 0
        while next < messages.count {
            let chunk = messages[next..<min(next + 512, messages.count)].map {
                OutgoingMessage(envelope: $0, exchange: ParleyTopology.Exchanges.canonical, routingKey: routingKey)
            }
            for result in await publisher.publish(contentsOf: chunk) { try result.get() }
            next += chunk.count
        }
        await publisher.close()

        let servicePool = PostgresPool(configuration: pool.configuration, maxConnections: connections ?? 2 * max(1, transactions) + 2)
        let service = LinkService(
            amqp: amqp, pool: servicePool, engine: engine, batchSize: batchSize, transactions: transactions,
            logger: Logger(label: "parley.bench.link"))
        let group = ServiceGroup(
            configuration: .init(
                services: service.services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                logger: Logger(label: "parley.bench.link")))
        let n = messages.count
        let sampler = CPUSampler.start(database: pool.configuration.database)
        let client0 = Measure.cpuSeconds()
        let start = ContinuousClock.now
        let running = Task { try await group.run() }
        var processed: Double?
        var published: Double?
        do {
            // The outbox id sequence counts sync requests queued (O(1) to read); once it reaches N
            // the inbox is counted (every message committed), then the outbox must be empty
            // (every sync request published and confirmed by the broker, then deleted).
            while published == nil {
                try await Task.sleep(for: .milliseconds(20))
                if (ContinuousClock.now - start).seconds > timeout { throw Failure("link b=\(batchSize): timed out") }
                if processed == nil {
                    let queued = try await pool.query("select case when is_called then last_value else 0 end from outbox_id_seq")[0].decode(
                        Int.self, at: 0)
                    guard queued >= n else { continue }
                    let inbox = try await pool.query("select count(*) from inbox")[0].decode(Int.self, at: 0)
                    guard inbox >= n else { continue }
                    processed = (ContinuousClock.now - start).seconds
                }
                let left = try await pool.query("select count(*) from outbox")[0].decode(Int.self, at: 0)
                if left == 0 { published = (ContinuousClock.now - start).seconds }
            }
        } catch {
            _ = await sampler.stop()
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            await service.publisher.close()
            await servicePool.close()
            throw error
        }
        let cpu = await sampler.stop()
        let client = Measure.cpuSeconds() - client0 - cpu.own
        await group.triggerGracefulShutdown()
        try await running.value
        await service.publisher.close()
        await servicePool.close()

        // What came out: one new global entity and one webshop create per message, all of them
        // on mapping.sync, nothing dead-lettered.
        let entities = try await pool.query("select count(*) from global_entity")[0].decode(Int.self, at: 0)
        guard entities == n else { throw Failure("link b=\(batchSize): \(entities) global entities for \(n) messages") }
        let syncQueue = try await management.messages(vhost: vhost, queue: ParleyTopology.Queues.mappingSync, expect: n)
        // The relay publishes at least once (a row whose confirm or delete did not happen is
        // claimed again after 30 s; consumers deduplicate by message id): more is reported, fewer fails.
        guard syncQueue >= n else { throw Failure("link b=\(batchSize): mapping.sync holds \(syncQueue) messages, expected \(n)") }
        if syncQueue > n {
            let distinct = try await pool.query("select count(*) from inbox")[0].decode(Int.self, at: 0)
            print(
                "note: link b=\(batchSize): mapping.sync holds \(syncQueue) messages for \(n) sync requests (\(syncQueue - n) published again by the relay; inbox \(distinct))"
            )
        }
        return Sample(
            rate: Double(n) / published!, processedRate: Double(n) / processed!, clientCPU: client / Double(n) * 1e6, machineCPU: 0,
            postgresCPU: cpu.postgres / Double(n) * 1e6, brokerCPU: cpu.broker / Double(n) * 1e6)
    }

    // MARK: Engine only

    /// The consumer's transaction loop (LinkConsumer.process: decode, `LinkBatch.process`,
    /// `batchSize` per transaction) fed from memory: what the link service costs without the broker.
    func measureEngine(batchSize: Int, messages: [Envelope], engine: LinkEngine, database: PostgresConfiguration) async throws -> Sample {
        let bodies = messages.map { $0.encoded() }
        return try await withScratchDatabase(database) { pool in
            let sampler = CPUSampler.start(database: pool.configuration.database)
            let client0 = Measure.cpuSeconds()
            let start = ContinuousClock.now
            var next = 0
            while next < bodies.count {
                let batch = try bodies[next..<min(next + batchSize, bodies.count)].map { try Envelope.decode($0) }
                next += batch.count
                let results = try await LinkBatch.process(batch, engine: engine, pool: pool).results
                guard results.allSatisfy({ $0 == .done }) else { throw Failure("engine b=\(batchSize): a message was rejected: \(results)") }
            }
            let elapsed = (ContinuousClock.now - start).seconds
            let cpu = await sampler.stop()
            let client = Measure.cpuSeconds() - client0 - cpu.own
            let outbox = try await pool.query("select count(*) from outbox")[0].decode(Int.self, at: 0)
            guard outbox == bodies.count else { throw Failure("engine b=\(batchSize): \(outbox) sync requests for \(bodies.count) messages") }
            let n = Double(bodies.count)
            return Sample(
                rate: n / elapsed, clientCPU: client / n * 1e6, machineCPU: 0,
                postgresCPU: cpu.postgres / n * 1e6, brokerCPU: cpu.broker / n * 1e6)
        }
    }

    // MARK: pgbench

    /// What the engine wrote for one message, as text, for pgbench to write again.
    struct SampleRows: Sendable {
        var state: String
        var provenance: String
        var snapshot: String
        var snapshotHash: String
        var body: [UInt8]
    }

    static func sampleRows(pool: PostgresPool, engine: LinkEngine, message: Envelope) async throws -> SampleRows {
        try await pool.transaction { tx in _ = try engine.handle(message, in: tx, now: Date()) }
        let row = try await pool.query(
            """
            select g.state::text, g.provenance::text, m.snapshot::text, m.snapshot_hash, o.body
            from global_entity g join member m on m.global_id = g.id, outbox o
            """)[0]
        let rows = try await pool.query(
            "select (select count(*) from natural_key), (select count(*) from write_slot), (select count(*) from outbox)")[0]
        guard try rows.decode(Int.self, at: 0) == 2, try rows.decode(Int.self, at: 1) == 1, try rows.decode(Int.self, at: 2) == 1 else {
            throw Failure("a new customer did not write the expected rows (2 natural keys, 1 write slot, 1 outbox row)")
        }
        return SampleRows(
            state: try row.decode(String.self, at: 0), provenance: try row.decode(String.self, at: 1),
            snapshot: try row.decode(String.self, at: 2), snapshotHash: try row.decode(String.self, at: 3),
            body: try row.decode([UInt8].self, at: 4))
    }

    enum Script { case change, entity }

    /// pgbench's script. `:k` is a random 53-bit number per transaction; row i of the transaction
    /// derives its ids from it. JSON goes in as text cast to jsonb, as the engine sends it.
    static func script(_ script: Script, batch: Int) -> String {
        let rows = "generate_series(1, \(batch)) i, bench_sample s"
        let id = { (tag: String) in "md5($k || '/\(tag)/' || i)::uuid".replacingOccurrences(of: "$k", with: ":k::text") }
        var sql = "\\set k random(1, 9007199254740991)\nbegin;\n"
        switch script {
        case .entity:
            sql += """
                insert into global_entity (id, entity_type, state, provenance)
                  select \(id("g")), 'customer', s.state::jsonb, s.provenance::jsonb from \(rows)
                  on conflict (id) do update set state = excluded.state, provenance = excluded.provenance, updated_at = now();

                """
        case .change:
            sql += """
                insert into inbox (message_id) select \(id("m")) from \(rows) on conflict do nothing;
                insert into global_entity (id, entity_type, state, provenance)
                  select \(id("g")), 'customer', s.state::jsonb, s.provenance::jsonb from \(rows);
                insert into member (global_id, system, entity_type, native_id, snapshot, snapshot_hash, source_modified_at)
                  select \(id("g")), 'customerp', 'customer', 'C-' || :k::text || '-' || i, s.snapshot::jsonb, s.snapshot_hash, now() from \(rows)
                  on conflict (system, entity_type, native_id) do nothing;
                insert into natural_key (entity_type, kind, value, global_id)
                  select 'customer', k.kind, k.kind || :k::text || '-' || i, \(id("g")) from \(rows),
                    (values ('organizationNumber'), ('email')) k (kind) on conflict do nothing;
                insert into write_slot (global_id, system, write_id, operation, idempotency_key, lease_until, pending)
                  select \(id("g")), 'customwebshop', \(id("w"))::text, 'create', 'customer/' || \(id("g"))::text, now() + interval '60 seconds', false
                  from \(rows) on conflict (global_id, system) do nothing;
                insert into outbox (message_id, exchange, routing_key, body)
                  select \(id("o")), 'parley.sync', 'customwebshop.customer', s.body from \(rows);

                """
        }
        return sql + "commit;\n"
    }

    func measurePgbench(_ kind: Script, batch: Int, sample: SampleRows, database: PostgresConfiguration, path: String) async throws -> Sample {
        try await withScratchDatabase(database) { pool in
            _ = try await pool.execute("create table bench_sample (state text, provenance text, snapshot text, snapshot_hash text, body bytea)")
            _ = try await pool.execute(
                "insert into bench_sample values ($1, $2, $3, $4, $5)",
                [sample.state, sample.provenance, sample.snapshot, sample.snapshotHash, sample.body])
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-\(Self.randomSuffix()).sql")
            try Self.script(kind, batch: batch).write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let config = pool.configuration
            // A fixed number of transactions (-t), not -T: pgbench's -T timer is a SIGALRM, which a
            // child of this process never gets (Swift's threads block it). A short calibration
            // run sizes the measured one to about --pgbench-seconds.
            func pgbench(transactions: Int) async throws -> (tps: Double, output: String) {
                let output = try await Self.runProcess(
                    path,
                    [
                        "-n", "-M", "extended", "-c", "\(clients)", "-j", "\(clients)", "-t", "\(transactions)", "-f", file.path,
                        "-h", config.host, "-p", "\(config.port)", "-U", config.user, config.database
                    ], environment: config.password.map { ["PGPASSWORD": $0] } ?? [:])
                guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
                    let tps = Double(line.dropFirst(6).prefix { !$0.isWhitespace })
                else {
                    throw Failure("pgbench gave no tps:\n\(output)")
                }
                if let failed = output.split(separator: "\n").first(where: { $0.hasPrefix("number of failed transactions: ") }),
                    !failed.hasPrefix("number of failed transactions: 0 ")
                {
                    throw Failure("pgbench had failed transactions:\n\(output)")
                }
                return (tps, output)
            }
            let calibration = try await pgbench(transactions: max(5, 200 / batch))
            let transactions = max(10, Int(calibration.tps * Double(pgbenchSeconds) / Double(clients)))
            let sampler = CPUSampler.start(database: config.database)
            let (tps, _) = try await pgbench(transactions: transactions)
            let cpu = await sampler.stop()
            let units = Double(transactions * clients * batch)
            return Sample(
                rate: tps * Double(batch), tps: tps, clientCPU: 0, machineCPU: 0,
                postgresCPU: cpu.postgres / units * 1e6, brokerCPU: cpu.broker / units * 1e6)
        }
    }

    static func findPgbench() throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/pgbench"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        let root = "/usr/lib/postgresql"
        for version in ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted(by: >) {
            let p = "\(root)/\(version)/bin/pgbench"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw ValidationError("pgbench not found: install postgresql (Debian) or pass --pgbench")
    }

    static func runProcess(_ path: String, _ arguments: [String], environment: [String: String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        // Read on a thread of its own so a full pipe never blocks the child.
        let data: Data = await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: out.fileHandleForReading.readDataToEndOfFile()) }
        }
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else { throw Failure("\(path) exited \(process.terminationStatus):\n\(text)") }
        return text
    }

    // MARK: Scratch resources

    /// A database of its own (created through the configured role, dropped afterwards), with
    /// the link schema migrated.
    func withScratchDatabase<T: Sendable>(_ base: PostgresConfiguration, _ body: (PostgresPool) async throws -> T) async throws -> T {
        let name = try PostgresIdentifier("parley_bench_" + Self.randomSuffix())
        let admin = PostgresPool(configuration: base, maxConnections: 1)
        _ = try await admin.execute("CREATE DATABASE " + name.quoted)
        var config = base
        config.database = name.name
        config.applicationName = "parley-bench"
        let pool = PostgresPool(configuration: config, maxConnections: 2)
        do {
            _ = try await Migrator(migrations: LinkSchema.migrations, schema: "public").migrate(on: pool)
            let value = try await body(pool)
            await pool.close()
            try await admin.dropDatabase(name)
            await admin.close()
            return value
        } catch {
            await pool.close()
            try? await admin.dropDatabase(name)
            await admin.close()
            throw error
        }
    }

    static func randomSuffix() -> String {
        String(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12))
    }

    /// RabbitMQ's management API: a vhost of the bench's own.
    struct Management: Sendable {
        let base: String
        let user: String
        let password: String

        func request(_ method: String, _ path: String, body: String? = nil) async throws -> (Int, Data) {
            var request = URLRequest(url: URL(string: base.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path)!)
            request.httpMethod = method
            request.setValue("Basic " + Data("\(user):\(password)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
            if let body {
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.httpBody = Data(body.utf8)
            }
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        }

        static func escape(_ s: String) -> String {
            s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "_-."))) ?? s
        }

        func createVhost(_ vhost: String, user: String) async throws {
            let (status, data) = try await request("PUT", "/api/vhosts/\(Self.escape(vhost))", body: "{}")
            guard (200..<300).contains(status) else {
                throw Failure("creating vhost \(vhost): HTTP \(status) \(String(decoding: data, as: UTF8.self))")
            }
            let (s2, d2) = try await request(
                "PUT", "/api/permissions/\(Self.escape(vhost))/\(Self.escape(user))",
                body: #"{"configure":".*","write":".*","read":".*"}"#)
            guard (200..<300).contains(s2) else { throw Failure("permissions on \(vhost): HTTP \(s2) \(String(decoding: d2, as: UTF8.self))") }
        }

        func deleteVhost(_ vhost: String) async throws {
            let (status, data) = try await request("DELETE", "/api/vhosts/\(Self.escape(vhost))")
            guard (200..<300).contains(status) || status == 404 else {
                throw Failure("deleting vhost \(vhost): HTTP \(status) \(String(decoding: data, as: UTF8.self))")
            }
        }

        /// The queue's message count; the management statistics lag by a few seconds, so this
        /// waits (up to 30 s) for `expect`.
        func messages(vhost: String, queue: String, expect: Int) async throws -> Int {
            var last = -1
            for _ in 0..<60 {
                let (status, data) = try await request("GET", "/api/queues/\(Self.escape(vhost))/\(Self.escape(queue))")
                if status == 200, case .object(let o) = try JSONValue.parse(data), let count = o["messages"]?.number?.int {
                    last = count
                    if count == expect { return count }
                }
                try await Task.sleep(for: .milliseconds(500))
            }
            return last
        }
    }

    // MARK: CPU

    /// CPU seconds of the scratch database's PostgreSQL backends (processes whose title names the
    /// database, polled every 100 ms so a backend that exits loses at most its last 100 ms) and of
    /// the broker's beam.smp, from /proc.
    struct CPUSampler {
        let task: Task<(postgres: Double, broker: Double, own: Double), Never>

        static func start(database: String) -> CPUSampler {
            let first = sample(database: database)
            return CPUSampler(
                task: Task {
                    var seen = first
                    // The sampling's own CPU time, which the caller takes off this process's.
                    var own = 0.0
                    func poll() {
                        let c0 = threadCPUSeconds()
                        seen.merge(sample(database: database)) { $1 }
                        own += threadCPUSeconds() - c0
                    }
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(100))
                        poll()
                    }
                    poll()
                    var postgres = 0.0, broker = 0.0
                    for (pid, (kind, seconds)) in seen {
                        let delta = seconds - (first[pid]?.1 ?? 0)
                        if kind == "postgres" { postgres += delta } else { broker += delta }
                    }
                    return (postgres, broker, own)
                })
        }

        func stop() async -> (postgres: Double, broker: Double, own: Double) {
            task.cancel()
            return await task.value
        }

        /// User + system CPU seconds of the calling thread (poll() does not suspend, so it stays on one).
        static func threadCPUSeconds() -> Double {
            var usage = rusage()
            getrusage(1 /* RUSAGE_THREAD */, &usage)
            func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
            return s(usage.ru_utime) + s(usage.ru_stime)
        }

        /// pid → (postgres|broker, utime+stime seconds).
        static func sample(database: String) -> [Int32: (String, Double)] {
            var result: [Int32: (String, Double)] = [:]
            let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                    let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
                else { continue }
                let comm = stat[stat.index(after: open)..<close]
                let kind: String
                if comm == "beam.smp" {
                    kind = "broker"
                } else if comm == "postgres" {
                    guard let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                        String(decoding: cmdline, as: UTF8.self).contains(" \(database) ")
                    else { continue }
                    kind = "postgres"
                } else {
                    continue
                }
                // Fields after the command: state is field 3, utime 14, stime 15.
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
                result[pid] = (kind, (user + system) / tick)
            }
            return result
        }
    }

    /// Busy seconds of the whole machine (all cores, /proc/stat: user+nice+system+irq+softirq,
    /// not idle, iowait or steal) so far.
    static func machineBusySeconds() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
        else { return 0 }
        let f = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard f.count >= 7 else { return 0 }
        return (f[0] + f[1] + f[2] + f[5] + f[6]) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
