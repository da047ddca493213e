import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// What every long-running service serves on its own port (docs/monitoring.md):
///
/// - `GET /health/live`: 200 while the process serves HTTP at all.
/// - `GET /health/ready`: 200 when every readiness probe is up (broker connections, database),
///   else 503; both with a JSON body naming each probe and what is down.
/// - `GET /metrics`: the Prometheus registry in the text exposition format.
///
/// A ServiceLifecycle service: it stops with the service group. When its port cannot be bound
/// it logs an error and keeps out of the way instead of stopping the service: monitoring must
/// not take the data flow down with it (an unanswered health check shows the problem anyway).
public struct ObservabilityServer: Service {
    public let configuration: ObservabilityConfiguration
    public let registry: PrometheusCollectorRegistry
    public let readiness: Readiness
    let logger: Logger
    let onServerRunning: @Sendable (Int) async -> Void

    public init(
        configuration: ObservabilityConfiguration, registry: PrometheusCollectorRegistry, readiness: Readiness, logger: Logger,
        onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.registry = registry
        self.readiness = readiness
        self.logger = logger
        self.onServerRunning = onServerRunning
    }

    /// The three routes, for the server and for tests.
    public static func router(registry: PrometheusCollectorRegistry, readiness: Readiness) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health/live") { _, _ -> Response in
            json(.ok, Array(#"{"status":"live"}"#.utf8))
        }
        router.get("/health/ready") { _, _ -> Response in
            let report = await readiness.evaluate()
            return json(report.isReady ? .ok : .serviceUnavailable, report.json)
        }
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        return router
    }

    static func json(_ status: HTTPResponse.Status, _ body: [UInt8]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    public func run() async throws {
        let logger = self.logger, configuration = self.configuration, onServerRunning = self.onServerRunning
        let app = Application(
            router: Self.router(registry: registry, readiness: readiness),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.info("serving /health/live, /health/ready and /metrics", metadata: ["host": "\(configuration.host)", "port": "\(port)"])
                await onServerRunning(port)
            },
            logger: logger)
        do {
            try await app.run()
        } catch {
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            logger.error(
                "cannot serve /health and /metrics; the service goes on without them",
                metadata: ["host": "\(configuration.host)", "port": "\(configuration.port)", "error": "\(error)"])
            // Returning would end the whole service group: wait for its shutdown instead.
            try? await gracefulShutdown()
        }
    }
}
