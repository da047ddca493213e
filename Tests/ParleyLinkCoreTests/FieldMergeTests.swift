import Foundation
import Testing
import ParleyCanonical
import ParleyJSON
import ParleyEnvelope
@testable import ParleyLinkCore

@Suite("Field-level merge (DESIGN rules 4 and 5)")
struct FieldMergeTests {
    let erpCarries = ["kind", "name", "email", "organizationNumber", "phone", "postalAddress.city"]
    let shopCarries = ["firstName", "lastName", "email", "phone", "postalAddress.city"]

    func change(_ system: SystemName, at t: Int64, _ values: [String: JSONValue], carried: [String], assigned: Set<String> = []) -> IncomingChange {
        IncomingChange(system: system, modifiedAt: t, values: values, carried: carried, assigned: assigned)
    }

    @Test("A system that lacks a field never erases it: the webshop carries no organisation number")
    func lackingFieldNeverErases() {
        let first = FieldMerge.apply(
            change(.customerp, at: 100, ["name": "Fjord Fisk AS", "organizationNumber": "987654321"], carried: erpCarries),
            to: GlobalState(entity: .customer), snapshot: nil)
        #expect(first.changed == ["name", "organizationNumber"])
        let shop = FieldMerge.apply(
            change(.customwebshop, at: 200, ["email": "post@fjordfisk.no"], carried: shopCarries),
            to: first.state, snapshot: nil)
        #expect(shop.state.values["organizationNumber"] == "987654321")
        #expect(shop.changed == ["email"])
    }

    @Test("A carried field that becomes empty is erased")
    func carriedEmptyErases() {
        let first = FieldMerge.apply(
            change(.customerp, at: 100, ["name": "A", "phone": "123"], carried: erpCarries),
            to: GlobalState(entity: .customer), snapshot: nil)
        let second = FieldMerge.apply(change(.customerp, at: 200, ["name": "A"], carried: erpCarries), to: first.state, snapshot: first.snapshot)
        #expect(second.changed == ["phone"])
        #expect(second.state.values["phone"] == nil)
        #expect(second.state.provenance["phone"]?.system == .customerp)
    }

    @Test("Two systems editing different fields both win")
    func differentFieldsBothWin() {
        let base = FieldMerge.apply(
            change(.customerp, at: 100, ["name": "A", "phone": "1", "email": "a@x.no"], carried: erpCarries),
            to: GlobalState(entity: .customer), snapshot: nil)
        let shopBase = FieldMerge.apply(
            change(.customwebshop, at: 100, ["phone": "1", "email": "a@x.no"], carried: shopCarries),
            to: base.state, snapshot: nil)
        // The ERP edits the phone at 300, the shop the e-mail at 200; each change brings the other field unchanged.
        let erp = FieldMerge.apply(
            change(.customerp, at: 300, ["name": "A", "phone": "2", "email": "a@x.no"], carried: erpCarries),
            to: shopBase.state, snapshot: base.snapshot)
        let shop = FieldMerge.apply(
            change(.customwebshop, at: 200, ["phone": "1", "email": "b@x.no"], carried: shopCarries),
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
        let state = FieldMerge.apply(
            change(.customerp, at: 100, ["name": "A", "email": "a@x.no", "phone": "1"], carried: erpCarries),
            to: GlobalState(entity: .customer), snapshot: nil
        ).state
        // What the mapping service expected the webshop to report after our write:
        let expected = Snapshot(fields: ["email", "phone"], values: ["email": "a@x.no", "phone": "1"])
        let echo = FieldMerge.apply(
            change(.customwebshop, at: 900, ["email": " a@x.no ", "phone": "1"], carried: shopCarries),
            to: state, snapshot: expected)
        #expect(echo.changed.isEmpty)
        #expect(echo.state.values == state.values)
    }

    @Test("Order lines: an echo is compared on the line members the target was written, not the ones it computes")
    func lineEcho() {
        let lines: JSONValue = [["sku": "A", "quantity": 2, "unitPriceExclVat": 10, "vatRate": 0.25]]
        let state = GlobalState(entity: .order, values: ["lines": lines], provenance: ["lines": Provenance(system: .customwebshop, modifiedAt: 100)])
        let expected = Snapshot(
            fields: ["lines.sku", "lines.quantity", "lines.unitPriceExclVat"],
            values: ["lines": [["sku": "A", "quantity": 2, "unitPriceExclVat": 10]]])
        // Go reports the line with its own VAT rate, which we did not write.
        let echo = FieldMerge.apply(
            change(
                .powerofficego, at: 900, ["lines": [["sku": "A", "quantity": 2.0, "unitPriceExclVat": 10.00, "vatRate": 0.15]]],
                carried: ["lines"]), to: state, snapshot: expected)
        #expect(echo.changed.isEmpty)
        // A real edit of a written member is a change.
        let edit = FieldMerge.apply(
            change(
                .powerofficego, at: 900, ["lines": [["sku": "A", "quantity": 3, "unitPriceExclVat": 10]]],
                carried: ["lines"]), to: state, snapshot: expected)
        #expect(edit.changed == ["lines"])
    }

    @Test("A value the system assigns itself fills an empty field and never overwrites one")
    func assignedFillsOnly() {
        let erpOrder = GlobalState(
            entity: .order, values: ["orderNumber": "SO-1"], provenance: ["orderNumber": Provenance(system: .customerp, modifiedAt: 100)])
        let shop = change(.customwebshop, at: 900, ["orderNumber": "W-9001"], carried: ["orderNumber"], assigned: ["orderNumber"])
        #expect(FieldMerge.apply(shop, to: erpOrder, snapshot: nil).state.values["orderNumber"] == "SO-1")
        #expect(FieldMerge.apply(shop, to: GlobalState(entity: .order), snapshot: nil).state.values["orderNumber"] == "W-9001")
    }

    @Test("Numbers compare by value: 10 and 10.00 are no change")
    func numbersByValue() {
        let state = GlobalState(entity: .product, values: ["salesPriceExclVat": 10], provenance: [:])
        let same = FieldMerge.apply(
            change(.powerofficego, at: 5, ["salesPriceExclVat": .number(JSONNumber("10.00")!)], carried: ["salesPriceExclVat"]),
            to: state, snapshot: nil)
        #expect(same.changed.isEmpty)
    }
}

@Suite("Order lines merged member by member, keyed by line identity")
struct LineMergeTests {
    static let coffee = "product/9a3b0c2d-1111-4222-8333-444455556666"
    static let tea = "product/9a3b0c2d-2222-4222-8333-444455556666"
    static let cups = "product/9a3b0c2d-3333-4222-8333-444455556666"
    static let erpMembers = [
        "lines", "lines.product", "lines.sku", "lines.description", "lines.quantity", "lines.unitPriceExclVat",
        "lines.discountPercent", "lines.vatRate"
    ]
    static let goMembers = [
        "lines", "lines.product", "lines.sku", "lines.description", "lines.quantity", "lines.unitPriceExclVat",
        "lines.discountPercent"
    ]
    static let shopMembers = [
        "lines", "lines.product", "lines.sku", "lines.description", "lines.quantity", "lines.unitPriceExclVat",
        "lines.vatRate"
    ]

