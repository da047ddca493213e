import CoreMetrics
import Foundation
import Hummingbird
import HummingbirdTesting
import Prometheus
import ParleyTestSupport
import Testing
@testable import ParleyObservability

/// A probe whose answer the test changes while the server runs.
final class Switch: ReadinessProbe, @unchecked Sendable {
    let name: String
    private let lock = NSLock()
    private var _up: Bool
    init(_ name: String, up: Bool) {
        self.name = name
        self._up = up
    }
    var up: Bool {
        get { lock.withLock { _up } }
        set { lock.withLock { _up = newValue } }
    }
    func check() async -> ProbeResult { up ? .up : .down("switched off") }
}

struct ProbeFailure: Error, CustomStringConvertible {
    var description: String { "connection refused" }
}

func bodyJSON(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
}

@Suite("The observability routes: /health/live, /health/ready, /metrics", .timeLimit(.minutes(1)))
struct ObservabilityServerTests {
    @Test("/health/live answers 200 whatever the probes say")
    func live() async throws {
        let app = Application(
            router: ObservabilityServer.router(
                registry: PrometheusCollectorRegistry(), readiness: Readiness([Switch("database", up: false)])))
        try await app.test(.router) { client in
            try await client.execute(uri: "/health/live", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let body = try bodyJSON(response.body)
                #expect(body["status"] as? String == "live")
            }
        }
    }

