import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
@testable import ParleyMapping
import ParleyEnvelope

@Suite("The committed dataflow documents")
struct CommittedDataflowDocumentsTests {
    @Test("docs/dataflows/ holds exactly what the mapping tables generate")
    func upToDate() throws {
        let root = RepositoryTablesTests.root
        let documents = try DataflowDocument.generate(repositoryRoot: root)
        #expect(documents.map(\.fileName) == ["customerp-to-customwebshop.rst", "customwebshop-to-powerofficego.rst"])
        for document in documents {
            let path = "docs/dataflows/\(document.fileName)"
            let committed = try? String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
            let upToDate = committed == document.contents
            #expect(
                upToDate,
                """
                \(path) is stale: the mapping tables or contracts changed. Run `make dataflows` and commit the result.
                \(firstDifference(committed ?? "", document.contents))
                """)
        }
    }
}

/// Where two texts first differ, by line, for a failure message that stays short.
func firstDifference(_ old: String, _ new: String) -> String {
    let a = old.split(separator: "\n", omittingEmptySubsequences: false)
    let b = new.split(separator: "\n", omittingEmptySubsequences: false)
    for i in 0..<max(a.count, b.count) where i >= a.count || i >= b.count || a[i] != b[i] {
        return
            "first difference on line \(i + 1): committed \(i < a.count ? "\"\(a[i])\"" : "(end)"), generated \(i < b.count ? "\"\(b[i])\"" : "(end)")"
    }
    return ""
}

/// Small in-memory tables and contracts, so each rule of the document is seen on its own.
@Suite("Dataflow documents")
struct DataflowDocumentTests {
    static let shopContract = """
        openapi: 3.0.3
        info: {title: shop, version: "1"}
        paths: {}
        components:
          schemas:
            Customer:
              type: object
              properties:
                id: {type: integer, format: int64}
                email: {type: string}
                first_name: {type: string}
                last_name: {type: string}
                phone: {type: string}
                note: {type: string}
            Order:
              type: object
              properties:
                id: {type: integer, format: int64}
                number: {type: string}
                status: {type: string, enum: [pending, completed]}
                created: {type: string, format: date-time}
                currency: {type: string}
                reference: {type: string}
                line_items:
                  type: array
                  items:
                    type: object
                    properties:
                      quantity: {type: integer}
                      sku: {type: string}
        """

    static let goContract = """
        openapi: 3.0.1
        info: {title: go, version: "2"}
        paths: {}
        components:
          schemas:
            CustomerDto:
              allOf:
                - $ref: '#/components/schemas/CustomerPostDto'
                - type: object
                  properties:
                    Id: {type: integer, format: int64}
            CustomerPostDto:
              type: object
              properties:
                IsPerson: {type: boolean}
                Name: {type: string}
                FirstName: {type: string}
                LastName: {type: string}
                EmailAddress: {type: string, format: email}
                OrganizationNumber: {type: string}
                IsArchived: {type: boolean, nullable: true}
            OrderStatus: {type: string, enum: [Draft, Confirmed], nullable: true}
            SalesOrderPostDto:
              type: object
              properties:
                Number: {type: integer, format: int64}
                SalesOrderDate: {type: string, format: date}
                SalesOrderStatus: {$ref: '#/components/schemas/OrderStatus'}
                CurrencyCode: {type: string}
                Reference: {type: string}
                SalesOrderLines:
                  type: array
                  items: {$ref: '#/components/schemas/SalesOrderLinePostDto'}
            SalesOrderLinePostDto:
              type: object
              properties:
                Quantity: {type: number, format: double}
                ProductCode: {type: string}
        """

    static func row(
        _ canonical: [String], _ native: [String], _ direction: MappingTable.Direction = .both,
        converter: String = "identity"
    ) -> MappingTable.Row {
        MappingTable.Row(canonical: canonical, native: native, converter: converter, direction: direction, vatRate: nil, line: 1)
    }

