import Foundation
import ParleyCore
import Testing
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import ParleyTestSupport
@testable import ParleyOperations
import ParleyEnvelope

/// The management API client and dead-letter list/replay against the local RabbitMQ, each test
/// in a vhost of its own.
@Suite("Operations against RabbitMQ", .serialized, .timeLimit(.minutes(3)))
struct OperationsBrokerTests {
    static func api(_ vhost: ScratchVhost) throws -> ManagementAPI {
        let endpoint = try AMQPEndpoint(url: vhost.url)
        let url = ProcessInfo.processInfo.environment["PARLEY_AMQP_MANAGEMENT_URL"] ?? "http://\(endpoint.host):15672"
        return try ManagementAPI(url: url, user: endpoint.user, password: endpoint.password, vhost: vhost.name)
    }

    static func change(_ id: String) throws -> OutgoingMessage {
        let envelope = try Envelope(
            kind: .change, system: .customerp, entityType: .customer, entityId: id,
            payload: ChangePayload(record: ["id": .string(id), "name": "Test AS"]).json)
        return OutgoingMessage(envelope: envelope, exchange: ParleyTopology.Exchanges.changes, routingKey: "customerp.customer.change")
    }

    /// Polls until `condition` holds (the management statistics lag by a few seconds).
    static func eventually<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T?) async throws -> T {
        try await withDeadline(.seconds(60), what) {
            while true {
                if let value = try await body() { return value }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    @Test("queue statistics of a vhost: every queue of the topology, depth and consumers as the broker counts them")
    func queueStatistics() async throws {
        try await ScratchVhost.with("parley-test-ops-stats") { vhost in
            let api = try Self.api(vhost)
            #expect(try await api.version().isEmpty == false)
            let amqp = try vhost.configuration("test-ops-stats")
            let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
            #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
            for n in 0..<3 { try await publisher.publish(try Self.change("C-\(n)")) }
            await publisher.close()
            let consumer = AMQPConsumer(configuration: amqp, queue: ParleyTopology.Queues.linkEvents, prefetch: 1)
            #expect(await consumer.readiness.wait(timeout: brokerReadyTimeout))

            let queues = try await Self.eventually("3 messages in mapping.changes, one consumer on link.events") { () -> [QueueStats]? in
                let queues = try await api.queues()
                let changes = queues.first { $0.name == ParleyTopology.Queues.mappingChanges }
                let events = queues.first { $0.name == ParleyTopology.Queues.linkEvents }
                return changes?.ready == 3 && events?.consumers == 1 ? queues : nil
            }
            await consumer.close()
            let names = Set(queues.map(\.name))
            for queue in ParleyTopology.standard.queues {
                #expect(names.contains(queue.name))
                #expect(names.contains(queue.name + ".dead"))
            }
            let changes = try #require(queues.first { $0.name == ParleyTopology.Queues.mappingChanges })
            #expect(changes.type == "quorum" && changes.unacked == 0 && changes.consumers == 0)
            #expect(try await api.queue("no.such.queue") == nil)
            #expect(try await api.queue(ParleyTopology.Queues.mappingChanges)?.name == ParleyTopology.Queues.mappingChanges)

            // The rendering of real numbers lists the work queues first.
            let table = StatusRendering.queueTable(queues)
            #expect(table.split(separator: "\n")[1].hasPrefix("mapping.changes "))
        }
    }

    @Test(
        "dead letters: listed with their reason and left in place; replayed one by id and then all, each back on its queue without the failure headers, the dead queue empty"
    )
    func deadLetterListAndReplay() async throws {
        try await ScratchVhost.with("parley-test-ops-dlq") { vhost in
            let api = try Self.api(vhost)
            let amqp = try vhost.configuration("test-ops-dlq")
            let topology = ParleyTopology.standard
            let queue = ParleyTopology.Queues.mappingChanges
            let dead = queue + ".dead"
            let publisher = AMQPPublisher(configuration: amqp, topology: topology)
            defer { Task { await publisher.close() } }
            #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))

            // A consumer whose handler rejects everything permanently: the service's own path to the dead-letter queue.
            let failing = ConsumerService(configuration: amqp, queue: queue, topology: topology, publisher: publisher, concurrency: 1) { _ in
                throw HandlerFailure.permanent("test: the record is not valid")
            }
            let service = Task { try await failing.run() }
            let messages = try (1...3).map { try Self.change("C-\($0)") }
            for message in messages { try await publisher.publish(message) }
            let ids = messages.map { $0.properties.messageId! }

            let listed = try await Self.eventually("3 dead letters") { () -> [DeadLetter]? in
                let letters = try await DeadLetters.list(api, deadQueue: dead, limit: 10)
                return letters.count == 3 ? letters : nil
            }
            // Cancelling the service's task ends its delivery loop and closes its connection: nothing consumes the queue now.
            service.cancel()
            _ = try? await service.value
            #expect(Set(listed.compactMap(\.messageId)) == Set(ids))
            for letter in listed {
                #expect(letter.reason == "test: the record is not valid")
                #expect(letter.failedQueue == queue)
                #expect(letter.kind == "change" && letter.system == "customerp" && letter.entityType == "customer")
                #expect(letter.failedAt != nil)
            }
            // Listing took nothing: the same three are there again, and the dead-letter queues list names this one.
            #expect(try await DeadLetters.list(api, deadQueue: dead, limit: 10).count == 3)
            #expect(try await DeadLetters.queues(api).map(\.name).contains(dead))
            #expect(try await DeadLetters.queues(api, queue: queue).map(\.name) == [dead])

            // Replay one by id.
            let one = try await DeadLetters.replay(configuration: amqp, queue: queue, id: ids[1])
            #expect(one.replayed == [ids[1]])
            #expect(one.failures.isEmpty)
            #expect(Set(try await DeadLetters.list(api, deadQueue: dead, limit: 10).compactMap(\.messageId)) == [ids[0], ids[2]])
            let missing = try await DeadLetters.replay(configuration: amqp, queue: dead, id: "no-such-id", idle: .milliseconds(300))
            #expect(missing.replayed.isEmpty && missing.kept == 2)
            #expect(try await DeadLetters.list(api, deadQueue: dead, limit: 10).count == 2, "what was not selected stays")

            let rest = try await DeadLetters.replay(configuration: amqp, queue: queue, id: nil)
            #expect(Set(rest.replayed) == [ids[0], ids[2]])
            #expect(try await DeadLetters.list(api, deadQueue: dead, limit: 10).isEmpty, "the dead queue is empty")

            // All three are back on the original queue, as sent, without the failure headers.
            let consumer = AMQPConsumer(configuration: amqp, queue: queue)
            let back = Locked<[AMQPDelivery]>([])
            let reader = Task {
                for await delivery in consumer.deliveries {
                    back.withLock { $0.append(delivery) }
                    delivery.ack()
                }
            }
            _ = try await Self.eventually("3 replayed messages on \(queue)") { back.withLock { $0.count >= 3 } ? true : nil }
            try await Task.sleep(for: .milliseconds(300))
            await consumer.close()
            reader.cancel()
            let deliveries = back.withLock { $0 }
            #expect(deliveries.count == 3)
            #expect(Set(deliveries.compactMap(\.properties.messageId)) == Set(ids))
            for delivery in deliveries {
                let original = try #require(messages.first { $0.properties.messageId == delivery.properties.messageId })
                #expect(delivery.body == original.body)
                #expect(delivery.properties.headers[ParleyHeaders.error] == nil)
                #expect(delivery.properties.headers[ParleyHeaders.failedQueue] == nil)
                #expect(delivery.properties.headers[ParleyHeaders.retries] == nil)
                #expect(delivery.properties.headers["parley-replayed-at"] != nil)
                #expect(delivery.properties.headers["parley-system"]?.stringValue == "customerp")
                #expect(delivery.properties.type == "change")
            }
        }
    }

    @Test("an unreachable management API or broker is a clear error naming the URL without its password")
    func unreachable() async throws {
        let api = try ManagementAPI(url: "http://ops:hunter2@127.0.0.1:1/", user: nil, password: nil, vhost: "parley")
        let error = await #expect(throws: OperationsError.self) { try await api.queues() }
        let text = try #require(error).description
        #expect(text.hasPrefix("cannot reach the RabbitMQ management API at http://127.0.0.1:1 (connection refused)"), "\(text)")
        #expect(text.contains("PARLEY_AMQP_MANAGEMENT_URL"))
        #expect(!text.contains("hunter2"))

        var amqp = try AMQPConfiguration(urls: "amqp://parley:hunter2@127.0.0.1:1/parley", connectionName: "test-unreachable")
        amqp.reconnect = Backoff(initial: .milliseconds(100), maximum: .milliseconds(500))
        let replay = await #expect(throws: OperationsError.self) {
            try await DeadLetters.replay(configuration: amqp, queue: "link.events", id: nil, connectTimeout: .seconds(2))
        }
        let replayText = try #require(replay).description
        #expect(replayText.hasPrefix("cannot reach RabbitMQ at amqp://parley:***@127.0.0.1:1/parley"), "\(replayText)")
        #expect(!replayText.contains("hunter2"))
    }
}