    static func line(_ product: String?, sku: String? = nil, quantity: Int, price: Double = 79.2, discount: Int? = nil, vat: Double? = nil)
        -> JSONValue
    {
        var o: JSONObject = ["quantity": .number(JSONNumber(quantity)), "unitPriceExclVat": .number(JSONNumber("\(price)")!)]
        if let product { o["product"] = .string(product) }
        if let sku { o["sku"] = .string(sku) }
        if let discount { o["discountPercent"] = .number(JSONNumber(discount)) }
        if let vat { o["vatRate"] = .number(JSONNumber("\(vat)")!) }
        return .object(o)
    }

    /// `lines` with only `members` of each line (what a system holds of them).
    static func project(_ lines: [JSONValue], _ members: [String]) -> JSONValue {
        let keep = Set(members.filter { $0.hasPrefix("lines.") }.map { String($0.dropFirst(6)) })
        return .array(lines.map { line in .object(JSONObject((line.object ?? [:]).filter { keep.contains($0.key) }.map { ($0.key, $0.value) })) })
    }

    static func change(_ system: SystemName, at t: Int64, _ lines: JSONValue, carried: [String], vat: [String: JSONValue] = [:]) -> IncomingChange {
        IncomingChange(system: system, modifiedAt: t, values: ["lines": lines], carried: carried, productVatRates: vat)
    }

    /// The ERP's order (coffee with a discount and 15 % VAT, tea at 25 %), and the snapshots Parley
    /// keeps of the ERP (its report) and of PowerOffice Go (the expected echo of writing it there).
    static let erpLines: [JSONValue] = [
        line(coffee, sku: "KAFFE-500", quantity: 16, discount: 10, vat: 0.15),
        line(tea, sku: "TE-100", quantity: 2, price: 30, vat: 0.25)
    ]
    static func erpOrder() -> (state: GlobalState, erp: Snapshot, go: Snapshot) {
        let first = FieldMerge.apply(
            change(.customerp, at: 100, .array(erpLines), carried: erpMembers), to: GlobalState(entity: .order), snapshot: nil)
        let goFields = goMembers.filter { $0 != "lines" }
        return (first.state, first.snapshot, Snapshot(fields: goFields, values: ["lines": project(erpLines, goFields)]))
    }

