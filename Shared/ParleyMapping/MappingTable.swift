import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON

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
        /// The system assigns this value itself (an order number, a creation date): it fills the
        /// canonical field when that is empty and never overwrites it. Only on `read` rows.
        public var assigned: Bool = false
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
    /// Native path where the system keeps the key Parley created the record with
    /// (PowerOffice Go's `ExternalImportReference`, the webshop's `meta_data.parley_key`), so
    /// the echo of a create is recognised even when it arrives before the create's answer.
    public var origin: String? = nil
    public var rows: [Row]
    /// The target's own rules beyond the contract's types (the table's `rules:`).
    public var rules: [Rule] = []
    /// What the contract's write schema says about each written native path (types, lengths,
    /// enums, ranges), and the paths it requires; filled in by the loader.
    public var constraints: [String: FieldConstraint] = [:]
    public var requiredPaths: [String] = []
    /// The file it was loaded from.
    public var file: String

    /// A target rule the contract's types cannot say (docs/mappings.md, "Rules"). Paths are
    /// native paths of the write schema; a line member path (`SalesOrderLines[].Allowance`)
    /// applies to every line.
    public struct Rule: Sendable, Hashable {
        public enum Kind: Sendable, Hashable {
            /// The field must have a non-empty value — only when the boolean field `when` is
            /// true, or only when the boolean field `unless` is not true, if given.
            case required(String, when: String?, unless: String?)
            /// Either all of these fields have a value or none has.
            case together([String])
            /// A number within `min...max` (either bound may be missing).
            case range(String, min: Decimal?, max: Decimal?)
            /// Text at most this many characters long.
            case maxLength(String, Int)
        }
        public var kind: Kind
        public var line: Int

        public init(_ kind: Kind, line: Int) {
            self.kind = kind
            self.line = line
        }

        /// The native paths the rule reads.
        public var paths: [String] {
            switch kind {
            case .required(let p, let when, let unless): [p] + [when, unless].compactMap { $0 }
            case .together(let ps): ps
            case .range(let p, min: _, max: _), .maxLength(let p, _): [p]
            }
        }
    }

    /// The canonical fields this system carries: what it reports (read rows), as merge fields
    /// (order line members count as the one field `lines`). A field not in here is one the
    /// system lacks, and a change from it never erases that field elsewhere (DESIGN rule 4).
    public var carriedFields: Set<String> { mergeFields(of: rows.filter { $0.direction.reads }) }

    /// The order line members this system carries (`lines.sku`, …): what it reports of a line. A
    /// member not in here is one its lines lack, and its changes never erase that member of a
    /// line elsewhere (PowerOffice Go reads no line VAT rate, the webshop no line discount).
    public var carriedLineMembers: Set<String> {
        Set(rows.filter { $0.direction.reads }.flatMap(\.canonical).filter { $0.hasPrefix("lines.") })
    }

    /// The carried fields the system assigns itself (rows with `assigned: true`): they fill a
    /// canonical field that is empty and never overwrite one that has a value.
    public var assignedFields: Set<String> { mergeFields(of: rows.filter(\.assigned)) }

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
