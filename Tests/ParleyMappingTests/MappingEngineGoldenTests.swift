import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
@testable import ParleyMapping
import ParleyJSON
import ParleyEnvelope

/// Golden tests over the repository's real tables and the records in `Golden/records/`.
@Suite("Mapping engine: golden files")
struct MappingEngineGoldenTests {
    static let tables: [(SystemName, CanonicalEntityType)] = [SystemName.customerp, .customwebshop, .powerofficego]
        .flatMap { s in CanonicalEntityType.allCases.map { (s, $0) } }

    /// The same real-world things in the three systems (what the link service would hold).
    static let links: [CanonicalEntityType: [[SystemName: String]]] = [
        .customer: [[.customerp: "C-1001", .customwebshop: "501", .powerofficego: "1234567"]],
        .product: [
            [.customerp: "P-2001", .customwebshop: "701", .powerofficego: "88001"],
            [.customerp: "P-2002", .customwebshop: "702", .powerofficego: "88002"]
        ]
    ]

    /// The target's native id of every global ref of `source`'s records, through ``links``.
    static func targetIds(from source: SystemName, to target: SystemName) -> [String: String] {
        var ids: [String: String] = [:]
        for (entity, groups) in links {
            for group in groups {
                if let s = group[source], let t = group[target] { ids[Golden.globalRef(source, entity, s)] = t }
            }
        }
        // References the link table does not know map back into the source itself (round trips).
        return ids
    }

    static func selfIds(_ record: NormalisedRecord) -> [String: String] {
        Dictionary(record.references.map { (Golden.globalRef(record.system, $0.entity, $0.id), $0.id) }, uniquingKeysWith: { a, _ in a })
    }

    static func outcome(_ body: () throws(MappingError) -> JSONValue) -> JSONValue {
        do {
            return try body()
        } catch {
            return ["error": .string(error.description), "kind": .string(error.kind.rawValue)]
        }
    }

    @Test("Each table: native → canonical, and canonical → native back into the same system", arguments: tables)
    func table(system: SystemName, entity: CanonicalEntityType) throws {
        let mapper = Golden.mapper(system, entity)
        let normalised = try mapper.toCanonical(try Golden.record(system, entity))
        var golden: JSONObject = [
            "nativeId": normalised.nativeId.map(JSONValue.string) ?? .null,
            "modifiedAt": normalised.modifiedAt.map(JSONValue.string) ?? .null,
            "canonical": normalised.canonicalJSON,
            "carried": .array(normalised.carried.map(JSONValue.string)),
            "assigned": .array(normalised.assigned.map(JSONValue.string)),
            "references": .array(normalised.references.map(\.json))
        ]
        golden["write"] = Self.outcome { () throws(MappingError) in
            let write = try mapper.toNative(Golden.resolve(normalised), targetIds: Self.selfIds(normalised))
            let echo = try mapper.expectedEcho(of: write)
            return [
                "record": .object(write.record), "cleared": .array(write.cleared.map(JSONValue.string)),
                "echo": echo.canonicalJSON, "echoCarried": .array(echo.carried.map(JSONValue.string))
            ]
        }
        try Golden.check(.object(golden), against: "tables/\(system)-\(entity.rawValue).json")
    }

    static let flows: [(SystemName, SystemName, CanonicalEntityType)] = CanonicalEntityType.allCases.flatMap { e in
        [
            (SystemName.customerp, SystemName.customwebshop, e), (.customwebshop, .powerofficego, e),
            (.customwebshop, .customerp, e), (.powerofficego, .customwebshop, e)
        ]
    }

    @Test("The six flows, both directions: a source record written into the target", arguments: flows)
    func flow(source: SystemName, target: SystemName, entity: CanonicalEntityType) throws {
        let normalised = try Golden.mapper(source, entity).toCanonical(try Golden.record(source, entity))
        let result = Self.outcome { () throws(MappingError) in
            let write = try Golden.mapper(target, entity).toNative(
                Golden.resolve(normalised), targetIds: Self.targetIds(from: source, to: target))
            return ["record": .object(write.record), "cleared": .array(write.cleared.map(JSONValue.string))]
        }
        try Golden.check(result, against: "flows/\(source)-to-\(target)-\(entity.rawValue).json")
    }

    @Test("Round trip native → canonical → native → canonical keeps every field the system both reads and writes", arguments: tables)
    func roundTrip(system: SystemName, entity: CanonicalEntityType) throws {
        let mapper = Golden.mapper(system, entity)
        let first = try mapper.toCanonical(try Golden.record(system, entity))
        let write = try mapper.toNative(Golden.resolve(first), targetIds: Self.selfIds(first))
        var record = write.record
        record.set(.string("round-trip"), at: NativePath(mapper.table.id).components)
        let second = try mapper.toCanonical(.object(record))
        let fields = mapper.echoFields
        let doc = { (r: NormalisedRecord) in
            CanonicalHash.document(flat: r.values, entity: entity, fields: fields.compactMap { CanonicalField.named($0, entity: entity) })
        }
        #expect(!fields.isEmpty)
        #expect(doc(second) == doc(first), "\(system) \(entity) over \(fields)")
        for field in fields where !field.hasPrefix("lines") {
            #expect(second.values[field] == first.values[field], "\(system) \(entity) \(field)")
        }
        #expect(second.references.map(\.id) == first.references.map(\.id))
    }
}