    func lines(_ state: GlobalState) -> [JSONValue] { state.values["lines"]?.array ?? [] }

    @Test("The issue's case: PowerOffice Go edits a quantity 16 → 19; the VAT rates it does not carry stay, and so does everything else")
    func goEditsQuantity() {
        let (state, _, goSnapshot) = Self.erpOrder()
        var reported = Self.project(Self.erpLines, Self.goMembers).array!
        reported[0]["quantity"] = 19
        let result = FieldMerge.apply(
            Self.change(.powerofficego, at: 200, .array(reported), carried: Self.goMembers), to: state, snapshot: goSnapshot)
        #expect(result.changed == ["lines"])
        #expect(lines(result.state)[0] == Self.line(Self.coffee, sku: "KAFFE-500", quantity: 19, discount: 10, vat: 0.15))
        #expect(lines(result.state)[1] == Self.erpLines[1])
        #expect(result.state.provenance["lines[\(Self.coffee)#0].quantity"] == Provenance(system: .powerofficego, modifiedAt: 200))
        #expect(result.state.provenance["lines[\(Self.coffee)#0]"] == Provenance(system: .customerp, modifiedAt: 100))
        #expect(result.state.provenance["lines"] == Provenance(system: .powerofficego, modifiedAt: 200))
    }

    @Test("The webshop, which carries no discount, edits a quantity: the discount stays")
    func shopKeepsDiscount() {
        let (state, _, _) = Self.erpOrder()
        let shopFields = Self.shopMembers
        let snapshot = Snapshot(fields: ["lines"], values: ["lines": Self.project(Self.erpLines, shopFields)])
        var reported = Self.project(Self.erpLines, shopFields).array!
        reported[1]["quantity"] = 3
        let result = FieldMerge.apply(Self.change(.customwebshop, at: 200, .array(reported), carried: shopFields), to: state, snapshot: snapshot)
        #expect(lines(result.state)[0] == Self.erpLines[0])
        #expect(lines(result.state)[1]["quantity"] == 3 && lines(result.state)[1]["vatRate"]?.decimal == Decimal(string: "0.25"))
    }

    @Test("The echo of a write to PowerOffice Go — no VAT rates, its own Allowance and a rounded price — changes nothing")
    func goEchoChangesNothing() {
        let (state, _, goSnapshot) = Self.erpOrder()
        var echo = Self.project(Self.erpLines, Self.goMembers).array!
        echo[0]["unitPriceExclVat"] = .number(JSONNumber("79.20")!)
        echo[1]["discountPercent"] = 0  // Go fills its own Allowance on a line written without one
        let snapshot = Snapshot(fields: goSnapshot.fields.filter { $0 != "lines.discountPercent" }, values: goSnapshot.values)
        let result = FieldMerge.apply(Self.change(.powerofficego, at: 900, .array(echo), carried: Self.goMembers), to: state, snapshot: snapshot)
        #expect(result.changed.isEmpty)
        #expect(result.state.values == state.values)
    }

    @Test("A line added in PowerOffice Go is added after the line it follows there, with its product's VAT rate and no member Go does not carry")
    func goAddsLine() {
        let (state, _, goSnapshot) = Self.erpOrder()
        var reported = Self.project(Self.erpLines, Self.goMembers).array!
        reported.insert(Self.line(Self.cups, sku: "KOPP", quantity: 4, price: 49), at: 1)
        let result = FieldMerge.apply(
            Self.change(
                .powerofficego, at: 200, .array(reported), carried: Self.goMembers,
                vat: [Self.cups: 0.25, Self.coffee: 0.15]), to: state, snapshot: goSnapshot)
        #expect(result.changed == ["lines"])
        #expect(lines(result.state) == [Self.erpLines[0], Self.line(Self.cups, sku: "KOPP", quantity: 4, price: 49, vat: 0.25), Self.erpLines[1]])
        #expect(result.state.provenance["lines[\(Self.cups)#0]"] == Provenance(system: .powerofficego, modifiedAt: 200))
        // Without a VAT rate for its product, the line has none (the ERP will refuse it, with that reason).
        let unknown = FieldMerge.apply(
            Self.change(.powerofficego, at: 200, .array(reported), carried: Self.goMembers), to: state, snapshot: goSnapshot)
        #expect(lines(unknown.state)[1]["vatRate"] == nil)
        // A system that carries VAT rates gets none filled in: an empty one is what it says.
        let erp = FieldMerge.apply(
            Self.change(
                .customerp, at: 200, .array(Self.erpLines + [Self.line(Self.cups, quantity: 1)]), carried: Self.erpMembers,
                vat: [Self.cups: 0.25]), to: state, snapshot: Self.erpOrder().erp)
        #expect(lines(erp.state)[2]["vatRate"] == nil)
    }

