import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
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

/// Deletes PowerOffice Go's feed does not show: the ids the feed reported against the ids Go
/// lists now (`DeleteDetector`).
@Suite("Deletes noticed by listing ids", .serialized, .timeLimit(.minutes(5)))
struct DeleteDetectionTests {
    typealias P = AdapterProcessTests

    @Test("candidates: reported and not listed, sorted, at most the limit; nothing when all are listed or none was reported")
    func candidates() {
        #expect(DeleteDetector.candidates(reported: ["3", "1", "2"], listed: ["2", "4"], limit: 10) == ["1", "3"])
        #expect(DeleteDetector.candidates(reported: ["1", "2"], listed: ["1", "2", "3"], limit: 10).isEmpty)
        #expect(DeleteDetector.candidates(reported: [], listed: ["1"], limit: 10).isEmpty)
        // Listed but never reported (created after the reported ids were read): no candidate.
        #expect(DeleteDetector.candidates(reported: ["1"], listed: [], limit: 10) == ["1"])
        #expect(DeleteDetector.candidates(reported: ["a", "b", "c", "d"], listed: [], limit: 2) == ["a", "b"], "the rest wait for the next round")
        #expect(DeleteDetector.candidates(reported: ["a"], listed: [], limit: 0).isEmpty)
    }

    /// PowerOffice Go through the real connector, with the list of ids bent by the test: a
    /// record left out of it (as a page shifted by a concurrent delete leaves one out), or a
    /// record created — and reported by the feed — while the list is read. Counts which ids
    /// were asked for one by one.
    final class BentListing: SystemConnector, @unchecked Sendable {
        let inner: PowerOfficeConnector
        var system: SystemName { inner.system }
        let leftOut = Locked<Set<String>>([])
        let duringList = Locked<(@Sendable () async -> Void)?>(nil)
        let asked = Locked<[String]>([])

        init(_ inner: PowerOfficeConnector) { self.inner = inner }

        func changes(_ entity: CanonicalEntityType, since: Date?, cursor: String?) async throws(SystemError) -> ChangePage {
            try await inner.changes(entity, since: since, cursor: cursor)
        }
        func create(_ entity: CanonicalEntityType, record: JSONObject, idempotencyKey: String) async throws(SystemError) -> JSONObject {
            try await inner.create(entity, record: record, idempotencyKey: idempotencyKey)
        }
        func update(_ entity: CanonicalEntityType, id: String, record: JSONObject, cleared: [String], current: JSONObject?) async throws(SystemError)
            -> JSONObject
        {
            try await inner.update(entity, id: id, record: record, cleared: cleared, current: current)
        }
        func archive(_ entity: CanonicalEntityType, id: String, record: JSONObject, current: JSONObject?) async throws(SystemError) -> JSONObject {
            try await inner.archive(entity, id: id, record: record, current: current)
        }
        func record(_ entity: CanonicalEntityType, id: String) async throws(SystemError) -> JSONObject? {
            asked.withLock { $0.append(id) }
            return try await inner.record(entity, id: id)
        }
        func find(_ entity: CanonicalEntityType, idempotencyKey: String) async throws(SystemError) -> JSONObject? {
            try await inner.find(entity, idempotencyKey: idempotencyKey)
        }
        func listsIds(_ entity: CanonicalEntityType) -> Bool { inner.listsIds(entity) }
        func ids(_ entity: CanonicalEntityType, cursor: String?) async throws(SystemError) -> ChangePage {
            var page = try await inner.ids(entity, cursor: cursor)
            let leftOut = self.leftOut.withLock { $0 }
            page.records.removeAll { leftOut.contains(identity($0)) }
            if let hook = duringList.withLock({ $0 }) {
                duringList.withLock { $0 = nil }
                await hook()
            }
            return page
        }
        func identity(_ record: JSONObject) -> String {
            if case .number(let n)? = record["Id"] { return n.text }
            return record["Id"]?.string ?? ""
        }
    }

