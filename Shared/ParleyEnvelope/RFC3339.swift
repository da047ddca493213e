import ParleyCore
import Foundation

/// RFC 3339 timestamps at millisecond precision, without `DateFormatter` (no locale, no time
/// zone database, no shared mutable state). Proleptic Gregorian calendar, years 0000–9999.
enum RFC3339 {
    static let millisecondsPerDay: Int64 = 86_400_000

    /// Milliseconds since 1970 rounded to the nearest millisecond.
    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    static func date(milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// Valid range for four-digit years: 0000-01-01T00:00:00.000Z ... 9999-12-31T23:59:59.999Z.
    static let range: ClosedRange<Int64> =
        CivilCalendar.daysFromCivil(0, 1, 1) * millisecondsPerDay...(CivilCalendar.daysFromCivil(10000, 1, 1) * millisecondsPerDay - 1)

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, always UTC with exactly three fraction digits.
    static func format(milliseconds ms: Int64) -> String {
        let days = floorDiv(ms, millisecondsPerDay)
        var rest = ms - days * millisecondsPerDay
        let (y, m, d) = CivilCalendar.civilFromDays(days)
        let hour = rest / 3_600_000
        rest %= 3_600_000
        let minute = rest / 60_000
        rest %= 60_000
        let second = rest / 1000
        let milli = rest % 1000
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(milli, 3))Z"
    }

    /// Parses RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t`/`z` also
    /// accepted, as RFC 3339 allows). Fractions beyond milliseconds are rounded. A leap second
    /// (`:60`) is read as the first instant of the next minute. Returns the reason on failure.
    static func parse(_ text: String) -> Result<Int64, ParseFailure> {
        let b = Array(text.utf8)
        var i = 0
        func number(_ width: Int) -> Int64? {
            guard i + width <= b.count else { return nil }
            var value: Int64 = 0
            for k in i..<(i + width) {
                guard b[k] >= 0x30 && b[k] <= 0x39 else { return nil }
                value = value * 10 + Int64(b[k] - 0x30)
            }
            i += width
            return value
        }
        func expect(_ chars: UInt8...) -> Bool {
            guard i < b.count, chars.contains(b[i]) else { return false }
            i += 1
            return true
        }
        let shape = ParseFailure("must be an RFC 3339 date-time like 2025-01-31T12:00:00.000Z")
        guard let year = number(4), expect(0x2D), let month = number(2), expect(0x2D), let day = number(2),
            expect(0x54, 0x74), let hour = number(2), expect(0x3A), let minute = number(2), expect(0x3A),
            let second = number(2)
        else { return .failure(shape) }

        var fractionMs: Int64 = 0
        if i < b.count && b[i] == 0x2E {
            i += 1
            let start = i
            while i < b.count && b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
            guard i > start else { return .failure(shape) }
            let digits = b[start..<i].map { Int64($0 - 0x30) }
            for k in 0..<3 { fractionMs = fractionMs * 10 + (k < digits.count ? digits[k] : 0) }
            if digits.count > 3 && digits[3] >= 5 { fractionMs += 1 }
        }

        var offsetMinutes: Int64 = 0
        if expect(0x5A, 0x7A) {
            // Z
        } else if i < b.count && (b[i] == 0x2B || b[i] == 0x2D) {
            let sign: Int64 = b[i] == 0x2D ? -1 : 1
            i += 1
            guard let oh = number(2), expect(0x3A), let om = number(2) else { return .failure(shape) }
            guard oh <= 23, om <= 59 else { return .failure(ParseFailure("time zone offset out of range")) }
            offsetMinutes = sign * (oh * 60 + om)
        } else {
            return .failure(ParseFailure("must end with Z or a ±HH:MM offset"))
        }
        guard i == b.count else { return .failure(shape) }

        guard (1...12).contains(month) else { return .failure(ParseFailure("month out of range")) }
        guard day >= 1 && day <= CivilCalendar.daysInMonth(year, month) else { return .failure(ParseFailure("day out of range")) }
        guard hour <= 23, minute <= 59, second <= 60 else { return .failure(ParseFailure("time of day out of range")) }

        let days = CivilCalendar.daysFromCivil(year, month, day)
        let ms =
            days * millisecondsPerDay + hour * 3_600_000 + minute * 60_000 + second * 1000 + fractionMs
            - offsetMinutes * 60_000
        return .success(ms)
    }

    struct ParseFailure: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
