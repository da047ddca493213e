import Foundation
import ParleyCore
import Logging
import ParleyAMQP
import ParleyMapping
import ParleyMessaging
import ParleyObservability
import ParleyPostgres
import ServiceLifecycle
import ParleyEnvelope

/// Settings every adapter reads from its environment, checked at start with messages that
/// name the variable (never its value).
public struct AdapterEnvironment: Sendable {
    public let values: [String: String]

    public init(_ values: [String: String] = ProcessInfo.processInfo.environment) {
        self.values = values
    }

    /// The names of the system settings the adapters read. Each may also be given as
    /// `<NAME>_FILE` (every read goes through `optional`).
    public enum Key {
        public static let customerpURL = "PARLEY_CUSTOMERP_URL"
        public static let customerpAPIKey = "PARLEY_CUSTOMERP_API_KEY"
        public static let customwebshopURL = "PARLEY_CUSTOMWEBSHOP_URL"
        public static let customwebshopKey = "PARLEY_CUSTOMWEBSHOP_KEY"
        public static let customwebshopSecret = "PARLEY_CUSTOMWEBSHOP_SECRET"
        public static let customwebshopWebhookSecret = "PARLEY_CUSTOMWEBSHOP_WEBHOOK_SECRET"
        public static let powerOfficeURL = "PARLEY_POWEROFFICE_URL"
        public static let powerOfficeTokenURL = "PARLEY_POWEROFFICE_TOKEN_URL"
        public static let powerOfficeApplicationKey = "PARLEY_POWEROFFICE_APPLICATION_KEY"
        public static let powerOfficeClientKey = "PARLEY_POWEROFFICE_CLIENT_KEY"
        public static let powerOfficeSubscriptionKey = "PARLEY_POWEROFFICE_SUBSCRIPTION_KEY"
    }

    /// The system settings each adapter requires (besides the broker, database, repository
    /// and log settings every adapter reads through `AdapterRuntime.run`).
    public static let systemKeys: [SystemName: [String]] = [
        .customerp: [Key.customerpURL, Key.customerpAPIKey],
        .customwebshop: [Key.customwebshopURL, Key.customwebshopKey, Key.customwebshopSecret, Key.customwebshopWebhookSecret],
        .powerofficego: [
            Key.powerOfficeURL, Key.powerOfficeTokenURL, Key.powerOfficeApplicationKey, Key.powerOfficeClientKey,
            Key.powerOfficeSubscriptionKey
        ]
    ]

    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    /// A required setting.
    public func required(_ name: String, _ what: String) throws -> String {
        guard let value = try optional(name), !value.isEmpty else { throw Missing(description: "set \(name): \(what)") }
        return value
    }

    /// A setting given directly or as `<NAME>_FILE` (a Docker secret).
    public func optional(_ name: String) throws -> String? {
        do { return try Secret.read(name, from: values) } catch { throw Missing(description: error.description) }
    }

    /// An `http(s)://` base URL.
    public func url(_ name: String, _ what: String) throws -> String {
        let value = try required(name, what)
        guard let url = URL(string: value), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw Missing(description: "\(name) must be an http(s) URL such as https://host.example/path")
        }
        return value
    }
}

/// An adapter's running parts: the change poller (one replica at a time, by lease; it also
/// notices deletes where the system lists ids) and the command writer (every replica), sharing
/// one publisher.
public struct AdapterRuntime: Sendable {
    public let publisher: AMQPPublisher
    public let services: [any Service]
    /// What `/health/ready` asks: the publisher's and the command consumer's connections.
    public let brokerProbes: [ReadinessCheck]

    public init(
        connector: any SystemConnector, mappings: Mappings, amqp: AMQPConfiguration, database: PostgresConfiguration, pool: PostgresPool,
        pollInterval: Duration = .seconds(2), rescanInterval: Duration = .seconds(3600), reconcileInterval: Duration = .seconds(300),
        concurrency: Int = 8, extraServices: [any Service] = [], logger: Logger
    ) {
        let topology = ParleyTopology.standard
        let publisher = AMQPPublisher(configuration: amqp, topology: topology, logger: logger)
        let markers = WriteMarkers(pool: pool, system: connector.system)
        let poller = ChangePoller(
            connector: connector, mappings: mappings, store: FeedPositionStore(pool: pool, system: connector.system),
            lease: PollLease(configuration: database, system: connector.system), publisher: publisher,
            interval: pollInterval, rescanInterval: rescanInterval, markers: markers,
            reported: ReportedIds(pool: pool, system: connector.system), reconcileInterval: reconcileInterval, logger: logger)
        let writer = CommandWriter(connector: connector, mappings: mappings, publisher: publisher, markers: markers, logger: logger)
        let commands = ConsumerService(
            configuration: amqp, queue: ParleyTopology.Queues.adapterCommands(connector.system), topology: topology,
            publisher: publisher, concurrency: concurrency, logger: logger
        ) { delivery in try await writer.handle(delivery) }
        self.publisher = publisher
        self.services = [poller, commands] + extraServices
        self.brokerProbes = [.amqp("broker.publisher", publisher.readiness), .amqp("broker.consumer.\(commands.queueName)", commands.readiness)]
    }

    /// Migrates the adapters' schema, runs until SIGTERM/SIGINT, then closes.
    public static func run(
        name: String, environment: AdapterEnvironment, repository: String?, logger: Logger,
        pollInterval: Duration, rescanInterval: Duration, reconcileInterval: Duration = .seconds(300), httpPort: Int? = nil,
        makeConnector: () throws -> any SystemConnector,
        extraServices: (AMQPPublisher, Mappings) throws -> [any Service] = { _, _ in [] }
    ) async throws {
        let registry = ParleyMetricsBackend.bootstrap(service: name)
        let observability: ObservabilityConfiguration
        do {
            observability = try ObservabilityConfiguration.fromEnvironment(environment.values, port: httpPort)
        } catch {
            throw AdapterEnvironment.Missing(description: "\(error)")
        }
        let mappings = try Mappings.load(repositoryRoot: Mappings.repositoryRoot(option: repository, environment: environment.values))
        let connector = try makeConnector()
        let database = try PostgresConfiguration.fromEnvironment(environment.values, applicationName: name)
        let amqp = try AMQPConfiguration.fromEnvironment(environment.values, connectionName: name)
        let pool = PostgresPool(configuration: database, maxConnections: 2)
        try await Migrator(migrations: AdapterSchema.migrations, schema: AdapterSchema.name, logger: logger).migrateWhenReachable(on: pool)
        let runtime = AdapterRuntime(
            connector: connector, mappings: mappings, amqp: amqp, database: database, pool: pool,
            pollInterval: pollInterval, rescanInterval: rescanInterval, reconcileInterval: reconcileInterval, logger: logger)
        let server = ObservabilityServer(
            configuration: observability, registry: registry,
            readiness: Readiness(runtime.brokerProbes + [ReadinessCheck.postgres(pool)]), logger: logger)
        let services = runtime.services + (try extraServices(runtime.publisher, mappings)) + [server]
        logger.info("\(name) starting", metadata: ["system": "\(connector.system)"])
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await runtime.publisher.close()
        await pool.close()
        logger.info("\(name) stopped")
    }
}