    @Test(
        "PowerOffice Go: a deleted customer is published as a delete once; a record the list left out (a shifted page) is asked for and kept; a record created and reported while the list is read is no candidate"
    )
    func reconcileAgainstTheSimulator() async throws {
        try await ScratchVhost.with("parley-test-deletes") { vhost in
            try await ScratchDatabase.with("parley_deletes_store") { configuration, _ in
                let port = P.port()
                let go = "http://127.0.0.1:\(port)"
                // No server-side limit: the connector here is not held to Go's 10 per second.
                let simulator = try P.start("powerofficego-simulator", ["--port", "\(port)", "--rate-limit", "0"])
                defer { simulator.terminate() }
                try await P.waitUntilUp(go + "/_admin/faults")
                let pool = PostgresPool(configuration: configuration, maxConnections: 1)
                defer { Task { await pool.close() } }
                _ = try await Migrator(migrations: AdapterSchema.migrations, schema: AdapterSchema.name).migrate(on: pool)
                let amqp = try vhost.configuration("test-deletes")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                let mappings = try Mappings.load(repositoryRoot: P.root)
                let mapper = try #require(mappings.mapper(system: .powerofficego, entity: .customer))

                // Pages of two ids, so the list is read in several requests.
                let connector = BentListing(
                    PowerOfficeConnector(
                        baseURL: go + "/v2",
                        credentials: .init(
                            tokenURL: go + "/OAuth/Token", applicationKey: "sim-application-key",
                            clientKey: "sim-client-key", subscriptionKey: "sim-subscription-key"),
                        requestsPerSecond: 1000, idPageSize: 2))
                var ids: [String] = []
                for n in 1...5 {
                    let created = try await connector.create(
                        .customer, record: ["Name": .string("Kunde \(n) AS")], idempotencyKey: "customer/delete-\(n)")
                    ids.append(try #require(mapper.identity(of: created).id))
                }
                let reported = ReportedIds(pool: pool, system: .powerofficego)
                try await reported.add(.customer, ids)
                try await reported.add(.customer, [ids[0]])  // reported again: still one row
                #expect(try await reported.all(.customer) == Set(ids))
                let detector = DeleteDetector(connector: connector, reported: reported, publisher: publisher, logger: Logger(label: "test"))

                // Nothing deleted: nothing asked for, nothing published.
                #expect(try await detector.reconcile(.customer, mapper: mapper).isEmpty)
                #expect(connector.asked.withLock { $0 }.isEmpty)

                // A page shifted under the list leaves the third customer out: asked for, it is there.
                connector.leftOut.withLock { $0 = [ids[2]] }
                #expect(try await detector.reconcile(.customer, mapper: mapper).isEmpty)
                #expect(connector.asked.withLock { $0 } == [ids[2]])
                connector.leftOut.withLock { $0 = [] }
                connector.asked.withLock { $0 = [] }

                // A customer created and reported by the feed while the list is read (after its
                // first page): the list may miss it, and it was not among the ids read before.
                let late = Locked<String?>(nil)
                connector.duringList.withLock {
                    $0 = { @Sendable in
                        guard
                            let created = try? await connector.inner.create(
                                .customer, record: ["Name": "Sen Kunde AS"], idempotencyKey: "customer/late"),
                            let id = mapper.identity(of: created).id
                        else { return }
                        late.withLock { $0 = id }
                        try? await reported.add(.customer, [id])
                    }
                }
                // Left out of the list too, as a list read before it was created would be.
                let lateId = String((Int(ids[4]) ?? 0) + 1)
                connector.leftOut.withLock { $0 = [lateId] }
                #expect(try await detector.reconcile(.customer, mapper: mapper).isEmpty)
                #expect(late.withLock { $0 } == lateId)
                #expect(connector.asked.withLock { $0 }.isEmpty, "the late customer was no candidate")
                #expect(try await reported.all(.customer).contains(lateId))
                connector.leftOut.withLock { $0 = [] }

                // Deleted in Go: one delete published, and forgotten, so never again.
                let deleted = ids[1]
                try await Self.goDelete(go, "/v2/Customers/\(deleted)")
                #expect(try await detector.reconcile(.customer, mapper: mapper) == [deleted])
                #expect(try await detector.reconcile(.customer, mapper: mapper).isEmpty)
                #expect(try await !reported.all(.customer).contains(deleted))
                let changes = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 1, quiet: .milliseconds(500))
                #expect(changes.count == 1)
                let change = try #require(changes.first)
                #expect(change.kind == .change && change.system == .powerofficego && change.entityType == .customer && change.entityId == deleted)
                #expect(try ChangePayload(json: change.payload) == ChangePayload(operation: .delete, record: nil))
            }
        }
    }

