import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON

/// A dataflow: records of `source` are created in `target` (DESIGN's flow table), and once
/// linked stay in sync both ways.
public struct Dataflow: Sendable, Hashable {
    public var source: SystemName
    public var target: SystemName

    public init(source: SystemName, target: SystemName) {
        self.source = source
        self.target = target
    }

    /// The product's dataflows, one document each.
    public static let product: [Dataflow] = [
        Dataflow(source: .customerp, target: .customwebshop),
        Dataflow(source: .customwebshop, target: .powerofficego)
    ]

    /// The entity pairs of every flow, in the order of DESIGN's flow table.
    public static let entities: [CanonicalEntityType] = [.customer, .order, .product]

    /// The document's file name, `customerp-to-customwebshop.rst`.
    public var fileName: String { "\(source.rawValue)-to-\(target.rawValue).rst" }

    /// How the documents name a system ("PowerOffice Go").
    public static func displayName(of system: SystemName) -> String {
        switch system {
        case .customerp: "Customerp"
        case .customwebshop: "Customwebshop"
        case .powerofficego: "PowerOffice Go"
        default: system.rawValue
        }
    }

    /// How the documents name a system's entity: the system's own word where it has one
    /// (PowerOffice Go's "SalesOrders"), else the canonical name.
    public static func displayName(of entity: CanonicalEntityType, in system: SystemName) -> String {
        switch (system, entity) {
        case (.powerofficego, .customer): "Customers"
        case (.powerofficego, .order): "SalesOrders"
        case (.powerofficego, .product): "Products"
        case (_, .customer): "Customer"
        case (_, .order): "Order"
        case (_, .product): "Product"
        }
    }
}

/// A dataflow document: for each entity pair of a flow A→B, the properties that flow from A to
/// B, joined by canonical field from the two systems' mapping tables, with B's data type from
/// B's contract. ``render()`` gives reStructuredText; docs/dataflows/README.md describes the
/// document and how it is generated.
///
/// A row pairs A's row that **reads** a canonical field with B's row that **writes** it: the
/// document describes data flowing from A to B. Once linked, edits in B flow back over the same
/// pairs where B reads and A writes; pairs that do not are listed as one-way, and pairs that
/// exist only from B to A are listed separately. Canonical fields only one side carries are
/// listed as not synchronized. A group row (`personName`) expands to one pair per member,
/// matched by position. Everything is in canonical registry order (order-line members where
/// `lines` stands), so the output is the same byte for byte for the same tables and contracts.
public struct DataflowDocument: Sendable, Hashable {
    /// One property pair: A's native path, B's native path, B's data type.
    public struct Pair: Sendable, Hashable {
        public var canonical: String
        public var source: String
        public var target: String
        public var targetType: String
    }

    public struct Section: Sendable, Hashable {
        public var entity: CanonicalEntityType
        /// "Customwebshop Order", "PowerOffice Go SalesOrders".
        public var source: String
        public var target: String
        /// The table: A reads, B writes.
        public var pairs: [Pair]
        /// Canonical fields of `pairs` that do not flow back (B does not read it or A does not write it).
        public var oneWay: Set<String>
        /// Pairs only from B to A (B reads, A writes, but not the other way); no data type.
        public var reverseOnly: [Pair]
        /// Native paths of A's and B's rows whose canonical field is in no pair.
        public var onlySource: [String]
        public var onlyTarget: [String]
    }

    public var flow: Dataflow
    public var sections: [Section]

