/// Parley's exchanges, queues and routing keys: names only (pure); the broker topology they
/// make is ``ParleyTopology/standard`` in ParleyMessaging.
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
}
