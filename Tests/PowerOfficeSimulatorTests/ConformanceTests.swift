import Foundation
import Testing

@testable import PowerOfficeSimulator

/// Exercises every endpoint the simulator implements over HTTP, records each response (method,
/// the spec's path template, status, body) and has Tests/schema/check_poweroffice_conformance.py
/// validate them against specs/powerofficego-v2.openapi.yaml with Python's jsonschema — the real
/// document, read by an independent implementation.
@Suite("PowerOffice Go simulator conforms to the v2 OpenAPI document")
struct ConformanceTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyResponseValidatesAgainstTheSpec() async throws {
        var configuration = GoSimulatorConfiguration()
        configuration.rateLimitPerSecond = 0
        configuration.seedCount = 6
        let exchanges = try await withSimulator(configuration) { client, _ in
            try await Self.exercise(client)
            return client.exchanges
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("poweroffice-conformance-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let recording = directory.appendingPathComponent("recording.jsonl")
        var lines: [String] = []
        for e in exchanges {
            let record: JSONValue = .object([
                "method": .string(e.method), "path": .string(e.template), "status": .int(Int64(e.status)),
                "contentType": e.contentType.map(JSONValue.string) ?? .null,
                "body": (try? JSONValue.parse(e.body)) ?? .null, "bodyText": .string(String(decoding: e.body, as: UTF8.self))
            ])
            lines.append(String(decoding: record.serialized(), as: UTF8.self))
        }
        try lines.joined(separator: "\n").write(to: recording, atomically: true, encoding: .utf8)

        let generated = try runPython(
            script: Self.repositoryRoot.appendingPathComponent("Tests/schema/generate_poweroffice_schema.py"), arguments: ["--check"])
        #expect(generated.status == 0, "GoSchema+Generated.swift is stale:\n\(generated.output)")

        let result = try runPython(
            script: Self.repositoryRoot.appendingPathComponent("Tests/schema/check_poweroffice_conformance.py"), arguments: [recording.path])
        print(result.output)
        switch result.status {
        case 0: #expect(result.output.contains("\(exchanges.count)/\(exchanges.count) responses conform"))
        case 3: Issue.record("jsonschema or PyYAML is missing (pip install jsonschema pyyaml):\n\(result.output)")
        default: Issue.record("Conformance check failed (exit \(result.status)):\n\(result.output)")
        }
    }

    /// The check itself must fail on bodies that break the spec (a string id, an unknown member,
    /// `null` for a non-nullable `$ref`, a bad date-time, an unlisted status, a 204 with a body),
    /// and accept `null` where the spec says `nullable` — else a passing run proves nothing.
    @Test func theCheckRejectsNonConformingResponses() throws {
        let recording = FileManager.default.temporaryDirectory.appendingPathComponent("poweroffice-nonconforming-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: recording) }
        try #"""
        {"method":"GET","path":"/Customers/{id}","status":200,"contentType":"application/json","body":{"Id":"12","Name":"x"},"bodyText":"x"}
        {"method":"GET","path":"/Customers/{id}","status":200,"contentType":"application/json","body":{"Id":12,"Colour":"red"},"bodyText":"x"}
        {"method":"GET","path":"/Customers/{id}","status":200,"contentType":"application/json","body":{"Id":12,"MailAddress":null},"bodyText":"x"}
        {"method":"GET","path":"/Products/{id}","status":200,"contentType":"application/json","body":{"Id":12,"LastChangedDateTimeOffset":"yesterday"},"bodyText":"x"}
        {"method":"POST","path":"/Products","status":201,"contentType":"application/json","body":{"Id":12},"bodyText":"x"}
        {"method":"GET","path":"/Customers","status":204,"contentType":null,"body":null,"bodyText":"[]"}
        {"method":"GET","path":"/Customers/{id}","status":200,"contentType":"application/json","body":{"Id":12,"Name":null,"IsArchived":null,"InvoiceDeliveryType":null},"bodyText":"x"}
        """#.write(to: recording, atomically: true, encoding: .utf8)
        let result = try runPython(
            script: Self.repositoryRoot.appendingPathComponent("Tests/schema/check_poweroffice_conformance.py"), arguments: [recording.path])
        guard result.status != 3 else { Issue.record("jsonschema or PyYAML is missing:\n\(result.output)"); return }
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("1/7 responses conform"), "\(result.output)")
        #expect(result.output.contains("ok   GET /Customers/{id} -> 200"), "nullable members must be accepted:\n\(result.output)")
    }

    /// One call of every implemented operation, with the statuses the spec documents for it.
    static func exercise(_ client: GoClient) async throws {
        // Customers
        let listed = try await client.call(.GET, "/Customers?PageSize=3&PageNumber=1", template: "/Customers")
        #expect(listed.status == 200)
        let ids = try await client.call(.GET, "/Customers?Fields=Id&OrderBy=Id&PageSize=3", template: "/Customers")
        #expect(
            ids.status == 200
                && ids.json.map { if case .array(let a) = $0 { a.allSatisfy { $0.objectValue?.keys.sorted() == ["Id"] } } else { false } } == true)
        #expect(try await client.call(.GET, "/Customers?Fields=Colour", template: "/Customers").status == 400)
        let created = try await client.call(
            .POST, "/Customers", template: "/Customers",
            json: json(
                #"""
                {"Name": "Fjordkraft Handel AS", "OrganizationNumber": "923609016", "EmailAddress": "post@fjordkraft.example.no",
                 "ExternalImportReference": "parley:customer:1", "IsPerson": false,
                 "MailAddress": {"AddressLine1": "Storgata 1", "ZipCode": "0150", "City": "OSLO", "CountryCode": "NO"}}
                """#))
        #expect(created.status == 201)
        let customerId = created.json!["Id"]!.int64Value!
        let duplicate = try await client.call(
            .POST, "/Customers", template: "/Customers", json: json(#"{"Name": "x", "ExternalImportReference": "parley:customer:1"}"#))
        #expect(duplicate.status == 400)
        #expect(try await client.call(.GET, "/Customers/\(customerId)", template: "/Customers/{id}").status == 200)
        #expect(try await client.call(.GET, "/Customers/999", template: "/Customers/{id}").status == 404)
        let cursor = created.json!["LastChangedDateTimeOffset"]!.stringValue!
        let patched = try await client.call(
            .PATCH, "/Customers/\(customerId)", template: "/Customers/{id}",
            json: json(#"[{"op": "replace", "path": "/PhoneNumber", "value": "41234567"}, {"op": "replace", "path": "/IsArchived", "value": true}]"#))
        #expect(patched.status == 200)
        #expect(
            try await client.call(
                .PATCH, "/Customers/\(customerId)", template: "/Customers/{id}", json: json(#"[{"op": "replace", "path": "/Id", "value": 1}]"#)
            ).status == 400)
        #expect(
            try await client.call(
                .PATCH, "/Customers/999", template: "/Customers/{id}", json: json(#"[{"op": "replace", "path": "/Name", "value": "x"}]"#)
            ).status == 404)
        let encoded = cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let changed = try await client.call(.GET, "/Customers?lastChangedDateTimeOffsetGreaterThan=\(encoded)", template: "/Customers")
        #expect(changed.status == 200 && changed.json.map { if case .array(let a) = $0 { a.count } else { 0 } } == 1)
        #expect(try await client.call(.GET, "/Customers?lastChangedDateTimeOffsetGreaterThan=not-a-date", template: "/Customers").status == 400)
        let deletable = try await client.call(
            .POST, "/Customers", template: "/Customers", json: json(#"{"IsPerson": true, "FirstName": "Kari", "LastName": "Nordmann"}"#))
        #expect(try await client.call(.DELETE, "/Customers/\(deletable.json!["Id"]!.int64Value!)", template: "/Customers/{id}").status == 200)
        #expect(try await client.call(.DELETE, "/Customers/999", template: "/Customers/{id}").status == 404)

        // Products
        #expect(try await client.call(.GET, "/Products", template: "/Products").status == 200)
        let product = try await client.call(
            .POST, "/Products", template: "/Products",
            json: json(
                #"""
                {"Name": "Ullgenser", "Code": "SKU-GENSER", "UnitPrice": 899.0, "UnitCost": 400, "ProductType": "Product",
                 "UnitOfMeasureCode": "EA", "StockOnHand": 12, "Gtin": "7038010000737", "Description": "Varm"}
                """#))
        #expect(product.status == 200)
        let productId = product.json!["Id"]!.int64Value!
        #expect(try await client.call(.POST, "/Products", template: "/Products", json: json(#"{"Name": "Dup", "Code": "SKU-GENSER"}"#)).status == 400)
        #expect(try await client.call(.POST, "/Products", template: "/Products", json: json(#"{"Code": "NO-NAME"}"#)).status == 400)
        #expect(try await client.call(.GET, "/Products/\(productId)", template: "/Products/{id}").status == 200)
        #expect(try await client.call(.GET, "/Products/1", template: "/Products/{id}").status == 404)
        #expect(
            try await client.call(
                .PATCH, "/Products/\(productId)", template: "/Products/{id}",
                json: json(#"[{"op": "replace", "path": "/UnitPrice", "value": 949.5}]"#)
            ).status == 200)
        #expect(
            try await client.call(
                .PATCH, "/Products/\(productId)", template: "/Products/{id}",
                json: json(#"[{"op": "replace", "path": "/StockAvailable", "value": 1}]"#)
            ).status == 400)
        #expect(try await client.call(.GET, "/Products?codes=SKU-GENSER&isArchived=false", template: "/Products").status == 200)
        #expect(try await client.call(.GET, "/Products?codes=NO-SUCH-CODE", template: "/Products").status == 204)
        #expect(try await client.call(.GET, "/Products?resourceParameter.fields=id,Code", template: "/Products").status == 200)
        let spare = try await client.call(.POST, "/Products", template: "/Products", json: json(#"{"Name": "Spare"}"#))
        #expect(try await client.call(.DELETE, "/Products/\(spare.json!["Id"]!.int64Value!)", template: "/Products/{id}").status == 200)

        // Sales orders
        #expect(try await client.call(.GET, "/SalesOrders", template: "/SalesOrders").status == 200)
        let order = try await client.call(
            .POST, "/SalesOrders/Complete", template: "/SalesOrders/Complete",
            json: json(
                #"""
                {"CustomerId": \#(customerId), "ExternalImportReference": "parley:order:1", "SalesOrderDate": "2025-03-01",
                 "CustomerReference": "Kari", "CurrencyCode": "NOK", "SalesOrderStatus": "Draft",
                 "SalesOrderLines": [{"ProductId": \#(productId), "Quantity": 2, "Allowance": 5, "ExternalImportReference": "parley:order:1:line:1"},
                                     {"Description": "Frakt", "Quantity": 1, "ProductUnitPrice": 99}]}
                """#))
        #expect(order.status == 201)
        let orderId = order.json!["Id"]!.stringValue!
        #expect(
            try await client.call(
                .POST, "/SalesOrders/Complete", template: "/SalesOrders/Complete",
                json: json(#"{"CustomerId": \#(customerId), "ExternalImportReference": "parley:order:1"}"#)
            ).status == 400)
        #expect(
            try await client.call(.POST, "/SalesOrders/Complete", template: "/SalesOrders/Complete", json: json(#"{"CustomerId": 999}"#)).status
                == 404)
        #expect(try await client.call(.GET, "/SalesOrders/\(orderId)", template: "/SalesOrders/{id}").status == 200)
        #expect(try await client.call(.GET, "/SalesOrders/\(orderId)/Complete", template: "/SalesOrders/{id}/Complete").status == 200)
        let missing = "00000000-0000-4000-8000-000000000000"
        #expect(try await client.call(.GET, "/SalesOrders/\(missing)/Complete", template: "/SalesOrders/{id}/Complete").status == 404)
        #expect(try await client.call(.GET, "/SalesOrders/\(missing)", template: "/SalesOrders/{id}").status == 404)
        #expect(
            try await client.call(
                .PATCH, "/SalesOrders/\(orderId)", template: "/SalesOrders/{id}",
                json: json(#"[{"op": "replace", "path": "/DeliveryDate", "value": "2025-03-10"}]"#)
            ).status == 200)
        #expect(
            try await client.call(
                .PATCH, "/SalesOrders/\(orderId)", template: "/SalesOrders/{id}",
                json: json(#"[{"op": "replace", "path": "/SalesOrderNo", "value": 7}]"#)
            ).status == 400)
        #expect(try await client.call(.GET, "/SalesOrders/\(orderId)/Lines", template: "/SalesOrders/{id}/Lines").status == 200)
        let line = try await client.call(
            .POST, "/SalesOrders/\(orderId)/Lines", template: "/SalesOrders/{id}/Lines", json: json(#"{"ProductCode": "SKU-GENSER", "Quantity": 1}"#))
        #expect(line.status == 201)
        let lineId = line.json!["Id"]!.stringValue!
        #expect(
            try await client.call(
                .POST, "/SalesOrders/\(orderId)/Lines", template: "/SalesOrders/{id}/Lines", json: json(#"{"ProductId": 1, "Quantity": 1}"#)
            ).status == 404)
        #expect(try await client.call(.GET, "/SalesOrders/\(orderId)/Lines/\(lineId)", template: "/SalesOrders/{id}/Lines/{lineId}").status == 200)
        #expect(try await client.call(.GET, "/SalesOrders/\(orderId)/Lines/\(missing)", template: "/SalesOrders/{id}/Lines/{lineId}").status == 404)
        #expect(
            try await client.call(
                .PATCH, "/SalesOrders/\(orderId)/Lines/\(lineId)", template: "/SalesOrders/{id}/Lines/{lineId}",
                json: json(#"[{"op": "replace", "path": "/Quantity", "value": 4}]"#)
            ).status == 200)
        #expect(
            try await client.call(
                .PATCH, "/SalesOrders/\(orderId)/Lines/\(lineId)", template: "/SalesOrders/{id}/Lines/{lineId}",
                json: json(#"[{"op": "replace", "path": "/VatRate", "value": 0.15}]"#)
            ).status == 400)
        #expect(try await client.call(.DELETE, "/SalesOrders/\(orderId)/Lines/\(lineId)", template: "/SalesOrders/{id}/Lines/{lineId}").status == 200)
        #expect(
            try await client.call(
                .GET, "/SalesOrders?orderStatus=Draft&lastChangedDateTimeOffsetGreaterThan=2000-01-01T00:00:00Z", template: "/SalesOrders"
            ).status == 200)
        #expect(try await client.call(.GET, "/SalesOrders?Fields=Id&PageSize=2", template: "/SalesOrders").status == 200)
        let empty = try await client.call(
            .POST, "/SalesOrders/Complete", template: "/SalesOrders/Complete", json: json(#"{"CustomerId": \#(customerId)}"#))
        let emptyId = empty.json!["Id"]!.stringValue!
        #expect(try await client.call(.GET, "/SalesOrders/\(emptyId)/Lines", template: "/SalesOrders/{id}/Lines").status == 204)
        #expect(try await client.call(.DELETE, "/SalesOrders/\(emptyId)", template: "/SalesOrders/{id}").status == 200)
        #expect(try await client.call(.DELETE, "/Customers/\(customerId)", template: "/Customers/{id}").status == 409)
    }
}

func runPython(script: URL, arguments: [String]) throws -> (status: Int32, output: String) {
    let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    guard
        let python = searchPath.split(separator: ":").map({ URL(fileURLWithPath: String($0)).appendingPathComponent("python3") })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0.path) })
    else {
        Issue.record("python3 is not on PATH (\(searchPath)); the conformance check needs it")
        return (-1, "")
    }
    let process = Process()
    process.executableURL = python
    process.arguments = [script.path] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}
