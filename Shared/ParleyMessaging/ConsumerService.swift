import Foundation
import Logging
import ParleyAMQP
import ServiceLifecycle

/// How a handler says a message failed. Anything else a handler throws counts as `.permanent`
/// unless it is an `AMQPError` that is transient.
public struct HandlerFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case transient, permanent }
    public var kind: Kind
    public var reason: String
    /// What `parley_failures_total` counts it as (the reason text is never a label).
    public var failureClass: FailureClass
    public init(_ kind: Kind, _ reason: String, _ failureClass: FailureClass? = nil) {
        self.kind = kind
        self.reason = reason
        self.failureClass = failureClass ?? (kind == .transient ? .transient : .permanent)
    }
    public static func transient(_ reason: String) -> HandlerFailure { .init(.transient, reason) }
    public static func permanent(_ reason: String, _ failureClass: FailureClass = .permanent) -> HandlerFailure {
        .init(.permanent, reason, failureClass)
    }
    public var description: String { reason }
}

/// What to do with a message whose handler failed, as a pure decision the tests drive.
public enum FailureDecision: Equatable, Sendable {
    /// Publish a copy to this retry-tier queue (attempt number carried in a header), then ack.
    case retry(tierQueue: String, attempt: Int)
    /// Publish a copy to the queue's dead-letter queue with the reason in its headers, then ack.
    case deadLetter(reason: String)
}

public struct RetryPolicy: Sendable, Equatable {
    /// Retries (through the delay tiers) before a transient failure is dead-lettered.
    public var maxRetries: Int
    public init(maxRetries: Int = 5) { self.maxRetries = maxRetries }

    public func decide(error: any Error, retriesSoFar: Int, topology: Topology) -> FailureDecision {
        let (transient, reason) = Self.classify(error)
        if transient, retriesSoFar < maxRetries, let tier = topology.retryQueue(forAttempt: retriesSoFar) {
            return .retry(tierQueue: tier, attempt: retriesSoFar + 1)
        }
        if transient {
            return .deadLetter(reason: "gave up after \(retriesSoFar) retries: \(reason)")
        }
        return .deadLetter(reason: reason)
    }

    static func classify(_ error: any Error) -> (transient: Bool, reason: String) {
        switch error {
        case let f as HandlerFailure: return (f.kind == .transient, f.reason)
        case let a as AMQPError: return (a.isTransient, a.description)
        default: return (false, String(describing: error))
        }
    }
}

/// Headers Parley adds to retried and dead-lettered copies.
public enum ParleyHeaders {
    /// How many times the message was retried through the delay tiers.
    public static let retries = "parley-retries"
    /// Why the message was dead-lettered (or why its last attempt failed).
    public static let error = "parley-error"
    /// The queue the message was being consumed from when it failed.
    public static let failedQueue = "parley-failed-queue"
    /// When it failed, ISO 8601.
    public static let failedAt = "parley-failed-at"

    /// The copy of a delivery that goes to `<queue>.dead` (through the topology's dead-letter
    /// exchange) with the reason, the queue and the time in its headers. Publish it with a
    /// confirm, then ack the delivery: nothing is lost in between.
    public static func deadLetter(_ delivery: AMQPDelivery, from queue: String, reason: String, topology: Topology) -> OutgoingMessage {
        var properties = delivery.properties
        properties.headers[error] = .string(reason)
        properties.headers[failedQueue] = .string(queue)
        properties.headers[failedAt] = .string(Date().formatted(.iso8601))
        properties.deliveryMode = 2
        return OutgoingMessage(exchange: topology.deadLetterExchange, routingKey: queue, body: delivery.body, properties: properties)
    }
}

/// Runs a handler over one queue as a ServiceLifecycle service, `concurrency` deliveries at a
/// time. A handler that returns acks the delivery; one that throws gets its message retried
/// later through the topology's delay tiers (transient failures) or dead-lettered with the
/// reason in its headers (permanent failures, or retries exhausted) — in both cases the copy
/// is published with a confirm before the original is acked, so nothing is lost. If even that
/// publish fails the delivery is nacked back to the queue, where `x-delivery-limit` bounds how
/// often it can come back.
///
/// On graceful shutdown (SIGTERM) it stops taking messages, lets the handlers in flight finish
/// and ack, and closes its connection.
public final class ConsumerService: Service, Sendable {
    public typealias Handler = @Sendable (AMQPDelivery) async throws -> Void

