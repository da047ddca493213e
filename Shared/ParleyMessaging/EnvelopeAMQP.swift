import ParleyAMQP
import ParleyEnvelope

/// The envelope on the wire: the body is the envelope's JSON, and the fields tooling needs
/// without parsing it are copied into AMQP properties (docs/envelope.md, "Mapping onto AMQP").
/// The body is authoritative.
extension OutgoingMessage {
    public init(envelope: Envelope, exchange: String, routingKey: String) {
        var headers: AMQPTable = [
            "parley-system": .string(envelope.system.rawValue),
            "parley-entity-type": .string(envelope.entityType.rawValue)
        ]
        if let trace = envelope.trace {
            headers["traceparent"] = .string(trace.traceparent)
            if let state = trace.tracestate { headers["tracestate"] = .string(state) }
        }
        let seconds = envelope.time.timeIntervalSince1970.rounded(.down)
        self.init(
            exchange: exchange, routingKey: routingKey, body: envelope.encoded(),
            properties: AMQPProperties(
                contentType: "application/json", headers: headers, deliveryMode: 2,
                correlationId: envelope.correlationIdText, messageId: envelope.idText,
                timestamp: seconds >= 0 ? UInt64(seconds) : nil, type: envelope.kind.rawValue))
    }
}

extension AMQPDelivery {
    /// The envelope in the body; throws `EnvelopeError` naming the field for a malformed one
    /// (the consumer service dead-letters such a message with that reason).
    public func envelope() throws(EnvelopeError) -> Envelope {
        try Envelope.decode(body)
    }
}
