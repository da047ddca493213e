import ArgumentParser
import Foundation
import ParleyCanonical
import ParleyLink
import ParleyMessaging
import ParleyOperations
import ParleyPostgres
import ParleyJSON
import ParleyEnvelope

/// `parley link ...`: the link service's state (docs/cli.md), read through ``LinkQueries``.
struct Link: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Look up global entities and list parked, failed and conflicting ones.",
        discussion: "Database: PARLEY_DATABASE_URL or PARLEY_DATABASE_URL_FILE (the link service's).",
        subcommands: [Show.self, ParkedList.self, WaitingList.self, FailedList.self, ConflictList.self, CountsCommand.self, Retry.self])
}

struct LinkOptions: ParsableArguments {
    @Flag(help: "One JSON document on standard output instead of tables.")
    var json = false

    /// Runs `body` with a one-connection pool on the link service's database.
    func withQueries<T: Sendable>(_ body: (LinkQueries) async throws -> T) async throws -> T {
        let configuration: PostgresConfiguration
        do {
            configuration = try PostgresConfiguration.fromEnvironment(applicationName: "parley")
        } catch {
            throw CLIError("\(error)")
        }
        let pool = PostgresPool(configuration: configuration, maxConnections: 1)
        do {
            let result = try await body(LinkQueries(pool: pool))
            await pool.close()
            return result
        } catch let error as PostgresError where error.kind == .connectionFailed || error.kind == .connectionLost {
            await pool.close()
            throw CLIError(OperationsError.database(error, configuration).description)
        } catch {
            await pool.close()
            throw error
        }
    }

    func emit(_ value: JSONValue) {
        print(value.serializedString())
    }
}

/// Filters shared by the list commands.
struct ListOptions: ParsableArguments {
    @Option(help: "At most this many rows.")
    var limit = 100

    @Option(help: "Only this system (customerp, customwebshop, powerofficego).", transform: parseSystem)
    var system: SystemName?

    @Option(name: .customLong("type"), help: "Only this entity type (customer, order, product).", transform: parseEntityType)
    var entityType: CanonicalEntityType?

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    /// Printed under a table that was cut off.
    func footer(_ count: Int) -> String? {
        count == limit ? "(limit \(limit) reached: `parley link counts` has the totals; --limit shows more)" : nil
    }
}

func parseSystem(_ text: String) throws -> SystemName {
    guard let system = SystemName(rawValue: text), ParleyTopology.systems.contains(system) else {
        throw ValidationError("not a system: \(text) (\(ParleyTopology.systems.map(\.rawValue).joined(separator: ", ")))")
    }
    return system
}

func parseEntityType(_ text: String) throws -> CanonicalEntityType {
    guard let type = CanonicalEntityType(rawValue: text) else {
        throw ValidationError("not an entity type: \(text) (customer, order or product)")
    }
    return type
}

func parseGlobalRef(_ text: String) throws -> GlobalRef {
    guard let ref = GlobalRef(text) else { throw ValidationError("not a global id: \(text) (expected <type>/<uuid>)") }
    return ref
}

/// An error that is not a usage error: its message and exit status 1, no usage text.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: show

extension Link {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "A record's global entity: canonical state with provenance, members, writes, parked, failed, conflicts.",
            usage: """
                parley link show <system> <entity-type> <native-id> [--json]
                parley link show --global <type>/<uuid> [--json]
                """)

        @OptionGroup var show: ShowArguments

        func run() async throws { try await show.run() }
    }
}

/// What `parley links` and `parley link show` take, and what they do.
struct ShowArguments: ParsableArguments {
    @Argument(help: "The record's system.", transform: parseSystem)
    var system: SystemName?

    @Argument(help: "customer, order or product.", transform: parseEntityType)
    var entityType: CanonicalEntityType?

    @Argument(help: "The record's id in its system.")
    var nativeId: String?

    @Option(name: .customLong("global"), help: "A global id, <type>/<uuid>, instead of a record.", transform: parseGlobalRef)
    var globalId: GlobalRef?

    @OptionGroup var options: LinkOptions

    func validate() throws {
        let record = [system != nil, entityType != nil, nativeId != nil]
        if globalId != nil {
            guard !record.contains(true) else { throw ValidationError("give either --global or <system> <entity-type> <native-id>") }
        } else {
            guard !record.contains(false) else { throw ValidationError("give <system> <entity-type> <native-id>, or --global <type>/<uuid>") }
        }
    }

    func run() async throws {
        let entity = try await options.withQueries { queries in
            if let globalId { return try await queries.entity(globalId: globalId) }
            return try await queries.entity(system: system!, entityType: entityType!, nativeId: nativeId!)
        }
        let what = globalId.map(\.description) ?? "\(system!) \(entityType!.rawValue) \(nativeId!)"
        guard let entity else {
            if options.json { options.emit(.null) }
            FileHandle.standardError.write(Data("no global entity for \(what)\n".utf8))
            throw ExitCode(2)
        }
        if options.json { return options.emit(entity.json) }
        print(Render.entity(entity))
    }
}

