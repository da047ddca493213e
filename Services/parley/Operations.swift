import ArgumentParser
import Foundation
import ParleyAMQP
import ParleyAdapter
import ParleyCanonical
import ParleyMessaging
import ParleyOperations
import ParleyPostgres
#if canImport(Glibc)
    import Glibc
    import ParleyJSON
    import ParleyEnvelope
#endif

/// Runs `body`, turning an ``OperationsError`` into its message on standard error and exit
/// status 1 (no usage text).
func operation<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as OperationsError {
        throw CLIError(error.description)
    }
}

// MARK: status, top

/// `parley status`: the queues of the Parley vhost and the link service's counts, once.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queues (publish and deliver rates, depth, consumers) and the link service's counts.",
        discussion: """
            Broker: PARLEY_AMQP_MANAGEMENT_URL (RabbitMQ's management API, e.g. http://127.0.0.1:15672/) with the \
            user and vhost of PARLEY_AMQP_URL. Database: PARLEY_DATABASE_URL (the link service's). Exits 1 when \
            either cannot be read, after printing what could.
            """)

    func run() async throws {
        let collector = StatusCollector()
        let report = await collector.collect()
        await collector.close()
        print(StatusRendering.render(report))
        if report.hasErrors { throw ExitCode.failure }
    }
}

/// `parley top`: `status` refreshed every few seconds until Ctrl-C.
struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The status, refreshed live (Ctrl-C quits).",
        discussion: "On a terminal each frame replaces the last; otherwise every frame is printed in turn.")

    @Option(help: "Seconds between refreshes.")
    var interval: Double = 2

    @Flag(help: "Print one frame and exit (with status 1 if anything could not be read).")
    var once = false

    func validate() throws {
        guard interval >= 0.2 else { throw ValidationError("--interval must be at least 0.2 seconds") }
    }

    func run() async throws {
        let collector = StatusCollector()
        let terminal = isatty(STDOUT_FILENO) != 0
        let interval = self.interval
        let once = self.once
        let loop = Task { () -> Bool in
            var failed = false
            while !Task.isCancelled {
                let report = await collector.collect()
                failed = report.hasErrors
                var frame = StatusRendering.render(report)
                if !once { frame += "\n\nrefreshing every \(interval.formatted()) s; Ctrl-C quits" }
                let text = terminal && !once ? StatusRendering.clearScreen + frame + "\n" : frame + (once ? "\n" : "\n\n")
                do {
                    try FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
                } catch {
                    break  // the reader went away (`parley top | head`): stop like Ctrl-C
                }
                if once { break }
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            }
            return failed
        }
        // Ctrl-C (and SIGTERM) end the loop between frames instead of killing the process mid-line.
        _ = signal(SIGINT, SIG_IGN)
        _ = signal(SIGTERM, SIG_IGN)
        let signals = [SIGINT, SIGTERM].map { signal in
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler { loop.cancel() }
            source.resume()
            return source
        }
        let failed = await loop.value
        signals.forEach { $0.cancel() }
        await collector.close()
        if once && failed { throw ExitCode.failure }
    }
}

// MARK: top-level look-ups

/// `parley links`: `parley link show` at the top level.
struct Links: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A record's global entity and all its members (same as `parley link show`).",
        usage: """
            parley links <system> <entity-type> <native-id> [--json]
            parley links --global <type>/<uuid> [--json]
            """)

    @OptionGroup var show: ShowArguments

    func run() async throws { try await show.run() }
}

/// `parley parked`: `parley link parked` at the top level.
struct Parked: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Entities waiting for a referenced entity to reach a system (same as `parley link parked`).")

    @OptionGroup var list: ListOptions
    @OptionGroup var options: LinkOptions

    func run() async throws { try await Link.ParkedList.run(list: list, options: options) }
}

/// `parley failed`: `parley link failed` at the top level.
struct Failed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Entities whose last write to a system failed (same as `parley link failed`).")

    @OptionGroup var list: ListOptions
    @OptionGroup var options: LinkOptions

    func run() async throws { try await Link.FailedList.run(list: list, options: options) }
}

// MARK: dlq

