import Foundation
import Synchronization
import Testing
import ParleyTestSupport
@testable import ParleyAMQP
import ParleyMessaging
import ParleyEnvelope

/// Everything that talks to the real broker runs one test at a time: the restart test stops
/// the broker under everyone's feet.
@Suite("Against the real RabbitMQ", .serialized, .timeLimit(.minutes(5)))
struct BrokerTests {
    @Test("10,000 persistent messages published with confirms and consumed with manual acks all arrive, by id")
    func tenThousand() async throws {
        let prefix = Broker.uniquePrefix("10k")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix)
        let publisher = AMQPPublisher(configuration: try Broker.configuration("test-publisher"), topology: topology, window: 512)
        let consumer = AMQPConsumer(configuration: try Broker.configuration("test-consumer"), queue: queue, topology: topology, prefetch: 500)
        let n = 10_000
        let ids = (0..<n).map { "m-\($0)" }

        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in stride(from: 0, to: n, by: 1000) {
                group.addTask {
                    // A window of concurrent publishes per task; each awaits its confirm.
                    try await withThrowingTaskGroup(of: Void.self) { inner in
                        for i in chunk..<min(chunk + 1000, n) {
                            inner.addTask {
                                try await publisher.publish(
                                    exchange: exchange, routingKey: "k", body: bytes("payload \(i)"),
                                    properties: AMQPProperties(messageId: ids[i]))
                            }
                        }
                        try await inner.waitForAll()
                    }
                }
            }
            try await group.waitForAll()
        }

        let received = try await withDeadline(.seconds(120), "consuming 10,000 messages") {
            var seen = Set<String>()
            for await delivery in consumer.deliveries {
                #expect(delivery.properties.isPersistent)
                seen.insert(delivery.properties.messageId ?? "?")
                delivery.ack()
                if seen.count == n { break }
            }
            return seen
        }
        #expect(received == Set(ids))
        await consumer.close()
        await publisher.close()
    }

    @Test("An unroutable mandatory publish and a publish to a missing exchange throw with the reply code; the publisher goes on")
    func unroutableAndMissingExchange() async throws {
        let prefix = Broker.uniquePrefix("unroutable")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix)
        // A direct exchange with no binding for the key makes the message unroutable.
        var t = topology
        t.exchanges.append(.init("\(prefix).direct", kind: .direct))
        let publisher = AMQPPublisher(configuration: try Broker.configuration("test-unroutable"), topology: t)

        await #expect(throws: AMQPError.returned(code: 312, text: "NO_ROUTE")) {
            try await publisher.publish(exchange: "\(prefix).direct", routingKey: "nobody", body: bytes("x"))
        }
        do {
            try await publisher.publish(exchange: "\(prefix).missing", routingKey: "k", body: bytes("x"))
            Issue.record("publish to a missing exchange succeeded")
        } catch let error as AMQPError {
            #expect(error.replyCode == 404, "\(error)")
            #expect(error.description.contains("no exchange"), "\(error)")
        }
        // Still usable: a good publish is confirmed and arrives.
        try await publisher.publish(
            exchange: exchange, routingKey: "k", body: bytes("after"),
            properties: AMQPProperties(messageId: "after"))
        let consumer = AMQPConsumer(configuration: try Broker.configuration("test-unroutable-c"), queue: queue, topology: t)
        let first = try await withDeadline(.seconds(30), "the message after the errors") { () -> String? in
            for await d in consumer.deliveries {
                d.ack()
                return d.properties.messageId
            }
            return nil
        }
        #expect(first == "after")
        await consumer.close()
        await publisher.close()
    }
}

extension BrokerTests {
    @Test("Parley's standard topology declares cleanly, and again (every service declares it on every connect)")
    func standardTopology() async throws {
        for round in 1...2 {
            let consumer = AMQPConsumer(
                configuration: try Broker.configuration("test-topology-\(round)"),
                queue: ParleyTopology.Queues.linkEvents, topology: ParleyTopology.standard)
            // Ready means connected, every declaration done and consuming.
            #expect(await consumer.readiness.wait(timeout: brokerReadyTimeout))
            let (status, _) = try await Broker.management("GET", "/api/queues/\(Broker.vhostPath)/\(ParleyTopology.Queues.linkEvents)")
            #expect(status == 200)
            await consumer.cancel()
            await consumer.close()
        }
        let (_, data) = try await Broker.management("GET", "/api/queues/\(Broker.vhostPath)/mapping.changes")
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        #expect((json?["arguments"] as? [String: Any])?["x-queue-type"] as? String == "quorum")
    }
}

extension BrokerTests {
    @Test("A list of broker addresses is tried in turn: a dead first node does not stop the connection")
    func clusterFailover() async throws {
        var configuration = try Broker.configuration("test-cluster")
        let real = configuration.endpoints[0]
        var dead = real
        dead.port = 1  // nothing listens there
        configuration.endpoints = [dead, real]
        let publisher = AMQPPublisher(configuration: configuration)
        #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
        try await publisher.publish(exchange: "", routingKey: "no-such-queue-\(UUID().uuidString)", body: bytes("x"), mandatory: false)
        await publisher.close()
    }
}

