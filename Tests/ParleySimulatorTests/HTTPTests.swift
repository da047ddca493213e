import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ParleyCore
import Testing
@testable import ParleySimulator
@testable import customerp_simulator
@testable import customwebshop_simulator

func json(_ buffer: ByteBuffer) -> JSONValue {
    JSONCoding.decode(Data(buffer.readableBytesView)) ?? .null
}

func body(_ value: JSONValue) -> ByteBuffer { ByteBuffer(bytes: JSONCoding.encode(value)) }

let erpKey = "test-key"

func erpApp(faults: FaultSettings = FaultSettings(), seed: Int = 0) throws -> some ApplicationProtocol {
    let state = try ERPSimulator.makeState(seed: seed, seedValue: 1, faults: faults)
    return Application(router: ERPSimulator.makeRouter(state: state, auth: AuthPolicy(apiKey: erpKey, bearerToken: "tok"), seedValue: 1))
}

let erpHeaders: HTTPFields = [HTTPField.Name("X-Api-Key")!: erpKey, .contentType: "application/json"]

func with(_ headers: HTTPFields, _ name: String, _ value: String) -> HTTPFields {
    var h = headers
    h[HTTPField.Name(name)!] = value
    return h
}

let customerBody: JSONValue = .object([
    "customerType": .string("COMPANY"), "name": .string("Fjord Bygg AS"), "orgNo": .string("923609016"),
    "email": .string("post@fjordbygg.no"), "address": .object(["city": .string("Bergen"), "countryCode": .string("NO")])
])