    @Test("A line removed in PowerOffice Go is removed; the others keep their identity and members")
    func goRemovesLine() {
        let (state, _, goSnapshot) = Self.erpOrder()
        let reported = [Self.project(Self.erpLines, Self.goMembers).array![1]]
        let result = FieldMerge.apply(
            Self.change(.powerofficego, at: 200, .array(reported), carried: Self.goMembers), to: state, snapshot: goSnapshot)
        #expect(result.changed == ["lines"])
        #expect(lines(result.state) == [Self.erpLines[1]])
        #expect(result.state.provenance["lines[\(Self.coffee)#0]"] == nil && result.state.provenance["lines[\(Self.tea)#0]"] != nil)
    }

    @Test("A removal loses to a later edit of the same line elsewhere; an older edit of a line removed since loses to the removal")
    func removalAgainstEdit() {
        let (state, erpSnapshot, goSnapshot) = Self.erpOrder()
        // The ERP edits the coffee's discount at 300; Go's removal of it at 200 arrives after.
        var erpLines = Self.erpLines
        erpLines[0]["discountPercent"] = 5
        let erp = FieldMerge.apply(Self.change(.customerp, at: 300, .array(erpLines), carried: Self.erpMembers), to: state, snapshot: erpSnapshot)
        let goRemoval = Self.change(.powerofficego, at: 200, .array([Self.project(Self.erpLines, Self.goMembers).array![1]]), carried: Self.goMembers)
        #expect(lines(FieldMerge.apply(goRemoval, to: erp.state, snapshot: goSnapshot).state) == erpLines)
        // The other way: Go removes it at 300, the ERP's edit of it at 200 arrives after.
        let removed = FieldMerge.apply(
            Self.change(.powerofficego, at: 300, goRemoval.values["lines"]!, carried: Self.goMembers), to: state, snapshot: goSnapshot)
        let lateEdit = FieldMerge.apply(
            Self.change(.customerp, at: 200, .array(erpLines), carried: Self.erpMembers), to: removed.state, snapshot: erpSnapshot)
        #expect(lines(lateEdit.state) == [Self.erpLines[1]])
        #expect(lateEdit.changed.isEmpty)
        // An edit newer than the removal brings the line back.
        let newerEdit = FieldMerge.apply(
            Self.change(.customerp, at: 400, .array(erpLines), carried: Self.erpMembers), to: removed.state, snapshot: erpSnapshot)
        #expect(lines(newerEdit.state) == erpLines)
    }

    @Test("Edits of different members of one line in two systems both stand, in either order of arrival; of the same member the later wins")
    func concurrentMembers() {
        let (state, erpSnapshot, goSnapshot) = Self.erpOrder()
        var goLines = Self.project(Self.erpLines, Self.goMembers).array!
        goLines[0]["quantity"] = 19
        var erpLines = Self.erpLines
        erpLines[0]["discountPercent"] = 5
        let go = Self.change(.powerofficego, at: 200, .array(goLines), carried: Self.goMembers)
        let erp = Self.change(.customerp, at: 150, .array(erpLines), carried: Self.erpMembers)
        let a = FieldMerge.apply(erp, to: FieldMerge.apply(go, to: state, snapshot: goSnapshot).state, snapshot: erpSnapshot).state
        let b = FieldMerge.apply(go, to: FieldMerge.apply(erp, to: state, snapshot: erpSnapshot).state, snapshot: goSnapshot).state
        #expect(lines(a) == lines(b))
        #expect(lines(a)[0]["quantity"] == 19 && lines(a)[0]["discountPercent"] == 5)
        // The same member: the later edit wins whichever arrives last.
        erpLines[0]["quantity"] = 17
        let erpQuantity = Self.change(.customerp, at: 150, .array(erpLines), carried: Self.erpMembers)
        let c = FieldMerge.apply(erpQuantity, to: FieldMerge.apply(go, to: state, snapshot: goSnapshot).state, snapshot: erpSnapshot).state
        let d = FieldMerge.apply(go, to: FieldMerge.apply(erpQuantity, to: state, snapshot: erpSnapshot).state, snapshot: goSnapshot).state
        #expect(lines(c)[0]["quantity"] == 19 && lines(d)[0]["quantity"] == 19)
        // A tie is broken by system name, the same in either order.
        let tie = Self.change(.customerp, at: 200, .array(erpLines), carried: Self.erpMembers)
        let e = FieldMerge.apply(tie, to: FieldMerge.apply(go, to: state, snapshot: goSnapshot).state, snapshot: erpSnapshot).state
        let f = FieldMerge.apply(go, to: FieldMerge.apply(tie, to: state, snapshot: erpSnapshot).state, snapshot: goSnapshot).state
        #expect(lines(e)[0]["quantity"] == 17 && lines(f)[0]["quantity"] == 17, "customerp sorts before powerofficego")
    }

