import Foundation
import ParleyCore

/// An instant in milliseconds since the Unix epoch: the resolution the simulators serve
/// (`2026-05-01T10:00:00.123Z`) and the one Parley's RFC 3339 parser keeps.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public init(_ date: Date) {
        self.milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    public static func now() -> Timestamp { Timestamp(Date()) }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }

    public func adding(milliseconds ms: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds + ms) }

    public var date: Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// RFC 3339 in UTC with three fraction digits: `2026-05-01T10:00:00.123Z`.
    public var rfc3339: String {
        let days = milliseconds >= 0 ? milliseconds / 86_400_000 : (milliseconds - 86_399_999) / 86_400_000
        let msOfDay = milliseconds - days * 86_400_000
        let (y, m, d) = CivilCalendar.civilFromDays(days)
        let h = msOfDay / 3_600_000, mi = msOfDay / 60_000 % 60, s = msOfDay / 1000 % 60, f = msOfDay % 1000
        return String(format: "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ", y, m, d, h, mi, s, f)
    }

    /// `YYYY-MM-DD` of this instant in UTC.
    public var utcDate: String { String(rfc3339.prefix(10)) }

    public var description: String { rfc3339 }

    /// Parses RFC 3339 `date-time` (`Z` or a numeric offset, any number of fraction digits;
    /// digits past the millisecond are dropped, i.e. rounded down). `nil` when malformed.
    public static func parse(_ text: String) -> Timestamp? {
        let b = Array(text.utf8)
        func num(_ at: Int, _ width: Int) -> Int64? {
            guard at + width <= b.count else { return nil }
            var v: Int64 = 0
            for i in at..<(at + width) {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int64(b[i] - 0x30)
            }
            return v
        }
        func char(_ at: Int, _ options: String) -> Bool { at < b.count && options.utf8.contains(b[at]) }
        guard let y = num(0, 4), char(4, "-"), let mo = num(5, 2), char(7, "-"), let d = num(8, 2),
            char(10, "Tt "), let h = num(11, 2), char(13, ":"), let mi = num(14, 2), char(16, ":"),
            let s = num(17, 2), CivilCalendar.isValid(y, mo, d), h < 24, mi < 60, s < 61
        else { return nil }
        var i = 19
        var fraction: Int64 = 0
        if char(i, ".") {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if digits < 3 { fraction = fraction * 10 + Int64(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { fraction *= 10 } }
        }
        var offsetMinutes: Int64 = 0
        if char(i, "Zz") {
            i += 1
        } else if char(i, "+-"), let oh = num(i + 1, 2), char(i + 3, ":"), let om = num(i + 4, 2) {
            offsetMinutes = (oh * 60 + om) * (b[i] == 0x2D ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = CivilCalendar.daysFromCivil(y, mo, d)
        let ms = ((days * 24 + h) * 60 + mi) * 60_000 + min(s, 59) * 1000 + fraction - offsetMinutes * 60_000
        return Timestamp(milliseconds: ms)
    }
}

/// The simulator's clock for `modifiedAt`: never goes back and never repeats, so every write
/// gets a strictly later timestamp than the one before it, even many writes within one
/// millisecond (the clock then runs up to a few milliseconds ahead of the wall clock and
/// waits for it while idle). A real database's `now()` may repeat; the contract's paging by
/// (modifiedAt, id) copes with both.
public struct MonotonicClock: Sendable {
    public private(set) var last: Timestamp?

    public init(last: Timestamp? = nil) { self.last = last }

    /// The next timestamp for a write happening at wall-clock time `wall`.
    public mutating func next(wall: Timestamp) -> Timestamp {
        let t = last.map { max(wall, $0.adding(milliseconds: 1)) } ?? wall
        last = t
        return t
    }
}
