import ParleySimulator

/// Faults injected into the simulated API, settable at run time (`POST /_admin/faults`).
public struct FaultSettings: Sendable, Codable, Equatable {
    /// Share of API requests answered with 500 and a ProblemDetails body (0…1).
    public var errorRate: Double = 0
    /// Added to every API request, in milliseconds.
    public var latencyMs: Int = 0
    /// The next N API requests get 429 with `Retry-After`, whatever the rate limit says.
    public var throttleBurst: Int = 0
    /// The `Retry-After` of those 429s, in seconds.
    public var throttleRetryAfterSeconds: Int = 1
    /// Share of API requests whose connection is closed without a complete response (0…1).
    public var dropRate: Double = 0

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        errorRate = try c.decodeIfPresent(Double.self, forKey: .errorRate) ?? 0
        latencyMs = try c.decodeIfPresent(Int.self, forKey: .latencyMs) ?? 0
        throttleBurst = try c.decodeIfPresent(Int.self, forKey: .throttleBurst) ?? 0
        throttleRetryAfterSeconds = try c.decodeIfPresent(Int.self, forKey: .throttleRetryAfterSeconds) ?? 1
        dropRate = try c.decodeIfPresent(Double.self, forKey: .dropRate) ?? 0
    }
}

public enum FaultAction: Equatable, Sendable {
    case none, serverError, throttle(retryAfterSeconds: Int), drop
}

/// Decides, per request, which fault (if any) applies. Pure given the generator.
public struct FaultInjector: Sendable {
    public var settings = FaultSettings()
    private var random: SeededRandom

    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    public mutating func decide() -> FaultAction {
        if settings.throttleBurst > 0 {
            settings.throttleBurst -= 1
            return .throttle(retryAfterSeconds: settings.throttleRetryAfterSeconds)
        }
        if settings.dropRate > 0, random.unit() < settings.dropRate { return .drop }
        if settings.errorRate > 0, random.unit() < settings.errorRate { return .serverError }
        return .none
    }
}
