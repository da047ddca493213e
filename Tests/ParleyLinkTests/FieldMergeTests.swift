import Testing
import ParleyCanonical
import ParleyMessaging
@testable import ParleyLink

@Suite("Field-level merge (DESIGN rules 4 and 5)")
struct FieldMergeTests {
    let erpCarries = ["kind", "name", "email", "organizationNumber", "phone", "postalAddress.city"]
    let shopCarries = ["firstName", "lastName", "email", "phone", "postalAddress.city"]

    func change(_ system: SystemName, at t: Int64, _ values: [String: JSONValue], carried: [String], assigned: Set<String> = []) -> IncomingChange {
        IncomingChange(system: system, modifiedAt: t, values: values, carried: carried, assigned: assigned)
    }

    @Test("A system that lacks a field never erases it: the webshop carries no organisation number")
    func lackingFieldNeverErases() {
        let first = FieldMerge.apply(change(.customerp, at: 100, ["name": "Fjord Fisk AS", "organizationNumber": "987654321"], carried: erpCarries),
                                     to: GlobalState(entity: .customer), snapshot: nil)
        #expect(first.changed == ["name", "organizationNumber"])
        let shop = FieldMerge.apply(change(.customwebshop, at: 200, ["email": "post@fjordfisk.no"], carried: shopCarries),
                                    to: first.state, snapshot: nil)
        #expect(shop.state.values["organizationNumber"] == "987654321")
        #expect(shop.changed == ["email"])
    }

    @Test("A carried field that becomes empty is erased")
    func carriedEmptyErases() {
        let first = FieldMerge.apply(change(.customerp, at: 100, ["name": "A", "phone": "123"], carried: erpCarries),
                                     to: GlobalState(entity: .customer), snapshot: nil)
        let second = FieldMerge.apply(change(.customerp, at: 200, ["name": "A"], carried: erpCarries), to: first.state, snapshot: first.snapshot)
        #expect(second.changed == ["phone"])
        #expect(second.state.values["phone"] == nil)
        #expect(second.state.provenance["phone"]?.system == .customerp)
    }

    @Test("Two systems editing different fields both win")
    func differentFieldsBothWin() {
        let base = FieldMerge.apply(change(.customerp, at: 100, ["name": "A", "phone": "1", "email": "a@x.no"], carried: erpCarries),
                                    to: GlobalState(entity: .customer), snapshot: nil)
        let shopBase = FieldMerge.apply(change(.customwebshop, at: 100, ["phone": "1", "email": "a@x.no"], carried: shopCarries),
                                        to: base.state, snapshot: nil)
        // The ERP edits the phone at 300, the shop the e-mail at 200; each change brings the other field unchanged.
        let erp = FieldMerge.apply(change(.customerp, at: 300, ["name": "A", "phone": "2", "email": "a@x.no"], carried: erpCarries),
                                   to: shopBase.state, snapshot: base.snapshot)
        let shop = FieldMerge.apply(change(.customwebshop, at: 200, ["phone": "1", "email": "b@x.no"], carried: shopCarries),
                                    to: erp.state, snapshot: shopBase.snapshot)
        #expect(shop.state.values["phone"] == "2")
        #expect(shop.state.values["email"] == "b@x.no")
    }

    @Test("The same field edited in two systems: the later modification wins, in either order of arrival")
    func sameFieldLaterWins() {
        let base = GlobalState(entity: .customer)
        let early = change(.customwebshop, at: 200, ["email": "early@x.no"], carried: shopCarries)
        let late = change(.customerp, at: 300, ["email": "late@x.no"], carried: erpCarries)
        let a = FieldMerge.apply(late, to: FieldMerge.apply(early, to: base, snapshot: nil).state, snapshot: nil)
        let b = FieldMerge.apply(early, to: FieldMerge.apply(late, to: base, snapshot: nil).state, snapshot: nil)
        #expect(a.state.values["email"] == "late@x.no")
        #expect(b.state.values["email"] == "late@x.no")
        #expect(b.changed.isEmpty, "the older change arriving last changes nothing")
    }

    @Test("A tie in modification time is broken by system name, the same in every order")
    func tieIsDeterministic() {
        let base = GlobalState(entity: .customer)
        let erp = change(.customerp, at: 500, ["email": "erp@x.no"], carried: erpCarries)
        let shop = change(.customwebshop, at: 500, ["email": "shop@x.no"], carried: shopCarries)
        let a = FieldMerge.apply(shop, to: FieldMerge.apply(erp, to: base, snapshot: nil).state, snapshot: nil).state.values["email"]
        let b = FieldMerge.apply(erp, to: FieldMerge.apply(shop, to: base, snapshot: nil).state, snapshot: nil).state.values["email"]
        #expect(a == b)
        #expect(a == "erp@x.no", "customerp sorts before customwebshop")
    }

    @Test("The echo of our own write changes nothing, even when the mapping is lossy and spelled differently")
    func echoIsDropped() {
        let state = FieldMerge.apply(change(.customerp, at: 100, ["name": "A", "email": "a@x.no", "phone": "1"], carried: erpCarries),
                                     to: GlobalState(entity: .customer), snapshot: nil).state
        // What the mapping service expected the webshop to report after our write:
        let expected = Snapshot(fields: ["email", "phone"], values: ["email": "a@x.no", "phone": "1"])
        let echo = FieldMerge.apply(change(.customwebshop, at: 900, ["email": " a@x.no ", "phone": "1"], carried: shopCarries),
                                    to: state, snapshot: expected)
        #expect(echo.changed.isEmpty)
        #expect(echo.state.values == state.values)
    }

