import Foundation

/// Fault-injection knobs: set at start (flags, environment) and at run time through
/// `POST /_admin/faults`. They apply to the contract's endpoints, never to `/_admin`.
public struct FaultSettings: Sendable, Equatable, Codable {
    /// Fraction (0…1) of requests answered with `errorStatus` instead of being served.
    public var errorRate: Double = 0
    /// The 5xx status of those errors.
    public var errorStatus: Int = 503
    /// Added latency in milliseconds before every request is handled…
    public var latencyMs: Int = 0
    /// …plus a uniformly random extra of up to this many milliseconds.
    public var latencyJitterMs: Int = 0
    /// The next N requests are answered 429 with `Retry-After` (counts down to 0).
    public var rateLimitBurst: Int = 0
    /// The `Retry-After` seconds of those 429s.
    public var retryAfterSeconds: Int = 1
    /// Fraction (0…1) of requests whose connection is dropped without a complete response.
    public var dropRate: Double = 0

    public init() {}

    public init(from decoder: any Decoder) throws {
        let defaults = FaultSettings()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        errorRate = try c.decodeIfPresent(Double.self, forKey: .errorRate) ?? defaults.errorRate
        errorStatus = try c.decodeIfPresent(Int.self, forKey: .errorStatus) ?? defaults.errorStatus
        latencyMs = try c.decodeIfPresent(Int.self, forKey: .latencyMs) ?? defaults.latencyMs
        latencyJitterMs = try c.decodeIfPresent(Int.self, forKey: .latencyJitterMs) ?? defaults.latencyJitterMs
        rateLimitBurst = try c.decodeIfPresent(Int.self, forKey: .rateLimitBurst) ?? defaults.rateLimitBurst
        retryAfterSeconds = try c.decodeIfPresent(Int.self, forKey: .retryAfterSeconds) ?? defaults.retryAfterSeconds
        dropRate = try c.decodeIfPresent(Double.self, forKey: .dropRate) ?? defaults.dropRate
    }

    /// These settings with the members present in `patch` replaced, validated. Unknown
    /// members and out-of-range values are a 422 naming the member.
    public func applying(_ patch: JSONValue) throws(Problem) -> FaultSettings {
        guard let object = patch.objectValue else { throw Problem.badRequest("The body must be a JSON object.") }
        var s = self
        var errors: [Problem.FieldError] = []
        func rate(_ key: String) -> Double? {
            guard let v = object[key] else { return nil }
            guard let d = v.doubleValue, (0...1).contains(d) else {
                errors.append(.init(field: key, message: "must be a number from 0 to 1"))
                return nil
            }
            return d
        }
        func count(_ key: String, _ range: ClosedRange<Int>) -> Int? {
            guard let v = object[key] else { return nil }
            guard let i = v.intValue, range.contains(Int(i)) else {
                errors.append(.init(field: key, message: "must be an integer from \(range.lowerBound) to \(range.upperBound)"))
                return nil
            }
            return Int(i)
        }
        for key in object.keys where CodingKeys(stringValue: key) == nil {
            errors.append(.init(field: key, message: "unknown fault knob"))
        }
        if let v = rate("errorRate") { s.errorRate = v }
        if let v = count("errorStatus", 500...599) { s.errorStatus = v }
        if let v = count("latencyMs", 0...600_000) { s.latencyMs = v }
        if let v = count("latencyJitterMs", 0...600_000) { s.latencyJitterMs = v }
        if let v = count("rateLimitBurst", 0...1_000_000) { s.rateLimitBurst = v }
        if let v = count("retryAfterSeconds", 0...86_400) { s.retryAfterSeconds = v }
        if let v = rate("dropRate") { s.dropRate = v }
        if !errors.isEmpty { throw Problem.validation(errors) }
        return s
    }
}

/// What happens to one request.
public struct FaultDecision: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case serve
        case error(status: Int)
        case rateLimited(retryAfterSeconds: Int)
        case drop
    }
    public var delayMs: Int
    public var outcome: Outcome
}

extension FaultSettings {
    /// Decides one request's fate from uniform random numbers in 0..<1 (passed in, so the
    /// decision is testable). A pending 429 burst goes first and is used up by one.
    public mutating func decide(dropRoll: Double, errorRoll: Double, jitterRoll: Double) -> FaultDecision {
        let delay = latencyMs + Int(Double(latencyJitterMs) * jitterRoll)
        if rateLimitBurst > 0 {
            rateLimitBurst -= 1
            return FaultDecision(delayMs: delay, outcome: .rateLimited(retryAfterSeconds: retryAfterSeconds))
        }
        if dropRoll < dropRate { return FaultDecision(delayMs: delay, outcome: .drop) }
        if errorRoll < errorRate { return FaultDecision(delayMs: delay, outcome: .error(status: errorStatus)) }
        return FaultDecision(delayMs: delay, outcome: .serve)
    }
}