    static func row(_ canonical: String, _ native: String, _ direction: MappingTable.Direction = .both) -> MappingTable.Row {
        row([canonical], [native], direction)
    }

    static func table(
        _ system: SystemName, _ entity: CanonicalEntityType, _ contract: String, _ schema: String,
        _ writeSchema: String, _ rows: [MappingTable.Row]
    ) -> MappingTable {
        MappingTable(
            system: system, entity: entity, contract: contract, schema: schema, writeSchema: writeSchema,
            id: "id", modifiedAt: nil, rows: rows, file: "mappings/\(system.rawValue)/\(entity.rawValue).yaml")
    }

    static let flow = Dataflow(source: .customwebshop, target: .powerofficego)

    static func tables(shopCustomerRows: [MappingTable.Row]? = nil) -> [MappingTable] {
        [
            table(
                .customwebshop, .customer, "shop.yaml", "Customer", "Customer",
                shopCustomerRows ?? [
                    row("email", "email"),
                    row("firstName", "first_name"),
                    row("lastName", "last_name"),
                    row("phone", "phone")
                ]),
            table(
                .powerofficego, .customer, "go.yaml", "CustomerDto", "CustomerPostDto",
                [
                    row(["kind", "name", "firstName", "lastName"], ["IsPerson", "Name", "FirstName", "LastName"], converter: "personName"),
                    row("email", "EmailAddress"),
                    row("organizationNumber", "OrganizationNumber")
                ]),
            table(
                .customwebshop, .order, "shop.yaml", "Order", "Order",
                [
                    row("orderNumber", "number", .read),
                    row("currency", "currency", .write),
                    row("status", "status"),
                    row("customerReference", "reference", .write),
                    row("lines.sku", "line_items[].sku", .read),
                    row("lines.quantity", "line_items[].quantity")
                ]),
            table(
                .powerofficego, .order, "go.yaml", "SalesOrderPostDto", "SalesOrderPostDto",
                [
                    row("orderNumber", "Number"),
                    row("orderDate", "SalesOrderDate"),
                    row("currency", "CurrencyCode", .write),
                    row("status", "SalesOrderStatus"),
                    row("customerReference", "Reference", .read),
                    row("lines.quantity", "SalesOrderLines[].Quantity"),
                    row("lines.sku", "SalesOrderLines[].ProductCode")
                ])
        ]
    }

    static func contracts() throws -> [String: OpenAPISchemas] {
        ["shop.yaml": try OpenAPISchemas(yaml: shopContract), "go.yaml": try OpenAPISchemas(yaml: goContract)]
    }

    static func render(_ tables: [MappingTable] = tables()) throws -> String {
        try DataflowDocument(flow: flow, tables: tables, contracts: contracts()).render()
    }