    @Test("/health/ready is 200 while every probe is up and 503 naming what is down when one is not, and back")
    func ready() async throws {
        let broker = Switch("broker.publisher", up: true)
        let database = Switch("database", up: true)
        let app = Application(router: ObservabilityServer.router(registry: PrometheusCollectorRegistry(), readiness: Readiness([broker, database])))
        try await app.test(.router) { client in
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .ok)
                let body = try bodyJSON(response.body)
                #expect(body["status"] as? String == "ready")
                #expect((body["down"] as? [String]) == [])
                let checks = try #require(body["checks"] as? [[String: Any]])
                #expect(checks.map { $0["name"] as? String } == ["broker.publisher", "database"])
                #expect(checks.allSatisfy { $0["status"] as? String == "up" })
            }
            database.up = false
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try bodyJSON(response.body)
                #expect(body["status"] as? String == "not ready")
                #expect((body["down"] as? [String]) == ["database"])
                let checks = try #require(body["checks"] as? [[String: Any]])
                #expect(checks.last?["status"] as? String == "down")
                #expect(checks.last?["detail"] as? String == "switched off")
            }
            database.up = true
            try await client.execute(uri: "/health/ready", method: .get) { response in #expect(response.status == .ok) }
        }
    }

    @Test("A probe that throws, says false or does not answer in time is down, with the reason; the others still answer")
    func probeFailures() async throws {
        let readiness = Readiness([
            ReadinessCheck("broker.publisher") { true },
            ReadinessCheck("broker.consumer.mapping.changes") { false },
            ReadinessCheck("database") { throw ProbeFailure() },
            ReadinessCheck("slow", timeout: .milliseconds(200)) {
                try? await Task.sleep(for: .seconds(30))
                return true
            }
        ])
        let started = ContinuousClock.now
        let app = Application(router: ObservabilityServer.router(registry: PrometheusCollectorRegistry(), readiness: readiness))
        try await app.test(.router) { client in
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try bodyJSON(response.body)
                #expect((body["down"] as? [String]) == ["broker.consumer.mapping.changes", "database", "slow"])
                let details = try #require(body["checks"] as? [[String: Any]]).map { $0["detail"] as? String }
                #expect(details == [nil, "not connected", "connection refused", "no answer within 0.2 seconds"])
            }
        }
        #expect(ContinuousClock.now - started < .seconds(10), "a hanging probe must not hold the request")
    }

    @Test("/metrics renders the registry in Prometheus text format")
    func metrics() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = ParleyMetricsBackend.factory(registry: registry)
        Counter(
            label: "parley_messages_consumed_total",
            dimensions: [("service", "mapping-service"), ("queue", "mapping.changes"), ("outcome", "ack")], factory: factory
        ).increment(by: 3)
        CoreMetrics.Timer(
            label: "parley_message_processing_seconds", dimensions: [("service", "mapping-service"), ("queue", "mapping.changes")],
            factory: factory
        ).recordMilliseconds(3)
        Gauge(label: "parley_link_parked_entities", factory: factory).record(2)
        let app = Application(router: ObservabilityServer.router(registry: registry, readiness: Readiness()))
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = String(buffer: response.body)
                #expect(text.contains("# TYPE parley_messages_consumed_total counter"))
                #expect(text.contains(#"parley_messages_consumed_total{service="mapping-service",queue="mapping.changes",outcome="ack"} 3"#))
                #expect(text.contains("# TYPE parley_message_processing_seconds histogram"))
                // Parley's own buckets: 2 ms < 3 ms ≤ 5 ms.
                #expect(text.contains(#"parley_message_processing_seconds_bucket{service="mapping-service",queue="mapping.changes",le="0.002"} 0"#))
                #expect(text.contains(#"parley_message_processing_seconds_bucket{service="mapping-service",queue="mapping.changes",le="0.005"} 1"#))
                #expect(text.contains(#"parley_message_processing_seconds_count{service="mapping-service",queue="mapping.changes"} 1"#))
                #expect(text.contains("parley_link_parked_entities 2"))
            }
        }
    }

    @Test("The server runs as a service on a port of its own, and a port already taken does not stop the service group")
    func serves() async throws {
        let registry = PrometheusCollectorRegistry()
        let port = Locked<Int?>(nil)
        let first = ObservabilityServer(
            configuration: .init(host: "127.0.0.1", port: 0), registry: registry, readiness: Readiness(),
            logger: .init(label: "test"), onServerRunning: { bound in port.withLock { $0 = bound } })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await first.run() }
            let bound = try await waitFor { port.withLock { $0 } }
            let (status, _) = try await get("http://127.0.0.1:\(bound)/health/live")
            #expect(status == 200)

            // The same port again: the second server logs and waits instead of returning (which
            // would end a service group), until it is cancelled.
            let second = ObservabilityServer(
                configuration: .init(host: "127.0.0.1", port: bound), registry: registry,
                readiness: Readiness(), logger: .init(label: "test"))
            let returned = Locked(false)
            let secondRunning = Task {
                try? await second.run()
                returned.withLock { $0 = true }
            }
            try await Task.sleep(for: .seconds(1))
            #expect(!returned.withLock { $0 }, "a server that cannot bind must not return by itself")
            secondRunning.cancel()
            _ = await secondRunning.result
            #expect(returned.withLock { $0 })
            group.cancelAll()
        }
    }

    @Test("Configuration: defaults 0.0.0.0:9400, PARLEY_HTTP_HOST and PARLEY_HTTP_PORT, --http-port wins, bad ports refused")
    func configuration() throws {
        #expect(ObservabilityConfiguration.environmentKeys == ["PARLEY_HTTP_HOST", "PARLEY_HTTP_PORT"])
        #expect(try ObservabilityConfiguration.fromEnvironment([:]) == .init(host: "0.0.0.0", port: 9400))
        #expect(
            try ObservabilityConfiguration.fromEnvironment(["PARLEY_HTTP_HOST": "127.0.0.1", "PARLEY_HTTP_PORT": "9501"])
                == .init(host: "127.0.0.1", port: 9501))
        #expect(try ObservabilityConfiguration.fromEnvironment(["PARLEY_HTTP_PORT": "9501"], port: 9602).port == 9602)
        #expect(throws: ObservabilityConfiguration.Invalid.self) { try ObservabilityConfiguration.fromEnvironment(["PARLEY_HTTP_PORT": "http"]) }
        #expect(throws: ObservabilityConfiguration.Invalid.self) { try ObservabilityConfiguration.fromEnvironment([:], port: 70000) }
    }
}
