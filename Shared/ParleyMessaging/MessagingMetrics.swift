import CoreMetrics
import ParleyAMQP

/// Why something failed, as a small fixed set: the `reason` label of `parley_failures_total`.
/// The text of an error never becomes a label (every distinct text would be a new time series);
/// it goes to the logs and the dead-letter headers instead.
public enum FailureClass: String, Sendable, CaseIterable {
    /// The message could not be read: not JSON, not an envelope, not the payload its kind needs.
    case malformed
    /// The entity cannot be written to its target: the mapping's validation against the
    /// target's contract refused it (reported as a `failed` event, not dead-lettered).
    case invalidPayload = "invalid_payload"
    /// The record does not map: unknown entity or table, or a value no converter accepts.
    case unmappable
    /// The target system refused a request for good (a 4xx other than 429).
    case apiError = "api_error"
    /// Worth trying again: broker, database or system unavailable, 5xx, 429, timeouts.
    case transient
    /// Any other failure that will not go away by itself.
    case permanent

    /// The class of what a handler threw: a ``HandlerFailure`` says; an `AMQPError` is
    /// transient or permanent as it says; anything else is permanent.
    public static func of(_ error: any Error) -> FailureClass {
        switch error {
        case let failure as HandlerFailure: return failure.failureClass
        case let amqp as AMQPError: return amqp.isTransient ? .transient : .permanent
        default: return .permanent
        }
    }
}

/// The metrics of message handling (docs/monitoring.md), recorded at the shared choke points:
/// ``ConsumerService`` and the link service's batch consumer.
public enum MessagingMetrics {
    /// What became of a consumed message: `parley_messages_consumed_total{outcome}`.
    public enum Outcome: String, Sendable {
        case ack
        case retry
        case deadLetter = "dead_letter"
    }

    static let consumedTotal = MetricHandles { labels in
        Counter(
            label: "parley_messages_consumed_total",
            dimensions: [("service", MetricsIdentity.service), ("queue", labels[0]), ("outcome", labels[1])])
    }
    static let processingSeconds = MetricHandles { labels in
        CoreMetrics.Timer(label: "parley_message_processing_seconds", dimensions: [("service", MetricsIdentity.service), ("queue", labels[0])])
    }
    static let failuresTotal = MetricHandles { labels in
        Counter(label: "parley_failures_total", dimensions: [("service", MetricsIdentity.service), ("reason", labels[0])])
    }

    /// One message off `queue` settled with `outcome`, `elapsed` after it was taken up.
    public static func consumed(queue: String, outcome: Outcome, elapsed: Duration) {
        consumedTotal[queue, outcome.rawValue].increment()
        processingSeconds[queue].recordNanoseconds(elapsed.metricNanoseconds)
    }

    /// Something failed, for this reason: `parley_failures_total{reason}`.
    public static func failure(_ reason: FailureClass) {
        failuresTotal[reason.rawValue].increment()
    }
}
