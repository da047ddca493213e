import Foundation
import Logging

/// How every Parley service logs: lines to standard error at the level given (a command-line
/// option), else `PARLEY_LOG_LEVEL`, else `info`.
public enum ServiceLogging {
    /// The environment key holding the default log level.
    public static let levelEnvironmentKey = "PARLEY_LOG_LEVEL"

    public static func bootstrap(
        level: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment, label: String
    ) -> Logger {
        let level = Logger.Level(rawValue: level ?? environment[levelEnvironmentKey] ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}