    /// Builds the document from the two systems' tables (others are ignored) and the contracts
    /// keyed by the tables' `contract` path. An entity without a table on both sides has no
    /// section; a table whose contract is missing, or a B path without a type, is an error.
    public init(flow: Dataflow, tables: [MappingTable], contracts: [String: OpenAPISchemas]) throws {
        self.flow = flow
        var sections: [Section] = []
        for entity in Dataflow.entities {
            guard let a = tables.first(where: { $0.system == flow.source && $0.entity == entity }),
                let b = tables.first(where: { $0.system == flow.target && $0.entity == entity })
            else { continue }
            guard let contract = contracts[b.contract] else {
                throw DataflowDocumentError("\(b.file): the contract \(b.contract) is not loaded")
            }
            let aRows = Self.members(of: a)
            let bRows = Self.members(of: b)
            var pairs: [Pair] = []
            var oneWay: Set<String> = []
            var reverseOnly: [Pair] = []
            var paired: Set<String> = []
            for path in Self.documentOrder(entity, extra: Array(aRows.keys) + Array(bRows.keys)) {
                guard let ar = aRows[path], let br = bRows[path] else { continue }
                if ar.direction.reads && br.direction.writes {
                    let schemas = br.direction == .read ? [b.schema] : [b.writeSchema, b.schema]
                    guard let type = schemas.lazy.compactMap({ contract.dataType(at: br.native, in: $0) }).first else {
                        throw DataflowDocumentError("\(b.file):\(br.line): \(br.native) is not a property of \(b.writeSchema) in \(b.contract)")
                    }
                    pairs.append(Pair(canonical: path, source: ar.native, target: br.native, targetType: type))
                    if !(br.direction.reads && ar.direction.writes) { oneWay.insert(path) }
                    paired.insert(path)
                } else if br.direction.reads && ar.direction.writes {
                    reverseOnly.append(Pair(canonical: path, source: ar.native, target: br.native, targetType: ""))
                    paired.insert(path)
                }
            }
            let order = Self.documentOrder(entity, extra: Array(aRows.keys) + Array(bRows.keys))
            sections.append(
                Section(
                    entity: entity,
                    source: "\(Dataflow.displayName(of: flow.source)) \(Dataflow.displayName(of: entity, in: flow.source))",
                    target: "\(Dataflow.displayName(of: flow.target)) \(Dataflow.displayName(of: entity, in: flow.target))",
                    pairs: pairs, oneWay: oneWay, reverseOnly: reverseOnly,
                    onlySource: order.filter { aRows[$0] != nil && !paired.contains($0) }.compactMap { aRows[$0]?.native },
                    onlyTarget: order.filter { bRows[$0] != nil && !paired.contains($0) }.compactMap { bRows[$0]?.native }))
        }
        self.sections = sections
    }

    /// One canonical path of a row with its native path (group rows expand by position).
    private struct Member {
        var native: String
        var direction: MappingTable.Direction
        var line: Int
    }

    private static func members(of table: MappingTable) -> [String: Member] {
        var result: [String: Member] = [:]
        for row in table.rows {
            for (i, path) in row.canonical.enumerated() {
                let native = row.native.count == row.canonical.count ? row.native[i] : row.native.joined(separator: ", ")
                result[path] = Member(native: native, direction: row.direction, line: row.line)
            }
        }
        return result
    }

    /// The canonical registry order with the order-line members where `lines` stands; paths
    /// the registry does not know (hand-made tables) last, sorted.
    static func documentOrder(_ entity: CanonicalEntityType, extra: [String] = []) -> [String] {
        var order: [String] = []
        for field in CanonicalField.fields(of: entity) {
            if field.kind == .lines {
                order += CanonicalField.allFields(of: entity).filter(\.isLineField).map(\.path)
            } else {
                order.append(field.path)
            }
        }
        let known = Set(order)
        return order + Set(extra).subtracting(known).sorted()
    }

    // MARK: Rendering