@Suite struct ERPSimulatorHTTPTests {
    @Test("No credentials: 401 problem+json; X-Api-Key or bearer: allowed; admin is open")
    func auth() async throws {
        try await erpApp().test(.router) { client in
            try await client.execute(uri: "/customers", method: .get) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.contentType] == "application/problem+json")
                #expect(json(r.body)["status"] == .int(401))
            }
            try await client.execute(uri: "/customers", method: .get, headers: [HTTPField.Name("X-Api-Key")!: "wrong"]) { r in
                #expect(r.status == .unauthorized)
            }
            try await client.execute(uri: "/customers", method: .get, headers: erpHeaders) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/customers", method: .get, headers: [.authorization: "Bearer tok"]) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/_admin/records", method: .get) { r in #expect(r.status == .ok) }
        }
    }

    @Test("Create with an Idempotency-Key twice: one record, the same id; without the key: 400; invalid: 422 naming the field")
    func idempotentCreate() async throws {
        try await erpApp().test(.router) { client in
            let h = with(erpHeaders, "Idempotency-Key", "global-1")
            let first = try await client.execute(uri: "/customers", method: .post, headers: h, body: body(customerBody))
            #expect(first.status == .created)
            let second = try await client.execute(uri: "/customers", method: .post, headers: h, body: body(customerBody))
            #expect(second.status == .ok)
            #expect(json(first.body)["id"] != nil && json(first.body)["id"] == json(second.body)["id"])
            #expect(json(first.body) == json(second.body))
            #expect(json(first.body)["customerNo"]?.stringValue?.hasPrefix("K-") == true)
            let list = try await client.execute(uri: "/customers", method: .get, headers: erpHeaders)
            #expect(json(list.body)["items"]?.arrayValue?.count == 1)
            // Same key, other body: 409.
            var other = customerBody.objectValue!
            other["name"] = .string("Another AS")
            let conflict = try await client.execute(uri: "/customers", method: .post, headers: h, body: body(.object(other)))
            #expect(conflict.status == .conflict)
            // No key.
            let noKey = try await client.execute(uri: "/customers", method: .post, headers: erpHeaders, body: body(customerBody))
            #expect(noKey.status == .badRequest)
            // Validation.
            let bad: JSONValue = .object(["customerType": .string("ALIEN"), "address": .object(["countryCode": .string("Norway")])])
            let invalid = try await client.execute(
                uri: "/customers", method: .post, headers: with(erpHeaders, "Idempotency-Key", "global-2"), body: body(bad))
            #expect(invalid.status == .unprocessableContent)
            #expect(invalid.headers[.contentType] == "application/problem+json")
            let fields = Set(json(invalid.body)["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? [])
            #expect(fields == ["customerType", "name", "address.countryCode"])
        }
    }

    @Test("Incremental list after a time returns exactly the changed records; archive; orders compute amounts excl. VAT")
    func incrementalAndArchive() async throws {
        try await erpApp(seed: 5).test(.router) { client in
            let all = json(try await client.execute(uri: "/customers?limit=2", method: .get, headers: erpHeaders).body)
            #expect(all["items"]?.arrayValue?.count == 2)
            let cursor = all["nextCursor"]?.stringValue
            #expect(cursor != nil)
            let page2 = json(try await client.execute(uri: "/customers?limit=2&cursor=\(cursor!)", method: .get, headers: erpHeaders).body)
            #expect(page2["items"]?.arrayValue?.first?["id"] != all["items"]?.arrayValue?.first?["id"])

            let everything = json(try await client.execute(uri: "/customers?limit=500", method: .get, headers: erpHeaders).body)
            let items = everything["items"]!.arrayValue!
            #expect(items.count == 5)
            let last = items.last!["modifiedAt"]!.stringValue!
            // Change two customers: one update, one archive.
            let a = items[1]["id"]!.stringValue!, b = items[3]["id"]!.stringValue!
            let updated = try await client.execute(
                uri: "/customers/\(a)", method: .put, headers: erpHeaders, body: body(.object(["phone": .string("+47 22 00 00 00")])))
            #expect(updated.status == .ok)
            #expect(json(updated.body)["name"] == items[1]["name"])  // omitted members stay
            let archived = try await client.execute(uri: "/customers/\(b)/archive", method: .post, headers: erpHeaders)
            #expect(json(archived.body)["archived"] == .bool(true))
            let since = Timestamp.parse(last)!.adding(milliseconds: 1).rfc3339
            let changed = json(try await client.execute(uri: "/customers?updated_since=\(since)", method: .get, headers: erpHeaders).body)
            #expect(changed["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [a, b])
            #expect(changed["nextCursor"] == .null)
            let missing = try await client.execute(uri: "/customers/999999", method: .get, headers: erpHeaders)
            #expect(missing.status == .notFound && json(missing.body)["status"] == .int(404))

            // A new order: totals excl. VAT from the lines.
            let product = json(try await client.execute(uri: "/products?limit=1", method: .get, headers: erpHeaders).body)["items"]!.arrayValue![0]
            let order: JSONValue = .object([
                "customerId": .string(a), "orderDate": .string("2026-01-10"),
                "lines": .array([
                    .object([
                        "itemNo": product["itemNo"]!, "quantity": .int(3), "unitPrice": .number(100.5),
                        "discountPercent": .int(10), "vatPercent": .int(25)
                    ])
                ])
            ])
            let created = json(
                try await client.execute(
                    uri: "/orders", method: .post, headers: with(erpHeaders, "Idempotency-Key", "o-1"), body: body(order)
                ).body)
            #expect(created["totalExclVat"]?.decimalValue == Decimal(string: "271.35"))
            #expect(created["totalVat"]?.decimalValue == Decimal(string: "67.84"))
            #expect(created["lines"]?.arrayValue?.first?["productId"] == product["id"])
            #expect(created["status"] == .string("ENTERED"))
            let badRef = try await client.execute(
                uri: "/orders", method: .post, headers: with(erpHeaders, "Idempotency-Key", "o-2"),
                body: body(.object(["customerId": .string("nope"), "orderDate": .string("2026-01-10"), "lines": .array([])])))
            #expect(badRef.status == .unprocessableContent)
            #expect(json(badRef.body)["errors"]?.arrayValue?.first?["field"] == .string("customerId"))
        }
    }

    @Test("Fault injection: a 429 burst with Retry-After, set at run time through /_admin/faults; then served again")
    func rateLimitBurst() async throws {
        try await erpApp().test(.router) { client in
            let set = try await client.execute(
                uri: "/_admin/faults", method: .post, body: body(.object(["rateLimitBurst": .int(2), "retryAfterSeconds": .int(3)])))
            #expect(set.status == .ok)
            for _ in 0..<2 {
                try await client.execute(uri: "/customers", method: .get, headers: erpHeaders) { r in
                    #expect(r.status == .tooManyRequests)
                    #expect(r.headers[.retryAfter] == "3")
                    #expect(r.headers[.contentType] == "application/problem+json")
                }
            }
            try await client.execute(uri: "/customers", method: .get, headers: erpHeaders) { r in #expect(r.status == .ok) }
            _ = try await client.execute(uri: "/_admin/faults", method: .post, body: body(.object(["errorRate": .int(1), "errorStatus": .int(502)])))
            try await client.execute(uri: "/customers", method: .get, headers: erpHeaders) { r in #expect(r.status == .badGateway) }
        }
    }

    @Test("Faults set at start apply from the first request; reset re-seeds")
    func startFaultsAndReset() async throws {
        var faults = FaultSettings()
        faults.rateLimitBurst = 1
        try await erpApp(faults: faults).test(.router) { client in
            try await client.execute(uri: "/products", method: .get, headers: erpHeaders) { r in #expect(r.status == .tooManyRequests) }
            _ = try await client.execute(uri: "/_admin/reset", method: .post, body: body(.object(["seed": .int(3)])))
            let records = json(try await client.execute(uri: "/_admin/records", method: .get).body)
            #expect(records["orders"]?.arrayValue?.count == 3)
        }
    }
}

/// A local HTTP server that records what is posted to it.
actor Receiver {
    struct Delivery: Sendable { var timestamp: String?; var signature: String?; var body: [UInt8] }
    var deliveries: [Delivery] = []
    var failFirst: Int
    init(failFirst: Int) { self.failFirst = failFirst }
    func receive(_ d: Delivery) -> Bool {
        if failFirst > 0 { failFirst -= 1; return false }
        deliveries.append(d)
        return true
    }
}

@Suite struct WebshopSimulatorHTTPTests {
    static let basic = "Basic " + Data("ck:cs".utf8).base64EncodedString()
    static let headers: HTTPFields = [.authorization: basic, .contentType: "application/json"]

    func app(webhooks: WebhookDispatcher? = nil, seed: Int = 0) throws -> some ApplicationProtocol {
        let state = try WebshopSimulator.makeState(seed: seed, seedValue: 1, faults: FaultSettings())
        return Application(
            router: WebshopSimulator.makeRouter(
                state: state, auth: AuthPolicy(basic: ("ck", "cs")), seedValue: 1, webhooks: webhooks))
    }

    @Test("Basic auth; duplicate e-mail is 409; prices incl. VAT as decimal strings; PATCH; per_page paging")
    func basics() async throws {
        try await app(seed: 4).test(.router) { client in
            try await client.execute(uri: "/products", method: .get) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate]?.hasPrefix("Basic") == true)
            }
            let page = json(try await client.execute(uri: "/products?per_page=3", method: .get, headers: Self.headers).body)
            #expect(page["items"]?.arrayValue?.count == 3 && page["nextCursor"]?.stringValue != nil)
            let first = page["items"]!.arrayValue![0]
            #expect(first["id"]?.intValue != nil)
            #expect(first["price"]?.stringValue?.range(of: #"^\d+\.\d\d$"#, options: .regularExpression) != nil)
            let email = json(try await client.execute(uri: "/customers?per_page=1", method: .get, headers: Self.headers).body)["items"]!
                .arrayValue![0]["email"]!.stringValue!
            let dup = try await client.execute(
                uri: "/customers", method: .post, headers: with(Self.headers, "Idempotency-Key", "c-1"),
                body: body(.object(["email": .string(email.uppercased())])))
            #expect(dup.status == .conflict)
            #expect(json(dup.body)["errors"]?.arrayValue?.first?["field"] == .string("email"))
            let product = try await client.execute(
                uri: "/products", method: .post, headers: with(Self.headers, "Idempotency-Key", "p-1"),
                body: body(.object(["sku": .string("NEW-1"), "name": .string("Brunost"), "price": .string("124.5"), "tax_rate": .int(15)])))
            #expect(product.status == .created)
            #expect(json(product.body)["price"] == .string("124.50"))
            let id = json(product.body)["id"]!.intValue!
            let patched = try await client.execute(
                uri: "/products/\(id)", method: .patch, headers: Self.headers, body: body(.object(["price": .string("abc")])))
            #expect(patched.status == .unprocessableContent)
            #expect(json(patched.body)["errors"]?.arrayValue?.first?["field"] == .string("price"))
            let order = try await client.execute(
                uri: "/orders", method: .post, headers: with(Self.headers, "Idempotency-Key", "o-1"),
                body: body(.object(["line_items": .array([.object(["sku": .string("NEW-1"), "quantity": .int(2), "price": .string("115.00")])])])))
            #expect(order.status == .created)
            let o = json(order.body)
            #expect(o["total"] == .string("230.00") && o["total_tax"] == .string("30.00"))
            #expect(o["line_items"]?.arrayValue?.first?["product_id"] == .int(id))
        }
    }

    @Test("Lists filter by e-mail (any case) and SKU (exactly): the record a duplicate's 409 names, archived ones too; an empty filter is 400")
    func keyFilters() async throws {
        try await app(seed: 5).test(.router) { client in
            let customers = json(try await client.execute(uri: "/customers?per_page=100", method: .get, headers: Self.headers).body)["items"]!
                .arrayValue!
            #expect(customers.count == 5)
            let target = customers[2]
            let email = target["email"]!.stringValue!
            let query = email.uppercased().addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let byEmail = json(try await client.execute(uri: "/customers?email=\(query)", method: .get, headers: Self.headers).body)
            #expect(byEmail["items"]?.arrayValue?.map { $0["id"] } == [target["id"]], "one customer, found in any case")
            #expect(byEmail["nextCursor"] == .null)
            let none = json(try await client.execute(uri: "/customers?email=nobody%40example.no", method: .get, headers: Self.headers).body)
            #expect(none["items"]?.arrayValue?.isEmpty == true)
            let empty = try await client.execute(uri: "/customers?email=", method: .get, headers: Self.headers)
            #expect(empty.status == .badRequest)
            #expect(json(empty.body)["errors"]?.arrayValue?.first?["field"] == .string("email"))

            // The 409 for a taken SKU names the member; the filter finds the record that has it, archived or not.
            let created = try await client.execute(
                uri: "/products", method: .post, headers: with(Self.headers, "Idempotency-Key", "p-1"),
                body: body(.object(["sku": .string("Ost-1"), "name": .string("Brunost"), "price": .string("124.50")])))
            let id = json(created.body)["id"]!
            _ = try await client.execute(uri: "/products/\(id.intValue!)/archive", method: .post, headers: Self.headers)
            let dup = try await client.execute(
                uri: "/products", method: .post, headers: with(Self.headers, "Idempotency-Key", "p-2"),
                body: body(.object(["sku": .string("Ost-1"), "name": .string("Geitost")])))
            #expect(dup.status == .conflict)
            #expect(json(dup.body)["errors"]?.arrayValue?.first?["field"] == .string("sku"))
            let bySku = json(try await client.execute(uri: "/products?sku=Ost-1", method: .get, headers: Self.headers).body)["items"]!.arrayValue!
            #expect(bySku.map { $0["id"] } == [id])
            #expect(bySku.first?["archived"] == .bool(true))
            let otherCase = json(try await client.execute(uri: "/products?sku=OST-1", method: .get, headers: Self.headers).body)["items"]!.arrayValue!
            #expect(otherCase.isEmpty, "SKUs compare exactly, as their uniqueness does")
            // With the incremental read and paging: only the filtered records.
            let since = json(
                try await client.execute(
                    uri: "/products?sku=Ost-1&updated_since=2000-01-01T00:00:00Z&per_page=1", method: .get,
                    headers: Self.headers
                ).body)
            #expect(since["items"]?.arrayValue?.map { $0["id"] } == [id] && since["nextCursor"] == .null)
        }
    }

    @Test("A change sends a webhook with a valid signature to a local receiver, retried after a failure")
    func webhook() async throws {
        let receiver = Receiver(failFirst: 1)
        let router = Router()
        router.post("/hook") { request, _ in
            var request = request
            let bytes = Array(try await request.collectBody(upTo: 1 << 20).readableBytesView)
            let ok = await receiver.receive(
                .init(
                    timestamp: request.header(WebhookVerifier.timestampHeader),
                    signature: request.header(WebhookVerifier.signatureHeader), body: bytes))
            return Response(status: ok ? .noContent : .serviceUnavailable)
        }
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let receiverApp = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await receiverApp.runService() }
            var ports = portStream.makeAsyncIterator()
            let port = await ports.next()!
            let dispatcher = WebhookDispatcher(url: "http://127.0.0.1:\(port)/hook", secret: "whsec", initialBackoff: .milliseconds(50))
            try await app(webhooks: dispatcher).test(.router) { client in
                let created = try await client.execute(
                    uri: "/customers", method: .post, headers: with(Self.headers, "Idempotency-Key", "c-1"),
                    body: body(.object(["email": .string("kari@nordmann.no")])))
                #expect(created.status == .created)
                let id = json(created.body)["id"]!.intValue!
                var deliveries: [Receiver.Delivery] = []
                for _ in 0..<100 {
                    deliveries = await receiver.deliveries
                    if !deliveries.isEmpty && dispatcher.statistics.delivered == 1 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(deliveries.count == 1)
                guard let d = deliveries.first else { return }
                #expect(throws: Never.self) {
                    try WebhookVerifier(secret: "whsec").verify(timestamp: d.timestamp, signature: d.signature, body: d.body)
                }
                #expect(throws: WebhookVerifier.Rejection.badSignature) {
                    try WebhookVerifier(secret: "wrong").verify(timestamp: d.timestamp, signature: d.signature, body: d.body)
                }
                let event = JSONCoding.decode(Data(d.body))
                #expect(event?["event"] == .string("created") && event?["resource"] == .string("customer"))
                #expect(event?["id"] == .int(id))
                #expect(dispatcher.statistics.failedAttempts == 1 && dispatcher.statistics.delivered == 1)
            }
            group.cancelAll()
        }
    }
}
