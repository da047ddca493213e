import ArgumentParser

/// The seed and fault options both contract simulators take on their command line
/// (`@OptionGroup`), over the `<PREFIX>_…` fault settings from the environment.
public struct SimulatorOptions: ParsableArguments {
    @Option(help: "Create N customers, N products and N orders at start.") public var seed = 0
    @Option(help: "Random seed for the generated data.") public var seedValue: UInt64 = 1
    @Option(help: "Fraction 0…1 of requests answered with --error-status.") public var errorRate: Double?
    @Option(help: "The 5xx status of injected errors.") public var errorStatus: Int?
    @Option(help: "Added latency per request, milliseconds.") public var latencyMs: Int?
    @Option(help: "Random extra latency up to this many milliseconds.") public var latencyJitterMs: Int?
    @Option(help: "Answer the first N requests 429.") public var rateLimitBurst: Int?
    @Option(help: "Retry-After seconds of injected 429s.") public var retryAfter: Int?
    @Option(help: "Fraction 0…1 of requests whose connection is dropped.") public var dropRate: Double?

    public init() {}

    /// The fault settings: the environment's (`<prefix>_ERROR_RATE`, …), overridden by the flags given.
    public func faults(environmentPrefix prefix: String) -> FaultSettings {
        var faults = FaultSettings.fromEnvironment(prefix: prefix)
        if let errorRate { faults.errorRate = errorRate }
        if let errorStatus { faults.errorStatus = errorStatus }
        if let latencyMs { faults.latencyMs = latencyMs }
        if let latencyJitterMs { faults.latencyJitterMs = latencyJitterMs }
        if let rateLimitBurst { faults.rateLimitBurst = rateLimitBurst }
        if let retryAfter { faults.retryAfterSeconds = retryAfter }
        if let dropRate { faults.dropRate = dropRate }
        return faults
    }
}
