// link-service: global identities in PostgreSQL, matching, merge, echo suppression, references
// and coalesced writes (docs/link-service.md).
import ArgumentParser
import Foundation
import Logging
import ParleyAMQP
import ParleyLink
import ParleyLinkCore
import ParleyMapping
import ParleyMessaging
import ParleyObservability
import ParleyPostgres
import ServiceLifecycle

@main
struct LinkServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link-service",
        abstract: "Keeps global identities and canonical state in PostgreSQL and decides what is written where.",
        discussion: """
            Database: PARLEY_DATABASE_URL or PARLEY_DATABASE_URL_FILE. Broker: PARLEY_AMQP_URL or PARLEY_AMQP_URL_FILE.
            Migrations run at start (under an advisory lock, so replicas may start together).
            """)

    @Option(help: "Directory holding mappings/ (which fields each system is written) (default: PARLEY_REPOSITORY or the working directory).")
    var repository: String?

    @Option(help: "Messages handled per database transaction.")
    var batchSize: Int = 100

    @Option(help: "Batches each consumer handles at once, each in its own transaction (like replicas: row locks order each entity's changes).")
    var transactions: Int = 4

    @Option(help: "Database connections (default: 2 × transactions + 2, one each for the relay and maintenance).")
    var connections: Int?

    @Option(help: "Seconds a write may stay unanswered before it is sent again.")
    var leaseSeconds: Int = 60

    @Option(help: "Log level (default: PARLEY_LOG_LEVEL or info).")
    var logLevel: String?

    @Option(help: "Port for /health/live, /health/ready and /metrics (default: PARLEY_HTTP_PORT or 9400; PARLEY_HTTP_HOST sets the address).")
    var httpPort: Int?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let logger = ServiceLogging.bootstrap(level: logLevel, environment: env, label: "parley.link")
        let root = Mappings.repositoryRoot(option: repository, environment: env)
        let mappings: Mappings
        do {
            mappings = try Mappings.load(repositoryRoot: root)
        } catch {
            FileHandle.standardError.write(Data("link-service: the mapping tables do not load:\n\(error)\n".utf8))
            throw ExitCode(78)
        }

        let observability = try ObservabilityConfiguration.fromEnvironment(env, port: httpPort)
        let registry = ParleyMetricsBackend.bootstrap(service: "link-service")
        let database = try PostgresConfiguration.fromEnvironment(applicationName: "link-service")
        let pool = PostgresPool(configuration: database, maxConnections: connections ?? 2 * max(1, transactions) + 2)
        let report = try await Migrator(migrations: LinkSchema.migrations, schema: "public", logger: logger).migrateWhenReachable(on: pool)
        logger.info("database ready", metadata: ["applied": "\(report.applied)", "database": "\(database)"])

        let amqp = try AMQPConfiguration.fromEnvironment(connectionName: "link-service")
        let engine = LinkEngine(
            configuration: LinkConfiguration(writtenFields: mappings.writtenFields, archivable: mappings.archivable, lease: .seconds(leaseSeconds)))
        let service = LinkService(amqp: amqp, pool: pool, engine: engine, batchSize: batchSize, transactions: transactions, logger: logger)
        let server = ObservabilityServer(
            configuration: observability, registry: registry,
            readiness: Readiness(
                [ReadinessCheck.amqp("broker.publisher", service.publisher.readiness)]
                    + service.consumers.map { ReadinessCheck.amqp("broker.consumer.\($0.queueName)", $0.readiness) } + [ReadinessCheck.postgres(pool)]
            ),
            logger: logger)
        let monitoring: [any Service] = [server, LinkGauges(pool: pool, logger: logger)]
        let group = ServiceGroup(
            configuration: .init(
                services: (service.services + monitoring).map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await service.publisher.close()
        await pool.close()
        logger.info("link-service stopped")
    }
}
