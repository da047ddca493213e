// A real consumer process for the graceful-shutdown test: it consumes the queue named by
// PARLEY_TEST_QUEUE (topology prefix PARLEY_TEST_PREFIX), takes 300 ms per message, prints
// "handled <message id>" after each ack, and runs until SIGTERM.
import Foundation
import Logging
import ParleyAMQP
import ParleyMessaging
import ServiceLifecycle

let env = ProcessInfo.processInfo.environment
guard let url = env["PARLEY_AMQP_URL"], let prefix = env["PARLEY_TEST_PREFIX"] else {
    FileHandle.standardError.write(Data("PARLEY_AMQP_URL and PARLEY_TEST_PREFIX are required\n".utf8))
    exit(2)
}
/// Unbuffered, so the test sees each line as it happens.
@Sendable func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
let queue = "\(prefix).q"
let topology = Topology(
    exchanges: [.init("\(prefix).x")],
    queues: [.init(queue, bindings: [.init(exchange: "\(prefix).x", routingKey: "#")])],
    deadLetterExchange: "\(prefix).dlx", requeueExchange: "\(prefix).requeue", retryDelays: [])
let configuration = try AMQPConfiguration(urls: url, connectionName: "shutdown-fixture")
let logger = Logger(label: "fixture")
let publisher = AMQPPublisher(configuration: configuration, topology: topology)
let service = ConsumerService(
    configuration: configuration, queue: queue, topology: topology, publisher: publisher,
    concurrency: 4, prefetch: 8, logger: logger
) { delivery in
    say("started \(delivery.properties.messageId ?? "?")")
    try await Task.sleep(for: .milliseconds(300))
    say("handled \(delivery.properties.messageId ?? "?")")
}
let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
try await group.run()
await publisher.close()
say("stopped")