    @Test("Reordered or renumbered lines are the same lines: a reorder alone is no edit, and an edit after one lands on the right line")
    func reorder() {
        let (state, _, goSnapshot) = Self.erpOrder()
        var reported = Array(Self.project(Self.erpLines, Self.goMembers).array!.reversed())
        #expect(
            FieldMerge.apply(Self.change(.powerofficego, at: 200, .array(reported), carried: Self.goMembers), to: state, snapshot: goSnapshot).changed
                .isEmpty)
        reported[0]["quantity"] = 3  // the tea, now first in Go
        let result = FieldMerge.apply(
            Self.change(.powerofficego, at: 200, .array(reported), carried: Self.goMembers), to: state, snapshot: goSnapshot)
        #expect(lines(result.state)[1]["quantity"] == 3 && lines(result.state)[0]["quantity"] == 16)
    }

    @Test("Two lines of one product are told apart by occurrence; lines without a product by SKU, and lines without either by their order")
    func identities() {
        let ids = OrderLineIdentity.identities(of: [
            Self.line(Self.coffee, quantity: 1), Self.line(nil, sku: " FRAKT ", quantity: 1),
            Self.line(Self.coffee.uppercased(), quantity: 2), Self.line(nil, quantity: 1),
            Self.line(nil, quantity: 2)
        ])
        #expect(ids.map(\.description) == ["\(Self.coffee)#0", "sku:FRAKT#0", "\(Self.coffee)#1", "#0", "#1"])
        // The second coffee line edited, with a freight line removed before it.
        let lines: [JSONValue] = [
            Self.line(Self.coffee, quantity: 1, vat: 0.15), Self.line(nil, sku: "FRAKT", quantity: 1, vat: 0.25),
            Self.line(Self.coffee, quantity: 2, vat: 0.15)
        ]
        let base = FieldMerge.apply(
            Self.change(.customerp, at: 100, .array(lines), carried: Self.erpMembers), to: GlobalState(entity: .order), snapshot: nil)
        let goSnapshot = Snapshot(fields: Self.goMembers, values: ["lines": Self.project(lines, Self.goMembers)])
        var reported = Self.project(lines, Self.goMembers).array!
        reported.remove(at: 1)
        reported[1]["quantity"] = 5
        let result = FieldMerge.apply(
            Self.change(.powerofficego, at: 200, .array(reported), carried: Self.goMembers), to: base.state, snapshot: goSnapshot)
        #expect(self.lines(result.state) == [Self.line(Self.coffee, quantity: 1, vat: 0.15), Self.line(Self.coffee, quantity: 5, vat: 0.15)])
    }

    @Test(
        "A change held while Parley's write was in flight: what equals the snapshot before the write or what was written is no edit; its own edit is")
    func heldAgainstWritten() {
        let (state, _, goSnapshot) = Self.erpOrder()
        // Parley writes Go the order with a cup line added by the ERP.
        var stateLines = Self.erpLines
        stateLines.append(Self.line(Self.cups, sku: "KOPP", quantity: 4, price: 49, vat: 0.25))
        let erp = FieldMerge.apply(
            Self.change(.customerp, at: 300, .array(stateLines), carried: Self.erpMembers), to: state, snapshot: Self.erpOrder().erp)
        let written = Snapshot(fields: goSnapshot.fields, values: ["lines": Self.project(stateLines, Self.goMembers)])
        // Go's report from before the write landed (no cup line) is no removal of the cups ...
        let before = Self.change(.powerofficego, at: 250, goSnapshot.values["lines"]!, carried: Self.goMembers)
        #expect(FieldMerge.apply(before, to: erp.state, snapshot: goSnapshot, written: written).changed.isEmpty)
        // ... its report after it landed is no edit ...
        let after = Self.change(.powerofficego, at: 350, written.values["lines"]!, carried: Self.goMembers)
        #expect(FieldMerge.apply(after, to: erp.state, snapshot: goSnapshot, written: written).changed.isEmpty)
        // ... and its own edit made meanwhile is one, whichever it reports.
        var edited = goSnapshot.values["lines"]!.array!
        edited[1]["quantity"] = 7
        let own = FieldMerge.apply(
            Self.change(.powerofficego, at: 350, .array(edited), carried: Self.goMembers), to: erp.state, snapshot: goSnapshot, written: written)
        #expect(lines(own.state) == [Self.erpLines[0], Self.line(Self.tea, sku: "TE-100", quantity: 7, price: 30, vat: 0.25), stateLines[2]])
    }

