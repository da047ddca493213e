import Foundation
import Testing
import ParleyCanonical
import ParleyCore
import ParleyMessaging
@testable import ParleyAdapter
import ParleyJSON

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

    @Test("A record holds what a command writes: members of objects, arrays element by element, numbers by value, cleared paths empty")
    func holds() throws {
        let current = try JSONValue.parse(
            #"{"Id": 7, "Name": "Genser", "SalesPrice": 79.20, "MailAddress": {"City": "Oslo", "Zip": null},"#
                + #" "Lines": [{"Id": 1, "Quantity": 2}, {"Id": 2, "Quantity": 3}]}"#)
        func holds(_ wanted: String, cleared: [String] = []) throws -> Bool {
            CommandWriter.holds(current, try JSONValue.parse(wanted), cleared: cleared)
        }
        #expect(try holds(#"{"Name": "Genser", "SalesPrice": 79.2}"#), "other members may be there; 79.20 is 79.2")
        #expect(try holds(#"{"MailAddress": {"City": "Oslo", "Zip": null}, "Lines": [{"Quantity": 2}, {"Quantity": 3}]}"#))
        #expect(try holds(#"{"Name": "Genser"}"#, cleared: ["MailAddress.Zip", "Gtin"]))
        #expect(try !holds(#"{"Name": "Genser"}"#, cleared: ["MailAddress.City"]), "a cleared path with a value")
        #expect(try !holds(#"{"Name": "Lue"}"#))
        #expect(try !holds(#"{"Gtin": "7311"}"#), "a member it lacks")
        #expect(try !holds(#"{"Lines": [{"Quantity": 2}]}"#), "a line too many")
        #expect(try !holds(#"{"Lines": [{"Quantity": 3}, {"Quantity": 2}]}"#), "lines in another order")
        #expect(try !holds(#"{"SalesPrice": "79.2"}"#), "a number is no string")
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

    /// How many turns run at once per key, at most, and in which order they ran.
    actor Overlap {
        var running: [String: Int] = [:]
        var most: [String: Int] = [:]
        var order: [Int] = []
        func enter(_ key: String, _ n: Int) {
            running[key, default: 0] += 1
            most[key] = max(most[key] ?? 0, running[key]!)
            order.append(n)
        }
        func leave(_ key: String) { running[key]! -= 1 }
    }

    @Test("Record turns: one turn at a time per key, in the order of waiting; other keys are not held up")
    func recordTurns() async {
        let turns = RecordTurns(), overlap = Overlap()
        await turns.wait("order/1")  // taken: the others queue behind it
        let other = Task {
            await turns.wait("order/2")
            await turns.done("order/2")
            return true
        }
        #expect(await other.value, "another key goes while order/1 is taken")
        var queued: [Task<Void, Never>] = []
        for n in 1...5 {
            queued.append(
                Task {
                    await turns.wait("order/1")
                    await overlap.enter("order/1", n)
                    try? await Task.sleep(for: .milliseconds(5))
                    await overlap.leave("order/1")
                    await turns.done("order/1")
                })
            while await turns.waiting("order/1") < n { await Task.yield() }  // queued in this order
        }
        #expect(await overlap.order.isEmpty, "nobody runs while the first turn holds the key")
        await turns.done("order/1")
        for task in queued { await task.value }
        #expect(await overlap.most["order/1"] == 1)
        #expect(await overlap.order == [1, 2, 3, 4, 5])
        await turns.wait("order/1")  // free again
        await turns.done("order/1")
    }
}

@Suite("Webhook signatures")
struct WebhookSignatureTests {
    let verifier = WebhookVerifier(secret: "s3cret")
    let body = Array(#"{"event":"updated","resource":"customer","id":501,"occurred_at":"2026-11-22T00:00:00Z"}"#.utf8)

    @Test("A signature over timestamp and body verifies; a wrong one, a changed body or a stale timestamp does not")
    func signatures() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let timestamp = "1800000000"
        let signature = verifier.sign(timestamp: timestamp, body: body)
        #expect(signature.count == 64)
        #expect(throws: Never.self) { try verifier.verify(timestamp: timestamp, signature: signature, body: body, now: now) }
        #expect(throws: WebhookVerifier.Rejection.badSignature) {
            try verifier.verify(timestamp: timestamp, signature: String(repeating: "0", count: 64), body: body, now: now)
        }
        #expect(throws: WebhookVerifier.Rejection.badSignature) {
            try verifier.verify(timestamp: timestamp, signature: signature, body: body + [0x20], now: now)
        }
        #expect(throws: WebhookVerifier.Rejection.badSignature) {
            try WebhookVerifier(secret: "other").verify(timestamp: timestamp, signature: signature, body: body, now: now)
        }
        #expect(throws: WebhookVerifier.Rejection.staleTimestamp) {
            try verifier.verify(timestamp: timestamp, signature: signature, body: body, now: now.addingTimeInterval(301))
        }
        #expect(throws: WebhookVerifier.Rejection.missingHeaders) {
            try verifier.verify(timestamp: nil, signature: signature, body: body, now: now)
        }
    }

    @Test("Webhook events name the record; anything else is refused")
    func events() throws {
        let event = try WebhookEvent(json: try JSONValue.parse(body))
        #expect(event.entity == .customer && event.id == "501" && event.event == "updated")
        #expect(throws: PayloadError.self) { try WebhookEvent(json: ["event": "renamed", "resource": "customer", "id": 1]) }
        #expect(throws: PayloadError.self) { try WebhookEvent(json: ["event": "updated", "resource": "invoice", "id": 1]) }
    }
}

@Suite("PowerOffice Go JSON Patch")
struct PowerOfficePatchTests {
    @Test("A replace per written leaf, nested paths as pointers, null for cleared fields")
    func patch() {
        let record: JSONObject = ["Name": "Fjord Fisk AS", "MailAddress": ["City": "Bergen", "ZipCode": "5003"]]
        let ops = PowerOfficeConnector.patch(record, cleared: ["EmailAddress", "MailAddress.AddressLine2"])
        #expect(ops.contains(["op": "replace", "path": "/Name", "value": "Fjord Fisk AS"]))
        #expect(ops.contains(["op": "replace", "path": "/MailAddress/City", "value": "Bergen"]))
        #expect(ops.contains(["op": "replace", "path": "/EmailAddress", "value": .null]))
        #expect(ops.contains(["op": "replace", "path": "/MailAddress/AddressLine2", "value": .null]))
        #expect(ops.count == 5)
    }
}

@Suite("PowerOffice Go client-side rate limit")
struct RateLimiterTests {
    @Test("The token bucket lets a burst of 10 through at once and then no more than 10 per second")
    func bucket() async {
        let limiter = RateLimiter(perSecond: 10)
        let start = ContinuousClock.now
        for _ in 0..<10 { await limiter.take() }
        let burst = ContinuousClock.now - start
        for _ in 0..<10 { await limiter.take() }
        let twenty = ContinuousClock.now - start
        // A lower bound only: the bucket can never be faster than its rate, however slow the machine.
        #expect(twenty >= .milliseconds(900), "20 calls at 10/s with a burst of 10 take at least about a second, took \(twenty)")
        #expect(burst < twenty)
    }
}