// MARK: lists

extension Link {
    struct ParkedList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "parked", abstract: "Entities waiting for a referenced entity to reach a system (longest waiting first).")

        @OptionGroup var list: ListOptions
        @OptionGroup var options: LinkOptions

        func run() async throws { try await Self.run(list: list, options: options) }

        static func run(list: ListOptions, options: LinkOptions) async throws {
            let rows = try await options.withQueries { try await $0.parked(limit: list.limit, system: list.system, entityType: list.entityType) }
            if options.json { return options.emit(.array(rows.map(\.json))) }
            print(
                Render.table(
                    ["ID", "SYSTEM", "RECORDS", "WAITING FOR", "SINCE"],
                    rows.map { row in
                        [
                            row.ref.description, row.system.rawValue, Render.records(row.members), row.parking.waitingFor.joined(separator: ", "),
                            Render.time(row.parking.parkedAt)
                        ]
                    }, empty: "nothing parked", footer: list.footer(rows.count)))
        }
    }

    struct WaitingList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "waiting",
            abstract:
                "Changes waiting for records their own system has not reported yet, such as an order before its products (longest waiting first).")

        @OptionGroup var list: ListOptions
        @OptionGroup var options: LinkOptions

        func run() async throws {
            let rows = try await options.withQueries { try await $0.waiting(limit: list.limit, system: list.system, entityType: list.entityType) }
            if options.json { return options.emit(.array(rows.map(\.json))) }
            print(
                Render.table(
                    ["SYSTEM", "TYPE", "RECORD", "WAITING FOR", "SINCE", "REASON"],
                    rows.map { row in
                        [
                            row.record.system.rawValue, row.entityType.rawValue, row.record.nativeId, Render.records(row.waitingFor),
                            Render.time(row.since), row.reason
                        ]
                    }, empty: "no change waits", footer: list.footer(rows.count)))
        }
    }

    struct FailedList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "failed", abstract: "Entities whose last write to a system failed (most recent first).")

        @OptionGroup var list: ListOptions
        @OptionGroup var options: LinkOptions

        func run() async throws { try await Self.run(list: list, options: options) }

        static func run(list: ListOptions, options: LinkOptions) async throws {
            let rows = try await options.withQueries { try await $0.failed(limit: list.limit, system: list.system, entityType: list.entityType) }
            if options.json { return options.emit(.array(rows.map(\.json))) }
            print(
                Render.table(
                    ["ID", "SYSTEM", "RECORDS", "KIND", "RETRY", "ATTEMPTS", "FAILED AT", "REASON"],
                    rows.map { row in
                        let f = row.failure
                        return [
                            row.ref.description, row.system.rawValue, Render.records(row.members), f.kind,
                            f.transient ? "at \(f.retryAt.map(Render.time) ?? "-")" : "on change", String(f.attempts), Render.time(f.failedAt),
                            f.reason
                        ]
                    }, empty: "nothing failed", footer: list.footer(rows.count)))
        }
    }

    struct ConflictList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "conflicts", abstract: "Records held because another record of their system matches the same entity (most recent first).")

        @OptionGroup var list: ListOptions
        @OptionGroup var options: LinkOptions

        func run() async throws {
            let rows = try await options.withQueries { try await $0.conflicts(limit: list.limit, system: list.system, entityType: list.entityType) }
            if options.json { return options.emit(.array(rows.map(\.json))) }
            print(
                Render.table(
                    ["ID", "SYSTEM", "HELD", "MEMBER", "DETECTED", "REASON"],
                    rows.map { row in
                        [row.ref.description, row.system.rawValue, row.nativeId, row.memberId, Render.time(row.detectedAt), row.reason]
                    }, empty: "no conflicts", footer: list.footer(rows.count)))
        }
    }

    struct CountsCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "counts",
            abstract: "Global entities per type; members, writes in flight, parked, failed and conflicts per system and type; the outbox backlog.")

        @OptionGroup var options: LinkOptions

        func run() async throws {
            let counts = try await options.withQueries { try await $0.counts() }
            if options.json { return options.emit(counts.json) }
            print(
                Render.table(
                    ["ENTITY TYPE", "GLOBAL ENTITIES"],
                    CanonicalEntityType.allCases.map { [$0.rawValue, String(counts.entities[$0] ?? 0)] }, empty: ""))
            print()
            print(
                Render.table(
                    ["SYSTEM", "TYPE", "MEMBERS", "IN FLIGHT", "PARKED", "FAILED", "(TRANSIENT)", "CONFLICTS"],
                    counts.systems.map { s in
                        [
                            s.system.rawValue, s.entityType.rawValue, String(s.members), String(s.writesInFlight), String(s.parked),
                            String(s.failed), String(s.failedTransient), String(s.conflicts)
                        ]
                    }, empty: "no members yet"))
            print()
            print("writes in flight: \(counts.writesInFlight)")
            print("changes waiting:  \(counts.waiting)")
            print("outbox backlog:   \(counts.outbox)\(counts.outboxOldest.map { " (oldest \(Render.time($0)))" } ?? "")")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry",
            abstract: "Send a permanently failed entity to a system again, with its current state.",
            discussion: """
                Queues a sync request in the link service's outbox exactly as a change would (the running \
                service publishes it). Transient failures are retried by the service on their own.
                """)

        @Argument(help: "The global id, <type>/<uuid> (see `parley link failed`).", transform: parseGlobalRef)
        var globalId: GlobalRef

        @Argument(help: "The system the write failed in.", transform: parseSystem)
        var system: SystemName

        @Option(help: "Seconds the write may stay unanswered before the service sends it again (the service's --lease-seconds).")
        var leaseSeconds = 60

        @OptionGroup var options: LinkOptions

        func run() async throws {
            let outcome = try await options.withQueries {
                try await $0.retry(globalId: globalId, system: system, lease: .seconds(leaseSeconds))
            }
            let (name, message): (String, String) =
                switch outcome {
                case .sent(let writeId, let operation): ("sent", "queued a \(operation.rawValue) of \(globalId) to \(system) (write \(writeId))")
                case .inFlight(let writeId): ("inFlight", "a write of \(globalId) to \(system) is already in flight (write \(writeId)); nothing done")
                case .parked: ("parked", "\(globalId) still waits for references to reach \(system); see `parley link show --global \(globalId)`")
                case .alreadyScheduled(let at):
                    ("alreadyScheduled", "a transient failure: the service retries at \(at.map(Render.time) ?? "its next lease expiry")")
                case .notFailed: ("notFailed", "nothing failed for \(globalId) in \(system)")
                }
            if options.json {
                var object: JSONObject = ["outcome": .string(name), "message": .string(message)]
                if case .sent(let writeId, let operation) = outcome {
                    object["writeId"] = .string(writeId)
                    object["operation"] = .string(operation.rawValue)
                }
                options.emit(.object(object))
            } else {
                print(message)
            }
            if outcome == .notFailed { throw ExitCode(2) }
        }
    }
}