    @Test("First contact: lines a record reports are taken, its empty members erase nothing, and lines it lacks stay")
    func firstContact() {
        let (state, _, _) = Self.erpOrder()
        let reported: JSONValue = [["product": .string(Self.tea), "quantity": 2]]
        let result = FieldMerge.apply(Self.change(.powerofficego, at: 200, reported, carried: Self.goMembers), to: state, snapshot: nil)
        #expect(lines(result.state) == Self.erpLines)
        let fresh = FieldMerge.apply(Self.change(.customerp, at: 1, [], carried: Self.erpMembers), to: GlobalState(entity: .order), snapshot: nil)
        #expect(fresh.changed == ["lines"] && fresh.state.values["lines"] == [])
    }

    @Test("Lines a change does not report at all are no edit")
    func linesNotReported() {
        let (state, erpSnapshot, _) = Self.erpOrder()
        let result = FieldMerge.apply(
            IncomingChange(system: .customerp, modifiedAt: 200, values: ["status": "confirmed"], carried: Self.erpMembers + ["status"]),
            to: state, snapshot: erpSnapshot)
        #expect(result.changed == ["status"])
        #expect(lines(result.state) == Self.erpLines)
    }

    @Test("A state from before lines were merged by member (provenance for the lines as a whole) merges by its lines' provenance")
    func legacyProvenance() {
        var state = GlobalState(
            entity: .order, values: ["lines": .array(Self.erpLines)],
            provenance: ["lines": Provenance(system: .customerp, modifiedAt: 100)])
        let goSnapshot = Snapshot(fields: ["lines"], values: ["lines": Self.project(Self.erpLines, Self.goMembers)])
        var older = Self.project(Self.erpLines, Self.goMembers).array!
        older[0]["quantity"] = 19
        #expect(
            FieldMerge.apply(Self.change(.powerofficego, at: 50, .array(older), carried: Self.goMembers), to: state, snapshot: goSnapshot).changed
                .isEmpty)
        state = FieldMerge.apply(Self.change(.powerofficego, at: 150, .array(older), carried: Self.goMembers), to: state, snapshot: goSnapshot).state
        #expect(lines(state)[0]["quantity"] == 19 && lines(state)[0]["vatRate"]?.decimal == Decimal(string: "0.15"))
        #expect(state.provenance["lines[\(Self.tea)#0]"] == Provenance(system: .customerp, modifiedAt: 100))
    }

    @Test(
        "A member the source no longer carries is not erased by its absence, even against a snapshot that lists it (PowerOffice Go's VatRate was read once)"
    )
    func uncarriedAgainstOldSnapshot() {
        let (state, _, _) = Self.erpOrder()
        // Stored while Go's mapping still read VatRate: every member, Go's 25 % in each line.
        var old = Self.project(Self.erpLines, Self.goMembers).array!
        for i in old.indices { old[i]["vatRate"] = 0.25 }
        let snapshot = Snapshot(fields: ["lines"], values: ["lines": .array(old)])
        var reported = Self.project(Self.erpLines, Self.goMembers).array!
        reported[0]["quantity"] = 19
        let result = FieldMerge.apply(Self.change(.powerofficego, at: 200, .array(reported), carried: Self.goMembers), to: state, snapshot: snapshot)
        #expect(lines(result.state).map { $0["vatRate"]?.decimal } == [Decimal(string: "0.15"), Decimal(string: "0.25")])
        #expect(lines(result.state)[0]["quantity"] == 19)
    }

    @Test("A snapshot listing line members along with `lines` compares only those members")
    func equalWithMembers() {
        let a: JSONValue = [["sku": "A", "quantity": 2, "vatRate": 0.25]]
        let b: JSONValue = [["sku": "A", "quantity": 2]]
        #expect(FieldMerge.equal(a, b, field: "lines", entity: .order, fields: ["lines", "lines.sku", "lines.quantity"]))
        #expect(!FieldMerge.equal(a, b, field: "lines", entity: .order, fields: ["lines"]))
    }

    // MARK: Properties, over generated orders

    /// A small deterministic generator (SplitMix64), so a failure can be replayed.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func chance(_ percent: Int) -> Bool { int(100) < percent }

        mutating func lines() -> [JSONValue] {
            let products = [LineMergeTests.coffee, LineMergeTests.tea, LineMergeTests.cups]
            return (0..<int(5)).map { _ in
                let product = chance(80) ? products[int(3)] : nil
                return LineMergeTests.line(
                    product, sku: product == nil && chance(50) ? "FRAKT" : nil, quantity: 1 + int(20),
                    discount: chance(50) ? int(30) : nil, vat: chance(90) ? [0.25, 0.15][int(2)] : nil)
            }
        }

        /// The source's own edit of `lines`: members changed, lines added, removed, reordered.
        mutating func edit(_ lines: [JSONValue], members: [String]) -> [JSONValue] {
            var lines = lines
            for i in lines.indices where chance(30) { lines[i]["quantity"] = .number(JSONNumber(1 + int(20))) }
            if members.contains("lines.discountPercent") {
                for i in lines.indices where chance(20) { lines[i]["discountPercent"] = .number(JSONNumber(int(30))) }
            }
            if !lines.isEmpty, chance(30) { lines.remove(at: int(lines.count)) }
            if chance(30) {
                lines.insert(
                    Self.project(self.lines().first ?? LineMergeTests.line(LineMergeTests.cups, quantity: 1), members), at: int(lines.count + 1))
            }
            if lines.count > 1, chance(20) { lines.swapAt(0, lines.count - 1) }
            return lines
        }

        static func project(_ line: JSONValue, _ members: [String]) -> JSONValue { LineMergeTests.project([line], members).array![0] }
    }

    static let systems: [(SystemName, [String])] = [(.customerp, erpMembers), (.customwebshop, shopMembers), (.powerofficego, goMembers)]

    @Test("Property: a member a system does not carry is never changed by its changes on lines the state has")
    func uncarriedMemberNeverChanges() {
        var g = Generator(state: 17)
        for round in 0..<400 {
            let base = FieldMerge.apply(
                Self.change(.customerp, at: 100, .array(g.lines()), carried: Self.erpMembers), to: GlobalState(entity: .order), snapshot: nil)
            let (system, members) = Self.systems[1 + g.int(2)]
            let known = Self.project(lines(base.state), members).array!
            let snapshot = Snapshot(fields: members, values: ["lines": .array(known)])
            let reported = g.edit(known, members: members)
            let result = FieldMerge.apply(Self.change(system, at: 200, .array(reported), carried: members), to: base.state, snapshot: snapshot)
            let missing = Set(FieldMerge.allLineMembers).subtracting(members.map { String($0.dropFirst(6)) })
            let before = Dictionary(uniqueKeysWithValues: zip(OrderLineIdentity.identities(of: lines(base.state)), lines(base.state)))
            let after = lines(result.state)
            for (id, line) in zip(OrderLineIdentity.identities(of: after), after) {
                for member in missing {
                    if let old = before[id] {
                        #expect(line[member] == old[member], "round \(round): \(system) changed \(member) of \(id)")
                    } else {
                        #expect(line[member] == nil, "round \(round): \(system) added a line with \(member)")
                    }
                }
            }
        }
    }

    @Test("Property: the echo of what was written changes nothing, whatever the target adds of its own to members Parley did not write")
    func echoChangesNothing() {
        var g = Generator(state: 42)
        for round in 0..<400 {
            let base = FieldMerge.apply(
                Self.change(.customerp, at: 100, .array(g.lines()), carried: Self.erpMembers), to: GlobalState(entity: .order), snapshot: nil)
            let (system, members) = Self.systems[1 + g.int(2)]
            // The expected echo lists only members written (Go computes its VAT, fills its Allowance).
            let listed = members.filter { $0 != "lines" && (system != .powerofficego || $0 != "lines.discountPercent" || g.chance(50)) }
            var echo = Self.project(lines(base.state), members).array!
            let expected = Snapshot(fields: listed, values: ["lines": .array(echo)])
            for i in echo.indices where !listed.contains("lines.discountPercent") && members.contains("lines.discountPercent") {
                echo[i]["discountPercent"] = 0
            }
            let result = FieldMerge.apply(Self.change(system, at: 900, .array(echo), carried: members), to: base.state, snapshot: expected)
            #expect(result.changed.isEmpty, "round \(round)")
            #expect(result.state.values == base.state.values, "round \(round)")
            // Held, with the snapshot from before the write and the write itself.
            let held = FieldMerge.apply(
                Self.change(system, at: 900, .array(echo), carried: members), to: base.state,
                snapshot: Snapshot(fields: members, values: ["lines": .array(g.edit(echo, members: members))]), written: expected)
            #expect(held.state.values == base.state.values, "round \(round), held")
        }
    }

    @Test(
        "Property: the same report merged twice changes nothing the second time, and a report's own lines come out as it said on the members it carries"
    )
    func idempotent() {
        var g = Generator(state: 7)
        for round in 0..<400 {
            let base = FieldMerge.apply(
                Self.change(.customerp, at: 100, .array(g.lines()), carried: Self.erpMembers), to: GlobalState(entity: .order), snapshot: nil)
            let (system, members) = Self.systems[g.int(3)]
            let known = Self.project(lines(base.state), members).array!
            let reported = g.edit(known, members: members)
            let once = FieldMerge.apply(
                Self.change(system, at: 200, .array(reported), carried: members), to: base.state,
                snapshot: Snapshot(fields: members, values: ["lines": .array(known)]))
            let twice = FieldMerge.apply(Self.change(system, at: 201, .array(reported), carried: members), to: once.state, snapshot: once.snapshot)
            #expect(twice.changed.isEmpty && twice.state.values == once.state.values, "round \(round)")
            // Every line the source reports is in the state with its carried members as reported.
            let merged = Dictionary(uniqueKeysWithValues: zip(OrderLineIdentity.identities(of: lines(once.state)), lines(once.state)))
            for (id, line) in zip(OrderLineIdentity.identities(of: reported), reported) {
                #expect(merged[id].map { Self.project([$0], members) } == Self.project([line], members), "round \(round): \(id)")
            }
            #expect(lines(once.state).count == reported.count, "round \(round): only lines the source knows")
        }
    }
}

