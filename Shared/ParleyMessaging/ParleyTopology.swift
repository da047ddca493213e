import ParleyAMQP

/// Parley's broker topology: the one value every service declares on (re)connect.
///
/// ```
/// adapters ──parley.changes──► mapping.changes ──► mapping-service ──parley.canonical──► link.canonical ──► link-service
/// link-service ──parley.sync──► mapping.sync ──► mapping-service ──parley.commands──► <system>-adapter.commands ──► adapters
/// adapters ──parley.events (written / failed)──► link.events ──► link-service
/// ```
///
/// Routing keys are `<system>.<entityType>` (e.g. `customerp.customer`); on `parley.events`
/// the kind follows (`powerofficego.order.written`). Every queue gets its dead-letter queue
/// and the retry tiers from `Topology.declarations()`.
public enum ParleyTopology {
    public static let systems: [SystemName] = [.customerp, .customwebshop, .powerofficego]

    public enum Exchanges {
        public static let changes = "parley.changes"
        public static let canonical = "parley.canonical"
        public static let sync = "parley.sync"
        public static let commands = "parley.commands"
        public static let events = "parley.events"
    }

    public enum Queues {
        public static let mappingChanges = "mapping.changes"
        public static let mappingSync = "mapping.sync"
        public static let linkCanonical = "link.canonical"
        public static let linkEvents = "link.events"
        public static func adapterCommands(_ system: SystemName) -> String { "\(system.rawValue)-adapter.commands" }
    }

    public static func routingKey(system: SystemName, entityType: EntityType, kind: MessageKind? = nil) -> String {
        [system.rawValue, entityType.rawValue, kind?.rawValue].compactMap { $0 }.joined(separator: ".")
    }

    public static let standard: Topology = {
        typealias B = Topology.Binding
        var queues: [Topology.Queue] = [
            .init(Queues.mappingChanges, bindings: [B(exchange: Exchanges.changes, routingKey: "#")]),
            .init(Queues.linkCanonical, bindings: [B(exchange: Exchanges.canonical, routingKey: "#")]),
            .init(Queues.mappingSync, bindings: [B(exchange: Exchanges.sync, routingKey: "#")]),
            .init(Queues.linkEvents, bindings: [B(exchange: Exchanges.events, routingKey: "#")]),
        ]
        for system in systems {
            queues.append(.init(Queues.adapterCommands(system), bindings: [B(exchange: Exchanges.commands, routingKey: "\(system.rawValue).#")]))
        }
        return Topology(
            exchanges: [Exchanges.changes, Exchanges.canonical, Exchanges.sync, Exchanges.commands, Exchanges.events].map { .init($0) },
            queues: queues,
            retryDelays: [.seconds(1), .seconds(5), .seconds(30), .seconds(120), .seconds(600)])
    }()
}
