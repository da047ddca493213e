/// Capped exponential backoff with jitter, as a pure value: `next()` gives the delay before
/// attempt n+1; `reset()` after a success; `ceiling(forAttempt:)` the un-jittered delay for
/// callers that count attempts themselves. The random source is injectable so tests can drive
/// it deterministically. The one backoff of Parley: broker reconnects, adapter retries, the
/// link service's retries and batch backoff, migrations waiting for the database, the
/// simulators' webhook retries.
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// 0 = no jitter; 1 = "full jitter" (uniform in [delay·(1−jitter), delay]).
    public var jitter: Double
    public private(set) var attempt: Int = 0

    public init(
        initial: Duration = .milliseconds(100), maximum: Duration = .seconds(10),
        multiplier: Double = 2, jitter: Double = 0.5
    ) {
        precondition(initial > .zero && maximum >= initial && multiplier >= 1 && (0...1).contains(jitter))
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The un-jittered delay for the given attempt (0-based), capped at `maximum`.
    public func ceiling(forAttempt n: Int) -> Duration {
        let base = initial.inSeconds * pow(multiplier, Double(min(n, 64)))
        return min(Duration.microseconds(Int64((base * 1e6).rounded())), maximum)
    }

    public mutating func next<R: RandomNumberGenerator>(using rng: inout R) -> Duration {
        let ceiling = ceiling(forAttempt: attempt).inSeconds
        attempt += 1
        let low = ceiling * (1 - jitter)
        let value = low == ceiling ? ceiling : Double.random(in: low...ceiling, using: &rng)
        return .microseconds(Int64((value * 1e6).rounded()))
    }

    public mutating func next() -> Duration {
        var rng = SystemRandomNumberGenerator()
        return next(using: &rng)
    }

    public mutating func reset() { attempt = 0 }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var inSeconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
