import Foundation
import ParleyCore
import Synchronization
import Testing
import ParleyTestSupport
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
@testable import ParleyAMQP

/// The real local broker (infra/local/parley-local writes PARLEY_AMQP_URL). Tests fail, not
/// skip, without it: they exist to talk to a real RabbitMQ.
enum Broker {
    static var url: String {
        guard let url = ProcessInfo.processInfo.environment["PARLEY_AMQP_URL"], !url.isEmpty else {
            Issue.record("PARLEY_AMQP_URL is not set: run the tests with `make test` (it starts RabbitMQ)")
            return "amqp://127.0.0.1:1/"
        }
        return url
    }

    static func configuration(_ name: String, heartbeat: Duration = .seconds(10)) throws -> AMQPConfiguration {
        var c = try AMQPConfiguration(urls: url, connectionName: name)
        c.heartbeat = heartbeat
        c.reconnect = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        return c
    }

    /// A topology of its own for one test: one topic exchange and one queue bound to it.
    static func scratchTopology(
        _ prefix: String, deliveryLimit: Int = 10,
        retryDelays: [Duration] = []
    ) -> (Topology, exchange: String, queue: String) {
        let exchange = "\(prefix).x"
        let queue = "\(prefix).q"
        let t = Topology(
            exchanges: [.init(exchange)],
            queues: [.init(queue, bindings: [.init(exchange: exchange, routingKey: "#")], deliveryLimit: deliveryLimit)],
            deadLetterExchange: "\(prefix).dlx", requeueExchange: "\(prefix).requeue", retryDelays: retryDelays)
        return (t, exchange, queue)
    }

    static func uniquePrefix(_ name: String) -> String { "test.\(name).\(UUID().uuidString.prefix(8).lowercased())" }

    // MARK: management API (cleanup and inspection)

    static func management(_ method: String, _ path: String) async throws -> (Int, Data) {
        let endpoint = try AMQPEndpoint(url: url)
        let base = ProcessInfo.processInfo.environment["PARLEY_AMQP_MANAGEMENT_URL"] ?? "http://\(endpoint.host):15672"
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        let auth = Data("\(endpoint.user):\(endpoint.password)".utf8).base64EncodedString()
        request.setValue("Basic \(auth)", forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, data)
    }

    static var vhostPath: String {
        let vhost = (try? AMQPEndpoint(url: url).vhost) ?? "/"
        return vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
    }

    static func deleteQueue(_ name: String) async throws {
        _ = try await management("DELETE", "/api/queues/\(vhostPath)/\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
    }

    /// Removes every queue and exchange whose name starts with `prefix`.
    static func cleanUp(_ prefix: String) async {
        for kind in ["queues", "exchanges"] {
            guard let (_, data) = try? await management("GET", "/api/\(kind)/\(vhostPath)?columns=name"),
                let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]]
            else { continue }
            for item in list {
                guard let name = item["name"] as? String, name.hasPrefix(prefix) else { continue }
                _ = try? await management("DELETE", "/api/\(kind)/\(vhostPath)/\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
            }
        }
    }

    /// Runs rabbitmqctl against the local node through infra/local/parley-local.
    static func rabbitmqctl(_ args: String...) throws {
        guard let ctl = ProcessInfo.processInfo.environment["PARLEY_LOCAL_CTL"] else {
            Issue.record("PARLEY_LOCAL_CTL is not set: run the tests with `make test`")
            return
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ctl)
        p.arguments = ["rabbitmqctl"] + args
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "rabbitmqctl \(args) failed")
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Collects a process's output lines as they arrive.
final class LineCollector: Sendable {
    let lines = Locked([String]())
    private let partial = Locked("")
    init(_ pipe: Pipe) {
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil; return }
            let text = String(decoding: data, as: UTF8.self)
            let complete = partial.withLock { p -> [String] in
                p += text
                var parts = p.components(separatedBy: "\n")
                p = parts.removeLast()
                return parts
            }
            lines.withLock { $0.append(contentsOf: complete) }
        }
    }
}

extension Broker {
    /// The first message that arrives on `queue` (acked), or nil if none came within `limit`.
    static func firstDelivery(on queue: String, within limit: Duration = .seconds(60)) async throws -> AMQPDelivery? {
        let consumer = AMQPConsumer(configuration: try configuration("test-reader"), queue: queue)
        defer { Task { await consumer.close() } }
        return try await withDeadline(limit, "a message on \(queue)") { () -> AMQPDelivery? in
            for await d in consumer.deliveries {
                d.ack()
                return d
            }
            return nil
        }
    }
}
