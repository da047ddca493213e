import ParleyAMQP
import ParleyEnvelope

extension ParleyTopology {
    /// Parley's broker topology: the one value every service declares on (re)connect.
    public static let standard: Topology = {
        typealias B = Topology.Binding
        var queues: [Topology.Queue] = [
            .init(Queues.mappingChanges, bindings: [B(exchange: Exchanges.changes, routingKey: "#")]),
            .init(Queues.linkCanonical, bindings: [B(exchange: Exchanges.canonical, routingKey: "#")]),
            .init(Queues.mappingSync, bindings: [B(exchange: Exchanges.sync, routingKey: "#")]),
            .init(Queues.linkEvents, bindings: [B(exchange: Exchanges.events, routingKey: "#")])
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
