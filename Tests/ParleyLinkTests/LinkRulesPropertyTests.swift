import Foundation
import PropertyBased
import Testing
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
@testable import ParleyLink
import ParleyLinkCore
import ParleyJSON
import ParleyEnvelope

/// The link rules over many random histories, on ``MemoryLinkStore`` (no database: each case
/// costs microseconds, so hundreds of cases per property are cheap). The scenarios in
/// LinkScenarioTests state the same rules by example on both stores.
@Suite("Link rules: properties")
struct LinkRulesPropertyTests {
    typealias S = LinkScenarioTests

    static func memory() -> LinkHarness { LinkHarness(pool: nil) }

    @Test("Any number of edits while a write is in flight cost one more write, which carries the last edit")
    func coalescing() async {
        await propertyCheck(count: 200, input: Gen.int(in: 1...30), Gen.int(in: 0...9).array(of: 1...30)) { edits, digits in
            let h = Self.memory()
            try await h.change(.customerp, .customer, "C-1", S.erpCustomer("C-1"), at: 0)
            let create = try await h.takeRequests()[0]
            var last = ""
            for i in 1...edits {
                last = "+47 \(digits.map(String.init).joined()) \(i)"
                try await h.change(.customerp, .customer, "C-1", S.erpCustomer("C-1", phone: last), at: i)
            }
            #expect(try await h.takeRequests().isEmpty, "the create is still in flight")
            try await h.written(create, nativeId: "501")
            let toShop = try await h.takeRequests().filter { $0.system == .customwebshop }
            #expect(toShop.count == 1)
            #expect(try SyncRequestPayload(json: toShop[0].payload).entity["phone"] == .string(last))
        }
    }

    @Test("Every message a second time is a duplicate and changes nothing")
    func duplicates() async {
        await propertyCheck(count: 100, input: Gen.int(in: 1...12), Gen.bool) { count, answer in
            let h = Self.memory()
            var messages: [Envelope] = []
            for i in 0..<count {
                let id = "C-\(i % 4)"
                messages.append(try h.canonical(.customerp, .customer, id, S.erpCustomer(id, phone: "\(i)"), at: i))
            }
            var requests: [Envelope] = []
            for message in messages {
                try await h.deliver(message)
                requests += try await h.takeRequests()
            }
            if answer, let first = requests.first { try await h.written(first, nativeId: "501") }
            let memory = try #require(h.memory)
            let effects = memory.effects.count
            for message in messages { #expect(try await h.deliver(message) == .duplicate) }
            #expect(memory.effects.count == effects)
            #expect(memory.outbox.isEmpty || answer)
        }
    }

    @Test("Customers match by organisation number, else by an e-mail of another case and spacing, never across two organisation numbers")
    func matching() async {
        let local = Gen.letterOrNumber.string(of: 1...12)
        await propertyCheck(count: 200, input: local, Gen.bool, Gen.bool) { name, sameOrg, goHasOrg in
            let h = Self.memory()
            let email = "\(name.lowercased())@fjordfisk.no"
            try await h.change(.customerp, .customer, "C-1", S.erpCustomer("C-1", org: "923609016", email: email), at: 0)
            var go: JSONObject = ["Id": 77, "IsPerson": false, "Name": "Fjord Fisk", "EmailAddress": .string(" \(email.uppercased()) ")]
            if goHasOrg { go["OrganizationNumber"] = sameOrg ? "923609016" : "914778271" }
            try await h.change(.powerofficego, .customer, "77", .object(go), at: 1)
            let one = !goHasOrg || sameOrg
            #expect(try await h.count("global_entity") == (one ? 1 : 2))
        }
    }

    @Test("A lost write is sent again after its lease, whatever the lease, with the same write id, and not before")
    func leases() async {
        await propertyCheck(count: 100, input: Gen.int(in: 1...3600)) { seconds in
            let h = LinkHarness(pool: nil, lease: .seconds(seconds))
            try await h.change(.customerp, .customer, "C-1", S.erpCustomer("C-1"), at: 0)
            let first = try await h.takeRequests()[0]
            #expect(try await h.expireLeases(now: h.now.addingTimeInterval(Double(seconds) - 0.5)) == 0)
            #expect(try await h.expireLeases(now: h.now.addingTimeInterval(Double(seconds))) == 1)
            let again = try await h.takeRequests()
            #expect(try again.map { try SyncRequestPayload(json: $0.payload).writeId } == [SyncRequestPayload(json: first.payload).writeId])
        }
    }
}
