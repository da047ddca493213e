import Foundation
import Synchronization
import Testing
import ParleyTestSupport
@testable import ParleyAMQP

extension BrokerTests {
    @Test("The broker restarts in the middle of 10,000 messages: both sides recover and every confirmed message is delivered")
    func brokerRestart() async throws {
        // No other suite may use the broker while it restarts.
        try await ServerDisruption.exclusive { try await brokerRestartAlone() }
    }

    func brokerRestartAlone() async throws {
        let prefix = Broker.uniquePrefix("restart")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix)
        let publisher = AMQPPublisher(configuration: try Broker.configuration("test-restart-p", heartbeat: .seconds(5)), topology: topology)
        let consumer = AMQPConsumer(
            configuration: try Broker.configuration("test-restart-c", heartbeat: .seconds(5)),
            queue: queue, topology: topology, prefetch: 300)
        let n = 10_000
        let confirmed = Locked(Set<String>())
        let failures = Locked(0)

        // The consumer records every id it sees (at-least-once: duplicates are fine).
        let consuming = Task {
            var seen = Set<String>()
            for await d in consumer.deliveries {
                seen.insert(d.properties.messageId ?? "?")
                d.ack()
                if seen.count == n { break }
            }
            return seen
        }

        // The broker goes down once a fifth has been confirmed.
        let restarting = Task { () -> (Int, Int) in
            while confirmed.withLock({ $0.count }) < n / 5 { try await Task.sleep(for: .milliseconds(20)) }
            try Broker.rabbitmqctl("stop_app")
            let atStop = confirmed.withLock { $0.count }
            try await Task.sleep(for: .seconds(2))
            try Broker.rabbitmqctl("start_app")
            return (atStop, confirmed.withLock { $0.count })
        }

        // 20 paced publishers (about 1,000 msg/s, so the run outlasts the restart); a publish
        // that fails (in flight when the connection dropped) is retried.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<20 {
                group.addTask {
                    for i in stride(from: lane, to: n, by: 20) {
                        try await Task.sleep(for: .milliseconds(20))
                        let id = "r-\(i)"
                        while true {
                            do {
                                try await publisher.publish(
                                    exchange: exchange, routingKey: "k", body: bytes(id),
                                    properties: AMQPProperties(messageId: id))
                                confirmed.withLock { _ = $0.insert(id) }
                                break
                            } catch let error as AMQPError {
                                #expect(error.isTransient, "\(error)")
                                failures.withLock { $0 += 1 }
                                try await Task.sleep(for: .milliseconds(50))
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let (confirmedAtStop, confirmedAtStart) = try await restarting.value
        let seen = try await withDeadline(.seconds(180), "consuming after the restart") { await consuming.value }
        #expect(confirmed.withLock { $0.count } == n)
        #expect(seen.isSuperset(of: confirmed.withLock { $0 }))
        // The restart really happened in the middle of the run.
        #expect(confirmedAtStop < n && confirmedAtStart < n, "stopped at \(confirmedAtStop), started at \(confirmedAtStart)")
        print("broker restart: \(failures.withLock { $0 }) publishes failed in flight and were retried; stopped at \(confirmedAtStop)")
        await consumer.close()
        await publisher.close()
    }

    @Test("A broker-initiated cancel (queue deleted) is handled: the consumer re-declares and keeps consuming")
    func brokerCancel() async throws {
        let prefix = Broker.uniquePrefix("cancel")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix)
        let publisher = AMQPPublisher(configuration: try Broker.configuration("test-cancel-p"), topology: topology)
        let consumer = AMQPConsumer(configuration: try Broker.configuration("test-cancel-c"), queue: queue, topology: topology)
        try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("1"), properties: .init(messageId: "before"))
        let result = try await withDeadline(.seconds(60), "consuming across a cancel") { () -> [String] in
            var got: [String] = []
            for await d in consumer.deliveries {
                got.append(d.properties.messageId ?? "?")
                d.ack()
                if got.count == 1 {
                    try await Broker.deleteQueue(queue)
                    // Publish until the re-declared queue takes it (the consumer re-creates it).
                    while true {
                        do {
                            try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("2"), properties: .init(messageId: "after"))
                            break
                        } catch AMQPError.returned {
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
                if got.count == 2 { break }
            }
            return got
        }
        #expect(result == ["before", "after"])
        await consumer.close()
        await publisher.close()
    }

    @Test("A consumer that always rejects a message: the broker dead-letters it after the delivery limit; others flow")
    func deliveryLimit() async throws {
        let prefix = Broker.uniquePrefix("limit")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix, deliveryLimit: 3)
        let publisher = AMQPPublisher(configuration: try Broker.configuration("test-limit-p"), topology: topology)
        let consumer = AMQPConsumer(configuration: try Broker.configuration("test-limit-c"), queue: queue, topology: topology, prefetch: 10)
        try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("poison"), properties: .init(messageId: "poison"))
        for i in 0..<20 {
            try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("good"), properties: .init(messageId: "good-\(i)"))
        }
        let (good, poisonDeliveries) = try await withDeadline(.seconds(60), "good messages") { () -> (Int, Int) in
            var good = 0, poison = 0
            for await d in consumer.deliveries {
                if d.properties.messageId == "poison" {
                    poison += 1
                    d.nack(requeue: true)
                } else {
                    good += 1
                    d.ack()
                }
                // x-delivery-limit 3: the first delivery and three redeliveries, then it is dead-lettered.
                if good == 20 && poison == 4 { break }
            }
            return (good, poison)
        }
        #expect(good == 20)
        #expect(poisonDeliveries == 4)

        let deadLettered = try await Broker.firstDelivery(on: Topology.deadLetterQueue(for: queue), within: .seconds(60))
        #expect(deadLettered?.properties.messageId == "poison")
        let death = deadLettered?.properties.headers["x-death"]
        guard case .array(let deaths)? = death, case .table(let first)? = deaths.first else {
            Issue.record("no x-death header: \(String(describing: deadLettered?.properties.headers))")
            return
        }
        #expect(first["reason"]?.stringValue == "delivery_limit")
        #expect(first["queue"]?.stringValue == queue)
        await consumer.close()
        await publisher.close()
    }
}
