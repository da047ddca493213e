import Logging

/// Log lines to standard error at `PARLEY_LOG_LEVEL` (default info); returns the service's logger.
public func bootstrapLogging(_ environment: AdapterEnvironment, label: String) -> Logger {
    let level = Logger.Level(rawValue: environment.values["PARLEY_LOG_LEVEL"] ?? "info") ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: label)
}
