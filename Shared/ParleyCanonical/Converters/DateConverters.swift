import ParleyCore
import Foundation
import ParleyEnvelope
import ParleyJSON

/// Dates and instants, without `DateFormatter` (no locale, no shared mutable state).
///
/// Canonical forms:
/// - a date is `yyyy-MM-dd` (a calendar date, no time zone);
/// - an instant (date-time) is UTC with exactly three fraction digits: `2025-01-31T12:00:00.000Z`.
public enum CivilTime {
    static let msPerDay: Int64 = 86_400_000

    static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    static func formatDate(days: Int64) -> String {
        let (y, m, d) = CivilCalendar.civilFromDays(days)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    public static func formatInstant(ms: Int64) -> String {
        let days = ms >= 0 ? ms / msPerDay : -((-ms + msPerDay - 1) / msPerDay)
        var rest = ms - days * msPerDay
        let h = rest / 3_600_000
        rest %= 3_600_000
        let mi = rest / 60_000
        rest %= 60_000
        return "\(formatDate(days: days))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(rest / 1000, 2)).\(pad(rest % 1000, 3))Z"
    }

    /// `yyyy-MM-dd` → days since 1970-01-01. Checks it is a real calendar date.
    static func parseDate(_ text: String) throws(ConversionError) -> Int64 {
        let b = Array(text.utf8)
        guard b.count == 10, b[4] == 0x2D, b[7] == 0x2D,
            let y = digits(b, 0, 4), let m = digits(b, 5, 2), let d = digits(b, 8, 2)
        else { throw ConversionError("\"\(text)\" is not a date like 2025-01-31 (yyyy-MM-dd)") }
        guard (1...12).contains(m), d >= 1, d <= CivilCalendar.daysInMonth(y, m) else {
            throw ConversionError("\"\(text)\" is not a calendar date")
        }
        return CivilCalendar.daysFromCivil(y, m, d)
    }

    /// RFC 3339 date-time → milliseconds since 1970 (UTC). Accepts `T`, `t` or a space between
    /// date and time, `Z`/`z` or `±HH:MM`, and any number of fraction digits (rounded to the
    /// millisecond, halves up). Requires an offset: a local time without one is ambiguous.
    public static func parseInstant(_ text: String) throws(ConversionError) -> Int64 {
        let b = Array(text.utf8)
        let shape = ConversionError("\"\(text)\" is not an RFC 3339 date-time with offset like 2025-01-31T12:00:00+01:00")
        guard b.count >= 19, [0x54, 0x74, 0x20].contains(b[10]), b[13] == 0x3A, b[16] == 0x3A else { throw shape }
        let days = try parseDate(String(decoding: b[0..<10], as: UTF8.self))
        guard let h = digits(b, 11, 2), let mi = digits(b, 14, 2), let s = digits(b, 17, 2) else { throw shape }
        guard h <= 23, mi <= 59, s <= 60 else { throw ConversionError("\"\(text)\" has a time out of range") }
        var i = 19
        var fractionMs: Int64 = 0
        if i < b.count, b[i] == 0x2E {
            i += 1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            guard i > start else { throw shape }
            let fd = b[start..<i].map { Int64($0 - 0x30) }
            for k in 0..<3 { fractionMs = fractionMs * 10 + (k < fd.count ? fd[k] : 0) }
            if fd.count > 3, fd[3] >= 5 { fractionMs += 1 }
        }
        var offsetMinutes: Int64 = 0
        if i < b.count, b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if i < b.count, b[i] == 0x2B || b[i] == 0x2D {
            let sign: Int64 = b[i] == 0x2D ? -1 : 1
            guard i + 6 == b.count, b[i + 3] == 0x3A, let oh = digits(b, i + 1, 2), let om = digits(b, i + 4, 2)
            else { throw shape }
            guard oh <= 23, om <= 59 else { throw ConversionError("\"\(text)\" has a time zone offset out of range") }
            offsetMinutes = sign * (oh * 60 + om)
            i += 6
        } else {
            throw ConversionError("\"\(text)\" has no time zone offset (add Z or ±HH:MM)")
        }
        guard i == b.count else { throw shape }
        return days * msPerDay + ((h * 60 + mi - offsetMinutes) * 60 + s) * 1000 + fractionMs
    }

    private static func digits(_ b: [UInt8], _ at: Int, _ width: Int) -> Int64? {
        guard at + width <= b.count else { return nil }
        var v: Int64 = 0
        for k in at..<(at + width) {
            guard b[k] >= 0x30, b[k] <= 0x39 else { return nil }
            v = v * 10 + Int64(b[k] - 0x30)
        }
        return v
    }
}

/// `date`: native `yyyy-MM-dd` ⇄ canonical `yyyy-MM-dd`, checked to be a real calendar date
/// (`2025-02-30` is an error). A native date-time is an error here: use `dateTime` or
/// `dateInZone:<zone>`.
public struct DateConverter: Converter {
    public let name = "date"
    public init() {}
    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            .string(CivilTime.formatDate(days: try CivilTime.parseDate(try expectString(v, "a date"))))
        }
    }
    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try toCanonical(canonical, context: context)
    }
}

