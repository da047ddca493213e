import Foundation
import Synchronization
import Testing
import ParleyTestSupport
@testable import ParleyAMQP
@testable import ParleyMessaging
import ServiceLifecycle
import Logging
import ParleyJSON
import ParleyEnvelope

extension BrokerTests {
    @Test("A handler that always fails: its message is retried through the delay tier, then dead-lettered with the reason; others flow")
    func handlerAlwaysFails() async throws {
        let prefix = Broker.uniquePrefix("handler")
        var (topology, exchange, queue) = Broker.scratchTopology(prefix, deliveryLimit: 5, retryDelays: [.milliseconds(200)])
        // Tier queues are shared by name across tests; keep this test's tier its own. Its name is
        // not under the prefix: deleted by name, before (one a killed run left, declared with
        // another run's dead-letter exchange, would refuse this run's declaration for ever) and after.
        topology.retryDelays = [.milliseconds(200 + Int64.random(in: 1...999))]
        let tier = Topology.retryQueue(delay: topology.retryDelays[0])
        try await Broker.deleteQueue(tier)
        defer {
            Task {
                await Broker.cleanUp(prefix); try? await Broker.deleteQueue(tier)
            }
        }
        let configuration = try Broker.configuration("test-handler")
        let publisher = AMQPPublisher(configuration: configuration, topology: topology)
        let attempts = Locked([String: Int]())
        let service = ConsumerService(
            configuration: configuration, queue: queue, topology: topology, publisher: publisher,
            concurrency: 4, retryPolicy: RetryPolicy(maxRetries: 2)
        ) { delivery in
            let id = delivery.properties.messageId ?? "?"
            attempts.withLock { $0[id, default: 0] += 1 }
            if id == "poison" { throw HandlerFailure.transient("the target answered 503") }
        }
        let running = Task { try await service.run() }
        try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("poison"), properties: .init(messageId: "poison"))
        for i in 0..<10 {
            try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("good"), properties: .init(messageId: "good-\(i)"))
        }
        let deadLettered = try await Broker.firstDelivery(on: Topology.deadLetterQueue(for: queue), within: .seconds(60))
        let headers = deadLettered?.properties.headers ?? [:]
        #expect(deadLettered?.properties.messageId == "poison")
        #expect(headers[ParleyHeaders.error]?.stringValue == "gave up after 2 retries: the target answered 503")
        #expect(headers[ParleyHeaders.failedQueue]?.stringValue == queue)
        #expect(attempts.withLock { $0["poison"] } == 3)
        for i in 0..<10 { #expect(attempts.withLock { $0["good-\(i)"] } == 1) }
        running.cancel()
        await publisher.close()
    }

    @Test("A permanent failure is dead-lettered at once with the handler's reason")
    func permanentFailure() async throws {
        let prefix = Broker.uniquePrefix("permanent")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix)
        let configuration = try Broker.configuration("test-permanent")
        let publisher = AMQPPublisher(configuration: configuration, topology: topology)
        let service = ConsumerService(configuration: configuration, queue: queue, topology: topology, publisher: publisher) { _ in
            throw HandlerFailure.permanent("customer has no name")
        }
        let running = Task { try await service.run() }
        try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("{}"), properties: .init(messageId: "bad"))
        let reason = try await Broker.firstDelivery(on: Topology.deadLetterQueue(for: queue), within: .seconds(30)).flatMap {
            $0.properties.headers[ParleyHeaders.error]?.stringValue
        }
        #expect(reason == "customer has no name")
        running.cancel()
        await publisher.close()
    }

    @Test("SIGTERM: the consumer process stops taking messages, lets its handlers finish and ack, and closes")
    func gracefulShutdown() async throws {
        let prefix = Broker.uniquePrefix("sigterm")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix)
        let publisher = AMQPPublisher(configuration: try Broker.configuration("test-sigterm-p"), topology: topology)
        for i in 0..<40 {
            try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("x"), properties: .init(messageId: "s-\(i)"))
        }
        let fixture = Process()
        let buildDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [buildDir, buildDir.deletingLastPathComponent()].map { $0.appendingPathComponent("AMQPShutdownFixture") }
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            Issue.record("AMQPShutdownFixture not built next to \(buildDir.path)")
            return
        }
        fixture.executableURL = binary
        var env = ProcessInfo.processInfo.environment
        env["PARLEY_TEST_PREFIX"] = prefix
        fixture.environment = env
        let out = Pipe()
        fixture.standardOutput = out
        try fixture.run()

        // Wait until it is busy, then ask it to stop.
        let collector = LineCollector(out)
        let lines = collector.lines
        let deadline = ContinuousClock.now + .seconds(30)
        while lines.withLock({ $0.filter { $0.hasPrefix("handled") }.count }) < 4, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        kill(fixture.processIdentifier, SIGTERM)
        let exited = try await withDeadline(.seconds(30), "the fixture exiting after SIGTERM") { () -> Int32 in
            while fixture.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            return fixture.terminationStatus
        }
        try await Task.sleep(for: .milliseconds(200))  // the last lines of output
        #expect(exited == 0)
        let output = lines.withLock { $0 }
        #expect(output.last == "stopped")
        let started = Set(output.filter { $0.hasPrefix("started ") }.map { String($0.dropFirst(8)) })
        let handled = Set(output.filter { $0.hasPrefix("handled ") }.map { String($0.dropFirst(8)) })
        // Every handler that started finished (and acked) before the process exited ...
        #expect(started == handled)
        #expect(handled.count < 40, "it stopped taking messages")

        // ... so exactly the others are still in the queue: none lost, none acked twice.
        let consumer = AMQPConsumer(configuration: try Broker.configuration("test-sigterm-c"), queue: queue)
        let remaining = try await withDeadline(.seconds(30), "the remaining messages") { () -> Set<String> in
            var ids = Set<String>()
            for await d in consumer.deliveries {
                ids.insert(d.properties.messageId ?? "?")
                d.ack()
                if ids.count + handled.count == 40 { break }
            }
            return ids
        }
        #expect(remaining.isDisjoint(with: handled))
        #expect(remaining.union(handled) == Set((0..<40).map { "s-\($0)" }))
        await consumer.close()
        await publisher.close()
    }
}