// MARK: Rendering

enum Render {
    static func time(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }

    static func records(_ records: [LinkQueries.NativeRecord]) -> String {
        records.isEmpty ? "-" : records.map { "\($0.system):\($0.nativeId)" }.joined(separator: " ")
    }

    /// Left-aligned columns two spaces apart; the last column is not padded.
    static func table(_ headers: [String], _ rows: [[String]], empty: String, footer: String? = nil) -> String {
        if rows.isEmpty && !empty.isEmpty { return empty }
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        var lines = [line(headers)] + rows.map(line)
        if let footer { lines.append(footer) }
        return lines.joined(separator: "\n")
    }

    static func status(_ status: LinkQueries.TargetStatus) -> String {
        var parts: [String] = []
        if let w = status.write {
            parts.append(
                "\(w.operation.rawValue) in flight (write \(w.writeId), lease until \(time(w.leaseUntil))\(w.pending ? ", newer state pending" : "")"
                    + "\(w.heldSince.map { ", holding its report of \(time($0))" } ?? ""))")
        }
        if let p = status.parked { parts.append("parked: \(p.reason) (since \(time(p.parkedAt)))") }
        if let f = status.failure {
            let retry = f.transient ? "retry at \(f.retryAt.map(time) ?? "-")" : "retried on change or `parley link retry`"
            parts.append("failed \(f.kind): \(f.reason) (attempt \(f.attempts), \(retry))")
        }
        return parts.isEmpty ? "in sync" : parts.joined(separator: "; ")
    }

    static func entity(_ e: LinkQueries.Entity) -> String {
        var out = ["\(e.ref)  (\(e.entityType.rawValue); created \(time(e.createdAt)), updated \(time(e.updatedAt)))", ""]
        let rows =
            e.members.map { m in [m.system.rawValue, m.nativeId, m.sourceModifiedAt.map(time) ?? "-", status(m.status)] }
            + e.outstanding.map { o in [o.system.rawValue, "-", "-", status(o.status)] }
        out.append(table(["SYSTEM", "NATIVE ID", "LAST CHANGE", "STATUS"], rows, empty: "no members"))
        out.append("")
        let fields = e.state.keys.sorted().map { field in
            [
                field, e.state[field]!.serializedString(),
                e.provenance[field].map { "\($0.system) at \(time(Date(timeIntervalSince1970: Double($0.modifiedAt) / 1000)))" } ?? "-"
            ]
        }
        out.append(table(["FIELD", "VALUE", "SET BY"], fields, empty: "no canonical state yet"))
        if !e.conflicts.isEmpty {
            out.append("")
            out.append(
                table(
                    ["CONFLICT IN", "HELD", "MEMBER", "DETECTED", "REASON"],
                    e.conflicts.map { c in
                        [c.system.rawValue, c.nativeId, c.memberId, time(c.detectedAt), c.reason]
                    }, empty: ""))
        }
        return out.joined(separator: "\n")
    }
}