    @Test("Order lines: an echo is compared on the line members the target was written, not the ones it computes")
    func lineEcho() {
        let lines: JSONValue = [["sku": "A", "quantity": 2, "unitPriceExclVat": 10, "vatRate": 0.25]]
        let state = GlobalState(entity: .order, values: ["lines": lines], provenance: ["lines": Provenance(system: .customwebshop, modifiedAt: 100)])
        let expected = Snapshot(fields: ["lines.sku", "lines.quantity", "lines.unitPriceExclVat"],
                                values: ["lines": [["sku": "A", "quantity": 2, "unitPriceExclVat": 10]]])
        // Go reports the line with its own VAT rate, which we did not write.
        let echo = FieldMerge.apply(change(.powerofficego, at: 900, ["lines": [["sku": "A", "quantity": 2.0, "unitPriceExclVat": 10.00, "vatRate": 0.15]]],
                                           carried: ["lines"]), to: state, snapshot: expected)
        #expect(echo.changed.isEmpty)
        // A real edit of a written member is a change.
        let edit = FieldMerge.apply(change(.powerofficego, at: 900, ["lines": [["sku": "A", "quantity": 3, "unitPriceExclVat": 10]]],
                                           carried: ["lines"]), to: state, snapshot: expected)
        #expect(edit.changed == ["lines"])
    }

    @Test("A value the system assigns itself fills an empty field and never overwrites one")
    func assignedFillsOnly() {
        let erpOrder = GlobalState(entity: .order, values: ["orderNumber": "SO-1"], provenance: ["orderNumber": Provenance(system: .customerp, modifiedAt: 100)])
        let shop = change(.customwebshop, at: 900, ["orderNumber": "W-9001"], carried: ["orderNumber"], assigned: ["orderNumber"])
        #expect(FieldMerge.apply(shop, to: erpOrder, snapshot: nil).state.values["orderNumber"] == "SO-1")
        #expect(FieldMerge.apply(shop, to: GlobalState(entity: .order), snapshot: nil).state.values["orderNumber"] == "W-9001")
    }

    @Test("Numbers compare by value: 10 and 10.00 are no change")
    func numbersByValue() {
        let state = GlobalState(entity: .product, values: ["salesPriceExclVat": 10], provenance: [:])
        let same = FieldMerge.apply(change(.powerofficego, at: 5, ["salesPriceExclVat": .number(JSONNumber("10.00")!)], carried: ["salesPriceExclVat"]),
                                    to: state, snapshot: nil)
        #expect(same.changed.isEmpty)
    }
}

@Suite("Flows and write slots")
struct FlowAndSlotTests {
    @Test("Creation follows flow edges one confirmed member at a time")
    func chain() {
        let graph = FlowGraph.standard
        #expect(graph.creationTargets(entity: .customer, members: [.customerp]) == [.customwebshop])
        #expect(graph.creationTargets(entity: .customer, members: [.customerp, .customwebshop]) == [.powerofficego])
        #expect(graph.creationTargets(entity: .customer, members: [.powerofficego]).isEmpty, "Go creates nothing elsewhere")
        #expect(graph.creationTargets(entity: .order, members: [.customwebshop]) == [.powerofficego])
        #expect(graph.creationTargets(entity: .product, members: [.customerp, .customwebshop, .powerofficego]).isEmpty)
    }

    @Test("Ten quick edits while a write is in flight cost at most two writes, the last one carrying the final state")
    func coalescing() {
        var slot = WriteSlot()
        var counter = 0
        func next() -> String { counter += 1; return "w\(counter)" }
        var sent: [String] = []
        for _ in 0..<10 {
            if case .send(let id) = slot.request(writeId: next(), now: 0, lease: 30_000) { sent.append(id) }
        }
        #expect(sent == ["w1"])
        if case .send(let id) = slot.finished(writeId: "w1", nextWriteId: next(), now: 10, lease: 30_000) { sent.append(id) }
        #expect(sent.count == 2)
        #expect(slot.finished(writeId: sent[1], nextWriteId: next(), now: 20, lease: 30_000) == .ignore)
        #expect(slot.state == .idle)
    }

    @Test("A stale or repeated event does not release the slot")
    func staleEvents() {
        var slot = WriteSlot()
        _ = slot.request(writeId: "w1", now: 0, lease: 100)
        #expect(slot.finished(writeId: "w0", nextWriteId: "x", now: 1, lease: 100) == .ignore)
        #expect(slot.state == .inFlight(writeId: "w1", leaseUntil: 100, pending: false))
    }

    @Test("A lost write is sent again after its lease, with the same write id")
    func leaseExpiry() {
        var slot = WriteSlot()
        _ = slot.request(writeId: "w1", now: 0, lease: 100)
        #expect(slot.expire(now: 99, lease: 100) == .ignore)
        #expect(slot.expire(now: 100, lease: 100) == .send(writeId: "w1"))
        #expect(slot.state == .inFlight(writeId: "w1", leaseUntil: 200, pending: false))
    }
}
