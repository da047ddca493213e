import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
@testable import ParleyLink
import ParleyLinkCore
import ParleyJSON
import ParleyEnvelope

/// The consumers' batches (`LinkBatch`): set-based handling in one transaction must give what
/// handling the messages one by one gives, and one bad message is still rejected alone.
@Suite("Link batches", .serialized, .timeLimit(.minutes(5)))
struct LinkBatchTests {
    typealias S = LinkScenarioTests

    /// A canonical message the engine cannot take (its payload is no canonical payload).
    static func broken(_ good: Envelope) throws -> Envelope {
        try Envelope(
            kind: .canonical, system: good.system, entityType: good.entityType, entityId: good.entityId + "-broken",
            time: good.time, payload: ["nonsense": 1])
    }

    @Test("One bad message in a batch is rejected alone: the others commit, the batch runs again with a savepoint per message")
    func badMessageAlone() async throws {
        try await LinkHarness.run { h in
            let one = try h.canonical(.customerp, .customer, "C-1", S.erpCustomer("C-1"), at: 0)
            let two = try h.canonical(.customerp, .customer, "C-2", S.erpCustomer("C-2", org: "914778271", email: "c2@example.no"), at: 0)
            let bad = try Self.broken(one)
            let (results, path) = try await h.deliverBatch([one, bad, two, one])
            #expect(path == .savepoints)
            #expect(results.count == 4)
            #expect(results[0] == .done && results[2] == .done && results[3] == .done)
            guard case .rejected(let reason) = results[1] else { Issue.record("the bad message was not rejected"); return }
            #expect(!reason.isEmpty)
            // The bad message left nothing behind, not even its inbox row (it may be sent again).
            #expect(try await h.count("inbox") == 2)
            #expect(try await h.count("global_entity") == 2)
            #expect(try await h.takeRequests().map(\.system) == [.customwebshop, .customwebshop])
            // Without the bad one the batch takes the batch path; all of it is a redelivery now.
            let (again, againPath) = try await h.deliverBatch([one, two])
            #expect(againPath == .batch)
            #expect(again == [.done, .done])
            #expect(try await h.takeRequests().isEmpty)
            #expect(try await h.count("global_entity") == 2)
        }
    }

    @Test("A batch holding a new record and its edits, a match and a duplicate ends where handling them one by one ends")
    func batchEqualsOneByOne() async throws {
        // The same messages (same ids) into two scratch databases: one batch, and one by one.
        func messages(_ h: LinkHarness) throws -> [Envelope] {
            var list: [Envelope] = []
            list.append(try h.canonical(.customerp, .customer, "C-1", S.erpCustomer("C-1", phone: "1"), at: 0))
            for i in 2...6 { list.append(try h.canonical(.customerp, .customer, "C-1", S.erpCustomer("C-1", phone: "\(i)"), at: i)) }
            // Matches C-1 by e-mail and joins it.
            list.append(try h.canonical(.customwebshop, .customer, "501", S.shopCustomer(501, email: "post@fjordfisk.no", phone: "6"), at: 7))
            list.append(try h.canonical(.customerp, .customer, "C-2", S.erpCustomer("C-2", org: "914778271", email: "c2@example.no"), at: 8))
            // Keys change: C-2 takes another e-mail.
            list.append(try h.canonical(.customerp, .customer, "C-2", S.erpCustomer("C-2", org: "914778271", email: "new@example.no"), at: 9))
            list.append(try h.canonical(.customerp, .product, "P-1", S.erpProduct, at: 10))
            list.append(list[0])  // redelivered within the batch
            return list
        }
        struct End: Equatable {
            var states: [String]
            var requests: [String]
            var keys: [String]
            var slots: [String]
        }
        func end(_ h: LinkHarness) async throws -> End {
            let states = try await h.pool.query(
                """
                select m.system || '/' || m.native_id || ' ' || g.state::text || ' ' || coalesce(m.snapshot_hash, '-')
                from member m join global_entity g on g.id = m.global_id order by 1
                """
            ).map { try $0.decode(String.self, at: 0) }
            let requests = try await h.takeRequests().map { request -> String in
                let payload = try SyncRequestPayload(json: request.payload)
                return "\(request.system) \(payload.operation) \(payload.entity)"
            }
            let keys = try await h.pool.query(
                """
                select n.kind || '=' || n.value || ' ' || m.native_id from natural_key n join member m on m.global_id = n.global_id
                where m.system = 'customerp' order by 1
                """
            ).map { try $0.decode(String.self, at: 0) }
            let slots = try await h.pool.query(
                """
                select m.native_id || ' -> ' || s.system || ' ' || s.operation || ' ' || s.pending from write_slot s
                join member m on m.global_id = s.global_id and m.system = 'customerp' order by 1
                """
            ).map { try $0.decode(String.self, at: 0) }
            return End(states: states, requests: requests, keys: keys, slots: slots)
        }
        var batched: End?
        var single: End?
        var list: [Envelope] = []
        try await LinkHarness.run { h in
            list = try messages(h)
            let (results, path) = try await h.deliverBatch(list)
            #expect(path == .batch)
            #expect(results.allSatisfy { $0 == .done })
            batched = try await end(h)
        }
        try await LinkHarness.run { h in
            let engine = h.engine, now = h.now
            for envelope in list {
                _ = try await h.pool.transaction { tx in try engine.handle(envelope, in: tx, now: now) }
            }
            single = try await end(h)
        }
        let b = try #require(batched), s = try #require(single)
        #expect(b == s)
        // And what that is: C-1's create went out once (its edits wait for it), the webshop
        // record joined, C-2 and the product were created once each.
        #expect(b.requests.count == s.requests.count)
        #expect(b.keys.contains("email=new@example.no C-2") && !b.keys.contains("email=c2@example.no C-2"))
        #expect(b.slots.contains("C-1 -> customwebshop create true"), "the edits wait for the create")
    }

