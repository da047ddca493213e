import Foundation
import Logging
import Testing
import ParleyAMQP
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyPostgres
import ParleyTestSupport
@testable import ParleyAdapter
import ParleyJSON
import ParleyEnvelope

/// Writes in several requests (PowerOffice Go's orders): the feed leaves out their
/// intermediate states (`WriteMarkers`), and a confirmed Go order is unlocked for an edit and
/// confirmed again.
@Suite("Writes in steps", .serialized, .timeLimit(.minutes(5)))
struct WriteMarkerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A system whose feed is whatever the test puts in it: one page, the records as set.
    final class ScriptedFeed: SystemConnector, @unchecked Sendable {
        let system: SystemName = .powerofficego
        let records = Locked<[JSONObject]>([])
        func changes(_ entity: CanonicalEntityType, since: Date?, cursor: String?) async throws(SystemError) -> ChangePage {
            ChangePage(records: entity == .order ? records.withLock { $0 } : [], nextCursor: nil)
        }
        func create(_ entity: CanonicalEntityType, record: JSONObject, idempotencyKey: String) async throws(SystemError) -> JSONObject { record }
        func update(_ entity: CanonicalEntityType, id: String, record: JSONObject, cleared: [String], current: JSONObject?) async throws(SystemError)
            -> JSONObject
        { record }
        func archive(_ entity: CanonicalEntityType, id: String, record: JSONObject, current: JSONObject?) async throws(SystemError) -> JSONObject {
            record
        }
        func record(_ entity: CanonicalEntityType, id: String) async throws(SystemError) -> JSONObject? { nil }
        func find(_ entity: CanonicalEntityType, idempotencyKey: String) async throws(SystemError) -> JSONObject? { nil }
        func writesInSteps(_ entity: CanonicalEntityType) -> Bool { entity == .order }
    }

    static func order(_ id: String, at ms: Int64, status: String = "Confirmed") -> JSONObject {
        [
            "Id": .string(id), "CustomerId": 1234567, "CurrencyCode": "NOK", "SalesOrderStatus": .string(status),
            "LastChangedDateTimeOffset": .string(CivilTime.formatInstant(ms: ms)), "SalesOrderLines": []
        ]
    }

    @Test(
        "Marks: a running write hides every report of its record, a settled one the reports older than its end; others and expired marks hide nothing"
    )
    func marks() async throws {
        try await ScratchDatabase.with("parley_marks") { configuration in
            let pool = PostgresPool(configuration: configuration, maxConnections: 1)
            defer { Task { await pool.close() } }
            _ = try await Migrator(migrations: AdapterSchema.migrations, schema: AdapterSchema.name).migrate(on: pool)
            let marks = WriteMarkers(pool: pool, system: .powerofficego)
            #expect(try await marks.hidden(.order, [("A", 100)]).isEmpty)
            try await marks.begin(.order, id: "A")
            #expect(try await marks.hidden(.order, [("A", 100), ("A", 999_999), ("B", 100)]) == ["A"])
            #expect(try await WriteMarkers(pool: pool, system: .customerp).hidden(.order, [("A", 100)]).isEmpty, "per system")
            #expect(try await marks.hidden(.customer, [("A", 100)]).isEmpty, "per entity type")
            #expect(try await marks.begin(.order, id: "B") == false, "nothing earlier")
            #expect(try await marks.begin(.order, id: "B") == true, "an earlier write of B still running: died or failed half-way")
            try await marks.settle(.order, id: "A", modifiedAt: 500)
            #expect(try await marks.begin(.order, id: "C") == false)
            try await marks.settle(.order, id: "C", modifiedAt: 500)
            #expect(try await marks.begin(.order, id: "C") == false, "the earlier write settled")
            #expect(try await marks.hidden(.order, [("A", 499)]) == ["A"])
            #expect(try await marks.hidden(.order, [("A", 500)]).isEmpty)
            #expect(try await marks.hidden(.order, [("A", 501)]).isEmpty)
            // A new write of the record runs again.
            try await marks.begin(.order, id: "A")
            #expect(try await marks.hidden(.order, [("A", 501)]) == ["A"])
            // A writer that died leaves a mark that expires.
            _ = try await pool.execute("update parley_adapter.write_in_progress set started_at = now() - interval '11 minutes'")
            #expect(try await marks.hidden(.order, [("A", 501)]).isEmpty)
            try await marks.prune()
            #expect(
                try await pool.query("select count(*) from parley_adapter.write_in_progress where native_id = 'A'")[0].decode(Int.self, at: 0) == 0)
        }
    }

    /// An order in PowerOffice Go whose update takes steps: the next one fails half-way when
    /// `failNext` (its lines deleted, the new ones not yet posted, the record's time moved on);
    /// `editDuringNext` is an edit someone makes between its last step and the read that ends it.
    final class SteppedOrders: SystemConnector, @unchecked Sendable {
        let system: SystemName = .powerofficego
        let order = Locked<JSONObject>([:])
        let failNext = Locked(true)
        let editDuringNext = Locked<JSONObject?>(nil)
        func changes(_ entity: CanonicalEntityType, since: Date?, cursor: String?) async throws(SystemError) -> ChangePage {
            ChangePage(records: [], nextCursor: nil)
        }
        func create(_ entity: CanonicalEntityType, record: JSONObject, idempotencyKey: String) async throws(SystemError) -> JSONObject { record }
        func update(_ entity: CanonicalEntityType, id: String, record: JSONObject, cleared: [String], current: JSONObject?) async throws(SystemError)
            -> JSONObject
        {
            let half = failNext.withLock { fail in
                defer { fail = false }; return fail
            }
            let written = order.withLock { order -> JSONObject in
                let at = (try? CivilTime.parseInstant(order["LastChangedDateTimeOffset"]?.string ?? "")) ?? 0
                order["LastChangedDateTimeOffset"] = .string(CivilTime.formatInstant(ms: at + 1000))
                order["SalesOrderLines"] = half ? [] : record["SalesOrderLines"]
                if !half,
                    let edit = editDuringNext.withLock({ edit in
                        defer { edit = nil }; return edit
                    })
                {
                    for (key, value) in edit { order[key] = value }
                    order["LastChangedDateTimeOffset"] = .string(CivilTime.formatInstant(ms: at + 1500))
                }
                return order
            }
            if half { throw .transient("HTTP 503: the line's POST failed", retryAfter: nil) }
            return written
        }
        func archive(_ entity: CanonicalEntityType, id: String, record: JSONObject, current: JSONObject?) async throws(SystemError) -> JSONObject {
            record
        }
        func record(_ entity: CanonicalEntityType, id: String) async throws(SystemError) -> JSONObject? { order.withLock { $0 } }
        func find(_ entity: CanonicalEntityType, idempotencyKey: String) async throws(SystemError) -> JSONObject? { nil }
        func writesInSteps(_ entity: CanonicalEntityType) -> Bool { entity == .order }
    }

    @Test(
        "A write in steps that failed half-way is finished by its retry, not reported as an edit made since its base; its mark hides the half meanwhile"
    )
    func halfWrittenOrderIsFinished() async throws {
        try await ScratchVhost.with("parley-test-half") { vhost in
            try await ScratchDatabase.with("parley_marks_half") { configuration in
                let pool = PostgresPool(configuration: configuration, maxConnections: 1)
                defer { Task { await pool.close() } }
                _ = try await Migrator(migrations: AdapterSchema.migrations, schema: AdapterSchema.name).migrate(on: pool)
                let publisher = AMQPPublisher(configuration: try vhost.configuration("test-half"), topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                let id = "38ecfc1a-bf51-448f-99a8-a61bc5771109"
                let t0: Int64 = 1_800_000_000_000
                let connector = SteppedOrders()
                var order = Self.order(id, at: t0)
                order["SalesOrderLines"] = [["ProductId": 1, "Quantity": 2]]
                connector.order.withLock { $0 = order }
                let marks = WriteMarkers(pool: pool, system: .powerofficego)
                let mappings = try Mappings.load(repositoryRoot: Self.root)
                let writer = CommandWriter(
                    connector: connector, mappings: mappings, publisher: publisher,
                    schedule: RetrySchedule(attempts: 1), markers: marks, logger: Logger(label: "test"))
                let mapper = try #require(mappings.mapper(system: .powerofficego, entity: .order))
                let command = ConditionalWriteTests.update(
                    id, key: "order/00000000-0000-4000-8000-000000000001",
                    record: ["SalesOrderLines": [["ProductId": 1, "Quantity": 3]]],
                    writeId: "w-1", base: CivilTime.formatInstant(ms: t0))
                let cause = try Envelope(kind: .command, system: .powerofficego, entityType: .order, entityId: id, payload: command.json)
                let first = try await writer.write(command, entity: .order, mapper: mapper, retried: false, cause: cause)
                #expect(try first.kind == .failed && FailedPayload(json: first.payload).transient)
                #expect(try await marks.hidden(.order, [(id, t0 + 1000)]) == [id], "the half is left out of the feed")
                // The retry, same base: the record's newer time is the failed write's own.
                let second = try await writer.write(command, entity: .order, mapper: mapper, retried: true, cause: cause)
                #expect(second.kind == .written, "\(second.payload)")
                #expect(connector.order.withLock { $0["SalesOrderLines"]?.array?.first?["Quantity"] } == 3)
                #expect(try await marks.hidden(.order, [(id, t0 + 2000)]).isEmpty, "settled at the finished write's time")
                // The command once more (redelivered after its write landed): the record holds
                // what it writes, so it is written, though modified since its base.
                let third = try await writer.write(command, entity: .order, mapper: mapper, retried: true, cause: cause)
                #expect(third.kind == .written, "\(third.payload)")
                // Other lines on that old base: modified since, by a write this command does not
                // know of, so the order is merged first.
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                var other = command
                other.record = ["SalesOrderLines": [["ProductId": 1, "Quantity": 4]]]
                let fourth = try await writer.write(other, entity: .order, mapper: mapper, retried: false, cause: cause)
                #expect(try fourth.kind == .failed && FailedPayload(json: fourth.payload).kind == "changed")
            }
        }
    }

    @Test(
        "An edit that lands during a write in steps is published as a change, and the write reported without a time, so the next write's base still predates it"
    )
    func editDuringWriteIsReported() async throws {
        try await ScratchVhost.with("parley-test-interleaved") { vhost in
            try await ScratchDatabase.with("parley_marks_interleaved") { configuration in
                let pool = PostgresPool(configuration: configuration, maxConnections: 1)
                defer { Task { await pool.close() } }
                _ = try await Migrator(migrations: AdapterSchema.migrations, schema: AdapterSchema.name).migrate(on: pool)
                let amqp = try vhost.configuration("test-interleaved")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                let id = "38ecfc1a-bf51-448f-99a8-a61bc5771109"
                let t0: Int64 = 1_800_000_000_000
                let connector = SteppedOrders()
                connector.failNext.withLock { $0 = false }
                var order = Self.order(id, at: t0)
                order["SalesOrderLines"] = [["ProductId": 1, "Quantity": 2]]
                connector.order.withLock { $0 = order }
                let mappings = try Mappings.load(repositoryRoot: Self.root)
                let writer = CommandWriter(
                    connector: connector, mappings: mappings, publisher: publisher, schedule: RetrySchedule(attempts: 1),
                    markers: WriteMarkers(pool: pool, system: .powerofficego), logger: Logger(label: "test"))
                let mapper = try #require(mappings.mapper(system: .powerofficego, entity: .order))
                let command = ConditionalWriteTests.update(
                    id, key: "order/00000000-0000-4000-8000-000000000001",
                    record: ["SalesOrderLines": [["ProductId": 1, "Quantity": 3]]],
                    writeId: "w-1", base: CivilTime.formatInstant(ms: t0))
                let cause = try Envelope(kind: .command, system: .powerofficego, entityType: .order, entityId: id, payload: command.json)
                // Undisturbed: written at the record's time after the write.
                let plain = try await writer.write(command, entity: .order, mapper: mapper, retried: false, cause: cause)
                #expect(try plain.kind == .written && WrittenPayload(json: plain.payload).modifiedAt == CivilTime.formatInstant(ms: t0 + 1000))
                // Someone sets the line's quantity to 7 between the last step and the read.
                connector.editDuringNext.withLock { $0 = ["SalesOrderLines": [["ProductId": 1, "Quantity": 7]]] }
                var next = command
                next.record = ["SalesOrderLines": [["ProductId": 1, "Quantity": 4]]]
                next.baseModifiedAt = CivilTime.formatInstant(ms: t0 + 1000)
                let edited = try await writer.write(next, entity: .order, mapper: mapper, retried: false, cause: cause)
                #expect(try edited.kind == .written && WrittenPayload(json: edited.payload).modifiedAt == nil, "\(edited.payload)")
                let published = try await AdapterProcessTests.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(300))
                #expect(published.count == 1)
                #expect(published.first?.entityId == id)
                #expect(
                    published.first?.payload["record"]?["SalesOrderLines"]?.array?.first?["Quantity"] == 7, "the edit, as the feed would report it")
                #expect(published.first?.payload["record"]?["LastChangedDateTimeOffset"]?.string == CivilTime.formatInstant(ms: t0 + 2500))
            }
        }
    }

    @Test("The poller leaves out a marked record's intermediate states and reports its end state")
    func pollerLeavesOutSteps() async throws {
        try await ScratchVhost.with("parley-test-marks") { vhost in
            try await ScratchDatabase.with("parley_marks_poll") { configuration in
                let pool = PostgresPool(configuration: configuration, maxConnections: 2)
                defer { Task { await pool.close() } }
                _ = try await Migrator(migrations: AdapterSchema.migrations, schema: AdapterSchema.name).migrate(on: pool)
                let amqp = try vhost.configuration("test-marks")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                let feed = ScriptedFeed()
                let marks = WriteMarkers(pool: pool, system: .powerofficego)
                let poller = ChangePoller(
                    connector: feed, mappings: try Mappings.load(repositoryRoot: Self.root),
                    store: FeedPositionStore(pool: pool, system: .powerofficego),
                    lease: PollLease(configuration: configuration, system: .powerofficego), publisher: publisher,
                    overlap: .zero, markers: marks, logger: Logger(label: "test"))
                let a = "38ecfc1a-bf51-448f-99a8-a61bc5771109", b = "48ecfc1a-bf51-448f-99a8-a61bc5771109"
                let t0: Int64 = 1_800_000_000_000
                feed.records.withLock { $0 = [Self.order(a, at: t0), Self.order(b, at: t0)] }
                #expect(try await poller.poll(.order) == 2)
                // Parley starts writing A: its steps show in the feed (unlocked, half the lines).
                try await marks.begin(.order, id: a)
                feed.records.withLock { $0 = [Self.order(a, at: t0 + 100, status: "Draft"), Self.order(b, at: t0 + 100)] }
                #expect(try await poller.poll(.order) == 1, "B's edit only")
                // The write ends: its end state is newer than any step.
                try await marks.settle(.order, id: a, modifiedAt: t0 + 300)
                feed.records.withLock { $0 = [Self.order(a, at: t0 + 200, status: "Draft")] }
                #expect(try await poller.poll(.order) == 0, "a step read late is still a step")
                feed.records.withLock { $0 = [Self.order(a, at: t0 + 300)] }
                #expect(try await poller.poll(.order) == 1, "the end state")
                let published = try await AdapterProcessTests.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 4, quiet: .milliseconds(300))
                #expect(
                    published.map { $0.payload["record"]?["SalesOrderStatus"]?.string ?? "?" } == ["Confirmed", "Confirmed", "Confirmed", "Confirmed"]
                )
                #expect(published.filter { $0.entityId == a }.count == 2)
            }
        }
    }

    @Test(
        "PowerOffice Go: editing a confirmed order's lines unlocks it, writes them (lines of the same product patched in place, conditional on the read; others deleted and posted) and confirms it again"
    )
    func confirmedOrderEdit() async throws {
        let port = AdapterProcessTests.port()
        let go = "http://127.0.0.1:\(port)"
        let simulator = try AdapterProcessTests.start("powerofficego-simulator", ["--port", "\(port)", "--rate-limit", "0"])
        defer { simulator.terminate() }
        try await AdapterProcessTests.waitUntilUp(go + "/_admin/faults")
        let env = AdapterProcessTests.powerOffice(go)
        let connector = PowerOfficeConnector(
            baseURL: env["PARLEY_POWEROFFICE_URL"]!,
            credentials: .init(
                tokenURL: env["PARLEY_POWEROFFICE_TOKEN_URL"]!, applicationKey: env["PARLEY_POWEROFFICE_APPLICATION_KEY"]!,
                clientKey: env["PARLEY_POWEROFFICE_CLIENT_KEY"]!, subscriptionKey: env["PARLEY_POWEROFFICE_SUBSCRIPTION_KEY"]!))
        #expect(connector.writesInSteps(.order) && !connector.writesInSteps(.customer))
        let customer = try await connector.create(.customer, record: ["IsPerson": false, "Name": "Fjord Fisk AS"], idempotencyKey: "customer/x")
        let customerId = try #require(customer["Id"])
        let product = try await connector.create(
            .product, record: ["Code": "KAFFE-500", "Name": "Kaffe", "UnitPrice": 79.2], idempotencyKey: "product/x")
        let productId = try #require(product["Id"])
        func line(_ quantity: Int) -> JSONValue {
            ["ProductId": productId, "Description": "Kaffe", "Quantity": .number(JSONNumber(quantity)), "ProductUnitPrice": 79.2]
        }
        let created = try await connector.create(
            .order,
            record: [
                "CustomerId": customerId, "CurrencyCode": "NOK", "SalesOrderStatus": "Confirmed", "SalesOrderDate": "2026-11-05",
                "SalesOrderLines": [line(2)]
            ], idempotencyKey: "order/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11")
        let id = try #require(created["Id"]?.string)
        #expect(created["SalesOrderStatus"] == "Confirmed")
        // The status left as it is: unlocked for the edit, confirmed again.
        let edited = try await connector.update(
            .order, id: id, record: ["CustomerReference": "PO-1", "SalesOrderLines": [line(3), line(1)]], cleared: [], current: nil)
        #expect(edited["SalesOrderStatus"] == "Confirmed")
        #expect(edited["CustomerReference"] == "PO-1")
        #expect(edited["SalesOrderLines"]?.array?.compactMap { $0["Quantity"]?.int } == [3, 1])
        // Asked for Draft: the order is left unlocked.
        let draft = try await connector.update(
            .order, id: id, record: ["SalesOrderStatus": "Draft", "SalesOrderLines": [line(4)]], cleared: [], current: nil)
        #expect(draft["SalesOrderStatus"] == "Draft")
        #expect(draft["SalesOrderLines"]?.array?.compactMap { $0["Quantity"]?.int } == [4])

        // Lines of the same product are patched in place, conditional on the read: a line
        // someone edited since is left with their edit, the others written.
        let two = try await connector.update(.order, id: id, record: ["SalesOrderLines": [line(4), line(5)]], cleared: [], current: nil)
        let read = try #require(two["SalesOrderLines"]?.array)
        let ids = read.compactMap { $0["Id"]?.string }
        #expect(ids.count == 2 && ids.first == draft["SalesOrderLines"]?.array?.first?["Id"]?.string, "the first line patched, not posted again")
        // Someone's edit (through the same client: Go cannot tell).
        _ = try await connector.http.send(
            .PATCH, "/SalesOrders/\(id)/Lines/\(ids[1])", body: [["op": "replace", "path": "/Quantity", "value": 9]],
            contentType: "application/json-patch+json")
        let raced = try await connector.update(.order, id: id, record: ["SalesOrderLines": [line(6), line(7)]], cleared: [], current: two)
        #expect(raced["SalesOrderLines"]?.array?.compactMap { $0["Quantity"]?.int } == [6, 9], "the edit made since the read stays")
        #expect(raced["SalesOrderLines"]?.array?.compactMap { $0["Id"]?.string } == ids)
    }
}
