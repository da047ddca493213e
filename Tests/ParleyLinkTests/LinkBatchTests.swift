import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
import ParleyPostgres
@testable import ParleyLink

/// The consumers' batches (`LinkBatch`): set-based handling in one transaction must give what
/// handling the messages one by one gives, and one bad message is still rejected alone.
@Suite("Link batches", .serialized, .timeLimit(.minutes(5)))
struct LinkBatchTests {
    typealias S = LinkScenarioTests

    /// A canonical message the engine cannot take (its payload is no canonical payload).
    static func broken(_ good: Envelope) throws -> Envelope {
        try Envelope(kind: .canonical, system: good.system, entityType: good.entityType, entityId: good.entityId + "-broken",
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
            let product: JSONValue = ["id": "P-1", "itemNo": "KAFFE-500", "description": "Kaffe", "salesPrice": 79.2, "vatPercent": 15, "itemType": "STOCK"]
            list.append(try h.canonical(.customerp, .product, "P-1", product, at: 10))
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
            let states = try await h.pool.query("""
                select m.system || '/' || m.native_id || ' ' || g.state::text || ' ' || coalesce(m.snapshot_hash, '-')
                from member m join global_entity g on g.id = m.global_id order by 1
                """).map { try $0.decode(String.self, at: 0) }
            let requests = try await h.takeRequests().map { request -> String in
                let payload = try SyncRequestPayload(json: request.payload)
                return "\(request.system) \(payload.operation) \(payload.entity)"
            }
            let keys = try await h.pool.query("""
                select n.kind || '=' || n.value || ' ' || m.native_id from natural_key n join member m on m.global_id = n.global_id
                where m.system = 'customerp' order by 1
                """).map { try $0.decode(String.self, at: 0) }
            let slots = try await h.pool.query("""
                select m.native_id || ' -> ' || s.system || ' ' || s.operation || ' ' || s.pending from write_slot s
                join member m on m.global_id = s.global_id and m.system = 'customerp' order by 1
                """).map { try $0.decode(String.self, at: 0) }
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
}