    /// A Go API call as a test client: a token, then the request. It shares Go's 10 requests
    /// per second with the adapter under test, so a 429 is waited out (`Retry-After`) and retried.
    static func goToken(_ go: String) async throws -> String {
        var token = URLRequest(url: URL(string: go + "/OAuth/Token")!)
        token.httpMethod = "POST"
        token.httpBody = Data("grant_type=client_credentials".utf8)
        token.setValue("Basic " + Data("sim-application-key:sim-client-key".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        token.setValue("sim-subscription-key", forHTTPHeaderField: "Ocp-Apim-Subscription-Key")
        token.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        for _ in 0..<30 {
            let (data, response) = try await URLSession.shared.data(for: token)
            if (response as! HTTPURLResponse).statusCode == 429 {
                try await Task.sleep(for: .milliseconds(500))
                continue
            }
            return try #require(try JSONValue.parse(String(decoding: data, as: UTF8.self))["access_token"]?.string)
        }
        throw CancellationError()
    }

    static func goCall(_ go: String, _ method: String, _ path: String, body: JSONValue? = nil) async throws -> (Int, JSONValue?) {
        let token = try await goToken(go)
        for _ in 0..<30 {
            let (status, answer) = try await P.http(
                method, go + path, headers: ["Authorization": "Bearer \(token)", "Ocp-Apim-Subscription-Key": "sim-subscription-key"],
                body: body)
            if status != 429 { return (status, answer) }
            try await Task.sleep(for: .milliseconds(500))
        }
        Issue.record("\(method) \(path): throttled 30 times")
        return (429, nil)
    }

    static func goDelete(_ go: String, _ path: String) async throws {
        let (status, _) = try await goCall(go, "DELETE", path)
        #expect(status == 200, "DELETE \(path)")
    }

    @Test(
        "powerofficego-adapter: a customer, a product and a draft sales order deleted in Go are each published as a delete exactly once; the records still there are not"
    )
    func adapterPublishesDeletes() async throws {
        try await ScratchVhost.with("parley-test-go-deletes") { vhost in
            try await ScratchDatabase.with("parley_go_deletes") { _, databaseURL in
                let port = P.port()
                let go = "http://127.0.0.1:\(port)"
                let simulator = try P.start("powerofficego-simulator", ["--port", "\(port)"])
                defer { simulator.terminate() }
                try await P.waitUntilUp(go + "/_admin/faults")
                let amqp = try vhost.configuration("test-go-deletes")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)  // declares the queues the test reads
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))

                func create(_ path: String, _ body: JSONValue) async throws -> String {
                    let (status, created) = try await Self.goCall(go, "POST", path, body: body)
                    #expect((200...201).contains(status), "POST \(path): \(String(describing: created))")
                    let id = try #require(created?["Id"])
                    if case .number(let n) = id { return n.text }
                    return try #require(id.string)
                }
                let gone = try await create("/v2/Customers", ["Name": "Borte Kunde AS"])
                let kept = try await create("/v2/Customers", ["Name": "Blir Kunde AS"])
                let goneProduct = try await create("/v2/Products", ["Name": "Borte vare", "Code": "GONE-1"])
                let keptProduct = try await create("/v2/Products", ["Name": "Blir vare", "Code": "KEPT-1"])
                let goneOrder = try await create(
                    "/v2/SalesOrders/Complete",
                    [
                        "CustomerId": .number(JSONNumber(kept)!), "SalesOrderStatus": "Draft",
                        "SalesOrderLines": [["ProductId": .number(JSONNumber(keptProduct)!), "Quantity": 1]]
                    ])

                let env = P.environment(vhost, databaseURL).merging(P.powerOffice(go)) { a, _ in a }
                let adapter = try P.start("powerofficego-adapter", ["--poll-seconds", "0.3", "--reconcile-seconds", "1"], env: env)
                defer { adapter.terminate() }
                // The feed reports the five records first.
                let reportedChanges = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 5, quiet: .seconds(2))
                #expect(Set(reportedChanges.map(\.entityId)) == [gone, kept, goneProduct, keptProduct, goneOrder])
                #expect(reportedChanges.allSatisfy { try! ChangePayload(json: $0.payload).operation == .upsert })

                try await Self.goDelete(go, "/v2/SalesOrders/\(goneOrder)")
                try await Self.goDelete(go, "/v2/Customers/\(gone)")
                try await Self.goDelete(go, "/v2/Products/\(goneProduct)")
                // Several reconciliations pass within the quiet time: each delete still once.
                let deletes = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 3, quiet: .seconds(5))
                #expect(deletes.count == 3, "\(deletes.map { "\($0.entityType) \($0.entityId)" })")
                #expect(
                    Set(deletes.map { "\($0.entityType.rawValue)/\($0.entityId)" }) == [
                        "customer/\(gone)", "product/\(goneProduct)", "order/\(goneOrder)"
                    ])
                for delete in deletes {
                    #expect(delete.kind == .change && delete.system == .powerofficego)
                    #expect(try ChangePayload(json: delete.payload) == ChangePayload(operation: .delete, record: nil))
                }
                try await P.stop(adapter)
            }
        }
    }
}
