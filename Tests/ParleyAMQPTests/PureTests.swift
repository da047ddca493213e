import Foundation
import ParleyCore
import Testing
import ParleyTestSupport
@testable import ParleyAMQP

@Suite("Confirm tracking")
struct ConfirmTrackerTests {
    @Test("Single acks, in or out of order, confirm exactly their publish")
    func singleAcks() {
        var t = ConfirmTracker<Int>()
        for i in 1...5 { #expect(t.register(messageId: "m\(i)", token: i) == UInt64(i)) }
        #expect(t.ack(tag: 3, multiple: false).map(\.0) == [3])
        #expect(t.inFlight == 4)
        #expect(t.ack(tag: 1, multiple: false).map(\.0) == [1])
        #expect(t.ack(tag: 3, multiple: false).isEmpty, "an ack is applied once")
        #expect(t.ack(tag: 2, multiple: false).map(\.0) == [2])
        #expect(t.inFlight == 2)
        #expect(t.ack(tag: 99, multiple: false).isEmpty)
    }

    @Test("A multiple ack settles every pending tag up to it, skipping ones already settled")
    func multipleAck() {
        var t = ConfirmTracker<Int>()
        for i in 1...6 { t.register(messageId: "m\(i)", token: i) }
        _ = t.ack(tag: 2, multiple: false)
        let settled = t.ack(tag: 4, multiple: true)
        #expect(settled.map(\.0) == [1, 3, 4])
        #expect(settled.allSatisfy { $0.1 == .confirmed })
        #expect(t.inFlight == 2)
        #expect(t.nack(tag: 6, multiple: true).map(\.1) == [.nacked, .nacked])
        #expect(t.inFlight == 0)
    }

    @Test("A return marks the earliest unsettled publish with that message id; its ack then reports it returned")
    func returns() {
        var t = ConfirmTracker<Int>()
        t.register(messageId: "same", token: 1)
        t.register(messageId: "same", token: 2)
        t.register(messageId: "other", token: 3)
        t.markReturned(messageId: "same", code: 312, text: "NO_ROUTE")
        let out = t.ack(tag: 3, multiple: true)
        #expect(out.map(\.0) == [1, 2, 3])
        #expect(out[0].1 == .returned(code: 312, text: "NO_ROUTE"))
        #expect(out[1].1 == .confirmed)
        #expect(out[2].1 == .confirmed)
    }

    @Test("When the channel goes away every pending publish fails, none is confirmed, and tags restart at 1")
    func failAll() {
        var t = ConfirmTracker<Int>()
        for i in 1...4 { t.register(messageId: "m\(i)", token: i) }
        _ = t.ack(tag: 2, multiple: false)
        let failed = t.failAll(.connectionLost("reset"))
        #expect(failed.map(\.0) == [1, 3, 4])
        #expect(failed.allSatisfy { $0.1 == .failed(.connectionLost("reset")) })
        #expect(t.inFlight == 0)
        #expect(t.register(messageId: "n", token: 9) == 1)
        #expect(t.ack(tag: 4, multiple: true).map(\.0) == [9])
    }

    @Test("Long runs stay consistent (compaction)")
    func longRun() {
        var t = ConfirmTracker<Int>()
        var confirmed = 0
        for i in 1...10_000 {
            t.register(messageId: "m", token: i)
            if i % 7 == 0 { confirmed += t.ack(tag: UInt64(i), multiple: true).count }
        }
        confirmed += t.ack(tag: 10_000, multiple: true).count
        #expect(confirmed == 10_000)
        #expect(t.inFlight == 0)
    }
}

@Suite("Backoff")
struct BackoffTests {
    struct Fixed: RandomNumberGenerator {
        var value: UInt64
        mutating func next() -> UInt64 { value }
    }

    @Test("Delays grow exponentially up to the cap, with jitter inside [ceiling·(1−jitter), ceiling]")
    func growsAndCaps() {
        var b = Backoff(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2, jitter: 0.5)
        var rng = SystemRandomNumberGenerator()
        let expectedCeilings: [Double] = [0.1, 0.2, 0.4, 0.8, 1.6, 2, 2, 2]
        for ceiling in expectedCeilings {
            let d = b.next(using: &rng).inSeconds
            #expect(d <= ceiling + 1e-9 && d >= ceiling * 0.5 - 1e-9, "\(d) outside [\(ceiling / 2), \(ceiling)]")
        }
        b.reset()
        #expect(b.attempt == 0)
        var noJitter = Backoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 3, jitter: 0)
        #expect(noJitter.next(using: &rng) == .milliseconds(100))
        #expect(noJitter.next(using: &rng) == .milliseconds(300))
        #expect(noJitter.next(using: &rng) == .milliseconds(900))
        #expect(noJitter.next(using: &rng) == .seconds(1))
    }
}

