import Foundation
import Testing
import ParleyCanonical
@testable import ParleySimulator

@Suite struct StoreTests {
    static let t0 = Timestamp(milliseconds: 1_767_225_600_000)

    @Test("The clock strictly increases, also for many writes within one millisecond and when the wall clock goes back")
    func monotonicClock() {
        var clock = MonotonicClock()
        var last: Timestamp?
        for i in 0..<1000 {
            let wall = Self.t0.adding(milliseconds: Int64(i / 100) - (i == 500 ? 50 : 0))
            let t = clock.next(wall: wall)
            if let last { #expect(t > last) }
            last = t
        }
        #expect(clock.next(wall: Self.t0.adding(milliseconds: 10_000)) == Self.t0.adding(milliseconds: 10_000))
    }

    @Test("Timestamps print and parse as RFC 3339 with milliseconds")
    func rfc3339() {
        let t = Timestamp(milliseconds: 1_767_225_600_123)
        #expect(t.rfc3339 == "2026-01-01T00:00:00.123Z")
        #expect(Timestamp.parse("2026-01-01T00:00:00.123Z") == t)
        #expect(Timestamp.parse("2026-01-01T01:00:00.123456+01:00") == t)
        #expect(Timestamp.parse("2026-01-01T00:00:00Z") == Timestamp(milliseconds: 1_767_225_600_000))
        #expect(Timestamp.parse("2026-02-30T00:00:00Z") == nil)
        #expect(Timestamp.parse("yesterday") == nil)
    }

    @Test("Paging across equal timestamps visits every record once, in (modifiedAt, id) order")
    func pagingAcrossEqualTimestamps() throws {
        var store = EntityStore(name: "things")
        // Seven records share one millisecond, three more come later; ids out of time order.
        for id in [5, 3, 9, 1, 7, 2, 8] as [Int64] { try store.insert(id: id, fields: [:], at: Self.t0) }
        for (i, id) in ([4, 6, 10] as [Int64]).enumerated() {
            try store.insert(id: id, fields: [:], at: Self.t0.adding(milliseconds: Int64(i + 1)))
        }
        var seen: [Int64] = []
        var cursor: PageCursor?
        var pages = 0
        repeat {
            let page = store.page(since: Self.t0, after: cursor, limit: 3)
            seen += page.items.map(\.id)
            cursor = page.nextCursor
            pages += 1
            // The cursor survives the opaque round trip.
            if let c = cursor { #expect(PageCursor(token: c.token) == c) }
        } while cursor != nil && pages < 20
        #expect(seen == [1, 2, 3, 5, 7, 8, 9, 4, 6, 10])
        #expect(pages == 4)
        // Incremental: only what changed at or after a time.
        #expect(store.page(since: Self.t0.adding(milliseconds: 2), after: nil, limit: 100).items.map(\.id) == [6, 10])
        #expect(store.page(since: nil, after: nil, limit: 100).nextCursor == nil)
    }

    func db() -> SimulatorDatabase {
        SimulatorDatabase(entities: [
            EntityStore(name: "customers", uniqueRules: [.caseInsensitive("email")]),
            EntityStore(name: "products", uniqueRules: [.exact("sku")])
        ])
    }

    @Test("A create retried with the same key returns the first result and creates nothing; another body is a conflict")
    func idempotentCreate() throws {
        var db = db()
        let body: [String: JSONValue] = ["sku": .string("A-1")]
        let first = try db.create("products", fields: body, idempotencyKey: "k1", requestHash: "h1", wall: Self.t0)
        let again = try db.create("products", fields: body, idempotencyKey: "k1", requestHash: "h1", wall: Self.t0.adding(milliseconds: 5))
        #expect(!first.replayed && again.replayed)
        #expect(again.record == first.record)
        #expect(db.store("products").records.count == 1)
        #expect(throws: StoreError.idempotencyKeyReused(key: "k1")) {
            try db.create("products", fields: ["sku": .string("B-1")], idempotencyKey: "k1", requestHash: "h2", wall: Self.t0)
        }
        // After 24 hours the key is forgotten: the same key creates again (here: a duplicate SKU).
        let later = Self.t0.adding(milliseconds: SimulatorDatabase.idempotencyRetention + 1)
        #expect(throws: StoreError.duplicate(field: "sku", value: "A-1", existingId: first.record.id)) {
            try db.create("products", fields: body, idempotencyKey: "k1", requestHash: "h1", wall: later)
        }
        // Keys are per entity.
        let customer = try db.create("customers", fields: ["email": .string("a@b.no")], idempotencyKey: "k1", requestHash: "h9", wall: Self.t0)
        #expect(!customer.replayed)
    }

