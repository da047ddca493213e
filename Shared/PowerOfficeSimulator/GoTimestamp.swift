import Foundation

/// A point in time with microsecond precision, as PowerOffice Go's `…DateTimeOffset` fields.
/// Written as `2025-01-31T12:34:56.123456+00:00`; parsed from that, from `Z`, other offsets,
/// 0–7 fractional digits and a space instead of `T` (the spec's example filter value is
/// `2021-09-25 08:03:00.123456+00:00`). A `+` in a query string arrives as a space when the
/// client did not percent-encode it, so `… 00:00` at the end is read as `+00:00`.
public struct GoTimestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var microseconds: Int64

    public init(microseconds: Int64) { self.microseconds = microseconds }

    public static func < (a: GoTimestamp, b: GoTimestamp) -> Bool { a.microseconds < b.microseconds }

    public var description: String { formatted }

    public var formatted: String {
        let perDay: Int64 = 86_400_000_000
        var days = microseconds / perDay
        var rest = microseconds % perDay
        if rest < 0 { rest += perDay; days -= 1 }
        let (y, m, d) = Self.civil(fromDays: days)
        let seconds = rest / 1_000_000, micros = rest % 1_000_000
        return
            "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2)).\(pad(micros, 6))+00:00"
    }

    /// The calendar date (UTC) as `yyyy-MM-dd`.
    public var dateString: String { String(formatted.prefix(10)) }

    public init?(parsing raw: String) {
        var s = Substring(raw.trimmingCharacters(in: [" "]))
        func number(_ count: Int) -> Int64? {
            guard s.count >= count else { return nil }
            let digits = s.prefix(count)
            guard digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let n = Int64(digits) else { return nil }
            s = s.dropFirst(count)
            return n
        }
        func expect(_ c: Character...) -> Bool {
            guard let first = s.first, c.contains(first) else { return false }
            s = s.dropFirst()
            return true
        }
        guard let y = number(4), expect("-"), let mo = number(2), expect("-"), let d = number(2),
            (1...12).contains(mo), d >= 1, d <= Self.daysInMonth(year: Int(y), month: Int(mo))
        else { return nil }
        var micros: Int64 = 0
        if !s.isEmpty {
            guard expect("T", "t", " "), let h = number(2), expect(":"), let mi = number(2), h < 24, mi < 60 else { return nil }
            var sec: Int64 = 0
            if s.first == ":" { s = s.dropFirst(); guard let v = number(2), v < 60 else { return nil }; sec = v }
            var fraction: Int64 = 0
            if s.first == "." {
                s = s.dropFirst()
                let digits = s.prefix { $0.isASCII && $0.isNumber }
                guard (1...7).contains(digits.count) else { return nil }
                s = s.dropFirst(digits.count)
                let six = String((digits + "000000").prefix(6))
                fraction = Int64(six)!
            }
            micros = ((h * 60 + mi) * 60 + sec) * 1_000_000 + fraction
            if !s.isEmpty {
                if s == "Z" || s == "z" {
                    s = s.dropFirst()
                } else {
                    guard let sign = s.first, ["+", "-", " "].contains(sign) else { return nil }
                    s = s.dropFirst()
                    guard let oh = number(2), expect(":"), let om = number(2), s.isEmpty else { return nil }
                    let offset = (oh * 60 + om) * 60_000_000
                    micros -= sign == "-" ? -offset : offset
                }
            }
        }
        microseconds = Self.days(fromCivil: Int(y), Int(mo), Int(d)) * 86_400_000_000 + micros
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    static func days(fromCivil y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146_097 + doe - 719_468)
    }

    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

private func pad(_ n: Int64, _ width: Int) -> String {
    let s = String(n)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

/// The store's clock: wall time in microseconds, made strictly increasing so that every change
/// gets a `LastChangedDateTimeOffset` later than every earlier one (an incremental reader with
/// `lastChangedDateTimeOffsetGreaterThan` then never misses a change made in the same microsecond).
public struct MonotonicClock: Sendable {
    public var now: @Sendable () -> Int64
    public private(set) var last: Int64 = .min

    public init(now: @escaping @Sendable () -> Int64 = MonotonicClock.wallClock) { self.now = now }

    public mutating func next() -> GoTimestamp {
        last = Swift.max(now(), last == .min ? .min : last + 1)
        return GoTimestamp(microseconds: last)
    }

    @Sendable public static func wallClock() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
