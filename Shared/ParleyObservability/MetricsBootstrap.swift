import CoreMetrics
import Metrics
import ParleyAMQP
import Prometheus
import Synchronization

/// The process's metrics backend: swift-metrics bootstrapped once with a Prometheus registry,
/// which `/metrics` renders. Libraries record through the swift-metrics API only
/// (ParleyMessaging, ParleyAdapter, ParleyLink); only the services' mains bootstrap.
public enum ParleyMetricsBackend {
    /// The histogram buckets of Parley's own histograms, in seconds. Everything else gets
    /// swift-prometheus's defaults (5 ms … 10 s).
    public static let durationBuckets: [String: [Duration]] = [
        "parley_message_processing_seconds": [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
            .seconds(10), .seconds(30)
        ],
        // From a change in the source to the confirmed write in the target: polling intervals,
        // retries with backoff and parked orders make the tail long.
        "parley_sync_latency_seconds": [
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(20),
            .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(600), .seconds(1800), .seconds(3600)
        ]
    ]

    /// A factory over `registry` with Parley's buckets.
    public static func factory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = durationBuckets
        return factory
    }

    private static let bootstrapped = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Names the service (the `service` label) and bootstraps swift-metrics with a Prometheus
    /// registry; returns the registry. Call it first in a service's main, before the services
    /// are built. Calling it again returns the same registry (swift-metrics allows one bootstrap
    /// per process).
    @discardableResult
    public static func bootstrap(service: String) -> PrometheusCollectorRegistry {
        MetricsIdentity.set(service: service)
        return bootstrapped.withLock { registry in
            if let registry { return registry }
            let new = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(factory(registry: new))
            registry = new
            return new
        }
    }
}