    /// The rows of the section titled `heading` as [source, target, type] triples.
    static func tableRows(_ text: String, section heading: String) -> [[String]] {
        let sections = text.components(separatedBy: "\n\(heading)\n")
        guard sections.count == 2 else { return [] }
        let body = sections[1]
        var rows: [[String]] = []
        for line in body.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("   * - ") {
                rows.append([String(line.dropFirst("   * - ".count))])
            } else if line.hasPrefix("     - "), !rows.isEmpty {
                rows[rows.count - 1].append(String(line.dropFirst("     - ".count)))
            } else if !line.isEmpty, !line.hasPrefix(" "), !line.hasPrefix(".."), !rows.isEmpty {
                break
            }
        }
        return rows
    }

    @Test("The title is '<A> to <B> Dataflow' with an over- and underline of its length, then an introduction")
    func title() throws {
        let text = try Self.render()
        let rule = String(repeating: "=", count: "Customwebshop to PowerOffice Go Dataflow".count)
        #expect(text.contains("\n\(rule)\nCustomwebshop to PowerOffice Go Dataflow\n\(rule)\n\nThis document lists"))
        #expect(text.hasPrefix(".. Generated from"))
        #expect(text.hasSuffix("\n") && !text.hasSuffix("\n\n"))
    }

    @Test("One section per entity pair, with the system's entity names and the two sentences")
    func sections() throws {
        let text = try Self.render()
        let heading = "Customwebshop Order to PowerOffice Go SalesOrders"
        #expect(text.contains("\n\n\(heading)\n\(String(repeating: "-", count: heading.count))\n\n"))
        #expect(text.contains("\nCustomwebshop Customer to PowerOffice Go Customers\n"))
        #expect(text.contains("\nEvery Customwebshop Order will be synchronized with a PowerOffice Go SalesOrders.\n"))
        #expect(
            text.contains(
                """
                \nOnce a link between Customwebshop Order and PowerOffice Go SalesOrders is established, \
                it will keep in sync between the two systems, regardless of where it is edited.\n
                """))
        // No product tables: no product section.
        #expect(!text.contains("Products"))
        // Customer before Order, as in DESIGN's flow table.
        let customer = try #require(text.range(of: "Customwebshop Customer to"))
        let order = try #require(text.range(of: "Customwebshop Order to"))
        #expect(customer.lowerBound < order.lowerBound)
    }

    @Test("The list-table has one header row: '<A> <Entity> Property | <B> <Entity> Property | <B> Data Type'")
    func header() throws {
        let text = try Self.render()
        #expect(
            text.contains(
                """
                .. list-table::
                   :header-rows: 1

                   * - Customwebshop Customer Property
                     - PowerOffice Go Customers Property
                     - PowerOffice Go Data Type
                   * -\u{20}
                """))
    }

    @Test("A group row expands to one row per member; members only one side carries are no rows")
    func groupRow() throws {
        let rows = Self.tableRows(try Self.render(), section: "Customwebshop Customer to PowerOffice Go Customers")
        #expect(
            rows == [
                ["Customwebshop Customer Property", "PowerOffice Go Customers Property", "PowerOffice Go Data Type"],
                ["first_name", "FirstName", "string"],
                ["last_name", "LastName", "string"],
                ["email", "EmailAddress", "string (email)"]
            ])
    }

    @Test("A field only one side carries is not a row, but is named as not synchronized")
    func oneSideOnly() throws {
        let text = try Self.render()
        let rows = Self.tableRows(text, section: "Customwebshop Customer to PowerOffice Go Customers").flatMap { $0 }
        #expect(!rows.contains("phone"))
        #expect(!rows.contains("OrganizationNumber"))
        #expect(!rows.contains("IsPerson"))
        #expect(text.contains("\nCustomwebshop Customer properties not synchronized with PowerOffice Go: phone.\n"))
        #expect(text.contains("\nPowerOffice Go Customers properties not synchronized with Customwebshop: IsPerson, Name, OrganizationNumber.\n"))
    }

    @Test("Rows pair what A reads with what B writes; the other pairs are named by direction")
    func directions() throws {
        let text = try Self.render()
        let rows = Self.tableRows(text, section: "Customwebshop Order to PowerOffice Go SalesOrders")
        // orderNumber and lines.sku: the shop reads them, Go writes them; the shop never takes them back.
        #expect(
            Array(rows.dropFirst()) == [
                ["number", "Number", "integer (int64)"],
                ["status", "SalesOrderStatus", "enum (OrderStatus)"],
                ["line_items[].sku", "SalesOrderLines[].ProductCode", "string"],
                ["line_items[].quantity", "SalesOrderLines[].Quantity", "number (double)"]
            ])
        #expect(
            text.contains(
                """
                \nSynchronized from Customwebshop to PowerOffice Go only: number to Number, \
                line_items[].sku to SalesOrderLines[].ProductCode.\n
                """))
        // customerReference: Go reads it, the shop writes it: it flows only the other way.
        #expect(text.contains("\nSynchronized from PowerOffice Go to Customwebshop only: Reference to reference.\n"))
        // currency: written to both, read from neither.
        #expect(text.contains("\nCustomwebshop Order properties not synchronized with PowerOffice Go: currency.\n"))
        #expect(text.contains("\nPowerOffice Go SalesOrders properties not synchronized with Customwebshop: SalesOrderDate, CurrencyCode.\n"))
    }

    @Test("Line fields sit where `lines` stands in the registry, members in registry order")
    func lineOrder() throws {
        let order = DataflowDocument.documentOrder(.order)
        let lines = try #require(order.firstIndex(of: "lines.product"))
        #expect(order[lines - 1] == "customerReference")
        #expect(order.last == "archived")
        #expect(!order.contains("lines"))
        #expect(Array(order[lines...].prefix(7)) == CanonicalField.orderLine.map(\.path))
    }

    @Test("The same tables give the same bytes, whatever the order of their rows")
    func deterministic() throws {
        let shuffled = Self.tables().map { table -> MappingTable in
            var t = table
            t.rows.reverse()
            return t
        }
        #expect(try Self.render() == Self.render(shuffled))
        #expect(try Self.render(Self.tables().reversed()) == Self.render())
    }

    @Test("A missing contract is an error naming the table")
    func missingContract() throws {
        #expect(throws: DataflowDocumentError.self) {
            try DataflowDocument(flow: Self.flow, tables: Self.tables(), contracts: ["shop.yaml": try OpenAPISchemas(yaml: Self.shopContract)])
        }
    }

    @Test("Names that reStructuredText would read as markup are escaped")
    func escaping() {
        #expect(DataflowDocument.escape("first_name") == "first_name")
        #expect(DataflowDocument.escape("line_items[].sku") == "line_items[].sku")
        #expect(DataflowDocument.escape("name_") == "name\\_")
        #expect(DataflowDocument.escape("a*b|c`d") == "a\\*b\\|c\\`d")
    }
}

