import Foundation
import ParleyAMQP
import ParleyMessaging
import ParleyEnvelope

/// The topology as a RabbitMQ definitions document for one virtual host
/// (`POST /api/definitions/<vhost>` of the management API): what `infra/rabbitmq/init.sh`
/// imports before the services start. `infra/rabbitmq/definitions.json` is checked against
/// this by `Tests/ParleyDeploymentTests`.
public enum BrokerDefinitions {
    public static func object(_ topology: Topology = ParleyTopology.standard) -> [String: Any] {
        let d = topology.declarations()
        return [
            "exchanges": d.exchanges.map { e -> [String: Any] in
                ["name": e.name, "type": e.kind.rawValue, "durable": true, "auto_delete": false, "internal": false, "arguments": [String: Any]()]
            },
            "queues": d.queues.map { q -> [String: Any] in
                ["name": q.name, "durable": true, "auto_delete": false, "arguments": json(q.arguments)]
            },
            "bindings": d.bindings.map { b -> [String: Any] in
                [
                    "source": b.binding.exchange, "destination": b.queue, "destination_type": "queue",
                    "routing_key": b.binding.routingKey, "arguments": json(b.binding.arguments)
                ]
            }
        ]
    }

    static func json(_ table: AMQPTable) -> [String: Any] {
        var out: [String: Any] = [:]
        for (key, value) in table.entries { out[key] = json(value) }
        return out
    }

    static func json(_ value: AMQPValue) -> Any {
        switch value {
        case .bool(let b): return b
        case .int32(let i): return Int(i)
        case .int64(let i): return Int(i)
        case .double(let d): return d
        case .string(let s): return s
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        case .timestamp(let t): return Int(t)
        case .table(let t): return json(t)
        case .array(let a): return a.map { json($0) }
        case .void: return NSNull()
        }
    }

    /// The document as JSON text with sorted keys (stable, comparable).
    public static func text(_ topology: Topology = ParleyTopology.standard) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object(topology), options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
    }
}
