import Foundation
import Testing
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyPostgres
@testable import ParleyLink
import ParleyLinkCore
import ParleyJSON
import ParleyEnvelope

/// The link engine on a scratch PostgreSQL database — or its rules on ``MemoryLinkStore``,
/// without one — with the real mapping service logic in front of it and a stand-in adapter
/// behind it: changes are normalised by `MappingProcessor`, sync requests turned into commands
/// by it, and a command "written" by answering with the native id the target gave and the
/// command's expected echo. The scenarios run on both backends: the rules alone, and the rules
/// with the PostgreSQL store (its caching, batching and SQL).
final class LinkHarness: @unchecked Sendable {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let mappings: Mappings = try! Mappings.load(repositoryRoot: root)

    enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case memory, postgres
        var testDescription: String { rawValue }
    }

    /// The PostgreSQL backend's pool (`nil` on the memory backend).
    let database: PostgresPool?
    let memory: MemoryLinkStore?
    let engine: LinkEngine
    let processor = MappingProcessor(mappings: LinkHarness.mappings)
    /// The engine's clock: tests move it to expire leases.
    var now = Date(timeIntervalSince1970: 1_800_000_000)

    /// The PostgreSQL pool; only scenarios that run on PostgreSQL alone ask for it.
    var pool: PostgresPool { database! }

    init(pool: PostgresPool?, lease: Duration = .seconds(60)) {
        let configuration = LinkConfiguration(writtenFields: Self.mappings.writtenFields, archivable: Self.mappings.archivable, lease: lease)
        database = pool
        memory = pool == nil ? MemoryLinkStore(configuration: configuration) : nil
        engine = LinkEngine(configuration: configuration)
    }

    static func run(
        _ backend: Backend = .postgres, lease: Duration = .seconds(60), connections: Int = 2,
        _ body: (LinkHarness) async throws -> Void
    ) async throws {
        guard backend == .postgres else { return try await body(LinkHarness(pool: nil, lease: lease)) }
        try await LinkSchemaTests.withScratchDatabase(connections: connections) { pool in
            _ = try await Migrator(migrations: LinkSchema.migrations, schema: "public").migrate(on: pool)
            try await body(LinkHarness(pool: pool, lease: lease))
        }
    }

    /// Whether `deliver` goes through the batch path (`handleBatch`, what the consumers run
    /// first) or the per-message one (`handle`, what they fall back to with savepoints).
    /// `PARLEY_LINK_TEST_PATH=single` runs every scenario through the latter.
    static let batched = ProcessInfo.processInfo.environment["PARLEY_LINK_TEST_PATH"] != "single"

    @discardableResult
    func deliver(_ envelope: Envelope) async throws -> LinkEngine.Outcome {
        let engine = self.engine, now = self.now
        if let memory { return try memory.deliver(envelope, now: now) }
        if Self.batched {
            return try await pool.transaction { tx in try engine.handleBatch([envelope], in: tx, now: now)[0] }
        }
        return try await pool.transaction { tx in try engine.handle(envelope, in: tx, now: now) }
    }

    /// Sends again the writes whose lease ran out by `now`; returns how many.
    func expireLeases(now: Date) async throws -> Int {
        if let memory { return try memory.expireLeases(now: now) }
        let engine = self.engine
        return try await pool.transaction { tx in try engine.expireLeases(in: tx, now: now) }
    }

    /// Delivers messages the way a link consumer does: one transaction for all (see `LinkBatch`).
    func deliverBatch(_ envelopes: [Envelope]) async throws -> (results: [LinkBatch.Result], path: LinkBatch.Path) {
        let now = self.now
        let processed = try await LinkBatch.process(envelopes, engine: engine, pool: pool, now: { now })
        return (processed.results, processed.path)
    }

    /// A native change from `system`, through the mapping service, delivered to the engine.
    @discardableResult
    func change(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String, _ record: JSONValue, at seconds: Int) async throws
        -> LinkEngine.Outcome
    {
        try await deliver(try canonical(system, entity, id, record, at: seconds))
    }

    /// The canonical message the mapping service makes of a native change.
    func canonical(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String, _ record: JSONValue, at seconds: Int) throws -> Envelope {
        let change = try Envelope(
            kind: .change, system: system, entityType: entity.messagingEntityType, entityId: id,
            time: Date(timeIntervalSince1970: 1_700_000_000 + Double(seconds)),
            payload: ChangePayload(record: record).json)
        var canonical = try processor.process(change: change).envelope
        // The records here carry no modification time: the envelope's time is the source's.
        canonical = try Envelope(
            id: canonical.id, correlationId: canonical.correlationId, causationId: canonical.causationId,
            kind: .canonical, system: system, entityType: canonical.entityType, entityId: id,
            time: change.time, payload: canonical.payload)
        return canonical
    }

    /// The sync requests queued since the last call, oldest first (and removed, as the relay would).
    func takeRequests() async throws -> [Envelope] {
        if let memory { return memory.takeOutbox().map(\.envelope) }
        let rows = try await pool.query("delete from outbox returning id, body")
        return try rows.sorted { try $0.decode(Int64.self, at: 0) < $1.decode(Int64.self, at: 0) }
            .map { try Envelope.decode(try $0.decode([UInt8].self, at: 1)) }
    }

    /// The mapping service's command for a sync request.
    func command(for request: Envelope) throws -> (Envelope, CommandPayload) {
        let output = try processor.process(syncRequest: request).envelope
        #expect(output.kind == .command, "\(output.payload)")
        return (output, try CommandPayload(json: output.payload))
    }

    /// The adapter carried out the command: the target answered with `nativeId`.
    @discardableResult
    func written(_ request: Envelope, nativeId: String) async throws -> LinkEngine.Outcome {
        try await deliver(try writtenEvent(request, nativeId: nativeId))
    }

    /// The written event the adapter sends for a sync request's command.
    /// `modifiedAt`: the record's time after the write (seconds, as `at` of ``change``), when
    /// the target said.
    func writtenEvent(_ request: Envelope, nativeId: String, modifiedAt seconds: Int? = nil) throws -> Envelope {
        let (command, payload) = try command(for: request)
        let modifiedAt = seconds.map { CivilTime.formatInstant(ms: (1_700_000_000 + Int64($0)) * 1000) }
        return try Envelope.caused(
            by: command, kind: .written, entityId: nativeId, payload: WrittenPayload(command: payload, modifiedAt: modifiedAt).json)
    }

    func count(_ table: String) async throws -> Int {
        guard let memory else { return try await pool.query("select count(*) from \(table)")[0].decode(Int.self, at: 0) }
        // `table [where column = 'text' | number | 'json'::jsonb | is [not] null [and …]]` over the memory store's rows.
        let parts = table.components(separatedBy: " where ")
        var rows = try Self.rows(parts[0], of: memory)
        for condition in parts.count > 1 ? parts[1].components(separatedBy: " and ") : [] {
            let words = condition.split(separator: " ", maxSplits: 2).map(String.init)
            guard words.count == 3 else { throw LinkError("cannot read the condition \(condition)") }
            switch (words[1], words[2]) {
            case ("is", "null"): rows = rows.filter { $0[words[0]] ?? nil == nil }
            case ("is", "not null"): rows = rows.filter { $0[words[0]] ?? nil != nil }
            case ("=", let value):
                let text = value.replacingOccurrences(of: "::jsonb", with: "").trimmingCharacters(in: CharacterSet(charactersIn: "'"))
                rows = rows.filter { $0[words[0]] ?? nil == text }
            default: throw LinkError("cannot read the condition \(condition)")
            }
        }
        return rows.count
    }

    /// The memory store's rows of `table`, each column as the text PostgreSQL would compare.
    static func rows(_ table: String, of memory: MemoryLinkStore) throws -> [[String: String?]] {
        switch table {
        case "global_entity":
            return memory.entities.map { ["id": $0.key.lowercasedString, "entity_type": $0.value.entity.rawValue] }
        case "member":
            return memory.members.map { ref, member in
                [
                    "global_id": ref.global.lowercasedString, "system": ref.system.rawValue, "native_id": member.nativeId,
                    "entity_type": memory.entities[ref.global]?.entity.rawValue
                ]
            }
        case "natural_key":
            return memory.keys.flatMap { global, keys in keys.map { ["global_id": global.lowercasedString, "kind": $0.kind, "value": $0.value] } }
        case "write_slot":
            return memory.slots.map {
                ["global_id": $0.key.global.lowercasedString, "system": $0.key.system.rawValue, "held": $0.value.held.map { _ in "held" }]
            }
        case "parked":
            return memory.parkedTargets.map {
                [
                    "global_id": $0.key.global.lowercasedString, "system": $0.key.system.rawValue,
                    "waiting_for": JSONValue.array($0.value.waitingFor.map(JSONValue.string)).serializedString()
                ]
            }
        case "failed":
            return memory.failures.map { ["global_id": $0.key.global.lowercasedString, "system": $0.key.system.rawValue, "kind": $0.value.kind] }
        case "conflict":
            return memory.conflicts.map { ["global_id": $0.global.lowercasedString, "system": $0.system.rawValue, "native_id": $0.nativeId] }
        case "waiting_change":
            return memory.waiting.map {
                ["system": $0.key.system, "entity_type": $0.key.entity, "native_id": $0.key.nativeId, "modified_at": String($0.value.modifiedAt)]
            }
        case "inbox": return memory.inbox.map { ["message_id": $0.lowercasedString] }
        case "outbox": return memory.outbox.map { ["message_id": $0.envelope.id.lowercasedString] }
        default: throw LinkError("the memory store has no table \(table)")
        }
    }

    /// The `failed` rows: kind, reason, and whether the failure is transient.
    func failures() async throws -> [(kind: String, reason: String, transient: Bool)] {
        if let memory { return memory.failures.values.map { ($0.kind, $0.reason, $0.transient) } }
        return try await pool.query("select kind, reason, transient from failed").map {
            (try $0.decode(String.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(Bool.self, at: 2))
        }
    }

    func state(of system: SystemName, _ entity: CanonicalEntityType, _ id: String) async throws -> [String: JSONValue] {
        if let memory { return memory.entity(of: system, entity, id)?.state.values ?? [:] }
        let rows = try await pool.query(
            """
            select g.state::text from global_entity g join member m on m.global_id = g.id
            where m.system = $1 and m.entity_type = $2 and m.native_id = $3
            """, [system.rawValue, entity.rawValue, id])
        guard let text = try rows.first?.decode(String.self, at: 0), case .object(let o) = try JSONValue.parse(text) else { return [:] }
        return Dictionary(uniqueKeysWithValues: o.map { ($0.key, $0.value) })
    }
}