/// `parley dlq list|replay`: the dead-letter queues.
struct DLQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List and replay dead-lettered messages (<queue>.dead).",
        subcommands: [List.self, Replay.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Dead letters with their reason, without taking them (each is put straight back).",
            discussion: "Through the management API (PARLEY_AMQP_MANAGEMENT_URL; user and vhost of PARLEY_AMQP_URL).")

        @Argument(help: "A queue (link.events) or its dead-letter queue (link.events.dead). Default: every dead-letter queue.")
        var queue: String?

        @Option(help: "At most this many dead letters per queue.")
        var limit = 100

        @Flag(help: "One JSON array on standard output instead of a table.")
        var json = false

        func run() async throws {
            let letters: [DeadLetter] = try await operation {
                let api = try ManagementAPI.fromEnvironment()
                var letters: [DeadLetter] = []
                for dead in try await DeadLetters.queues(api, queue: queue) {
                    letters += try await DeadLetters.list(api, deadQueue: dead.name, limit: limit)
                }
                return letters
            }
            if json { return print(JSONValue.array(letters.map(\.json)).serializedString()) }
            if letters.isEmpty { return print("no dead letters" + (queue.map { " in \(DeadLetters.deadQueue(of: $0))" } ?? "")) }
            print(
                TextTable.render(
                    ["QUEUE", "MESSAGE ID", "TYPE", "FAILED AT", "RETRIES", "REASON"],
                    letters.map { l in
                        [l.failedQueue, l.messageId ?? "-", l.typeDescription, l.failedAt ?? "-", l.retries.map(String.init) ?? "-", l.reason]
                    }, alignments: [.left, .left, .left, .left, .right, .left]))
            let full = Dictionary(grouping: letters, by: \.deadQueue).filter { $0.value.count >= limit }.keys.sorted()
            if !full.isEmpty { print("(limit \(limit) reached in \(full.joined(separator: ", ")); --limit shows more)") }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Republish dead letters to the queue they failed in, then remove them from the dead-letter queue.",
            discussion: """
                Each copy goes to the queue itself (not through the exchange) with the failure headers and the retry count \
                removed; the broker confirms it before the dead letter is acked, so nothing is lost. Broker: PARLEY_AMQP_URL.
                """)

        @Argument(help: "The queue (link.events) or its dead-letter queue (link.events.dead).")
        var queue: String

        @Option(help: "Only the dead letter with this message id (see `parley dlq list`).")
        var id: String?

        @Flag(help: "Every dead letter of the queue.")
        var all = false

        func validate() throws {
            guard (id != nil) != all else { throw ValidationError("give --id <message-id> or --all") }
        }

        func run() async throws {
            let report = try await operation {
                let configuration: AMQPConfiguration
                do {
                    configuration = try AMQPConfiguration.fromEnvironment(connectionName: "parley dlq replay")
                } catch {
                    throw OperationsError("\(error)")
                }
                return try await DeadLetters.replay(configuration: configuration, queue: queue, id: id)
            }
            print("replayed \(report.replayed.count) dead letter(s) from \(report.deadQueue) to \(report.originalQueue)")
            for id in report.replayed { print("  \(id)") }
            for failure in report.failures {
                FileHandle.standardError.write(Data("could not replay \(failure.messageId) (left in \(report.deadQueue)): \(failure.reason)\n".utf8))
            }
            if !report.failures.isEmpty { throw ExitCode.failure }
            if let id, report.replayed.isEmpty {
                FileHandle.standardError.write(Data("no dead letter with message id \(id) in \(report.deadQueue)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

// MARK: resync

/// `parley resync`: asks a system's adapter for a full re-read.
struct Resync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a system's adapter to re-read everything (a full rescan) and publish it again.",
        discussion: """
            Records the request in the system's adapter database (PARLEY_<SYSTEM>_ADAPTER_DATABASE_URL, e.g. \
            PARLEY_CUSTOMERP_ADAPTER_DATABASE_URL, else PARLEY_ADAPTER_DATABASE_URL, else PARLEY_DATABASE_URL), \
            table parley_adapter.feed_position. The replica holding the system's poll lease starts the rescan at its \
            next poll and clears the request when done; a request made while no adapter runs waits for one. The link \
            service drops what it already knows, so a resync is safe at any time.
            """)

    @Argument(help: "customerp, customwebshop or powerofficego.", transform: parseSystem)
    var system: SystemName

    @Argument(help: "customer, order or product. Default: all three.", transform: parseEntityType)
    var entityType: CanonicalEntityType?

    func run() async throws {
        try await operation {
            let (configuration, variable) = try OperationsDatabase.configuration(adapters: true, system: system)
            let pool = PostgresPool(configuration: configuration, maxConnections: 1)
            let entities = entityType.map { [$0] } ?? CanonicalEntityType.allCases
            do {
                // The column may be newer than the running adapters: the migration is theirs and idempotent.
                _ = try await Migrator(migrations: AdapterSchema.migrations, schema: AdapterSchema.name).migrate(on: pool)
                let at = try await FeedPositionStore.requestResync(pool: pool, system: system, entities: entities)
                print("requested a full re-read of \(system.rawValue) \(entities.map(\.rawValue).joined(separator: ", ")) at \(Render.time(at));")
                print("the \(system.rawValue) adapter holding the poll lease starts it at its next poll (`parley status` shows the changes flowing)")
            } catch {
                await pool.close()
                throw OperationsError.database(error, configuration, variable: variable)
            }
            await pool.close()
        }
    }
}
