// parley-bench: throughput of Parley's AMQP layer against the raw rabbitmq-c loop, measured in
// the same run on the same broker (the machine is shared and noisy: compare ratios, report
// medians), with the client's CPU time per message beside it. Usage: parley-bench amqp [--messages N] [--runs R] [--size BYTES] [--window W]
// [--prefetch P] [--queue-type quorum|classic]. Needs PARLEY_AMQP_URL.
// `parley-bench mapping` (MappingBench.swift) measures the mapping engine and needs nothing;
// `parley-bench link` (LinkBench.swift) the link service against pgbench, on the local servers.
import ArgumentParser
import Foundation
import ParleyMessaging
import Logging
import ParleyAMQP

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-bench", abstract: "Parley's benchmarks.", subcommands: [AMQPBench.self, MappingBench.self, LinkBench.self])
}

struct AMQPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amqp",
        abstract: "Publish with confirms and consume with acks: the raw rabbitmq-c loop vs Parley's AMQP layer.")

    @Option(help: "Messages per measurement.") var messages = 50_000
    @Option(help: "Runs; medians are reported.") var runs = 5
    @Option(help: "Message body size in bytes.") var size = 1024
    @Option(help: "Publisher confirm window (unconfirmed publishes in flight).") var window = 512
    @Option(help: "Consumer prefetch.") var prefetch: UInt16 = 512
    @Option(help: "quorum or classic.") var queueType = "quorum"
    @Option(help: "Broker URL (default: $PARLEY_AMQP_URL).") var url: String?

    func run() async throws {
        guard let url = url ?? ProcessInfo.processInfo.environment["PARLEY_AMQP_URL"] else {
            throw ValidationError("set PARLEY_AMQP_URL or pass --url")
        }
        _ = ServiceLogging.bootstrap(level: "warning", label: "parley-bench")
        let endpoint = try AMQPEndpoint(url: url)
        print("parley-bench amqp: \(messages) messages of \(size) B, window \(window), prefetch \(prefetch), \(queueType) queues, \(runs) runs")
        print("broker: \(endpoint)")
        print("")
        print("run  publish raw  swift        ratio  swift batch  ratio | consume raw  swift        ratio")
        var rates: [String: [Double]] = [:]
        var cpu: [String: [Double]] = [:]
        for run in 1...runs {
            let queues = ["raw", "swift", "batch"].map { ($0, "bench.\($0).\(UUID().uuidString.prefix(8))") }
            let queue = Dictionary(uniqueKeysWithValues: queues)
            for (_, q) in queues { try RawLoop.declare(endpoint, queue: q, type: queueType) }
            let publishes: [(String, () async throws -> Double)] = [
                ("publish raw", { try RawLoop.publish(endpoint, queue: queue["raw"]!, count: messages, size: size, window: window) }),
                ("publish swift", { try await swiftPublish(url: url, queue: queue["swift"]!) }),
                ("publish batch", { try await swiftPublishBatches(url: url, queue: queue["batch"]!) })
            ]
            let consumes: [(String, () async throws -> Double)] = [
                ("consume raw", { try RawLoop.consume(endpoint, queue: queue["raw"]!, count: messages, prefetch: prefetch) }),
                ("consume swift", { try await swiftConsume(url: url, queue: queue["swift"]!) })
            ]
            // Rotate which goes first, so warm-up and queue-state effects fall on all of them.
            for list in [publishes, consumes] {
                for i in 0..<list.count {
                    let (name, body) = list[(i + run) % list.count]
                    let c0 = Measure.cpuSeconds()
                    let seconds = try await body()
                    rates[name, default: []].append(Double(messages) / seconds)
                    cpu[name, default: []].append((Measure.cpuSeconds() - c0) / Double(messages) * 1e6)
                }
            }
            for (_, q) in queues { try RawLoop.delete(endpoint, queue: q) }
            let r = { (name: String) in rates[name]!.last! }
            print(
                String(
                    format: "%3d  %8.0f/s  %8.0f/s  %5.2fx  %8.0f/s  %5.2fx | %8.0f/s  %8.0f/s  %5.2fx", run,
                    r("publish raw"), r("publish swift"), r("publish swift") / r("publish raw"),
                    r("publish batch"), r("publish batch") / r("publish raw"),
                    r("consume raw"), r("consume swift"), r("consume swift") / r("consume raw")))
        }
        let median = Measure.median
        func ratio(_ a: String, _ b: String) -> Double { median(zip(rates[a]!, rates[b]!).map { $0 / $1 }) }
        let m = { (name: String) in median(rates[name]!) }
        print(
            String(
                format: "med  %8.0f/s  %8.0f/s  %5.2fx  %8.0f/s  %5.2fx | %8.0f/s  %8.0f/s  %5.2fx",
                m("publish raw"), m("publish swift"), ratio("publish swift", "publish raw"),
                m("publish batch"), ratio("publish batch", "publish raw"),
                m("consume raw"), m("consume swift"), ratio("consume swift", "consume raw")))
        print("")
        print("client CPU per message, median (user+sys of this process; the broker shares the cores):")
        for name in ["publish raw", "publish swift", "publish batch", "consume raw", "consume swift"] {
            print("  " + name.padding(toLength: 15, withPad: " ", startingAt: 0) + String(format: "%5.1f µs", median(cpu[name]!)))
        }
        print("")
        print(
            String(
                format: "median ratio swift/raw: publish %.2fx (batches %.2fx), consume %.2fx (goal >= 0.90x)",
                ratio("publish swift", "publish raw"), ratio("publish batch", "publish raw"), ratio("consume swift", "consume raw")))
    }

    func config(_ url: String, _ name: String) throws -> AMQPConfiguration {
        try AMQPConfiguration(urls: url, connectionName: name)
    }

    func swiftPublish(url: String, queue: String) async throws -> Double {
        let publisher = AMQPPublisher(configuration: try config(url, "bench-swift-publisher"), window: window)
        let body = [UInt8](repeating: 0x61, count: size)
        let lanes = window
        let count = messages
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    for i in stride(from: lane, to: count, by: lanes) {
                        try await publisher.publish(
                            exchange: "", routingKey: queue, body: body,
                            properties: AMQPProperties(messageId: "swift-\(i)"))
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = (ContinuousClock.now - start).seconds
        await publisher.close()
        return elapsed
    }

    /// The same messages through `publish(contentsOf:)`: window/64 tasks, each publishing
    /// batches of 64 and awaiting their confirms.
    func swiftPublishBatches(url: String, queue: String) async throws -> Double {
        let publisher = AMQPPublisher(configuration: try config(url, "bench-swift-batch-publisher"), window: window)
        let body = [UInt8](repeating: 0x61, count: size)
        let batchSize = 64
        let lanes = max(1, window / batchSize)
        let count = messages
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    for first in stride(from: lane * batchSize, to: count, by: lanes * batchSize) {
                        let batch = (first..<min(first + batchSize, count)).map {
                            OutgoingMessage(exchange: "", routingKey: queue, body: body, properties: AMQPProperties(messageId: "batch-\($0)"))
                        }
                        for result in await publisher.publish(contentsOf: batch) { try result.get() }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = (ContinuousClock.now - start).seconds
        await publisher.close()
        return elapsed
    }

    func swiftConsume(url: String, queue: String) async throws -> Double {
        let consumer = AMQPConsumer(configuration: try config(url, "bench-swift-consumer"), queue: queue, prefetch: prefetch)
        var received = 0
        var start: ContinuousClock.Instant?
        for await delivery in consumer.deliveries {
            if start == nil { start = .now }
            precondition(!delivery.body.isEmpty)
            delivery.ack()
            received += 1
            if received == messages { break }
        }
        let elapsed = (ContinuousClock.now - start!).seconds
        await consumer.close()
        return elapsed
    }
}