    @Test("A batch over records that are members already (locked and read ahead) ends where handling them one by one ends")
    func secondBatchEqualsOneByOne() async throws {
        func rounds(_ h: LinkHarness) throws -> [[Envelope]] {
            let product = S.erpProduct
            let first = [
                try h.canonical(.customerp, .customer, "C-1", S.erpCustomer("C-1", phone: "1"), at: 0),
                try h.canonical(.customerp, .customer, "C-2", S.erpCustomer("C-2", org: "914778271", email: "c2@example.no"), at: 1),
                try h.canonical(.customerp, .product, "P-1", product, at: 2)
            ]
            var cheaper = product
            cheaper["salesPrice"] = 69.5
            let second = [
                // Edits of members: one field, twice for C-1.
                try h.canonical(.customerp, .customer, "C-1", S.erpCustomer("C-1", phone: "2"), at: 10),
                try h.canonical(.customerp, .customer, "C-1", S.erpCustomer("C-1", phone: "3"), at: 11),
                try h.canonical(.customerp, .product, "P-1", cheaper, at: 12),
                // A stale change (older than the last seen from C-2).
                try h.canonical(.customerp, .customer, "C-2", S.erpCustomer("C-2", org: "914778271", email: "old@example.no"), at: 0),
                // A webshop record matching C-2 by e-mail joins it.
                try h.canonical(.customwebshop, .customer, "502", S.shopCustomer(502, email: "c2@example.no", phone: "9"), at: 13),
                // An ERP record with C-1's organisation number: a conflict, held.
                try h.canonical(.customerp, .customer, "C-3", S.erpCustomer("C-3", email: "c3@example.no"), at: 14),
                // C-2's keys change, in the ERP, while the write the webshop's join sent it (the
                // names the webshop has) is in flight: held until that write is answered.
                try h.canonical(.customerp, .customer, "C-2", S.erpCustomer("C-2", org: "914778271", email: "renamed@example.no"), at: 15)
            ]
            return [first, second]
        }
        func end(_ h: LinkHarness) async throws -> [String] {
            let rows = try await h.pool.query(
                """
                select 'member ' || m.system || '/' || m.native_id || ' ' || g.state::text || ' ' || coalesce(m.snapshot_hash, '-')
                    || ' ' || coalesce(m.source_modified_at::text, '-')
                  from member m join global_entity g on g.id = m.global_id
                union all select 'key ' || n.kind || '=' || n.value || ' ' || m.native_id
                  from natural_key n join member m on m.global_id = n.global_id and m.system = 'customerp'
                union all select 'slot ' || m.native_id || ' -> ' || s.system || ' ' || s.operation || ' ' || s.pending
                    || case when s.held is null then '' else ' holding ' || (s.held->>'at') end
                  from write_slot s join member m on m.global_id = s.global_id and m.system = 'customerp'
                union all select 'conflict ' || c.system || '/' || c.native_id || ' with ' || c.member_id from conflict c
                union all select 'entities ' || count(*) from global_entity
                order by 1
                """
            ).map { try $0.decode(String.self, at: 0) }
            let requests = try await h.takeRequests().map { request -> String in
                let payload = try SyncRequestPayload(json: request.payload)
                return "request \(request.system) \(payload.operation) \(payload.entity)"
            }
            return rows + requests
        }
        var batched: [String] = []
        var single: [String] = []
        var messages: [[Envelope]] = []
        try await LinkHarness.run { h in
            messages = try rounds(h)
            for round in messages {
                let (results, path) = try await h.deliverBatch(round)
                #expect(path == .batch)
                #expect(results.allSatisfy { $0 == .done })
            }
            batched = try await end(h)
        }
        try await LinkHarness.run { h in
            let engine = h.engine, now = h.now
            for envelope in messages.joined() {
                _ = try await h.pool.transaction { tx in try engine.handle(envelope, in: tx, now: now) }
            }
            single = try await end(h)
        }
        #expect(batched == single)
        #expect(batched.contains { $0.hasPrefix("conflict customerp/C-3 with C-1") })
        #expect(batched.contains { $0.hasPrefix("member customwebshop/502 ") })
        #expect(batched.contains("key email=c2@example.no C-2"))
        #expect(batched.contains { $0.hasPrefix("slot C-2 -> customerp update false holding ") })
    }

