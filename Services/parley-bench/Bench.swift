// parley-bench: throughput of Parley's AMQP layer against the raw rabbitmq-c loop, measured in
// the same run on the same broker (the machine is shared and noisy: compare ratios, report
// medians). Usage: parley-bench amqp [--messages N] [--runs R] [--size BYTES] [--window W]
// [--prefetch P] [--queue-type quorum|classic]. Needs PARLEY_AMQP_URL.
import ArgumentParser
import Foundation
import Logging
import ParleyAMQP

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-bench", abstract: "Parley's benchmarks.", subcommands: [AMQPBench.self])
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
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .warning
            return h
        }
        let endpoint = try AMQPEndpoint(url: url)
        print("parley-bench amqp: \(messages) messages of \(size) B, window \(window), prefetch \(prefetch), \(queueType) queues, \(runs) runs")
        print("broker: \(endpoint)")
        print("")
        print("run  publish raw   publish swift  ratio   consume raw   consume swift  ratio")
        var results: [(pr: Double, ps: Double, cr: Double, cs: Double)] = []
        var cpu: [(pr: Double, ps: Double, cr: Double, cs: Double)] = []
        for run in 1...runs {
            let rawQueue = "bench.raw.\(UUID().uuidString.prefix(8))"
            let swiftQueue = "bench.swift.\(UUID().uuidString.prefix(8))"
            for q in [rawQueue, swiftQueue] { try RawLoop.declare(endpoint, queue: q, type: queueType) }

            // Alternate which goes first, so warm-up and queue-state effects fall on both.
            var pr = 0.0, ps = 0.0, cr = 0.0, cs = 0.0
            var cpr = 0.0, cps = 0.0, ccr = 0.0, ccs = 0.0
            for swiftFirst in run % 2 == 0 ? [true, false] : [false, true] {
                if swiftFirst {
                    let c0 = cpuSeconds()
                    ps = Double(messages) / (try await swiftPublish(url: url, queue: swiftQueue))
                    cps = (cpuSeconds() - c0) / Double(messages) * 1e6
                } else {
                    let c0 = cpuSeconds()
                    pr = Double(messages) / (try RawLoop.publish(endpoint, queue: rawQueue, count: messages, size: size, window: window))
                    cpr = (cpuSeconds() - c0) / Double(messages) * 1e6
                }
            }
            for swiftFirst in run % 2 == 0 ? [true, false] : [false, true] {
                if swiftFirst {
                    let c0 = cpuSeconds()
                    cs = Double(messages) / (try await swiftConsume(url: url, queue: swiftQueue))
                    ccs = (cpuSeconds() - c0) / Double(messages) * 1e6
                } else {
                    let c0 = cpuSeconds()
                    cr = Double(messages) / (try RawLoop.consume(endpoint, queue: rawQueue, count: messages, prefetch: prefetch))
                    ccr = (cpuSeconds() - c0) / Double(messages) * 1e6
                }
            }
            results.append((pr, ps, cr, cs))
            cpu.append((cpr, cps, ccr, ccs))
            print(String(format: "%3d  %9.0f/s  %11.0f/s  %5.2fx  %9.0f/s  %11.0f/s  %5.2fx", run, pr, ps, ps / pr, cr, cs, cs / cr))
            for q in [rawQueue, swiftQueue] { try RawLoop.delete(endpoint, queue: q) }
        }
        func median(_ xs: [Double]) -> Double {
            let s = xs.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        let ratioP = median(results.map { $0.ps / $0.pr }), ratioC = median(results.map { $0.cs / $0.cr })
        print(String(format: "med  %9.0f/s  %11.0f/s  %5.2fx  %9.0f/s  %11.0f/s  %5.2fx",
                     median(results.map(\.pr)), median(results.map(\.ps)), ratioP,
                     median(results.map(\.cr)), median(results.map(\.cs)), ratioC))
        print("")
        print("client CPU per message (user+sys of this process; the broker shares the cores):")
        print(String(format: "     publish raw %.1f µs, swift %.1f µs; consume raw %.1f µs, swift %.1f µs (medians)",
                     median(cpu.map(\.pr)), median(cpu.map(\.ps)), median(cpu.map(\.cr)), median(cpu.map(\.cs))))
        print("")
        print(String(format: "median ratio swift/raw: publish %.2fx, consume %.2fx (goal >= 0.90x)", ratioP, ratioC))
    }

    func config(_ url: String, _ name: String) throws -> AMQPConfiguration {
        try AMQPConfiguration(urls: url, connectionName: name)
    }

    func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return s(usage.ru_utime) + s(usage.ru_stime)
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
                        try await publisher.publish(exchange: "", routingKey: queue, body: body,
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
