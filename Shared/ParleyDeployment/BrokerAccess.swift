import ParleyAMQP
import ParleyMessaging

/// Each service's RabbitMQ permissions, derived from `ParleyTopology.standard` and what the
/// service does with it. `infra/rabbitmq/permissions.tsv` is checked against this by
/// `Tests/ParleyDeploymentTests`.
///
/// Every service declares the whole topology on each (re)connect (publisher and consumers
/// alike), and RabbitMQ checks a non-passive declaration even when the object exists:
/// - `exchange.declare` / `queue.declare`: **configure** on the name — every topology name;
/// - `queue.bind`: **write** on the queue and **read** on the exchange — every queue, every
///   exchange;
/// - `basic.publish`: **write** on the exchange — the exchanges the service publishes to, plus
///   `parley.dead-letter` (dead-lettered copies) and, for `ConsumerService` users, `amq.default`
///   (retried copies go to the retry tier queues through the default exchange);
/// - `basic.consume`: **read** on the queue — only the service's own queues.
///
/// Creating a queue with `x-dead-letter-exchange` (not re-declaring it) also needs read on the
/// queue and write on the dead-letter exchange; the topology is therefore created before the
/// services start by an administrator (`infra/rabbitmq/init.sh` imports
/// `infra/rabbitmq/definitions.json`), so no service needs read on other services' queues.
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
            "mapping-service": Grant(user: "mapping_service", consumes: [Q.mappingChanges, Q.mappingSync],
                                     publishes: [X.canonical, X.commands, X.events, defaultExchange]),
            "link-service": Grant(user: "link_service", consumes: [Q.linkCanonical, Q.linkEvents], publishes: [X.sync]),
        ]
        for system in ParleyTopology.systems {
            grants["\(system.rawValue)-adapter"] = Grant(user: "\(system.rawValue)_adapter", consumes: [Q.adapterCommands(system)],
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
        let d = topology.declarations()
        let exchanges = d.exchanges.map(\.name)
        let queues = d.queues.map(\.name)
        return Permissions(
            configure: regex(exchanges + queues),
            write: regex(queues + grant.publishes + [topology.deadLetterExchange]),
            read: regex(exchanges + grant.consumes))
    }
}