/// `dateTime`: native RFC 3339 date-time with an offset (`2025-01-31T13:00:00+01:00`) ⇄
/// canonical UTC instant with milliseconds (`2025-01-31T12:00:00.000Z`). Writing gives the
/// canonical UTC text, which is valid RFC 3339 for any system that reads offsets.
public struct DateTimeConverter: Converter {
    public let name = "dateTime"
    public init() {}
    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            .string(CivilTime.formatInstant(ms: try CivilTime.parseInstant(try expectString(v, "a date-time"))))
        }
    }
    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try toCanonical(canonical, context: context)
    }
}

/// `dateInZone:<zone>` (e.g. `dateInZone:Europe/Oslo`): for a system that only has dates where
/// the canonical model has an instant.
///
/// - to native: the canonical instant's calendar date in `<zone>`
///   (`2025-01-31T23:30:00.000Z` → `2025-02-01` in Oslo).
/// - to canonical: the instant of midnight starting that date in `<zone>`
///   (`2025-02-01` → `2025-01-31T23:00:00.000Z`). Lossy: the time of day is not known.
public struct DateInZoneConverter: Converter {
    public let name: String
    public let timeZone: TimeZone

    /// `nil` when the zone identifier is unknown.
    public init?(zoneIdentifier: String) {
        guard let zone = TimeZone(identifier: zoneIdentifier) else { return nil }
        self.timeZone = zone
        self.name = "dateInZone:\(zoneIdentifier)"
    }

    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            let days = try CivilTime.parseDate(try expectString(v, "a date"))
            // Midnight local = midnight UTC minus the offset in force then. Take the offset at
            // UTC midnight, then correct once for a change between the two instants.
            let utcMidnight = Date(timeIntervalSince1970: Double(days * CivilTime.msPerDay) / 1000)
            var offset = timeZone.secondsFromGMT(for: utcMidnight)
            let guess = utcMidnight.addingTimeInterval(-Double(offset))
            offset = timeZone.secondsFromGMT(for: guess)
            return .string(CivilTime.formatInstant(ms: days * CivilTime.msPerDay - Int64(offset) * 1000))
        }
    }

    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in
            let ms = try CivilTime.parseInstant(try expectString(v, "a date-time"))
            let offset = Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(ms) / 1000)))
            let local = ms + offset * 1000
            let days = local >= 0 ? local / CivilTime.msPerDay : -((-local + CivilTime.msPerDay - 1) / CivilTime.msPerDay)
            return .string(CivilTime.formatDate(days: days))
        }
    }
}

/// `dateOfInstant:<zone>` (e.g. `dateOfInstant:Europe/Oslo`): for a system that only has an
/// instant where the canonical model has a calendar date (the webshop's `date_created_gmt` as
/// the order date). It is `dateInZone:<zone>` with the two sides swapped, so the zone
/// arithmetic exists once.
///
/// - to canonical: the calendar date in `<zone>` of the native RFC 3339 date-time
///   (`2025-01-31T23:30:00Z` → `2025-02-01` in Oslo). Lossy: the time of day is dropped.
/// - to native: the instant that date starts in `<zone>`, as canonical UTC RFC 3339 text
///   (`2025-02-01` → `2025-01-31T23:00:00.000Z`), which reads back as the same date.
public struct DateOfInstantConverter: Converter {
    public let name: String
    let inverse: DateInZoneConverter
    public var timeZone: TimeZone { inverse.timeZone }

    /// `nil` when the zone identifier is unknown.
    public init?(zoneIdentifier: String) {
        guard let inverse = DateInZoneConverter(zoneIdentifier: zoneIdentifier) else { return nil }
        self.inverse = inverse
        self.name = "dateOfInstant:\(zoneIdentifier)"
    }

    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try inverse.toNative(native, context: context)
    }

    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try inverse.toCanonical(canonical, context: context)
    }
}
