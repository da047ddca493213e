import ParleyAMQP
import ParleyMessaging
import ParleyEnvelope

/// Each service's RabbitMQ permissions, derived from `ParleyTopology.standard` and what the
/// service does with it. `infra/rabbitmq/permissions.tsv` is checked against this by
/// `Tests/ParleyDeploymentTests`.
///
/// The administrator creates the topology before the services start (`infra/rabbitmq/init.sh`
/// imports `infra/rabbitmq/definitions.json`), and the deployed services only check it is there
/// (`PARLEY_AMQP_TOPOLOGY=verify`: passive declarations, which RabbitMQ checks against no
/// permission, and no bindings). So a service needs:
/// - `basic.publish`: **write** on the exchanges it publishes to, plus `parley.dead-letter`
///   (dead-lettered copies) and, for `ConsumerService` users, `amq.default` (retried copies go
///   to the retry tier queues through the default exchange);
/// - `basic.consume`: **read** on its own queues;
/// - and no **configure** at all: it can create, delete or re-bind nothing.
public enum BrokerAccess {
    public struct Grant: Sendable, Equatable {
        public var user: String
        public var consumes: [String]
        public var publishes: [String]
    }

    public struct Permissions: Sendable, Equatable, CustomStringConvertible {
        public var configure: String
        public var write: String
        public var read: String
        public var description: String { "configure \(configure) write \(write) read \(read)" }
    }

    public static let defaultExchange = "amq.default"

    typealias Q = ParleyTopology.Queues
    typealias X = ParleyTopology.Exchanges

    /// What each service consumes and publishes (user names are the services' names with `_`).
    /// Services that consume through `ConsumerService` (mapping service, adapters) also publish
    /// to `amq.default`: a transient failure's copy goes to a retry tier queue by name. The link
    /// service consumes with its own loop and only dead-letters.
    public static let grants: [String: Grant] = {
        var grants: [String: Grant] = [
            "mapping-service": Grant(
                user: "mapping_service", consumes: [Q.mappingChanges, Q.mappingSync],
                publishes: [X.canonical, X.commands, X.events, defaultExchange]),
            "link-service": Grant(user: "link_service", consumes: [Q.linkCanonical, Q.linkEvents], publishes: [X.sync])
        ]
        for system in ParleyTopology.systems {
            grants["\(system.rawValue)-adapter"] = Grant(
                user: "\(system.rawValue)_adapter", consumes: [Q.adapterCommands(system)],
                publishes: [X.changes, X.events, defaultExchange])
        }
        return grants
    }()

    /// An anchored regular expression matching exactly these names.
    public static func regex(_ names: [String]) -> String {
        let escaped = Array(Set(names)).sorted().map { name in
            name.map { "\\^$.|?*+()[]{}".contains($0) ? "\\\($0)" : String($0) }.joined()
        }
        return escaped.isEmpty ? "^$" : "^(" + escaped.joined(separator: "|") + ")$"
    }

    public static func permissions(_ grant: Grant, topology: Topology = ParleyTopology.standard) -> Permissions {
        Permissions(configure: regex([]), write: regex(grant.publishes + [topology.deadLetterExchange]), read: regex(grant.consumes))
    }
}
