import CoreMetrics
import Foundation
import Synchronization

/// Who is counting: the `service` label every Parley metric carries (docs/monitoring.md).
/// A service's main sets it when it bootstraps its metrics backend; until then it is the
/// process's name, which for every Parley executable is already the service's name.
public enum MetricsIdentity {
    private static let current = Mutex<String>(ProcessInfo.processInfo.processName)

    public static var service: String { current.withLock { $0 } }

    public static func set(service: String) { current.withLock { $0 = service } }
}

/// Metric handles made on first use and kept, one per set of label values, so a hot path
/// (every message consumed or published) costs a dictionary look-up rather than a trip through
/// the metrics factory. Made on first use rather than up front, so they bind to the backend the
/// service bootstrapped even when the objects that record them were built before.
///
/// ```swift
/// static let consumed = MetricHandles { labels in
///     Counter(label: "parley_messages_consumed_total", dimensions: [("queue", labels[0]), ("outcome", labels[1])])
/// }
/// consumed["mapping.changes", "ack"].increment()
/// ```
public final class MetricHandles<Metric: Sendable>: Sendable {
    private let handles = Mutex<[[String]: Metric]>([:])
    private let make: @Sendable ([String]) -> Metric

    public init(_ make: @escaping @Sendable (_ labelValues: [String]) -> Metric) {
        self.make = make
    }

    public subscript(_ labelValues: String...) -> Metric {
        handles.withLock { handles in
            if let metric = handles[labelValues] { return metric }
            let metric = make(labelValues)
            handles[labelValues] = metric
            return metric
        }
    }
}

extension Duration {
    /// Whole nanoseconds, for `Timer.recordNanoseconds`.
    public var metricNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Confirmed publishes, per exchange (`parley_messages_published_total{service,exchange}`).
enum PublishMetrics {
    static let published = MetricHandles { labels in
        Counter(
            label: "parley_messages_published_total",
            dimensions: [("service", MetricsIdentity.service), ("exchange", labels[0])])
    }

    /// The default exchange (`""`, used for the retry tiers) is named as RabbitMQ names it.
    static func confirmed(exchange: String, count: Int = 1) {
        published[exchange.isEmpty ? "amq.default" : exchange].increment(by: count)
    }
}
