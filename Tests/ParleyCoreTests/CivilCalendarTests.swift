import Foundation
import Testing
import ParleyCore

@Suite struct CivilCalendarTests {
    @Test("Day numbers agree with Foundation's own clock for every day from 1900 to 2100")
    func againstFoundation() {
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        for days in stride(from: Int64(-25_567), through: 47_482, by: 1) {
            let date = Date(timeIntervalSince1970: Double(days) * 86_400)
            let c = utc.dateComponents([.year, .month, .day], from: date)
            let (y, m, d) = CivilCalendar.civilFromDays(days)
            guard y == Int64(c.year!), m == Int64(c.month!), d == Int64(c.day!) else {
                Issue.record("day \(days): \(y)-\(m)-\(d) but Foundation says \(c)")
                return
            }
            #expect(CivilCalendar.daysFromCivil(y, m, d) == days)
        }
    }

    @Test("Leap years and month lengths")
    func monthLengths() {
        #expect(CivilCalendar.isLeapYear(2000) && CivilCalendar.isLeapYear(2024))
        #expect(!CivilCalendar.isLeapYear(1900) && !CivilCalendar.isLeapYear(2023))
        #expect(CivilCalendar.isValid(2024, 2, 29) && !CivilCalendar.isValid(2023, 2, 29))
        #expect(!CivilCalendar.isValid(2025, 4, 31) && !CivilCalendar.isValid(2025, 13, 1) && !CivilCalendar.isValid(2025, 1, 0))
        #expect(CivilCalendar.daysFromCivil(1970, 1, 1) == 0)
        #expect(CivilCalendar.daysFromCivil(0, 1, 1) == -719_528)
    }
}