extension BrokerTests {
    @Test(
        "An envelope travels through the broker intact, with its ids in the AMQP properties; a malformed body is dead-lettered with the field named")
    func envelopeRoundTrip() async throws {
        let prefix = Broker.uniquePrefix("envelope")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix)
        let configuration = try Broker.configuration("test-envelope")
        let publisher = AMQPPublisher(configuration: configuration, topology: topology)
        let sent = try Envelope(
            kind: .change, system: .customerp, entityType: .customer, entityId: "C-1001",
            time: Date(timeIntervalSince1970: 1_800_000_000.123),
            payload: ["name": "Fjord Fisk AS", "creditLimit": .number(JSONNumber("12345678901234567.89")!)])
        let received = Locked([Envelope]())
        let service = ConsumerService(configuration: configuration, queue: queue, topology: topology, publisher: publisher) { delivery in
            let envelope = try delivery.envelope()
            #expect(delivery.properties.messageId == envelope.idText)
            #expect(delivery.properties.type == "change")
            #expect(delivery.properties.headers["parley-system"] == "customerp")
            received.withLock { $0.append(envelope) }
        }
        let running = Task { try await service.run() }
        try await publisher.publish(OutgoingMessage(envelope: sent, exchange: exchange, routingKey: "customerp.customer"))
        try await publisher.publish(
            exchange: exchange, routingKey: "customerp.customer", body: bytes(#"{"version":1,"id":"nope"}"#),
            properties: .init(messageId: "malformed"))
        let reason = try await Broker.firstDelivery(on: Topology.deadLetterQueue(for: queue), within: .seconds(30)).flatMap {
            $0.properties.headers[ParleyHeaders.error]?.stringValue
        }
        #expect(reason?.hasPrefix(#"envelope: field "id" must be a lower-case UUID"#) == true, "\(reason ?? "none")")
        #expect(received.withLock { $0 } == [sent])
        running.cancel()
        await publisher.close()
    }
}
