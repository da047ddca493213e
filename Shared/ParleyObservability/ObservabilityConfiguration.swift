import Foundation

/// Where a service serves `/health/live`, `/health/ready` and `/metrics` (docs/monitoring.md).
///
/// `PARLEY_HTTP_HOST` (default `0.0.0.0`) and `PARLEY_HTTP_PORT` (default 9400); a service's
/// `--http-port` overrides the port. Port 0 takes any free port (the service logs which). Every
/// service uses the same default: in containers each has its own address; several on one host
/// need a port each.
public struct ObservabilityConfiguration: Sendable, Equatable {
    public static let environmentKeys = ["PARLEY_HTTP_HOST", "PARLEY_HTTP_PORT"]
    public static let defaultHost = "0.0.0.0"
    public static let defaultPort = 9400

    public var host: String
    public var port: Int

    public init(host: String = defaultHost, port: Int = defaultPort) {
        self.host = host
        self.port = port
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Reads the environment; `port` (the command line's `--http-port`) wins over it.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, port override: Int? = nil
    ) throws -> ObservabilityConfiguration {
        var configuration = ObservabilityConfiguration()
        if let host = environment["PARLEY_HTTP_HOST"], !host.isEmpty { configuration.host = host }
        if let override {
            configuration.port = override
        } else if let text = environment["PARLEY_HTTP_PORT"], !text.isEmpty {
            guard let port = Int(text) else { throw Invalid(description: "PARLEY_HTTP_PORT must be a port number (0-65535)") }
            configuration.port = port
        }
        guard (0...65535).contains(configuration.port) else {
            throw Invalid(description: "the HTTP port (PARLEY_HTTP_PORT or --http-port) must be between 0 and 65535")
        }
        return configuration
    }
}
