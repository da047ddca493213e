import Foundation
import Testing
import ParleyCanonical
@testable import ParleyMapping

/// A scratch repository with a tiny contract, so each rule of the loader is tested on its own.
struct Scratch {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("parley-mapping-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("mappings/shop"), withIntermediateDirectories: true)
        try """
        openapi: 3.0.3
        info: {title: shop, version: "1"}
        paths: {}
        components:
          schemas:
            Address:
              type: object
              properties:
                city: {type: string}
                country: {type: string}
            Customer:
              allOf:
                - $ref: '#/components/schemas/CustomerInput'
                - type: object
                  properties:
                    id: {type: string}
                    modified: {type: string, format: date-time}
            CustomerInput:
              type: object
              properties:
                email: {type: string}
                full_name: {type: string}
                billing: {$ref: '#/components/schemas/Address'}
            Order:
              type: object
              properties:
                id: {type: string}
                customer_id: {type: string}
                items:
                  type: array
                  items:
                    type: object
                    properties:
                      sku: {type: string}
                      price: {type: string}
                      tax_rate: {type: number}
        """.write(to: root.appendingPathComponent("shop.yaml"), atomically: true, encoding: .utf8)
    }

    func table(_ name: String, _ text: String) throws -> URL {
        let url = root.appendingPathComponent("mappings/shop/\(name).yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    var loader: MappingTableLoader { MappingTableLoader(repositoryRoot: root) }

    /// The loader's error lines for a table.
    func errors(_ text: String) throws -> [String] {
        do {
            _ = try loader.load(file: try table("customer", text))
            return []
        } catch let e as MappingTableErrors {
            return e.errors.map(\.description)
        }
    }
}

let header = """
    system: customwebshop
    entity: customer
    contract: shop.yaml
    schema: Customer
    writeSchema: CustomerInput
    id: id
    modifiedAt: modified
    fields:

    """

@Suite("Mapping tables")
struct MappingTableLoaderTests {
    @Test("A valid table loads: rows, nested and allOf paths, directions, carried fields")
    func valid() throws {
        let s = try Scratch()
        let table = try s.loader.load(
            file: try s.table(
                "customer",
                header + """
                      - canonical: email
                        native: email
                      - canonical: name
                        native: full_name
                      - canonical: postalAddress.country
                        native: billing.country
                        converter: countryName.no
                      - canonical: postalAddress.city
                        native: billing.city
                        direction: write
                    """))
        #expect(table.system == .customwebshop && table.entity == .customer)
        #expect(table.rows.map(\.canonical) == [["email"], ["name"], ["postalAddress.country"], ["postalAddress.city"]])
        #expect(table.rows[2].converter == "countryName.no" && table.rows[0].converter == "identity")
        #expect(table.rows[1].line == 11)
        #expect(table.carriedFields == ["email", "name", "postalAddress.country"], "a write-only field is not reported by the system")
        #expect(table.writtenFields == ["email", "name", "postalAddress.country", "postalAddress.city"])
        #expect(table.file == "mappings/shop/customer.yaml")
    }

    @Test("Each kind of mistake is an error naming the file and the line")
    func mistakes() throws {
        let s = try Scratch()
        #expect(
            try s.errors(header + "  - canonical: emial\n    native: email\n")
                == [#"mappings/shop/customer.yaml:9: "emial" is not a canonical customer field (see docs/canonical-model.md)"#])
        #expect(
            try s.errors(header + "  - canonical: email\n    native: email\n    converter: nope\n")
                == [#"mappings/shop/customer.yaml:11: unknown converter "nope" (see docs/converters.md)"#])
        #expect(
            try s.errors(header + "  - canonical: email\n    native: e_mail\n")
                == [
                    #"mappings/shop/customer.yaml:9: "e_mail" is not a field of Customer"#,
                    #"mappings/shop/customer.yaml:9: "e_mail" is not a field of CustomerInput"#
                ])
        #expect(
            try s.errors(header + "  - canonical: email\n    native: id\n    direction: read\n").isEmpty,
            "a read-only row is checked against the read schema only")
        #expect(
            try s.errors(header + "  - canonical: email\n    native: email\n  - canonical: email\n    native: full_name\n")
                == [#"mappings/shop/customer.yaml:11: canonical field "email" is mapped twice (first on line 9)"#])
        #expect(
            try s.errors(header + "  - canonical: email\n    native: email\n    direction: sideways\n")
                == [#"mappings/shop/customer.yaml:11: "direction" must be both, read or write"#])
        #expect(
            try s.errors(header + "  - canonical: email\n    native: email\n    colour: red\n").first?
                .hasPrefix(#"mappings/shop/customer.yaml:11: unknown key "colour" in a row"#) == true)
        #expect(
            try s.errors(
                header.replacingOccurrences(of: "schema: Customer\n", with: "schema: Client\n") + "  - canonical: email\n    native: email\n"
            )
            .contains(#"mappings/shop/customer.yaml:4: the contract has no schema "Client""#))
        #expect(
            try s.errors(header.replacingOccurrences(of: "entity: customer", with: "entity: invoice"))
                .contains(#"mappings/shop/customer.yaml:2: unknown entity "invoice" (customer, order or product)"#))
        #expect(try s.errors("system: shop\n  bad: [indent\n").first?.hasPrefix("mappings/shop/customer.yaml:") == true)
    }

    @Test("Order lines: array paths, references and the VAT rate a price needs")
    func orderLines() throws {
        let s = try Scratch()
        let order = """
            system: customwebshop
            entity: order
            contract: shop.yaml
            schema: Order
            id: id
            fields:
              - canonical: customer
                native: customer_id
                converter: reference
              - canonical: lines.sku
                native: items[].sku
              - canonical: lines.vatRate
                native: items[].tax_rate
                converter: percent
              - canonical: lines.unitPriceExclVat
                native: items[].price
                converter: vatInclusivePriceString
                vatRate: lines.vatRate

            """
        let table = try s.loader.load(file: try s.table("order", order))
        #expect(table.carriedFields == ["customer", "lines"])
        #expect(table.rows[3].vatRate == "lines.vatRate")

        func errors(_ text: String) throws -> [String] {
            do { _ = try s.loader.load(file: try s.table("order", text)); return [] } catch let e as MappingTableErrors {
                return e.errors.map(\.message)
            }
        }
        #expect(
            try errors(order.replacingOccurrences(of: "    vatRate: lines.vatRate\n", with: ""))
                == ["the vatInclusivePriceString converter needs \"vatRate\": the canonical path of the VAT rate"])
        #expect(
            try errors(order.replacingOccurrences(of: "    converter: reference\n", with: ""))
                == ["a reference field needs the reference converter"])
        #expect(
            try errors(order.replacingOccurrences(of: "items[].sku", with: "items.sku"))
                == [#""items.sku" is not a field of Order"#, #""items.sku" is not a field of Order"#])
    }

    @Test("loadAll reports every file's problems together, and a second table for the same pair")
    func loadAll() throws {
        let s = try Scratch()
        _ = try s.table("customer", header + "  - canonical: emial\n    native: email\n")
        _ = try s.table("customer2", header + "  - canonical: email\n    native: nope\n")
        do {
            _ = try s.loader.loadAll(directory: s.root.appendingPathComponent("mappings"))
            Issue.record("loadAll accepted broken tables")
        } catch let e as MappingTableErrors {
            #expect(e.errors.map(\.file) == ["mappings/shop/customer.yaml", "mappings/shop/customer2.yaml", "mappings/shop/customer2.yaml"])
        }
        _ = try s.table("customer", header + "  - canonical: email\n    native: email\n")
        _ = try s.table("customer2", header + "  - canonical: email\n    native: email\n")
        do {
            _ = try s.loader.loadAll(directory: s.root.appendingPathComponent("mappings"))
            Issue.record("two tables for one pair were accepted")
        } catch let e as MappingTableErrors {
            #expect(e.errors.map(\.message) == ["a second table for customwebshop customer (first: mappings/shop/customer.yaml)"])
        }
    }
}

@Suite("Mapping tables: target rules and contract constraints")
struct MappingTableRuleTests {
    let rows =
        "  - canonical: email\n    native: email\n  - canonical: postalAddress.city\n    native: billing.city\n  - canonical: postalAddress.country\n    native: billing.country\n    converter: countryCode\n"

    @Test("Rules load with their lines; the write schema's constraints are read for every written path")
    func rulesLoad() throws {
        let s = try Scratch()
        let table = try s.loader.load(
            file: try s.table(
                "customer",
                header + rows + """
                    rules:
                      - {required: email}
                      - {required: billing.city, unless: email}
                      - {together: [billing.city, billing.country]}
                      - {maxLength: email, length: 80}
                    """))
        #expect(table.rules.map(\.line) == [17, 18, 19, 20])
        #expect(table.rules[0].kind == .required("email", when: nil, unless: nil))
        #expect(table.rules[1].kind == .required("billing.city", when: nil, unless: "email"))
        #expect(table.rules[2].kind == .together(["billing.city", "billing.country"]))
        #expect(table.rules[3].kind == .maxLength("email", 80))
        #expect(table.constraints["email"]?.type == .string)
        #expect(table.constraints["billing.city"]?.nullable == false, "OpenAPI 3.0: not nullable unless it says so")
    }

    @Test("A rule naming a path the write schema lacks, an unknown rule or a bad bound is an error with its line")
    func ruleMistakes() throws {
        let s = try Scratch()
        #expect(
            try s.errors(header + rows + "rules:\n  - {required: mail}\n")
                == [#"mappings/shop/customer.yaml:17: "mail" is not a field of CustomerInput"#])
        #expect(
            try s.errors(header + rows + "rules:\n  - {forbidden: email}\n")
                == [#"mappings/shop/customer.yaml:17: unknown rule (required, together, range or maxLength)"#])
        #expect(
            try s.errors(header + rows + "rules:\n  - {range: email}\n")
                == [#"mappings/shop/customer.yaml:17: a range needs min, max or both"#])
        #expect(
            try s.errors(header + rows + "rules:\n  - {range: email, min: low}\n")
                .contains(#"mappings/shop/customer.yaml:17: "min" must be a number"#))
        #expect(
            try s.errors(header + rows + "rules:\n  - {together: [email]}\n")
                == [#"mappings/shop/customer.yaml:17: "together" must list at least two native paths"#])
        #expect(
            try s.errors(header + "  - {canonical: email, native: email, assigned: true}\n")
                == [#"mappings/shop/customer.yaml:9: "assigned" is only for read rows: a value the system assigns cannot be written"#])
        #expect(try s.errors(header + "  - {canonical: email, native: id, direction: read, assigned: true}\n").isEmpty)
        #expect(
            try s.errors(header + rows + "rules:\n  - {required: email, because: reasons}\n").first?
                .hasPrefix(#"mappings/shop/customer.yaml:17: unknown key "because" in a rule"#) == true)
    }
}
