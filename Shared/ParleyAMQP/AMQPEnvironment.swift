import Foundation
import ParleyCore

extension AMQPConfiguration {
    /// The names of the settings `fromEnvironment` reads, so deployment files and their test
    /// refer to the same strings the reader uses.
    public enum EnvironmentKey {
        public static let url = "PARLEY_AMQP_URL"
        public static let urlFile = "PARLEY_AMQP_URL_FILE"
        public static let caFile = "PARLEY_AMQP_CA_FILE"
        public static let certFile = "PARLEY_AMQP_CERT_FILE"
        public static let keyFile = "PARLEY_AMQP_KEY_FILE"
        public static let topology = "PARLEY_AMQP_TOPOLOGY"
    }

    /// Every key `fromEnvironment` reads; one of `url` and `urlFile` is required.
    public static let environmentKeys: [String] = [
        EnvironmentKey.url, EnvironmentKey.urlFile, EnvironmentKey.caFile, EnvironmentKey.certFile, EnvironmentKey.keyFile,
        EnvironmentKey.topology
    ]

    /// The broker settings every Parley service reads from its environment:
    ///
    /// - `PARLEY_AMQP_URL`: one URL or a comma-separated cluster list
    ///   (`amqp://user:password@host:5672/vhost`); or `PARLEY_AMQP_URL_FILE`, a file holding it
    ///   (a Docker secret), so the password is never in the environment or in code.
    /// - `PARLEY_AMQP_CA_FILE`, `PARLEY_AMQP_CERT_FILE`, `PARLEY_AMQP_KEY_FILE`: TLS for
    ///   `amqps://` URLs (CA bundle; client certificate and key for mutual TLS).
    /// - `PARLEY_AMQP_TOPOLOGY`: `declare` (the default) or `verify` (``TopologyMode``).
    ///
    /// Errors name the variable, never its value.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, connectionName: String
    ) throws -> AMQPConfiguration {
        let given: String?
        do { given = try Secret.read(EnvironmentKey.url, from: environment) } catch { throw AMQPError.invalidURL(error.description) }
        guard let urls = given else { throw AMQPError.invalidURL("set PARLEY_AMQP_URL or PARLEY_AMQP_URL_FILE") }
        var configuration = try AMQPConfiguration(urls: urls, connectionName: connectionName)
        configuration.tls = AMQPTLSOptions(
            caCertificatePath: environment[EnvironmentKey.caFile].flatMap { $0.isEmpty ? nil : $0 },
            clientCertificatePath: environment[EnvironmentKey.certFile].flatMap { $0.isEmpty ? nil : $0 },
            clientKeyPath: environment[EnvironmentKey.keyFile].flatMap { $0.isEmpty ? nil : $0 })
        if let mode = environment[EnvironmentKey.topology], !mode.isEmpty {
            guard let topology = TopologyMode(rawValue: mode) else {
                throw AMQPError.invalidURL(
                    "PARLEY_AMQP_TOPOLOGY must be \(TopologyMode.allCases.map(\.rawValue).joined(separator: " or ")), not \"\(mode)\"")
            }
            configuration.topology = topology
        }
        return configuration
    }
}
