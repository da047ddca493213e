import Foundation

extension AMQPConfiguration {
    /// The broker settings every Parley service reads from its environment:
    ///
    /// - `PARLEY_AMQP_URL`: one URL or a comma-separated cluster list
    ///   (`amqp://user:password@host:5672/vhost`); or `PARLEY_AMQP_URL_FILE`, a file holding it
    ///   (a Docker secret), so the password is never in the environment or in code.
    /// - `PARLEY_AMQP_CA_FILE`, `PARLEY_AMQP_CERT_FILE`, `PARLEY_AMQP_KEY_FILE`: TLS for
    ///   `amqps://` URLs (CA bundle; client certificate and key for mutual TLS).
    ///
    /// Errors name the variable, never its value.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, connectionName: String
    ) throws -> AMQPConfiguration {
        let urls: String
        if let file = environment["PARLEY_AMQP_URL_FILE"], !file.isEmpty {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw AMQPError.invalidURL("PARLEY_AMQP_URL_FILE: cannot read \(file)")
            }
            urls = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let value = environment["PARLEY_AMQP_URL"], !value.isEmpty {
            urls = value
        } else {
            throw AMQPError.invalidURL("set PARLEY_AMQP_URL or PARLEY_AMQP_URL_FILE")
        }
        var configuration = try AMQPConfiguration(urls: urls, connectionName: connectionName)
        configuration.tls = AMQPTLSOptions(
            caCertificatePath: environment["PARLEY_AMQP_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 },
            clientCertificatePath: environment["PARLEY_AMQP_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 },
            clientKeyPath: environment["PARLEY_AMQP_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 })
        return configuration
    }
}
