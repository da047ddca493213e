import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
@testable import ParleyMapping
import ParleyEnvelope

@Suite("The repository's mapping tables")
struct RepositoryTablesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("Every table in mappings/ loads against its contract: nine, one per system and entity")
    func allLoad() throws {
        let loader = MappingTableLoader(repositoryRoot: Self.root)
        let tables: [MappingTable]
        do {
            tables = try loader.loadAll(directory: Self.root.appendingPathComponent("mappings"))
        } catch let e as MappingTableErrors {
            Issue.record("mapping tables do not load:\n\(e)")
            return
        }
        #expect(tables.count == 9)
        for system in ["customerp", "customwebshop", "powerofficego"] {
            for entity in CanonicalEntityType.allCases {
                #expect(tables.contains { $0.system.rawValue == system && $0.entity == entity }, "no table for \(system) \(entity)")
            }
        }
        // The webshop carries no organisation number, so its changes never erase one (DESIGN rule 4).
        let shop = try #require(tables.first { $0.system == .customwebshop && $0.entity == .customer })
        #expect(!shop.carriedFields.contains("organizationNumber"))
        let poweroffice = try #require(tables.first { $0.system == .powerofficego && $0.entity == .customer })
        #expect(poweroffice.carriedFields.contains("organizationNumber"))
    }

    @Test(
        "Order lines: a normalised order lists `lines` and the line members its system reads, so the link service keeps the members it does not (Go's VAT rates, the webshop's discounts)"
    )
    func carriedLineMembers() throws {
        let members = { (system: SystemName) -> [String] in
            let order = try Golden.mapper(system, .order).toCanonical(try Golden.record(system, .order))
            return order.carried.filter { $0.hasPrefix("lines") }
        }
        #expect(try members(.customerp) == ["lines"] + CanonicalField.orderLine.map(\.path))
        #expect(
            try members(.customwebshop) == [
                "lines", "lines.product", "lines.sku", "lines.description", "lines.quantity", "lines.unitPriceExclVat", "lines.vatRate"
            ])
        #expect(
            try members(.powerofficego) == [
                "lines", "lines.product", "lines.sku", "lines.description", "lines.quantity", "lines.unitPriceExclVat", "lines.discountPercent"
            ])
        #expect(
            try Golden.mapper(.customerp, .customer).toCanonical(try Golden.record(.customerp, .customer)).carried.allSatisfy {
                !$0.hasPrefix("lines")
            })
    }
}