@Suite("Broker URLs")
struct URLTests {
    @Test("amqp and amqps URLs: credentials, port defaults, vhost decoding, and no password in descriptions")
    func parse() throws {
        let e = try AMQPEndpoint(url: "amqp://user:p%40ss@rabbit.example:5673/parley")
        #expect(e == AMQPEndpoint(host: "rabbit.example", port: 5673, vhost: "parley", user: "user", password: "p@ss", tls: false))
        #expect(!e.description.contains("p@ss") && !e.description.contains("p%40ss"))
        #expect(try AMQPEndpoint(url: "amqps://u:p@host").port == 5671)
        #expect(try AMQPEndpoint(url: "amqps://u:p@host").tls)
        #expect(try AMQPEndpoint(url: "amqp://host").vhost == "/")
        #expect(try AMQPEndpoint(url: "amqp://host/").vhost == "")
        #expect(try AMQPEndpoint(url: "amqp://host/%2f").vhost == "/")
        #expect(try AMQPEndpoint(url: "amqp://[::1]:5680/v").host == "::1")
        #expect(try AMQPEndpoint(url: "amqp://[::1]:5680/v").port == 5680)
        #expect(throws: AMQPError.self) { try AMQPEndpoint(url: "http://host") }
        #expect(throws: AMQPError.self) { try AMQPEndpoint(url: "amqp://host:99999") }
        #expect(throws: AMQPError.self) { try AMQPEndpoint(url: "rabbit") }
    }

    @Test("A comma-separated list is a cluster, tried in turn")
    func cluster() throws {
        let c = try AMQPConfiguration(urls: "amqp://a:1@n1:5672/v, amqp://a:1@n2:5672/v")
        #expect(c.endpoints.map(\.host) == ["n1", "n2"])
        #expect(throws: AMQPError.self) { try AMQPConfiguration(urls: " , ") }
    }

    @Test("Errors for invalid URLs never contain the password")
    func redaction() {
        #expect(AMQPEndpoint.redact("amqp://user:secret@host/v") == "amqp://user:***@host/v")
        do {
            _ = try AMQPEndpoint(url: "amqpx://user:secret@host/v")
        } catch {
            #expect(!"\(error)".contains("secret"))
        }
    }
}

@Suite("Topology")
struct TopologyTests {
    let topology = Topology(
        exchanges: [.init("parley.changes")],
        queues: [.init("mapping.changes", bindings: [.init(exchange: "parley.changes", routingKey: "#")], deliveryLimit: 7)],
        retryDelays: [.seconds(1), .seconds(30)])

    @Test("Work queues are quorum queues with a delivery limit and at-least-once dead-lettering to their own DLQ")
    func workQueue() throws {
        let d = topology.declarations()
        let q = try #require(d.queues.first { $0.name == "mapping.changes" })
        #expect(q.arguments["x-queue-type"] == "quorum")
        #expect(q.arguments["x-delivery-limit"] == .int64(7))
        #expect(q.arguments["x-dead-letter-exchange"] == "parley.dead-letter")
        #expect(q.arguments["x-dead-letter-routing-key"] == "mapping.changes")
        #expect(q.arguments["x-dead-letter-strategy"] == "at-least-once")
        #expect(q.arguments["x-overflow"] == "reject-publish")
        #expect(d.queues.contains { $0.name == "mapping.changes.dead" && $0.arguments["x-queue-type"] == "quorum" })
        #expect(
            d.bindings.contains {
                $0.queue == "mapping.changes.dead" && $0.binding.exchange == "parley.dead-letter" && $0.binding.routingKey == "mapping.changes"
            })
        #expect(d.exchanges.contains(.init("parley.dead-letter", kind: .direct)))
    }

    @Test("Retry tiers: TTL queues that dead-letter into the requeue exchange, which routes back by header")
    func retryTiers() throws {
        let d = topology.declarations()
        let tier = try #require(d.queues.first { $0.name == "parley.retry.30000ms" })
        #expect(tier.arguments["x-message-ttl"] == .int64(30_000))
        #expect(tier.arguments["x-dead-letter-exchange"] == "parley.requeue")
        #expect(d.exchanges.contains(.init("parley.requeue", kind: .headers)))
        let back = try #require(d.bindings.first { $0.queue == "mapping.changes" && $0.binding.exchange == "parley.requeue" })
        #expect(back.binding.arguments[Topology.retryQueueHeader] == "mapping.changes")
        #expect(back.binding.arguments["x-match"] == "all")
        #expect(topology.retryQueue(forAttempt: 0) == "parley.retry.1000ms")
        #expect(topology.retryQueue(forAttempt: 1) == "parley.retry.30000ms")
        #expect(topology.retryQueue(forAttempt: 9) == "parley.retry.30000ms")
    }

    @Test("Declarations are deterministic: every service declares the same thing")
    func deterministic() {
        #expect(topology.declarations() == topology.declarations())
    }
}