    @Test(
        "A record another transaction links while the batch runs: the flush finds it, and the batch runs again one savepoint per message, as that entity's"
    )
    func raceLostAtFlush() async throws {
        // Three connections: the other replica's transaction, the batch's, and the one watching them.
        try await LinkHarness.run(connections: 3) { h in
            // Both in the webshop, so the order is not parked there: the batch opens a write slot
            // for it, which its flush must leave out with the entity it loses.
            try await S.erpCustomerAndProductInWebshop(h)
            func order(at seconds: Int) throws -> Envelope {
                try h.canonical(.customerp, .order, "O-1", S.erpOrder, at: seconds)
            }
            // Another replica handles an earlier change of the same new order and holds it
            // uncommitted until told (orders have no natural key, so nothing serialises the two
            // before the member's primary key does).
            let first = try order(at: 2), second = try order(at: 3)
            let release = DispatchSemaphore(value: 0), handled = DispatchSemaphore(value: 0)
            let engine = h.engine, now = h.now, pool = h.pool
            let other = Task {
                try await pool.transaction { tx in
                    _ = try engine.handle(first, in: tx, now: now)
                    handled.signal()
                    release.wait()
                }
            }
            // Wait for that transaction to have handled the order (it holds the order's member;
            // "idle in transaction" alone is also seen between its statements, when the batch
            // could still take the customer's lock first and the two deadlock), then run the
            // batch: it finds no member, creates the order, and its flush waits on the other's row.
            try await Self.waitFor(pool) { _ in handled.wait(timeout: .now()) == .success }
            let batch = Task { try await h.deliverBatch([second]) }
            try await Self.waitFor(pool) { pool in
                try await pool.query(
                    """
                    select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'
                    """)[0].decode(Int.self, at: 0) == 1
            }
            release.signal()
            try await other.value
            let (results, path) = try await batch.value
            #expect(path == .savepoints)
            #expect(results == [.done])
            #expect(try await h.count("global_entity where entity_type = 'order'") == 1)
            #expect(try await h.count("member where entity_type = 'order'") == 1)
            #expect(try await h.count("conflict") == 0)
        }
    }