@Suite("Data types of contract properties")
struct OpenAPIDataTypeTests {
    @Test("type, type (format), named and inline enums, arrays, $ref and allOf wrappers")
    func rendering() throws {
        let go = try OpenAPISchemas(yaml: DataflowDocumentTests.goContract)
        let shop = try OpenAPISchemas(yaml: DataflowDocumentTests.shopContract)
        #expect(go.dataType(at: "Name", in: "CustomerPostDto") == "string")
        #expect(go.dataType(at: "IsArchived", in: "CustomerPostDto") == "boolean")
        #expect(go.dataType(at: "Number", in: "SalesOrderPostDto") == "integer (int64)")
        #expect(go.dataType(at: "SalesOrderDate", in: "SalesOrderPostDto") == "string (date)")
        #expect(go.dataType(at: "SalesOrderStatus", in: "SalesOrderPostDto") == "enum (OrderStatus)")
        #expect(go.dataType(at: "SalesOrderLines[].Quantity", in: "SalesOrderPostDto") == "number (double)")
        #expect(go.dataType(at: "SalesOrderLines", in: "SalesOrderPostDto") == "array of object (SalesOrderLinePostDto)")
        #expect(go.dataType(at: "Id", in: "CustomerDto") == "integer (int64)")
        #expect(go.dataType(at: "EmailAddress", in: "CustomerDto") == "string (email)")
        #expect(shop.dataType(at: "created", in: "Order") == "string (date-time)")
        #expect(shop.dataType(at: "status", in: "Order") == "enum (pending, completed)")
        #expect(shop.dataType(at: "line_items[].quantity", in: "Order") == "integer")
        #expect(go.dataType(at: "Nope", in: "CustomerPostDto") == nil)
        #expect(go.dataType(at: "Name", in: "Nope") == nil)
        #expect(go.dataType(at: "SalesOrderLines.Quantity", in: "SalesOrderPostDto") == nil)
    }
}
