/// A token bucket: `capacity` requests at once, refilled at `ratePerSecond`. PowerOffice Go
/// allows 10 requests per second and answers 429 beyond; the answer says when a request would
/// be allowed again (`Retry-After`). Pure: the caller passes the time in microseconds.
public struct TokenBucket: Sendable {
    public var capacity: Double
    public var ratePerSecond: Double
    private var tokens: Double
    private var last: Int64?

    public init(ratePerSecond: Double, capacity: Double? = nil) {
        self.ratePerSecond = ratePerSecond
        self.capacity = capacity ?? max(1, ratePerSecond)
        self.tokens = self.capacity
    }

    public enum Decision: Equatable, Sendable {
        case allowed
        /// Refused; the seconds until one token is back.
        case throttled(retryAfter: Double)
    }

    public mutating func take(now: Int64) -> Decision {
        guard ratePerSecond > 0 else { return .allowed }
        if let last { tokens = min(capacity, tokens + Double(max(0, now - last)) / 1_000_000 * ratePerSecond) }
        last = now
        if tokens >= 1 {
            tokens -= 1
            return .allowed
        }
        return .throttled(retryAfter: (1 - tokens) / ratePerSecond)
    }
}
