import ParleyCanonical
import ParleyMessaging

/// One mapping table: how one system's record of one entity type maps onto the canonical model
/// (`mappings/<system>/<entity>.yaml`; the format is in docs/mappings.md).
public struct MappingTable: Sendable {
    public enum Direction: String, Sendable, CaseIterable {
        /// Read from the system and written to it.
        case both
        /// Only read (native → canonical): the system computes it or marks it read-only.
        case read
        /// Only written (canonical → native).
        case write

        public var reads: Bool { self != .write }
        public var writes: Bool { self != .read }
    }

    /// One row: canonical path(s) ⇄ native path(s) through a named converter. Most rows map one
    /// path to one path; a group row (the `personName` converter) maps several at once.
    public struct Row: Sendable, Hashable {
        public var canonical: [String]
        public var native: [String]
        public var converter: String
        public var direction: Direction
        /// The canonical path of the VAT rate a VAT-aware converter needs.
        public var vatRate: String?
        /// Where the row starts in its file, for error messages.
        public var line: Int

        public var isGroup: Bool { canonical.count > 1 || native.count > 1 }
    }

    public var system: SystemName
    public var entity: CanonicalEntityType
    /// The OpenAPI document of the system's contract, relative to the repository.
    public var contract: String
    /// The schema a record is read as, and the one it is written as.
    public var schema: String
    public var writeSchema: String
    /// Native paths of the record's id and of its modification time.
    public var id: String
    public var modifiedAt: String?
    public var rows: [Row]
    /// The file it was loaded from.
    public var file: String

    /// The canonical fields this system carries: what it reports (read rows), as merge fields
    /// (order line members count as the one field `lines`). A field not in here is one the
    /// system lacks, and a change from it never erases that field elsewhere (DESIGN rule 4).
    public var carriedFields: Set<String> { mergeFields(of: rows.filter { $0.direction.reads }) }

    /// The canonical fields written to this system.
    public var writtenFields: Set<String> { mergeFields(of: rows.filter { $0.direction.writes }) }

    private func mergeFields(of rows: [Row]) -> Set<String> {
        Set(rows.flatMap(\.canonical).map { $0.hasPrefix("lines.") ? "lines" : $0 })
    }
}

/// A problem in a mapping table, with the file and line it is on.
public struct MappingTableError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String, line: Int, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { "\(file):\(line): \(message)" }
}

/// Every problem found while loading tables (loading reports all of them, not just the first).
public struct MappingTableErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [MappingTableError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