@Suite("Derived fields: a person's full name")
struct DerivedNameTests {
    let shopCarries = ["firstName", "lastName", "email", "phone"]
    let erpCarries = ["kind", "name", "firstName", "lastName", "email"]

    func person() -> GlobalState {
        FieldMerge.apply(
            IncomingChange(
                system: .customerp, modifiedAt: 100,
                values: ["kind": "person", "name": "Kari Nordmann", "firstName": "Kari", "lastName": "Nordmann"],
                carried: erpCarries), to: GlobalState(entity: .customer), snapshot: nil
        ).state
    }

    @Test("The webshop's first-name edit of a person sets the full name too; the ERP, which carries the name, gets it")
    func shopEditFollows() {
        let shopSnapshot = Snapshot(fields: shopCarries, values: ["firstName": "Kari", "lastName": "Nordmann"])
        let edit = IncomingChange(
            system: .customwebshop, modifiedAt: 200, values: ["firstName": "Karianne", "lastName": "Nordmann"], carried: shopCarries)
        let result = FieldMerge.apply(edit, to: person(), snapshot: shopSnapshot)
        #expect(result.changed == ["name", "firstName"])
        #expect(result.state.values["name"] == "Karianne Nordmann")
        #expect(result.state.provenance["name"] == Provenance(system: .customwebshop, modifiedAt: 200))
        // Its echo changes nothing more.
        let echo = FieldMerge.apply(edit, to: result.state, snapshot: result.snapshot)
        #expect(echo.changed.isEmpty)
    }