    @Test("Unique values: a duplicate SKU or e-mail (any case) is refused, also on update and against archived records")
    func uniqueness() throws {
        var db = db()
        let a = try db.create("customers", fields: ["email": .string("Kari@Example.no")], wall: Self.t0).record
        #expect(throws: StoreError.duplicate(field: "email", value: "kari@example.no", existingId: a.id)) {
            try db.create("customers", fields: ["email": .string(" kari@example.NO")], wall: Self.t0)
        }
        let b = try db.create("customers", fields: ["email": .string("ola@example.no")], wall: Self.t0).record
        #expect(throws: StoreError.duplicate(field: "email", value: "kari@example.no", existingId: a.id)) {
            try db.update("customers", id: b.id, fields: ["email": .string("KARI@example.no")], wall: Self.t0)
        }
        // Updating a record with its own value is fine.
        _ = try db.update("customers", id: a.id, fields: ["email": .string("kari@example.no")], wall: Self.t0)
        _ = try db.archive("customers", id: a.id, wall: Self.t0)
        #expect(throws: StoreError.self) { try db.create("customers", fields: ["email": .string("kari@example.no")], wall: Self.t0) }
        #expect(b.id == a.id + 1)
    }

    @Test("Archive sets archived once and moves modifiedAt; archiving again changes nothing")
    func archive() throws {
        var db = db()
        let r = try db.create("products", fields: ["sku": .string("X")], wall: Self.t0).record
        let (archived, changed) = try db.archive("products", id: r.id, wall: Self.t0)
        #expect(changed && archived.archived && archived.modifiedAt > r.modifiedAt)
        let (again, changedAgain) = try db.archive("products", id: r.id, wall: Self.t0.adding(milliseconds: 100))
        #expect(!changedAgain && again == archived)
        #expect(throws: StoreError.notFound(entity: "products", id: 999)) { try db.archive("products", id: 999, wall: Self.t0) }
        // Every write got a distinct, later timestamp although the wall clock stood still.
        let page = try db.list("products", since: r.modifiedAt.adding(milliseconds: 1), cursor: nil, limit: 10)
        #expect(page.items.map(\.id) == [r.id])
        #expect(throws: StoreError.invalidCursor) { try db.list("products", since: nil, cursor: "nonsense!", limit: 10) }
    }

    @Test("Optimistic lock: an update naming an older modifiedAt is refused")
    func precondition() throws {
        var db = db()
        let r = try db.create("products", fields: ["sku": .string("X")], wall: Self.t0).record
        let u = try db.update("products", id: r.id, fields: ["sku": .string("Y")], expectedModifiedAt: r.modifiedAt, wall: Self.t0)
        #expect(throws: StoreError.preconditionFailed(current: u.modifiedAt)) {
            try db.update("products", id: r.id, fields: ["sku": .string("Z")], expectedModifiedAt: r.modifiedAt, wall: Self.t0)
        }
    }

    @Test("Fault decisions: a 429 burst counts down first, then drops and errors by rate")
    func faults() throws {
        var f = try FaultSettings().applying(
            .object(["rateLimitBurst": .int(2), "retryAfterSeconds": .int(7), "errorRate": .number(0.5), "latencyMs": .int(10)]))
        #expect(f.decide(dropRoll: 0.9, errorRoll: 0.9, jitterRoll: 0).outcome == .rateLimited(retryAfterSeconds: 7))
        #expect(f.decide(dropRoll: 0.9, errorRoll: 0.9, jitterRoll: 0).outcome == .rateLimited(retryAfterSeconds: 7))
        #expect(f.rateLimitBurst == 0)
        #expect(f.decide(dropRoll: 0.9, errorRoll: 0.9, jitterRoll: 0) == FaultDecision(delayMs: 10, outcome: .serve))
        #expect(f.decide(dropRoll: 0.9, errorRoll: 0.1, jitterRoll: 0).outcome == .error(status: 503))
        #expect(throws: Problem.self) { try FaultSettings().applying(.object(["errorRate": .int(2)])) }
        #expect(throws: Problem.self) { try FaultSettings().applying(.object(["errorsRate": .int(0)])) }
    }
}

@Suite struct NorwegianDataTests {
    @Test("Organisation numbers are valid mod-11, and Parley's own validator agrees")
    func orgNumbers() {
        let data = NorwegianData.dataset(seed: 7, count: 300)
        let numbers = data.customers.compactMap(\.organizationNumber)
        #expect(numbers.count > 100)
        #expect(Set(numbers).count == numbers.count)
        for n in numbers { #expect(NaturalKeys.isValidNorwegianOrganizationNumber(n), "\(n)") }
        #expect(data.customers.filter { $0.kind == .company }.allSatisfy { $0.organizationNumber != nil })
        #expect(data.customers.filter { $0.kind == .person }.allSatisfy { $0.organizationNumber == nil })
        #expect(NorwegianData.organizationNumberCheckDigit([9, 2, 3, 6, 0, 9, 0, 1]) == 6)
    }

    @Test("Products use the Norwegian VAT rates, have unique SKUs, two-decimal prices and valid EANs")
    func products() {
        let data = NorwegianData.dataset(seed: 3, count: 400)
        #expect(Set(data.products.map(\.vatRate)) == [25, 15, 12, 0])
        #expect(Set(data.products.map(\.sku)).count == data.products.count)
        for p in data.products {
            #expect(p.priceExclVat > 0 && p.priceExclVat == p.priceExclVat.roundedHalfAwayFromZero(scale: 2))
            if let gtin = p.gtin {
                let d = gtin.compactMap(\.wholeNumberValue)
                #expect(d.count == 13 && NorwegianData.ean13CheckDigit(Array(d.prefix(12))) == d[12])
            }
        }
    }

    @Test("Deterministic per seed; unique e-mails; orders refer to existing customers and products")
    func determinism() {
        #expect(NorwegianData.dataset(seed: 42, count: 50) == NorwegianData.dataset(seed: 42, count: 50))
        #expect(NorwegianData.dataset(seed: 42, count: 50) != NorwegianData.dataset(seed: 43, count: 50))
        let data = NorwegianData.dataset(seed: 42, count: 200)
        #expect(Set(data.customers.map { $0.email.lowercased() }).count == 200)
        for c in data.customers {
            #expect(c.postalCode.count == 4 && c.email.contains("@") && c.phone.hasPrefix("+47 "))
            #expect(NaturalKeys.email(c.email) != nil)
        }
        for o in data.orders {
            #expect(data.customers.indices.contains(o.customerIndex))
            #expect(!o.lines.isEmpty && o.lines.allSatisfy { data.products.indices.contains($0.productIndex) && $0.quantity >= 1 })
            #expect(ObjectSchema.isDate(o.orderDate))
        }
    }
}