    let consumer: AMQPConsumer
    let publisher: AMQPPublisher
    let topology: Topology
    let queue: String
    let concurrency: Int
    let retryPolicy: RetryPolicy
    let handler: Handler
    let logger: Logger

    public init(
        configuration: AMQPConfiguration, queue: String, topology: Topology, publisher: AMQPPublisher,
        concurrency: Int = 16, prefetch: UInt16? = nil, retryPolicy: RetryPolicy = .init(),
        logger: Logger = Logger(label: "parley.consumer"), handler: @escaping Handler
    ) {
        precondition(topology.queue(named: queue) != nil, "queue \(queue) is not in the topology")
        self.consumer = AMQPConsumer(
            configuration: configuration, queue: queue, topology: topology,
            prefetch: prefetch ?? UInt16(min(concurrency * 2, Int(UInt16.max))), logger: logger)
        self.publisher = publisher
        self.topology = topology
        self.queue = queue
        self.concurrency = max(1, concurrency)
        self.retryPolicy = retryPolicy
        self.handler = handler
        self.logger = logger
    }

    public func run() async throws {
        let consumer = self.consumer
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                var running = 0
                for await delivery in consumer.deliveries {
                    if running >= concurrency {
                        await group.next()
                        running -= 1
                    }
                    group.addTask { await self.process(delivery) }
                    running += 1
                }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            Task { await consumer.cancel() }
        }
        await consumer.close()
        logger.info("consumer stopped", metadata: ["queue": "\(queue)"])
    }

    /// The consumer's connection is up and consuming (for `/health/ready`).
    public var readiness: ConnectionReadiness { consumer.readiness }

    public var queueName: String { queue }

    func process(_ delivery: AMQPDelivery) async {
        let started = ContinuousClock.now
        do {
            try await handler(delivery)
            delivery.ack()
            MessagingMetrics.consumed(queue: queue, outcome: .ack, elapsed: ContinuousClock.now - started)
        } catch {
            MessagingMetrics.failure(FailureClass.of(error))
            let retries = Int(delivery.properties.headers[ParleyHeaders.retries]?.intValue ?? 0)
            let decision = retryPolicy.decide(error: error, retriesSoFar: retries, topology: topology)
            var properties = delivery.properties
            properties.headers[ParleyHeaders.error] = .string(String(describing: error))
            properties.headers[ParleyHeaders.failedQueue] = .string(queue)
            properties.headers[ParleyHeaders.failedAt] = .string(Date().formatted(.iso8601))
            properties.deliveryMode = 2
            let copy: OutgoingMessage
            switch decision {
            case .retry(let tier, let attempt):
                properties.headers[ParleyHeaders.retries] = .int64(Int64(attempt))
                properties.headers[Topology.retryQueueHeader] = .string(queue)
                copy = OutgoingMessage(exchange: "", routingKey: tier, body: delivery.body, properties: properties)
                logger.info(
                    "handler failed; retrying later",
                    metadata: [
                        "queue": "\(queue)", "messageId": "\(properties.messageId ?? "-")",
                        "retry": "\(attempt)", "tier": "\(tier)", "error": "\(error)"
                    ])
            case .deadLetter(let reason):
                copy = ParleyHeaders.deadLetter(delivery, from: queue, reason: reason, topology: topology)
                logger.error(
                    "handler failed; dead-lettered",
                    metadata: [
                        "queue": "\(queue)", "messageId": "\(properties.messageId ?? "-")",
                        "reason": "\(reason)"
                    ])
            }
            do {
                try await publisher.publish(copy)
                delivery.ack()
                let outcome: MessagingMetrics.Outcome
                if case .retry = decision { outcome = .retry } else { outcome = .deadLetter }
                MessagingMetrics.consumed(queue: queue, outcome: outcome, elapsed: ContinuousClock.now - started)
            } catch {
                logger.warning("could not park failed message; returning it to the queue", metadata: ["error": "\(error)"])
                delivery.nack(requeue: true)
            }
        }
    }
}