    @Test("No derived name for a company (first and last name are its contact's), from a system that carries the name, or over a later name")
    func derivedOnlyWhereItFollows() {
        var company = person()
        company.values["kind"] = "company"
        company.values["name"] = "Fjord Fisk AS"
        let shopSnapshot = Snapshot(fields: shopCarries, values: ["firstName": "Kari", "lastName": "Nordmann"])
        let edit = IncomingChange(
            system: .customwebshop, modifiedAt: 200, values: ["firstName": "Karianne", "lastName": "Nordmann"], carried: shopCarries)
        #expect(FieldMerge.apply(edit, to: company, snapshot: shopSnapshot).state.values["name"] == "Fjord Fisk AS")
        // The ERP keeps a name of its own choosing while it edits the contact names.
        let erp = IncomingChange(
            system: .customerp, modifiedAt: 200,
            values: ["kind": "person", "name": "Kari Nordmann", "firstName": "Karianne", "lastName": "Nordmann"], carried: erpCarries)
        let erpSnapshot = Snapshot(
            fields: erpCarries, values: ["kind": "person", "name": "Kari Nordmann", "firstName": "Kari", "lastName": "Nordmann"])
        #expect(FieldMerge.apply(erp, to: person(), snapshot: erpSnapshot).state.values["name"] == "Kari Nordmann")
        // A name set later elsewhere stands; the first name still changes.
        var renamed = person()
        renamed.values["name"] = "Kari E. Nordmann"
        renamed.provenance["name"] = Provenance(system: .customerp, modifiedAt: 300)
        let later = FieldMerge.apply(edit, to: renamed, snapshot: shopSnapshot)
        #expect(later.state.values["name"] == "Kari E. Nordmann" && later.state.values["firstName"] == "Karianne")
        #expect(later.changed == ["firstName"])
    }
}

@Suite("Flows")
struct FlowTests {
    @Test("Creation follows flow edges one confirmed member at a time")
    func chain() {
        let graph = FlowGraph.standard
        #expect(graph.creationTargets(entity: .customer, members: [.customerp]) == [.customwebshop])
        #expect(graph.creationTargets(entity: .customer, members: [.customerp, .customwebshop]) == [.powerofficego])
        #expect(graph.creationTargets(entity: .customer, members: [.powerofficego]).isEmpty, "Go creates nothing elsewhere")
        #expect(graph.creationTargets(entity: .order, members: [.customwebshop]) == [.powerofficego])
        #expect(graph.creationTargets(entity: .product, members: [.customerp, .customwebshop, .powerofficego]).isEmpty)
    }
}
