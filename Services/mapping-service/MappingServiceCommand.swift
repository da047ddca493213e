// mapping-service: native ⇄ canonical for every system (docs/mapping-service.md).
import ArgumentParser
import Foundation
import Logging
import ParleyAMQP
import ParleyMapping
import ParleyMappingService
import ParleyMessaging
import ParleyObservability
import ServiceLifecycle

@main
struct MappingServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mapping-service",
        abstract: "Normalises captured changes to the canonical model and denormalises sync requests into commands.",
        discussion: """
            Broker: PARLEY_AMQP_URL or PARLEY_AMQP_URL_FILE (and PARLEY_AMQP_CA_FILE etc. for amqps).
            The mapping tables are loaded and checked at start; any problem stops the service with file:line: reason.
            """)

    @Option(help: "Directory holding mappings/, docs/contracts/ and specs/ (default: PARLEY_REPOSITORY or the working directory).")
    var repository: String?

    @Option(help: "Messages mapped at once per queue.")
    var concurrency: Int = 16

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default: PARLEY_LOG_LEVEL or info).")
    var logLevel: String?

    @Option(help: "Port for /health/live, /health/ready and /metrics (default: PARLEY_HTTP_PORT or 9400; PARLEY_HTTP_HOST sets the address).")
    var httpPort: Int?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let logger = ServiceLogging.bootstrap(level: logLevel, environment: env, label: "parley.mapping")
        let root = Mappings.repositoryRoot(option: repository, environment: env)
        let mappings: Mappings
        do {
            mappings = try Mappings.load(repositoryRoot: root)
        } catch {
            FileHandle.standardError.write(Data("mapping-service: the mapping tables do not load:\n\(error)\n".utf8))
            throw ExitCode(78)  // EX_CONFIG
        }
        let amqp = try AMQPConfiguration.fromEnvironment(connectionName: "mapping-service")
        let observability = try ObservabilityConfiguration.fromEnvironment(env, port: httpPort)
        let registry = ParleyMetricsBackend.bootstrap(service: "mapping-service")
        let service = MappingService(amqp: amqp, mappings: mappings, concurrency: concurrency, logger: logger)
        let server = ObservabilityServer(
            configuration: observability, registry: registry,
            readiness: Readiness(
                [ReadinessCheck.amqp("broker.publisher", service.publisher.readiness)]
                    + service.consumers.map { ReadinessCheck.amqp("broker.consumer.\($0.queueName)", $0.readiness) }),
            logger: logger)
        logger.info("mapping-service starting", metadata: ["tables": "\(mappings.tables.count)", "broker": "\(amqp.endpoints.map(\.description))"])
        let group = ServiceGroup(
            configuration: .init(
                services: service.consumers.map { .init(service: $0) } + [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        await service.publisher.close()
        logger.info("mapping-service stopped")
    }
}
