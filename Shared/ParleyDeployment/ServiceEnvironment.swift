import ParleyAMQP
import ParleyAdapter
import ParleyMapping
import ParleyObservability
import ParleyMessaging
import ParleyPostgres
import ParleySimulator
import ParleyEnvelope

/// What one deployable process reads from its environment.
public struct EnvironmentSpec: Sendable, Equatable {
    /// Each entry is a set of alternatives, one of which must be set (`PARLEY_AMQP_URL` or
    /// `PARLEY_AMQP_URL_FILE`).
    public var required: [[String]]
    public var optional: [String]

    public init(required: [[String]], optional: [String]) {
        self.required = required
        self.optional = optional
    }

    /// Every key the process reads.
    public var keys: Set<String> { Set(required.flatMap { $0 }).union(optional) }
}

/// The environment of every Parley executable that is deployed, built from the constants the
/// readers themselves use (`AMQPConfiguration.environmentKeys`, `PostgresConfiguration`,
/// `AdapterEnvironment.systemKeys`, …), so docker-compose.yml and docs/deployment.md can be
/// checked against the code (`Tests/ParleyDeploymentTests`).
public enum ServiceEnvironment {
    /// The observability HTTP server's keys (health and metrics), as its configuration reads them.
    public static let httpKeys = ObservabilityConfiguration.environmentKeys

    static let amqp = [AMQPConfiguration.EnvironmentKey.url, AMQPConfiguration.EnvironmentKey.urlFile]
    static let database = [PostgresConfiguration.EnvironmentKey.url, PostgresConfiguration.EnvironmentKey.urlFile]
    static let amqpTLS = AMQPConfiguration.environmentKeys.filter { !amqp.contains($0) }

    /// What every long-running service reads besides its connections.
    static let common = [ServiceLogging.levelEnvironmentKey, Mappings.repositoryEnvironmentKey] + httpKeys + amqpTLS

    static func adapter(_ system: SystemName) -> EnvironmentSpec {
        // Every adapter setting is read through `AdapterEnvironment.optional`, which also
        // accepts `<NAME>_FILE`.
        EnvironmentSpec(
            required: [amqp, database] + (AdapterEnvironment.systemKeys[system] ?? []).map { [$0, $0 + "_FILE"] },
            optional: common)
    }

    /// Per executable name (the compose service names).
    public static let services: [String: EnvironmentSpec] = [
        "mapping-service": EnvironmentSpec(required: [amqp], optional: common),
        "link-service": EnvironmentSpec(required: [amqp, database], optional: common),
        "customerp-adapter": adapter(.customerp),
        "customwebshop-adapter": adapter(.customwebshop),
        "powerofficego-adapter": adapter(.powerofficego),
        "customerp-simulator": EnvironmentSpec(required: [], optional: SimulatorEnvironment.Customerp.keys),
        "customwebshop-simulator": EnvironmentSpec(required: [], optional: SimulatorEnvironment.Customwebshop.keys),
        "powerofficego-simulator": EnvironmentSpec(required: [], optional: [])
    ]

    /// The services that connect to RabbitMQ and PostgreSQL, each with its own user and role.
    public static let parleyServices = ["mapping-service", "link-service", "customerp-adapter", "customwebshop-adapter", "powerofficego-adapter"]
}
