import Foundation
import Testing
import ParleyCanonical
import ParleyMessaging
@testable import ParleyLink
import ParleyLinkCore
import ParleyEnvelope

/// The link service's gauges read the same numbers the operator CLI's counts show.
@Suite("Link gauges", .serialized, .timeLimit(.minutes(5)))
struct LinkGaugesTests {
    @Test("In-flight writes per system, parked, failed and conflicts agree with LinkQueries.counts()")
    func agreeWithCounts() async throws {
        try await LinkHarness.run { h in
            let gauges = LinkGauges(pool: h.pool, logger: .init(label: "test"))
            let empty = try await gauges.refresh()
            #expect(empty == LinkGauges.Counts(inflightWrites: [.customerp: 0, .customwebshop: 0, .powerofficego: 0]))

            // C-1's webshop create in flight; C-5's refused; C-2 a conflict; an order parked.
            try await h.change(.customerp, .customer, "C-1", LinkScenarioTests.erpCustomer("C-1", phone: "111"), at: 0)
            _ = try await h.takeRequests()
            try await h.change(
                .customerp, .customer, "C-5", LinkScenarioTests.erpCustomer("C-5", name: "Bad Mail AS", org: nil, email: "bad@fjordfisk.no"), at: 1)
            let refused = try #require(try await h.takeRequests().first)
            try await LinkQueriesTests.fail(h, refused, kind: "http422", reason: "422: e-mail rejected", transient: false)
            try await h.change(.customerp, .customer, "C-2", LinkScenarioTests.erpCustomer("C-2", email: nil), at: 2)
            try await h.change(.customerp, .product, "P-1", LinkQueriesTests.erpProduct, at: 3)
            try await h.change(.customerp, .order, "O-1", LinkQueriesTests.erpOrder, at: 4)

            let read = try await gauges.refresh()
            let counts = try await LinkQueries(pool: h.pool).counts()
            var inflight: [SystemName: Int] = [.customerp: 0, .customwebshop: 0, .powerofficego: 0]
            for row in counts.systems { inflight[row.system, default: 0] += row.writesInFlight }
            #expect(read.inflightWrites == inflight)
            #expect(read.inflightWrites[.customwebshop] == 2, "C-1's and P-1's creates")
            #expect(read.parked == counts.systems.map(\.parked).reduce(0, +))
            #expect(read.failed == counts.systems.map(\.failed).reduce(0, +))
            #expect(read.conflicts == counts.systems.map(\.conflicts).reduce(0, +))
            #expect(read.parked == 1)
            #expect(read.failed == 1)
            #expect(read.conflicts == 1)
            // An order naming a product the ERP has not reported waits, and is counted apart.
            var order = try #require(LinkQueriesTests.erpOrder.object)
            order["id"] = "O-2"
            order["lines"] = [["productId": "P-9", "itemNo": "TE-100", "quantity": 1, "unitPrice": 40, "vatPercent": 15]]
            #expect(try await h.change(.customerp, .order, "O-2", .object(order), at: 5) == .waiting)
            #expect(try await gauges.refresh().waiting == 1)
            #expect(try await LinkQueries(pool: h.pool).counts().waiting == 1)
            let waiting = try await LinkQueries(pool: h.pool).waiting()
            #expect(waiting.map(\.record) == [LinkQueries.NativeRecord(system: .customerp, nativeId: "O-2")])
            #expect(waiting.first?.waitingFor == [LinkQueries.NativeRecord(system: .customerp, nativeId: "P-9")])
        }
    }
}
