import Foundation
import Testing
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON
import ParleyMapping
@testable import ParleyLinkCore

/// The rules' effects for single messages, on ``MemoryLinkStore``. The scenarios and the
/// properties over random histories are in ParleyLinkTests (LinkScenarioTests runs each on
/// this store and on PostgreSQL; LinkRulesPropertyTests on this store).
@Suite("Link rules: effects")
struct LinkRulesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let mappings: Mappings = try! Mappings.load(repositoryRoot: root)
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func store() -> MemoryLinkStore {
        MemoryLinkStore(configuration: LinkConfiguration(writtenFields: mappings.writtenFields, archivable: mappings.archivable))
    }

    static func erpCustomer(_ id: String, phone: String? = nil) throws -> Envelope {
        var record: JSONObject = [
            "id": .string(id), "customerType": "COMPANY", "name": "Fjord Fisk AS", "orgNo": "923609016",
            "email": "post@fjordfisk.no"
        ]
        if let phone { record["phone"] = .string(phone) }
        let change = try Envelope(
            kind: .change, system: .customerp, entityType: .customer, entityId: id,
            time: Date(timeIntervalSince1970: 1_700_000_000), payload: ChangePayload(record: .object(record)).json)
        return try MappingProcessor(mappings: mappings).process(change: change).envelope
    }

    @Test("A new record: its entity and member are created, its keys stored, and a create for the webshop is sent — in that order")
    func newRecord() throws {
        let store = Self.store()
        let outcome = try store.deliver(try Self.erpCustomer("C-1"), now: Self.now)
        guard case .applied(let global, _, 1, 0) = outcome else { Issue.record("\(outcome)"); return }
        #expect(store.entity(of: .customerp, .customer, "C-1")?.global == global)
        #expect(store.keys[global]?.map(\.kind).sorted() == ["email", "organizationNumber"])
        let kinds = store.effects.map { effect -> String in
            switch effect {
            case .resolveWaiting: "resolveWaiting"
            case .unpark: "unpark"
            case .openSlot(_, let system, _, let operation, _, let lease):
                "openSlot \(system) \(operation) \(lease.timeIntervalSince(Self.now))"
            case .enqueue(let envelope, let exchange, _): "enqueue \(envelope.kind.rawValue) \(exchange)"
            default: "\(effect)"
            }
        }
        #expect(kinds == ["unpark", "openSlot customwebshop create 60.0", "enqueue syncRequest parley.sync"])
    }

    @Test("A change while a write to its record is in flight is held, not merged; a newer state for a target in flight is marked pending")
    func heldAndPending() throws {
        let store = Self.store()
        try store.deliver(try Self.erpCustomer("C-1"), now: Self.now)
        let before = store.effects.count
        try store.deliver(try Self.erpCustomer("C-1", phone: "+47 1"), now: Self.now)
        let global = try #require(store.entity(of: .customerp, .customer, "C-1")?.global)
        #expect(Array(store.effects[before...]).contains(.markPending(global, .customwebshop)))
        #expect(store.slots[MemoryLinkStore.MemberRef(global, .customwebshop)]?.pending == true)
        #expect(store.outbox.count == 1, "still the one create")
    }
}
