import Foundation
import Testing
@testable import ParleyAdapter

@Suite("Adapter logic without I/O")
struct AdapterLogicTests {
    typealias R = FeedPosition.Record

    @Test("A feed position skips what it published, keeps records tied at the newest time, and catches a late one inside the overlap")
    func feedPosition() {
        var position = FeedPosition()
        #expect(position.query(overlap: 5000) == nil)
        let first = [R(id: "a", modifiedAt: 1000), R(id: "b", modifiedAt: 2000), R(id: "c", modifiedAt: 2000)]
        #expect(first.allSatisfy { position.isNew($0, overlap: 5000) })
        position.advance(past: first, overlap: 5000)
        #expect(position.since == 2000)
        #expect(position.query(overlap: 5000) == -3000)
        // Read again with the overlap: nothing is new ...
        #expect(!first.contains { position.isNew($0, overlap: 5000) })
        // ... but a record committed late with the same time, or a little earlier, is.
        #expect(position.isNew(R(id: "d", modifiedAt: 2000), overlap: 5000))
        #expect(position.isNew(R(id: "e", modifiedAt: 1500), overlap: 5000))
        // An update of a published record is a new (id, time).
        #expect(position.isNew(R(id: "a", modifiedAt: 2500), overlap: 5000))
        // Older than the window: left to the full rescan.
        position.advance(past: [R(id: "f", modifiedAt: 10_000)], overlap: 5000)
        #expect(!position.isNew(R(id: "g", modifiedAt: 4000), overlap: 5000))
        #expect(position.seen == ["f@10000"], "the seen set keeps only the window")
    }

    @Test("Retry-After is honoured (seconds or an HTTP date) and capped; without it, exponential backoff with jitter")
    func retrySchedule() {
        let schedule = RetrySchedule(attempts: 5, base: .milliseconds(100), maximum: .seconds(10))
        #expect(schedule.delay(attempt: 1, retryAfter: .seconds(3)) == .seconds(3))
        #expect(schedule.delay(attempt: 1, retryAfter: .seconds(60)) == .seconds(10))
        #expect(schedule.delay(attempt: 3, retryAfter: nil, random: 1) == .milliseconds(400))
        #expect(schedule.delay(attempt: 30, retryAfter: nil, random: 1) == .seconds(10))
        #expect(HTTPJSONClient.retryAfter("7") == .seconds(7))
        let now = Date(timeIntervalSince1970: 1_784_000_000)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        #expect(HTTPJSONClient.retryAfter(formatter.string(from: now.addingTimeInterval(30)), now: now) == .seconds(30))
        #expect(HTTPJSONClient.retryAfter("soon") == nil)
    }

    @Test("Statuses are classified once: 408, 429 and 5xx are transient, other 4xx permanent")
    func classification() {
        #expect(SystemError.http(status: 429, message: "slow down", retryAfter: .seconds(1)).isTransient)
        #expect(SystemError.http(status: 503, message: "down", retryAfter: nil).isTransient)
        #expect(SystemError.http(status: 408, message: "timeout", retryAfter: nil).isTransient)
        #expect(!SystemError.http(status: 422, message: "bad e-mail", retryAfter: nil).isTransient)
        #expect(!SystemError.http(status: 409, message: "duplicate", retryAfter: nil).isTransient)
    }

    @Test("The retry loop retries transient failures up to its attempts and stops at a permanent one")
    func retryLoop() async {
        let schedule = RetrySchedule(attempts: 3, base: .milliseconds(1), maximum: .milliseconds(2))
        let calls = Counter()
        let value = try? await schedule.run { () async throws(SystemError) -> Int in
            if await calls.next() < 3 { throw .transient("503", retryAfter: .milliseconds(1)) }
            return 42
        }
        #expect(value == 42)
        #expect(await calls.value == 3)
        let permanentCalls = Counter()
        do {
            _ = try await schedule.run { () async throws(SystemError) -> Int in
                _ = await permanentCalls.next()
                throw .permanent(status: 422, "no")
            }
        } catch {
            #expect(error == .permanent(status: 422, "no"))
        }
        #expect(await permanentCalls.value == 1)
    }

    actor Counter {
        var value = 0
        func next() -> Int {
            value += 1
            return value
        }
    }
}
