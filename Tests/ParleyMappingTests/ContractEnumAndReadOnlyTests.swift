import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
@testable import ParleyMapping
import ParleyEnvelope

/// The repository's tables checked against what their contracts say about each native field:
/// enum rows cover the contract's enum, and no row writes a readOnly field.
@Suite("Mapping tables against contract enums and readOnly flags")
struct ContractEnumAndReadOnlyTests {
    static let root = RepositoryTablesTests.root

    static func load() throws -> [(MappingTable, OpenAPISchemas)] {
        let tables = try MappingTableLoader(repositoryRoot: root).loadAll(directory: root.appendingPathComponent("mappings"))
        var contracts: [String: OpenAPISchemas] = [:]
        return try tables.map { table in
            if contracts[table.contract] == nil {
                let text = try String(contentsOf: root.appendingPathComponent(table.contract), encoding: .utf8)
                contracts[table.contract] = try OpenAPISchemas(yaml: text)
            }
            return (table, contracts[table.contract]!)
        }
    }

    @Test("An enum row reads every value the contract's enum allows and writes only values it allows")
    func enumRowsCoverTheContractEnums() throws {
        var checked = 0
        for (table, schemas) in try Self.load() {
            for row in table.rows where !row.isGroup {
                guard let converter = ConverterRegistry.standard.converter(named: row.converter) as? EnumConverter else { continue }
                let native = row.native[0]
                let place = "\(table.file):\(row.line) \(native) (\(row.converter))"
                if row.direction.reads, let values = schemas.enumValues(path: native, in: table.schema) {
                    checked += 1
                    for value in values {
                        let readable = converter.table.canonical(forNative: value) != nil
                        #expect(readable, "\(place): cannot read the contract's \"\(value)\"")
                    }
                }
                if row.direction.writes, let values = schemas.enumValues(path: native, in: table.writeSchema) {
                    checked += 1
                    for value in Set(converter.table.write.values) {
                        #expect(values.contains(value), "\(place): writes \"\(value)\", which the contract's enum \(values) does not allow")
                    }
                }
            }
        }
        // The ERP's three enums, the webshop's status and product type, Go's status, type and unit.
        #expect(checked >= 16)
    }

    @Test("No row writes a field the contract marks readOnly in the write schema")
    func readOnlyFieldsAreReadRows() throws {
        for (table, schemas) in try Self.load() {
            for row in table.rows where row.direction.writes {
                for native in row.native {
                    let readOnly = schemas.isReadOnly(path: native, in: table.writeSchema)
                    #expect(!readOnly, "\(table.file):\(row.line): \(native) is readOnly in \(table.writeSchema); the row needs direction: read")
                }
            }
        }
    }

    @Test("The rows the contracts' enums and readOnly flags decide")
    func decidedRows() throws {
        let tables = try Self.load().map(\.0)
        func row(_ system: SystemName, _ entity: CanonicalEntityType, _ canonical: String) throws -> MappingTable.Row {
            let table = try #require(tables.first { $0.system == system && $0.entity == entity })
            return try #require(table.rows.first { $0.canonical == [canonical] }, "\(system) \(entity) has no \(canonical) row")
        }
        #expect(try row(.customerp, .customer, "kind").converter == "enum:customerKind.erp")
        #expect(try row(.customerp, .product, "productType").converter == "enum:productType.erp")
        #expect(try row(.customerp, .order, "status").converter == "enum:orderStatus.erp")
        #expect(try row(.customwebshop, .product, "productType").converter == "enum:productType.webshop")
        let orderDate = try row(.customwebshop, .order, "orderDate")
        #expect(orderDate.converter == "dateOfInstant:Europe/Oslo" && orderDate.direction == .read)
        let orderNumber = try row(.powerofficego, .order, "orderNumber")
        #expect(orderNumber.converter == "integerString" && orderNumber.direction == .read)
        // PowerOffice Go's line VatRate is not read: Go derives it from accounts Parley does not set.
        let goOrder = try #require(tables.first { $0.system == .powerofficego && $0.entity == .order })
        #expect(!goOrder.rows.contains { $0.canonical == ["lines.vatRate"] })
    }
}

@Suite("OpenAPISchemas enum values and readOnly flags")
struct OpenAPISchemasEnumReadOnlyTests {
    static let yaml = """
        openapi: 3.0.3
        components:
          schemas:
            Status:
              type: string
              enum: [A, B]
            Line:
              type: object
              properties:
                rate: {type: number, readOnly: true}
                kind: {type: string, enum: [x, y]}
            Input:
              type: object
              properties:
                status: {$ref: '#/components/schemas/Status'}
                lines: {type: array, items: {$ref: '#/components/schemas/Line'}}
            Record:
              allOf:
                - $ref: '#/components/schemas/Input'
                - type: object
                  properties:
                    id: {type: string, readOnly: true}
                    computed: {type: array, readOnly: true, items: {$ref: '#/components/schemas/Line'}}
        """

    @Test func enumValuesFollowRefsAndArrays() throws {
        let s = try OpenAPISchemas(yaml: Self.yaml)
        #expect(s.enumValues(path: "status", in: "Record") == ["A", "B"])
        #expect(s.enumValues(path: "lines[].kind", in: "Input") == ["x", "y"])
        #expect(s.enumValues(path: "lines[].rate", in: "Input") == nil)
        #expect(s.enumValues(path: "nope", in: "Input") == nil)
    }

    @Test func readOnlyAnywhereOnThePath() throws {
        let s = try OpenAPISchemas(yaml: Self.yaml)
        #expect(s.isReadOnly(path: "id", in: "Record"))
        #expect(!s.isReadOnly(path: "status", in: "Record"))
        #expect(s.isReadOnly(path: "lines[].rate", in: "Record"))
        #expect(!s.isReadOnly(path: "lines[].kind", in: "Record"))
        #expect(s.isReadOnly(path: "computed[].kind", in: "Record"))
        #expect(!s.isReadOnly(path: "nope", in: "Record"))
        #expect(s.contains(path: "computed[].kind", in: "Record"))
        #expect(!s.contains(path: "status.x", in: "Record"))
    }
}
