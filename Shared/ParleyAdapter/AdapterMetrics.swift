import CoreMetrics
import Foundation
import ParleyAMQP
import ParleyCanonical
import ParleyMessaging
import Synchronization
import ParleyEnvelope

/// The adapters' metrics (docs/monitoring.md): change capture (`ChangePoller`) and command
/// writing (`CommandWriter`). The `system` label already says which adapter: these carry no
/// `service` label.
enum AdapterMetrics {
    static let pollLag = MetricHandles { labels in
        Gauge(label: "parley_poll_lag_seconds", dimensions: [("system", labels[0]), ("entity", labels[1])])
    }
    static let pollLastSuccess = MetricHandles { labels in
        Gauge(
            label: "parley_poll_last_success_timestamp_seconds",
            dimensions: [("system", labels[0]), ("entity", labels[1])])
    }
    static let commands = MetricHandles { labels in
        Counter(label: "parley_commands_total", dimensions: [("system", labels[0]), ("outcome", labels[1])])
    }

    /// What became of a command: `parley_commands_total{outcome}`.
    enum CommandOutcome: String {
        case written
        case failedTransient = "failed_transient"
        case failedPermanent = "failed_permanent"
        /// Not written: the record was modified since the state was merged (merged first).
        case changed
        /// Not written: the record is gone from the system (its delete published).
        case gone
    }

    static func command(_ system: SystemName, _ outcome: CommandOutcome) {
        commands[system.rawValue, outcome.rawValue].increment()
    }

    /// The failure class of a system's answer: refused for good is an API error.
    static func failureClass(_ error: any Error) -> FailureClass {
        switch error {
        case let system as SystemError: system.isTransient ? .transient : .apiError
        default: FailureClass.of(error)
        }
    }
}

/// How far behind a system's change feed this replica's capture is, per entity:
///
/// - `parley_poll_last_success_timestamp_seconds`: the start (Unix time) of the last poll that
///   read the feed to its end and published everything new — every change the system made
///   before then has been published.
/// - `parley_poll_lag_seconds`: now minus that time (before the first success: now minus when
///   this poller started), updated after every poll, failed or not. With a 2 s interval it saws
///   between 0 and about 2 s while all is well and grows steadily while polls fail.
///
/// Only the replica holding the poll lease polls, so only it moves these; alert on
/// `time() - max(parley_poll_last_success_timestamp_seconds)` across replicas.
final class PollMetrics: Sendable {
    let system: SystemName
    private let started = Date()
    private let lastSuccess = Mutex<[CanonicalEntityType: Date]>([:])

    init(system: SystemName) {
        self.system = system
    }

    /// A poll that began at `start` read the whole feed and published what was new.
    func succeeded(_ entity: CanonicalEntityType, startedAt start: Date) {
        lastSuccess.withLock { $0[entity] = start }
        AdapterMetrics.pollLastSuccess[system.rawValue, entity.rawValue].record(start.timeIntervalSince1970)
    }

    /// After every poll, whatever its outcome.
    func polled(_ entity: CanonicalEntityType, error: (any Error)? = nil, now: Date = Date()) {
        if let error { MessagingMetrics.failure(AdapterMetrics.failureClass(error)) }
        let since = lastSuccess.withLock { $0[entity] } ?? started
        AdapterMetrics.pollLag[system.rawValue, entity.rawValue].record(max(0, now.timeIntervalSince(since)))
    }
}