@Suite("Ack batching")
struct AckBatcherTests {
    typealias F = AckBatcher.Frame

    @Test("In-order acks become one multiple ack")
    func inOrder() {
        var b = AckBatcher()
        #expect(b.frames(for: [(1, .ack), (2, .ack), (3, .ack)]) == [F(kind: .ack, tag: 3, multiple: true)])
        #expect(b.frames(for: [(4, .ack)]) == [F(kind: .ack, tag: 4, multiple: true)])
        #expect(b.settledBelow == 5)
    }

    @Test("A multiple ack never covers a delivery still held: acks beyond a gap go out singly")
    func gap() {
        var b = AckBatcher()
        // 2 is still being handled.
        #expect(
            b.frames(for: [(1, .ack), (3, .ack), (4, .ack)]) == [
                F(kind: .ack, tag: 1, multiple: true), F(kind: .ack, tag: 3, multiple: false), F(kind: .ack, tag: 4, multiple: false)
            ])
        // When 2 is acked, the prefix jumps over the singly acked 3 and 4 without acking them again.
        #expect(b.frames(for: [(2, .ack), (5, .ack)]) == [F(kind: .ack, tag: 5, multiple: true)])
        #expect(b.settledBelow == 6)
    }

    @Test("Nacks and rejects go out singly and are never acked again")
    func nacks() {
        var b = AckBatcher()
        let frames = b.frames(for: [(1, .ack), (2, .nack(requeue: true)), (3, .ack), (4, .reject(requeue: false))])
        #expect(
            frames == [
                F(kind: .nack(requeue: true), tag: 2, multiple: false),
                F(kind: .reject(requeue: false), tag: 4, multiple: false),
                F(kind: .ack, tag: 3, multiple: true)
            ])
        #expect(b.settledBelow == 5)
        #expect(b.frames(for: [(3, .ack), (4, .ack)]).isEmpty, "a tag is settled once")
    }

    @Test("A new channel starts from tag 1 again")
    func reset() {
        var b = AckBatcher()
        _ = b.frames(for: [(1, .ack), (2, .ack)])
        b.reset()
        #expect(b.frames(for: [(1, .ack)]) == [F(kind: .ack, tag: 1, multiple: true)])
    }
}

@Suite("Delivery buffer")
struct DeliveryBufferTests {
    static let mailbox = Mailbox<AMQPConsumer.Command>()

    static func deliveries(_ tags: ClosedRange<UInt64>) -> [AMQPDelivery] {
        tags.map {
            AMQPDelivery(
                body: [], properties: AMQPProperties(), exchange: "", routingKey: "q", redelivered: false,
                deliveryTag: $0, generation: 0, mailbox: mailbox)
        }
    }

    @Test("A busy consumer's next step takes everything that arrived meanwhile, in order, in one batch")
    func coalesces() async {
        let buffer = DeliveryBuffer()
        buffer.append(Self.deliveries(1...3))
        buffer.append(Self.deliveries(4...4))
        buffer.append(Self.deliveries(5...9))
        #expect(await buffer.next()?.map(\.deliveryTag) == Array(1...9))
        buffer.append(Self.deliveries(10...11))
        buffer.finish()
        buffer.append(Self.deliveries(12...12))
        #expect(await buffer.next()?.map(\.deliveryTag) == [10, 11], "what came before finish is still handed out")
        #expect(await buffer.next() == nil)
    }

    @Test("A waiting consumer is woken by the next arrival; finish or cancellation ends the wait with nil")
    func waits() async {
        let buffer = DeliveryBuffer()
        let waiting = Task { await buffer.next()?.map(\.deliveryTag) }
        // Whether the task waits already or not, it gets exactly these.
        buffer.append(Self.deliveries(1...2))
        #expect(await waiting.value == [1, 2])

        let finished = Task { await buffer.next() }
        buffer.finish()
        #expect(await finished.value == nil)

        let other = DeliveryBuffer()
        let cancelled = Task { await other.next() }
        cancelled.cancel()
        #expect(await cancelled.value == nil)
    }
}
