import Foundation
import Logging
import ParleyAMQP
import ParleyMapping
import ParleyMessaging
import ServiceLifecycle
import ParleyEnvelope

/// The mapping service's consumers: `mapping.changes` (change → canonical) and `mapping.sync`
/// (syncRequest → command or failed), each a ``ConsumerService`` publishing through one
/// shared publisher with confirms. Stateless: any number of replicas compete for the queues.
///
/// A delivery is acked only after its output is confirmed by the broker. A message that cannot
/// be read or mapped is a permanent failure: ``ConsumerService`` dead-letters it to
/// `<queue>.dead` with the reason in `parley-error`, and the service goes on. A failure to
/// publish (broker gone) is transient: the message is retried through the delay tiers.
public struct MappingService: Sendable {
    public let processor: MappingProcessor
    public let publisher: AMQPPublisher
    public let consumers: [ConsumerService]

    public init(
        amqp: AMQPConfiguration, mappings: Mappings, topology: Topology = ParleyTopology.standard,
        concurrency: Int = 16, logger: Logger = Logger(label: "parley.mapping")
    ) {
        let processor = MappingProcessor(mappings: mappings)
        let publisher = AMQPPublisher(configuration: amqp, topology: topology, logger: logger)
        self.processor = processor
        self.publisher = publisher
        self.consumers = [
            ConsumerService(
                configuration: amqp, queue: ParleyTopology.Queues.mappingChanges, topology: topology,
                publisher: publisher, concurrency: concurrency, logger: logger
            ) { delivery in
                try await Self.handle(delivery, publisher: publisher, logger: logger) { envelope throws(MappingRejection) in
                    try processor.process(change: envelope)
                }
            },
            ConsumerService(
                configuration: amqp, queue: ParleyTopology.Queues.mappingSync, topology: topology,
                publisher: publisher, concurrency: concurrency, logger: logger
            ) { delivery in
                try await Self.handle(delivery, publisher: publisher, logger: logger) { envelope throws(MappingRejection) in
                    try processor.process(syncRequest: envelope)
                }
            }
        ]
    }

    static func handle(
        _ delivery: AMQPDelivery, publisher: AMQPPublisher, logger: Logger,
        _ process: (Envelope) throws(MappingRejection) -> MappingProcessor.Output
    ) async throws {
        let envelope: Envelope
        do {
            envelope = try delivery.envelope()
        } catch {
            throw HandlerFailure.permanent("malformed message: \(error)", .malformed)
        }
        let output: MappingProcessor.Output
        do {
            output = try process(envelope)
        } catch {
            throw HandlerFailure.permanent(error.reason, .unmappable)
        }
        if output.envelope.kind == .failed {
            MessagingMetrics.failure(.invalidPayload)
            logger.warning(
                "entity cannot be written",
                metadata: [
                    "system": "\(envelope.system)", "entityType": "\(envelope.entityType)", "entityId": "\(envelope.entityId)",
                    "reason": "\(output.envelope.payload["reason"]?.string ?? "-")"
                ])
        }
        try await publisher.publish(output.message)
    }
}

extension MappingProcessor.Output {
    /// The output as the message to publish.
    public var message: OutgoingMessage { OutgoingMessage(envelope: envelope, exchange: exchange, routingKey: routingKey) }
}
