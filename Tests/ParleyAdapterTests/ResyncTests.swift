import Foundation
import Testing
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
import ParleyTestSupport
@testable import ParleyAdapter
import ParleyEnvelope

/// `parley resync`: a request recorded in the adapters' database makes the poller that holds
/// the lease re-read the whole feed once, then clears it.
@Suite("Resync requests", .serialized, .timeLimit(.minutes(5)))
struct ResyncTests {
    @Test("a request is kept until a rescan that started after it clears it; a newer request survives")
    func requestLifecycle() async throws {
        try await ScratchDatabase.with("parley_resync_store") { configuration in
            let pool = PostgresPool(configuration: configuration, maxConnections: 1)
            defer { Task { await pool.close() } }
            _ = try await Migrator(migrations: AdapterSchema.migrations, schema: AdapterSchema.name).migrate(on: pool)
            let store = FeedPositionStore(pool: pool, system: .customerp)
            #expect(try await store.resyncRequested(.customer) == nil)

            let first = try await FeedPositionStore.requestResync(pool: pool, system: .customerp, entities: [.customer])
            #expect(try await store.resyncRequested(.customer) == first)
            #expect(try await store.resyncRequested(.order) == nil, "only the type asked for")
            #expect(try await FeedPositionStore.pendingResyncs(pool: pool, system: .customerp) == [.customer: first])
            #expect(try await FeedPositionStore.pendingResyncs(pool: pool, system: .powerofficego).isEmpty)
            // The row a request creates is a position at the start of the feed, as no row is.
            #expect(try await store.load(.customer) == FeedPosition())

            // A request made during a rescan (newer than the one the rescan answered) stays.
            try await Task.sleep(for: .milliseconds(20))
            let second = try await FeedPositionStore.requestResync(pool: pool, system: .customerp, entities: [.customer])
            try await store.clearResync(.customer, requestedAt: first)
            #expect(try await store.resyncRequested(.customer) == second)
            try await store.clearResync(.customer, requestedAt: second)
            #expect(try await store.resyncRequested(.customer) == nil)

            // Every type when none is named.
            try await FeedPositionStore.requestResync(pool: pool, system: .customwebshop)
            #expect(Set(try await FeedPositionStore.pendingResyncs(pool: pool, system: .customwebshop).keys) == Set(CanonicalEntityType.allCases))
        }
    }

    @Test(
        "customerp-adapter: after its first poll it publishes nothing more, until a resync is requested: then every record once more, and the request is cleared"
    )
    func resyncedAdapterRescans() async throws {
        typealias P = AdapterProcessTests
        try await ScratchVhost.with("parley-test-resync") { vhost in
            try await ScratchDatabase.with("parley_resync_test") { configuration, databaseURL in
                let port = P.port()
                let erp = "http://127.0.0.1:\(port)"
                let key = ["X-Api-Key": "test-key"]
                let simulator = try P.start("customerp-simulator", ["--port", "\(port)", "--api-key", "test-key"])
                defer { simulator.terminate() }
                try await P.waitUntilUp(erp + "/_admin/records")
                let amqp = try vhost.configuration("test-resync")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))

                var ids: [String] = []
                for n in 1...3 {
                    let (status, body) = try await P.http(
                        "POST", erp + "/customers", headers: key.merging(["Idempotency-Key": "resync-\(n)"]) { a, _ in a },
                        body: ["customerType": "COMPANY", "name": .string("Resync \(n) AS"), "email": .string("resync\(n)@example.no")])
                    #expect(status == 201)
                    ids.append(try #require(body?["id"]?.string))
                }
                let env = P.environment(vhost, databaseURL).merging(["PARLEY_CUSTOMERP_URL": erp, "PARLEY_CUSTOMERP_API_KEY": "test-key"]) { a, _ in a
                }
                let adapter = try P.start("customerp-adapter", ["--poll-seconds", "0.2"], env: env)
                defer { adapter.terminate() }
                let first = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 3)
                #expect(first.count == 3)

                // The quiet time of `drain` passed with nothing new: the incremental polls publish nothing.
                let pool = PostgresPool(configuration: configuration, maxConnections: 1)
                defer { Task { await pool.close() } }
                let requested = try await FeedPositionStore.requestResync(pool: pool, system: .customerp)
                let second = try await P.drain(ParleyTopology.Queues.mappingChanges, amqp, atLeast: 3)
                #expect(Set(second.map(\.entityId)) == Set(ids))
                #expect(second.count == 3, "each record once more, from the one replica holding the lease")

                let store = FeedPositionStore(pool: pool, system: .customerp)
                _ = try await withDeadline(.seconds(30), "the resync request cleared") {
                    while try await !FeedPositionStore.pendingResyncs(pool: pool, system: .customerp).isEmpty {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return true
                }
                #expect(try await store.rescannedAt(.customer).map { $0 >= requested.addingTimeInterval(-1) } == true)
                try await P.stop(adapter)
            }
        }
    }
}