    @Test(
        "Batches that meet on the same entities from both ends (an order's edit, and the written event that releases it) take their locks in one order: no deadlock"
    )
    func noCrosswiseLocks() async throws {
        try await LinkHarness.run(connections: 4) { h in
            try await h.change(.customerp, .product, "P-1", S.erpProduct, at: 0)
            try await h.written(try await h.takeRequests()[0], nativeId: "701")
            _ = try await h.takeRequests()
            var deadlocks = 0
            for round in 1...20 {
                // A customer whose webshop create is in flight, and its order, parked for the
                // webshop until that create is confirmed.
                let customer = "C-\(round)"
                try await h.change(
                    .customerp, .customer, customer,
                    S.erpCustomer(customer, org: nil, email: "c\(round)@example.no"), at: round * 10)
                let create = try #require(try await h.takeRequests().first)
                func order(_ quantity: Int, at seconds: Int) throws -> Envelope {
                    let record: JSONValue = [
                        "id": .string("O-\(round)"), "orderNo": .string("SO-\(round)"), "customerId": .string(customer),
                        "orderDate": "2026-11-03", "status": "CONFIRMED", "currencyCode": "NOK",
                        "lines": [
                            [
                                "productId": "P-1", "itemNo": "KAFFE-500", "quantity": .number(JSONNumber(quantity)),
                                "unitPrice": 79.2, "vatPercent": 15
                            ]
                        ]
                    ]
                    return try h.canonical(.customerp, .order, "O-\(round)", record, at: seconds)
                }
                try await h.deliver(try order(1, at: round * 10 + 1))
                #expect(try await h.count("parked") == 1)
                // At once: the order edited (locks the order, then needs its customer) and the
                // create confirmed (locks the customer, then releases the order).
                let edit = try order(2, at: round * 10 + 2)
                let written = try h.writtenEvent(create, nativeId: "\(500 + round)")
                async let a = Self.attempt { try await h.deliverBatch([edit]) }
                async let b = Self.attempt { try await h.deliverBatch([written]) }
                for outcome in [await a, await b] {
                    if case .failure(let error as PostgresError) = outcome, error.isDeadlock { deadlocks += 1 } else { _ = try outcome.get() }
                }
                #expect(try await h.count("parked") == 0)
                _ = try await h.takeRequests()
            }
            #expect(deadlocks == 0)
        }
    }

    @Test(
        "An entity a batch meets only late (an order a match releases) and finds locked is not waited for there: the batch runs again with it locked up front"
    )
    func lateLockBusy() async throws {
        try await LinkHarness.run(connections: 3) { h in
            let creates = try await S.erpCustomerAndProduct(h)
            let order = S.erpOrder
            try await h.change(.customerp, .order, "O-1", order, at: 2)
            try await h.written(try #require(creates.first { $0.entityType == .customer }), nativeId: "501")
            _ = try await h.takeRequests()
            let orderId = try await h.pool.query("select global_id from member where native_id = 'O-1'")[0].decode(UUID.self, at: 0)
            // Another transaction holds the parked order.
            let release = DispatchSemaphore(value: 0)
            let pool = h.pool
            let holder = Task {
                try await pool.transaction { tx in
                    _ = try tx.query("select 1 from global_entity where id = $1 for update", [orderId])
                    release.wait()
                }
            }
            try await Self.waitFor(pool) { pool in
                try await pool.query("select count(*) from pg_stat_activity where datname = current_database() and state = 'idle in transaction'")[0]
                    .decode(Int.self, at: 0) == 1
            }
            // The webshop's product matches the ERP's and joins it, which releases the order: the
            // batch meets the order only then. It waits for it in its up-front lock statement
            // (its second attempt), not in a lock of its own taken late.
            let shopProduct: JSONValue = ["id": 702, "sku": "KAFFE-500", "name": "Kaffe", "price": "91.08", "tax_rate": 15, "type": "simple"]
            let change = try h.canonical(.customwebshop, .product, "702", shopProduct, at: 3)
            let batch = Task { try await h.deliverBatch([change]) }
            try await Self.waitFor(pool) { pool in
                try await pool.query(
                    """
                    select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'
                    and query like '%order by id for update%'
                    """)[0].decode(Int.self, at: 0) == 1
            }
            release.signal()
            try await holder.value
            let (results, path) = try await batch.value
            #expect(results == [.done] && path == .batch)
            #expect(try await h.takeRequests().filter { $0.entityType == .order }.map(\.system) == [.customwebshop])
            #expect(try await h.count("parked") == 0)
        }
    }

    static func attempt<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    /// Polls `condition` every 10 ms (up to 30 s): for waiting on another connection's state.
    static func waitFor(_ pool: PostgresPool, _ condition: (PostgresPool) async throws -> Bool) async throws {
        for _ in 0..<3000 {
            if try await condition(pool) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("condition not met within 30 s")
    }
}