extension BrokerTests {
    static var tls: (url: String, ca: String)? {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["PARLEY_AMQPS_URL"], let ca = env["PARLEY_AMQP_CA_FILE"] else {
            Issue.record("PARLEY_AMQPS_URL / PARLEY_AMQP_CA_FILE not set: run the tests with `make test`")
            return nil
        }
        return (url, ca)
    }

    @Test("amqps:// goes through rabbitmq-c's TLS socket, verifying the broker's certificate and host name")
    func tlsConnection() async throws {
        guard let tls = Self.tls else { return }
        let prefix = Broker.uniquePrefix("tls")
        defer { Task { await Broker.cleanUp(prefix) } }
        let (topology, exchange, queue) = Broker.scratchTopology(prefix)
        var configuration = try AMQPConfiguration(urls: tls.url, connectionName: "test-tls")
        configuration.tls = AMQPTLSOptions(caCertificatePath: tls.ca, verifyPeer: true, verifyHostname: true)
        #expect(configuration.endpoints[0].tls && configuration.endpoints[0].port == 5671)
        let publisher = AMQPPublisher(configuration: configuration, topology: topology)
        let consumer = AMQPConsumer(configuration: configuration, queue: queue, topology: topology)
        try await publisher.publish(exchange: exchange, routingKey: "k", body: bytes("secret"), properties: .init(messageId: "over-tls"))
        let got = try await withDeadline(.seconds(30), "a message over TLS") { () -> String? in
            for await d in consumer.deliveries {
                d.ack()
                return d.properties.messageId
            }
            return nil
        }
        #expect(got == "over-tls")
        await consumer.close()
        await publisher.close()
    }

    @Test("A broker certificate that does not verify is refused with a clear error")
    func tlsUntrusted() throws {
        guard let tls = Self.tls else { return }
        var configuration = try AMQPConfiguration(urls: tls.url, connectionName: "test-tls-untrusted")
        // The system's CAs do not know the local CA.
        configuration.tls = AMQPTLSOptions(caCertificatePath: "/etc/ssl/certs/ca-certificates.crt", verifyPeer: true, verifyHostname: true)
        #expect {
            _ = try AMQPSocket(endpoint: configuration.endpoints[0], configuration: configuration)
        } throws: { error in
            guard case AMQPError.library(let operation, _, _) = error else { return false }
            return operation.hasPrefix("connect to")
        }
    }
}

extension BrokerTests {
    @Test("With no broker reachable, cancel and close still return, and a pending publish fails with .closed")
    func noBroker() async throws {
        var configuration = try Broker.configuration("test-no-broker")
        configuration.endpoints[0].port = 1
        let consumer = AMQPConsumer(configuration: configuration, queue: "nowhere")
        let publisher = AMQPPublisher(configuration: configuration)
        let publishing = Task { try await publisher.publish(exchange: "", routingKey: "nowhere", body: bytes("x")) }
        try await Task.sleep(for: .milliseconds(300))
        try await withDeadline(.seconds(10), "cancel and close without a broker") {
            await consumer.cancel()
            await consumer.close()
            await publisher.close()
        }
        await #expect(throws: AMQPError.closed) { try await publishing.value }
        var ended = true
        for await _ in consumer.deliveries { ended = false }
        #expect(ended)
    }
}

extension BrokerTests {
    @Test("A batch publish reports each message's own outcome, in order")
    func batchPublish() async throws {
        let prefix = Broker.uniquePrefix("batch")
        defer { Task { await Broker.cleanUp(prefix) } }
        var (topology, exchange, queue) = Broker.scratchTopology(prefix)
        topology.exchanges.append(.init("\(prefix).direct", kind: .direct))
        let publisher = AMQPPublisher(configuration: try Broker.configuration("test-batch"), topology: topology)
        var batch = (0..<300).map {
            OutgoingMessage(exchange: exchange, routingKey: "k", body: bytes("\($0)"), properties: .init(messageId: "b-\($0)"))
        }
        batch[150] = OutgoingMessage(exchange: "\(prefix).direct", routingKey: "nobody", body: bytes("x"), properties: .init(messageId: "stray"))
        let results = await publisher.publish(contentsOf: batch)
        #expect(results.count == 300)
        for (i, r) in results.enumerated() {
            if i == 150 {
                #expect(throws: AMQPError.returned(code: 312, text: "NO_ROUTE")) { try r.get() }
            } else {
                #expect(throws: Never.self) { try r.get() }
            }
        }
        let consumer = AMQPConsumer(configuration: try Broker.configuration("test-batch-c"), queue: queue)
        let ids = try await withDeadline(.seconds(30), "the batch") { () -> [String] in
            var ids: [String] = []
            for await d in consumer.deliveries {
                ids.append(d.properties.messageId ?? "?")
                d.ack()
                if ids.count == 299 { break }
            }
            return ids
        }
        #expect(ids == (0..<300).filter { $0 != 150 }.map { "b-\($0)" }, "in publish order")
        await consumer.close()
        await publisher.close()
    }
}
