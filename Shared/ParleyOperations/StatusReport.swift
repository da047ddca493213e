import Foundation
import ParleyAMQP
import ParleyCanonical
import ParleyLink

/// What `parley status` and `parley top` show: the broker's queues and the link service's
/// counts, each either read or the reason it could not be. Rendering is a pure function.
public struct StatusReport: Sendable {
    public var vhost: String
    public var takenAt: Date
    /// The queues, or why they could not be read.
    public var queues: Result<[QueueStats], OperationsError>
    /// The link service's counts, or why they could not be read.
    public var link: Result<LinkSummary, OperationsError>

    public init(vhost: String, takenAt: Date, queues: Result<[QueueStats], OperationsError>, link: Result<LinkSummary, OperationsError>) {
        self.vhost = vhost
        self.takenAt = takenAt
        self.queues = queues
        self.link = link
    }

    /// Whether anything could not be read (the command then exits non-zero).
    public var hasErrors: Bool {
        if case .failure = queues { return true }
        if case .failure = link { return true }
        return false
    }
}

/// The link service's numbers `status` shows: one row per system and entity type with anything
/// to count, and the totals.
public struct LinkSummary: Sendable, Hashable {
    public struct Row: Sendable, Hashable {
        public var system: String
        public var entityType: String
        public var members: Int
        public var inFlight: Int
        public var parked: Int
        public var failed: Int
        public var conflicts: Int
        public init(system: String, entityType: String, members: Int, inFlight: Int, parked: Int, failed: Int, conflicts: Int) {
            self.system = system
            self.entityType = entityType
            self.members = members
            self.inFlight = inFlight
            self.parked = parked
            self.failed = failed
            self.conflicts = conflicts
        }
    }

    /// Global entities per entity type.
    public var entities: [(type: String, count: Int)]
    public var rows: [Row]
    public var outbox: Int

    public init(entities: [(type: String, count: Int)], rows: [Row], outbox: Int) {
        self.entities = entities
        self.rows = rows
        self.outbox = outbox
    }

    public init(_ counts: LinkQueries.Counts) {
        entities = CanonicalEntityType.allCases.map { ($0.rawValue, counts.entities[$0] ?? 0) }
        rows = counts.systems.map {
            Row(
                system: $0.system.rawValue, entityType: $0.entityType.rawValue, members: $0.members, inFlight: $0.writesInFlight,
                parked: $0.parked, failed: $0.failed, conflicts: $0.conflicts)
        }
        outbox = counts.outbox
    }

    public var parked: Int { rows.reduce(0) { $0 + $1.parked } }
    public var failed: Int { rows.reduce(0) { $0 + $1.failed } }
    public var inFlight: Int { rows.reduce(0) { $0 + $1.inFlight } }
    public var conflicts: Int { rows.reduce(0) { $0 + $1.conflicts } }

    public static func == (a: LinkSummary, b: LinkSummary) -> Bool {
        a.entities.map(\.type) == b.entities.map(\.type) && a.entities.map(\.count) == b.entities.map(\.count)
            && a.rows == b.rows && a.outbox == b.outbox
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(rows)
        hasher.combine(outbox)
    }
}

public enum StatusRendering {
    /// Work queues first (in the order messages flow through them), then their dead-letter
    /// queues, then the retry tiers, then anything else on the vhost.
    public static func ordered(_ queues: [QueueStats]) -> [QueueStats] {
        func rank(_ name: String) -> (Int, Int, String) {
            let work = ["mapping.changes", "link.canonical", "mapping.sync"]
            if let i = work.firstIndex(of: name) { return (0, i, name) }
            if name.hasSuffix("-adapter.commands") { return (0, 3, name) }
            if name == "link.events" { return (0, 4, name) }
            if name.hasSuffix(".dead") {
                let (group, order, _) = rank(String(name.dropLast(5)))
                return group == 0 ? (1, order, name) : (3, 0, name)
            }
            if name.hasPrefix("parley.retry.") {
                let ms = Int(name.dropFirst("parley.retry.".count).dropLast(2)) ?? 0
                return (2, ms, name)
            }
            return (3, 0, name)
        }
        return queues.sorted { rank($0.name) < rank($1.name) }
    }

    public static func rate(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    public static func time(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }

    /// The queue table: one row per queue, numbers right-aligned.
    public static func queueTable(_ queues: [QueueStats]) -> String {
        if queues.isEmpty { return "no queues (no service has declared the topology yet)" }
        let rows = ordered(queues).map { q in
            [q.name, String(q.ready), String(q.unacked), String(q.consumers), rate(q.publishRate), rate(q.deliverRate)]
        }
        return TextTable.render(
            ["QUEUE", "READY", "UNACKED", "CONSUMERS", "PUBLISH/S", "DELIVER/S"], rows,
            alignments: [.left, .right, .right, .right, .right, .right])
    }

    /// The link service's table and totals.
    public static func linkSection(_ link: LinkSummary) -> String {
        var lines: [String] = []
        lines.append("global entities: " + link.entities.map { "\($0.type) \($0.count)" }.joined(separator: ", "))
        if !link.rows.isEmpty {
            lines.append("")
            lines.append(
                TextTable.render(
                    ["SYSTEM", "TYPE", "MEMBERS", "IN FLIGHT", "PARKED", "FAILED", "CONFLICTS"],
                    link.rows.map {
                        [
                            $0.system, $0.entityType, String($0.members), String($0.inFlight), String($0.parked), String($0.failed),
                            String($0.conflicts)
                        ]
                    },
                    alignments: [.left, .left, .right, .right, .right, .right, .right]))
        }
        lines.append("")
        lines.append(
            "writes in flight \(link.inFlight), parked \(link.parked), failed \(link.failed), conflicts \(link.conflicts), outbox backlog \(link.outbox)"
        )
        return lines.joined(separator: "\n")
    }

    /// The whole report as `parley status` prints it.
    public static func render(_ report: StatusReport) -> String {
        var out: [String] = ["Parley status of vhost \(report.vhost) at \(time(report.takenAt))", ""]
        switch report.queues {
        case .success(let queues): out.append(queueTable(queues))
        case .failure(let error): out.append("queues: \(error.description)")
        }
        out.append("")
        switch report.link {
        case .success(let link): out.append(linkSection(link))
        case .failure(let error): out.append("link service: \(error.description)")
        }
        return out.joined(separator: "\n")
    }

    /// ANSI: cursor home and clear the screen, then the frame; for `top` on a terminal.
    public static let clearScreen = "\u{1B}[H\u{1B}[2J"
}