    /// The document as reStructuredText.
    public func render() -> String {
        let a = Dataflow.displayName(of: flow.source)
        let b = Dataflow.displayName(of: flow.target)
        var out: [String] = []
        out.append(".. Generated from mappings/\(flow.source.rawValue)/*.yaml and mappings/\(flow.target.rawValue)/*.yaml")
        out.append("   by `make dataflows` (parley dataflows). Do not edit by hand.")
        out.append("")
        let title = "\(a) to \(b) Dataflow"
        let rule = String(repeating: "=", count: title.count)
        out += [rule, title, rule, ""]
        out.append(
            """
            This document lists the data Parley synchronizes from \(a) to \(b). \
            Every section below pairs the \(a) properties Parley reads with the \(b) properties \
            it writes them to, and gives each property's data type in \(b)'s API. \
            Once two records are linked, edits made in \(b) travel back to \(a) over the same pairs, \
            except for the properties a section lists as synchronized one way only.
            """)
        for section in sections {
            out.append("")
            let heading = "\(section.source) to \(section.target)"
            out += [heading, String(repeating: "-", count: heading.count), ""]
            out.append("Every \(section.source) will be synchronized with a \(section.target).")
            out.append("")
            out.append(
                """
                Once a link between \(section.source) and \(section.target) is established, \
                it will keep in sync between the two systems, regardless of where it is edited.
                """)
            out.append("")
            out.append(".. list-table::")
            out.append("   :header-rows: 1")
            out.append("")
            out.append("   * - \(section.source) Property")
            out.append("     - \(section.target) Property")
            out.append("     - \(b) Data Type")
            for pair in section.pairs {
                out.append("   * - \(Self.escape(pair.source))")
                out.append("     - \(Self.escape(pair.target))")
                out.append("     - \(Self.escape(pair.targetType))")
            }
            let oneWay = section.pairs.filter { section.oneWay.contains($0.canonical) }
            if !oneWay.isEmpty {
                out.append("")
                out.append(
                    "Synchronized from \(a) to \(b) only: "
                        + oneWay.map { "\(Self.escape($0.source)) to \(Self.escape($0.target))" }.joined(separator: ", ") + ".")
            }
            if !section.reverseOnly.isEmpty {
                out.append("")
                out.append(
                    "Synchronized from \(b) to \(a) only: "
                        + section.reverseOnly.map { "\(Self.escape($0.target)) to \(Self.escape($0.source))" }.joined(separator: ", ") + ".")
            }
            if !section.onlySource.isEmpty {
                out.append("")
                out.append(
                    "\(section.source) properties not synchronized with \(b): "
                        + section.onlySource.map(Self.escape).joined(separator: ", ") + ".")
            }
            if !section.onlyTarget.isEmpty {
                out.append("")
                out.append(
                    "\(section.target) properties not synchronized with \(a): "
                        + section.onlyTarget.map(Self.escape).joined(separator: ", ") + ".")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// Backslash-escapes what reStructuredText would read as inline markup: `*`, backquotes,
    /// `|`, a backslash, and `_` at the end of a word (a reference).
    static func escape(_ text: String) -> String {
        var out = ""
        let chars = Array(text)
        for (i, c) in chars.enumerated() {
            switch c {
            case "\\", "*", "`", "|":
                out.append("\\")
            case "_" where i + 1 == chars.count || !(chars[i + 1].isLetter || chars[i + 1].isNumber || chars[i + 1] == "_"):
                out.append("\\")
            default:
                break
            }
            out.append(c)
        }
        return out
    }
}

public struct DataflowDocumentError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension DataflowDocument {
    /// The contracts the tables name, loaded from below `repositoryRoot`, keyed by `contract`.
    public static func contracts(of tables: [MappingTable], repositoryRoot: URL) throws -> [String: OpenAPISchemas] {
        var contracts: [String: OpenAPISchemas] = [:]
        for path in Set(tables.map(\.contract)).sorted() {
            let url = repositoryRoot.appendingPathComponent(path)
            do {
                contracts[path] = try OpenAPISchemas(yaml: String(contentsOf: url, encoding: .utf8))
            } catch {
                throw DataflowDocumentError("cannot load the contract \(path): \(error)")
            }
        }
        return contracts
    }

    /// The product's dataflow documents from the repository's tables (`mappings/`) and
    /// contracts: file name (`customerp-to-customwebshop.rst`) and contents, in
    /// ``Dataflow/product`` order. Every flow must have a table for every entity on both sides.
    public static func generate(repositoryRoot: URL) throws -> [(fileName: String, contents: String)] {
        let tables = try MappingTableLoader(repositoryRoot: repositoryRoot)
            .loadAll(directory: repositoryRoot.appendingPathComponent("mappings"))
        let contracts = try contracts(of: tables, repositoryRoot: repositoryRoot)
        return try Dataflow.product.map { flow in
            for system in [flow.source, flow.target] {
                for entity in Dataflow.entities where !tables.contains(where: { $0.system == system && $0.entity == entity }) {
                    throw DataflowDocumentError("no mapping table mappings/\(system.rawValue)/\(entity.rawValue).yaml")
                }
            }
            let document = try DataflowDocument(flow: flow, tables: tables, contracts: contracts)
            return (flow.fileName, document.render())
        }
    }
}
