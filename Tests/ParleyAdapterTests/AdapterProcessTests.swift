import Foundation
import Testing
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import ParleyAMQP
import ParleyCanonical
import ParleyCore
import ParleyMessaging
import ParleyPostgres
import ParleyTestSupport
@testable import ParleyAdapter
import ParleyJSON
import ParleyEnvelope

/// The real adapter processes against the real simulators (HTTP servers), RabbitMQ and
/// PostgreSQL, each test in a vhost and a database of its own.
@Suite("Adapters against the simulators", .serialized, .timeLimit(.minutes(5)))
struct AdapterProcessTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func port() -> Int { Int.random(in: 20_000...40_000) }

    static func start(_ name: String, _ arguments: [String], env extra: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = try #require(builtExecutable(name), "\(name) is not built next to the tests")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["PARLEY_LOG_LEVEL"] = "warning"
        for (k, v) in extra { env[k] = v }
        process.environment = env
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// What every adapter needs: the test's vhost, database and the repository's tables.
    static func environment(_ vhost: ScratchVhost, _ databaseURL: String) -> [String: String] {
        ["PARLEY_AMQP_URL": vhost.url, "PARLEY_DATABASE_URL": databaseURL, "PARLEY_REPOSITORY": root.path]
    }

    /// The PowerOffice Go simulator's endpoints and its default credentials.
    static func powerOffice(_ go: String) -> [String: String] {
        [
            "PARLEY_POWEROFFICE_URL": go + "/v2", "PARLEY_POWEROFFICE_TOKEN_URL": go + "/OAuth/Token",
            "PARLEY_POWEROFFICE_APPLICATION_KEY": "sim-application-key", "PARLEY_POWEROFFICE_CLIENT_KEY": "sim-client-key",
            "PARLEY_POWEROFFICE_SUBSCRIPTION_KEY": "sim-subscription-key"
        ]
    }

    static func stop(_ process: Process) async throws {
        guard process.isRunning else { return }
        process.terminate()
        _ = try await withDeadline(.seconds(30), "a process stopping") {
            while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            return true
        }
    }

    static func http(_ method: String, _ url: String, headers: [String: String] = [:], body: JSONValue? = nil) async throws -> (Int, JSONValue?) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        if let body {
            request.httpBody = Data(body.serializedString().utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, data.isEmpty ? nil : try? JSONValue.parse(String(decoding: data, as: UTF8.self)))
    }

    /// Waits until `url` answers at all.
    static func waitUntilUp(_ url: String) async throws { try await waitUntilAnswering(url) }

    /// Takes messages from `queue` until `count` arrived or `quiet` passes with nothing new.
    static func drain(_ queue: String, _ amqp: AMQPConfiguration, atLeast count: Int, quiet: Duration = .seconds(2)) async throws -> [Envelope] {
        let consumer = AMQPConsumer(configuration: amqp, queue: queue)
        defer { Task { await consumer.close() } }
        let got = Locked<[Envelope]>([])
        let reader = Task {
            for await delivery in consumer.deliveries {
                if let envelope = try? delivery.envelope() { got.withLock { $0.append(envelope) } }
                delivery.ack()
            }
        }
        defer { reader.cancel() }
        _ = try await withDeadline(.seconds(60), "\(count) messages on \(queue)") {
            while got.withLock({ $0.count }) < count { try await Task.sleep(for: .milliseconds(50)) }
            return true
        }
        // Anything more that comes (there should be nothing) comes within the quiet time.
        try await Task.sleep(for: quiet)
        return got.withLock { $0 }
    }

    @Test(
        "customerp-adapter: captures creates and updates, resumes from its cursor after a restart without re-publishing or missing, and writes commands through 429s exactly once"
    )
    func erpAdapter() async throws {
        try await ScratchVhost.with("parley-test-adapter") { vhost in
            try await ScratchDatabase.with("parley_adapter_test") { _, databaseURL in
                let port = Self.port()
                let erp = "http://127.0.0.1:\(port)"
                let key = ["X-Api-Key": "test-key"]
                let simulator = try Self.start("customerp-simulator", ["--port", "\(port)", "--api-key", "test-key"])
                defer { simulator.terminate() }
                try await Self.waitUntilUp(erp + "/_admin/records")
                let amqp = try vhost.configuration("test-erp")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))

                func customer(_ n: Int, _ name: String) -> JSONValue {
                    ["customerType": "COMPANY", "name": .string(name), "email": .string("kunde\(n)@example.no")]
                }
                var ids: [String] = []
                for n in 1...3 {
                    let (status, body) = try await Self.http(
                        "POST", erp + "/customers", headers: key.merging(["Idempotency-Key": "seed-\(n)"]) { a, _ in a },
                        body: customer(n, "Kunde \(n) AS"))
                    #expect(status == 201)
                    ids.append(try #require(body?["id"]?.string))
                }
                let env = Self.environment(vhost, databaseURL).merging(["PARLEY_CUSTOMERP_URL": erp, "PARLEY_CUSTOMERP_API_KEY": "test-key"]) {
                    a, _ in a
                }
                var adapter = try Self.start("customerp-adapter", ["--poll-seconds", "0.2"], env: env)
                let first = try await Self.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 3)
                #expect(Set(first.map(\.entityId)) == Set(ids))
                #expect(first.count == 3, "each record once")
                #expect(first.allSatisfy { $0.kind == .change && $0.system == .customerp && $0.entityType == .customer })

                // Down: one record changes, one is created. Back up: exactly those two.
                try await Self.stop(adapter)
                _ = try await Self.http("PUT", erp + "/customers/\(ids[1])", headers: key, body: customer(2, "Kunde 2 AS (endret)"))
                let (_, created) = try await Self.http(
                    "POST", erp + "/customers", headers: key.merging(["Idempotency-Key": "seed-4"]) { a, _ in a },
                    body: customer(4, "Kunde 4 AS"))
                adapter = try Self.start("customerp-adapter", ["--poll-seconds", "0.2"], env: env)
                defer { adapter.terminate() }
                let second = try await Self.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 2)
                #expect(Set(second.map(\.entityId)) == Set([ids[1], try #require(created?["id"]?.string)]))
                #expect(second.count == 2, "nothing re-published after the restart")
                #expect(second.first { $0.entityId == ids[1] }?.payload["record"]?["name"] == "Kunde 2 AS (endret)")

                // A command through a burst of 429s, delivered twice: one record, two written events with its id.
                _ = try await Self.http("POST", erp + "/_admin/faults", body: ["rateLimitBurst": 3, "retryAfterSeconds": 1])
                let command = CommandPayload(
                    operation: .create, targetId: nil, idempotencyKey: "customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11",
                    record: ["customerType": "COMPANY", "name": "Ny Kunde AS", "email": "ny@example.no"], cleared: [],
                    expected: CanonicalPayload(
                        operation: .upsert, entity: ["name": "Ny Kunde AS"], carried: ["name"], references: [], modifiedAt: nil),
                    writeId: "w-1")
                for _ in 0..<2 {
                    try await publisher.publish(
                        OutgoingMessage(
                            envelope: try Envelope(
                                kind: .command, system: .customerp, entityType: .customer,
                                entityId: command.idempotencyKey, payload: command.json),
                            exchange: ParleyTopology.Exchanges.commands, routingKey: "customerp.customer.command"))
                }
                let events = try await Self.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 2)
                #expect(events.count == 2)
                #expect(events.allSatisfy { $0.kind == .written })
                #expect(Set(events.map(\.entityId)).count == 1, "the retried create returned the first record")
                #expect(try WrittenPayload(json: events[0].payload).writeId == "w-1")
                let (_, records) = try await Self.http("GET", erp + "/customers?limit=100", headers: key)
                #expect(records?["items"]?.array?.filter { $0["name"] == "Ny Kunde AS" }.count == 1)

                // A command the ERP refuses (no name) is a failed event with its message.
                var bad = command
                bad.record = ["customerType": "COMPANY"]
                bad.idempotencyKey = "customer/1b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11"
                try await publisher.publish(
                    OutgoingMessage(
                        envelope: try Envelope(
                            kind: .command, system: .customerp, entityType: .customer,
                            entityId: bad.idempotencyKey, payload: bad.json),
                        exchange: ParleyTopology.Exchanges.commands, routingKey: "customerp.customer.command"))
                let refused = try await Self.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(500))
                let failed = try FailedPayload(json: try #require(refused.first).payload)
                #expect(refused.first?.kind == .failed)
                #expect(!failed.transient)
                #expect(failed.kind.hasPrefix("http4"))
                #expect(failed.reason.contains("name"))
                try await Self.stop(adapter)
            }
        }
    }

    @Test("customwebshop-adapter: a webhook with a wrong signature gets 401 and publishes nothing; a signed one publishes the record")
    func webhooks() async throws {
        try await ScratchVhost.with("parley-test-webhook") { vhost in
            try await ScratchDatabase.with("parley_webhook_test") { _, databaseURL in
                let shopPort = Self.port(), hookPort = Self.port()
                let shop = "http://127.0.0.1:\(shopPort)"
                let simulator = try Self.start(
                    "customwebshop-simulator", ["--port", "\(shopPort)", "--consumer-key", "ck", "--consumer-secret", "cs"])
                defer { simulator.terminate() }
                try await Self.waitUntilUp(shop + "/_admin/records")
                let basic = ["Authorization": "Basic " + Data("ck:cs".utf8).base64EncodedString()]
                let (status, created) = try await Self.http(
                    "POST", shop + "/customers", headers: basic.merging(["Idempotency-Key": "k1"]) { a, _ in a },
                    body: ["email": "ola@example.no", "first_name": "Ola", "last_name": "Nordmann"])
                #expect(status == 201)
                let id = try #require(created?["id"]?.number?.text)
                let env = Self.environment(vhost, databaseURL).merging([
                    "PARLEY_CUSTOMWEBSHOP_URL": shop, "PARLEY_CUSTOMWEBSHOP_KEY": "ck", "PARLEY_CUSTOMWEBSHOP_SECRET": "cs",
                    "PARLEY_CUSTOMWEBSHOP_WEBHOOK_SECRET": "whsec"
                ]) { a, _ in a }
                // Polling slowed down so the webhook is what publishes.
                let adapter = try Self.start("customwebshop-adapter", ["--poll-seconds", "3600", "--webhook-port", "\(hookPort)"], env: env)
                defer { adapter.terminate() }
                try await Self.waitUntilUp("http://127.0.0.1:\(hookPort)/health")
                let amqp = try vhost.configuration("test-webhook")
                // The first poll publishes the existing record; take it out of the way.
                _ = try await Self.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(500))

                let body = Array(#"{"event":"updated","resource":"customer","id":\#(id),"occurred_at":"2026-11-22T00:00:00Z"}"#.utf8)
                let timestamp = String(Int(Date().timeIntervalSince1970))
                let url = "http://127.0.0.1:\(hookPort)/webhooks/customwebshop"
                func post(_ signature: String) async throws -> Int {
                    var request = URLRequest(url: URL(string: url)!)
                    request.httpMethod = "POST"
                    request.httpBody = Data(body)
                    request.setValue(timestamp, forHTTPHeaderField: WebhookVerifier.timestampHeader)
                    request.setValue(signature, forHTTPHeaderField: WebhookVerifier.signatureHeader)
                    let (_, response) = try await URLSession.shared.data(for: request)
                    return (response as! HTTPURLResponse).statusCode
                }
                #expect(try await post(WebhookVerifier(secret: "not-the-secret").sign(timestamp: timestamp, body: body)) == 401)
                #expect(try await post(WebhookVerifier(secret: "whsec").sign(timestamp: timestamp, body: body)) == 204)
                let published = try await Self.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1)
                #expect(published.count == 1, "the refused webhook published nothing")
                #expect(published.first?.entityId == id)
                #expect(published.first?.payload["record"]?["email"] == "ola@example.no")
                try await Self.stop(adapter)
            }
        }
    }

    @Test(
        "powerofficego-adapter: creates and updates through the token flow, an expired token is refreshed without a failed write, and the feed reports what was written"
    )
    func powerOfficeAdapter() async throws {
        try await ScratchVhost.with("parley-test-go") { vhost in
            try await ScratchDatabase.with("parley_go_test") { _, databaseURL in
                let port = Self.port()
                let go = "http://127.0.0.1:\(port)"
                let simulator = try Self.start("powerofficego-simulator", ["--port", "\(port)"])
                defer { simulator.terminate() }
                try await Self.waitUntilUp(go + "/_admin/faults")
                let env = Self.environment(vhost, databaseURL).merging(Self.powerOffice(go)) { a, _ in a }
                let adapter = try Self.start("powerofficego-adapter", ["--poll-seconds", "0.5"], env: env)
                defer { adapter.terminate() }
                let amqp = try vhost.configuration("test-go")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))

                func send(_ command: CommandPayload) async throws {
                    try await publisher.publish(
                        OutgoingMessage(
                            envelope: try Envelope(
                                kind: .command, system: .powerofficego, entityType: .customer,
                                entityId: command.targetId ?? command.idempotencyKey, payload: command.json),
                            exchange: ParleyTopology.Exchanges.commands, routingKey: "powerofficego.customer.command"))
                }
                let expected = CanonicalPayload(
                    operation: .upsert, entity: ["name": "Fjord Fisk AS"], carried: ["name"], references: [], modifiedAt: nil)
                try await send(
                    CommandPayload(
                        operation: .create, targetId: nil, idempotencyKey: "customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11",
                        record: ["IsPerson": false, "Name": "Fjord Fisk AS", "EmailAddress": "post@fjordfisk.no"],
                        cleared: [], expected: expected, writeId: "w-1"))
                let created = try await Self.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(200))
                #expect(created.map(\.kind) == [.written])
                let id = try #require(created.first?.entityId)

                // The token expires under the adapter's feet: the next write refreshes it and lands.
                _ = try await Self.http("POST", go + "/_admin/expire-tokens")
                try await send(
                    CommandPayload(
                        operation: .update, targetId: id, idempotencyKey: "customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11",
                        record: ["Name": "Fjord Fisk og Skalldyr AS"], cleared: ["EmailAddress"], expected: expected, writeId: "w-2"))
                let updated = try await Self.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: 1, quiet: .milliseconds(200))
                #expect(updated.map(\.kind) == [.written], "\(updated.map(\.payload))")
                #expect(updated.first?.entityId == id)

                // The feed reports the customer as it now is.
                let changes = try await withDeadline(.seconds(60), "the update in the feed") { () -> [Envelope] in
                    while true {
                        let batch = try await Self.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(700))
                        if batch.contains(where: { $0.payload["record"]?["Name"] == "Fjord Fisk og Skalldyr AS" }) { return batch }
                    }
                }
                let latest = try #require(changes.last { $0.entityId == id })
                #expect(latest.payload["record"]?["Name"] == "Fjord Fisk og Skalldyr AS")
                #expect(latest.payload["record"]?["EmailAddress"] == .null || latest.payload["record"]?["EmailAddress"] == nil)
                try await Self.stop(adapter)
            }
        }
    }

    @Test("Two customerp-adapter replicas: one polls; when it is killed the other takes over from the same position, publishing each change once")
    func pollLeaseTakeover() async throws {
        try await ScratchVhost.with("parley-test-lease") { vhost in
            try await ScratchDatabase.with("parley_lease_test") { _, databaseURL in
                let port = Self.port()
                let erp = "http://127.0.0.1:\(port)"
                let key = ["X-Api-Key": "test-key"]
                let simulator = try Self.start("customerp-simulator", ["--port", "\(port)", "--api-key", "test-key"])
                defer { simulator.terminate() }
                try await Self.waitUntilUp(erp + "/_admin/records")
                let amqp = try vhost.configuration("test-lease")
                func create(_ n: Int) async throws -> String {
                    let (_, body) = try await Self.http(
                        "POST", erp + "/customers", headers: key.merging(["Idempotency-Key": "lease-\(n)"]) { a, _ in a },
                        body: ["customerType": "COMPANY", "name": .string("Kunde \(n) AS")])
                    return try #require(body?["id"]?.string)
                }
                let env = Self.environment(vhost, databaseURL).merging(["PARLEY_CUSTOMERP_URL": erp, "PARLEY_CUSTOMERP_API_KEY": "test-key"]) {
                    a, _ in a
                }
                // The first replica takes the lease and publishes the first record.
                let first = try await create(1)
                let a = try Self.start("customerp-adapter", ["--poll-seconds", "0.2"], env: env)
                defer { a.terminate() }
                #expect(try await Self.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1).map(\.entityId) == [first])
                // The second starts while the first holds the lease: it writes but does not poll.
                let b = try Self.start("customerp-adapter", ["--poll-seconds", "0.2"], env: env)
                defer { b.terminate() }
                let second = try await create(2)
                #expect(
                    try await Self.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1).map(\.entityId) == [second],
                    "one replica polls: the new record once")
                // The poller dies without a goodbye; the other takes over from the stored position.
                kill(a.processIdentifier, SIGKILL)
                let third = try await create(3)
                #expect(
                    try await Self.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1).map(\.entityId) == [third],
                    "the survivor publishes what changed, and nothing again")
                try await Self.stop(b)
            }
        }
    }

    @Test("powerofficego-adapter through a burst of 429s and random 5xx: every write lands, none twice")
    func powerOfficeFaults() async throws {
        try await ScratchVhost.with("parley-test-go-faults") { vhost in
            try await ScratchDatabase.with("parley_go_faults") { _, databaseURL in
                let port = Self.port()
                let go = "http://127.0.0.1:\(port)"
                let simulator = try Self.start("powerofficego-simulator", ["--port", "\(port)"])
                defer { simulator.terminate() }
                try await Self.waitUntilUp(go + "/_admin/faults")
                let env = Self.environment(vhost, databaseURL).merging(Self.powerOffice(go)) { a, _ in a }
                let adapter = try Self.start("powerofficego-adapter", ["--poll-seconds", "3600"], env: env)
                defer { adapter.terminate() }
                let amqp = try vhost.configuration("test-go-faults")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                _ = try await Self.http("POST", go + "/_admin/faults", body: ["throttleBurst": 5, "throttleRetryAfterSeconds": 1, "errorRate": 0.15])
                let n = 10
                for i in 0..<n {
                    let key = "customer/00000000-0000-4000-8000-\(String(format: "%012d", i))"
                    let command = CommandPayload(
                        operation: .create, targetId: nil, idempotencyKey: key,
                        record: ["IsPerson": false, "Name": .string("Kunde \(i) AS")], cleared: [],
                        expected: CanonicalPayload(
                            operation: .upsert, entity: ["name": .string("Kunde \(i) AS")], carried: ["name"], references: [], modifiedAt: nil),
                        writeId: "w-\(i)")
                    try await publisher.publish(
                        OutgoingMessage(
                            envelope: try Envelope(
                                kind: .command, system: .powerofficego, entityType: .customer, entityId: key, payload: command.json),
                            exchange: ParleyTopology.Exchanges.commands, routingKey: "powerofficego.customer.command"))
                }
                let events = try await Self.drain(ParleyTopology.Queues.linkEvents, amqp, atLeast: n)
                #expect(events.count == n)
                #expect(events.allSatisfy { $0.kind == .written }, "\(events.filter { $0.kind != .written }.map(\.payload))")
                #expect(Set(events.map(\.entityId)).count == n)
                // PowerOffice Go holds each customer once.
                _ = try await Self.http("POST", go + "/_admin/faults", body: [:])
                var token = URLRequest(url: URL(string: go + "/OAuth/Token")!)
                token.httpMethod = "POST"
                token.httpBody = Data("grant_type=client_credentials".utf8)
                token.setValue("Basic " + Data("sim-application-key:sim-client-key".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
                token.setValue("sim-subscription-key", forHTTPHeaderField: "Ocp-Apim-Subscription-Key")
                token.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
                let (data, _) = try await URLSession.shared.data(for: token)
                let access = try #require(try JSONValue.parse(String(decoding: data, as: UTF8.self))["access_token"]?.string)
                let (_, customers) = try await Self.http(
                    "GET", go + "/v2/Customers",
                    headers: ["Authorization": "Bearer \(access)", "Ocp-Apim-Subscription-Key": "sim-subscription-key"])
                let names = customers?.array?.compactMap { $0["Name"]?.string } ?? []
                #expect(names.count == n, "\(names)")
                #expect(Set(names).count == n, "none twice")
                try await Self.stop(adapter)
            }
        }
    }
}
