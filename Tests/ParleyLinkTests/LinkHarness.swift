import Foundation
import Testing
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyPostgres
@testable import ParleyLink

/// The link engine on a scratch PostgreSQL database, with the real mapping service logic in
/// front of it and a stand-in adapter behind it: changes are normalised by `MappingProcessor`,
/// sync requests turned into commands by it, and a command "written" by answering with the
/// native id the target gave and the command's expected echo.
final class LinkHarness: @unchecked Sendable {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let mappings: Mappings = try! Mappings.load(repositoryRoot: root)

    let pool: PostgresPool
    let engine: LinkEngine
    let processor = MappingProcessor(mappings: LinkHarness.mappings)
    /// The engine's clock: tests move it to expire leases.
    var now = Date(timeIntervalSince1970: 1_800_000_000)

    init(pool: PostgresPool, lease: Duration = .seconds(60)) {
        self.pool = pool
        engine = LinkEngine(configuration: LinkConfiguration(writtenFields: Self.mappings.writtenFields, archivable: Self.mappings.archivable, lease: lease))
    }

    static func run(lease: Duration = .seconds(60), connections: Int = 2, _ body: (LinkHarness) async throws -> Void) async throws {
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
        if Self.batched {
            return try await pool.transaction { tx in try engine.handleBatch([envelope], in: tx, now: now)[0] }
        }
        return try await pool.transaction { tx in try engine.handle(envelope, in: tx, now: now) }
    }

    /// Delivers messages the way a link consumer does: one transaction for all (see `LinkBatch`).
    func deliverBatch(_ envelopes: [Envelope]) async throws -> (results: [LinkBatch.Result], path: LinkBatch.Path) {
        let now = self.now
        let processed = try await LinkBatch.process(envelopes, engine: engine, pool: pool, now: { now })
        return (processed.results, processed.path)
    }

    /// A native change from `system`, through the mapping service, delivered to the engine.
    @discardableResult
    func change(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String, _ record: JSONValue, at seconds: Int) async throws -> LinkEngine.Outcome {
        try await deliver(try canonical(system, entity, id, record, at: seconds))
    }

    /// The canonical message the mapping service makes of a native change.
    func canonical(_ system: SystemName, _ entity: CanonicalEntityType, _ id: String, _ record: JSONValue, at seconds: Int) throws -> Envelope {
        let change = try Envelope(kind: .change, system: system, entityType: entity.messagingEntityType, entityId: id,
                                  time: Date(timeIntervalSince1970: 1_700_000_000 + Double(seconds)),
                                  payload: ChangePayload(record: record).json)
        var canonical = try processor.process(change: change).envelope
        // The records here carry no modification time: the envelope's time is the source's.
        canonical = try Envelope(id: canonical.id, correlationId: canonical.correlationId, causationId: canonical.causationId,
                                 kind: .canonical, system: system, entityType: canonical.entityType, entityId: id,
                                 time: change.time, payload: canonical.payload)
        return canonical
    }

    /// The sync requests queued since the last call, oldest first (and removed, as the relay would).
    func takeRequests() async throws -> [Envelope] {
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
        return try Envelope.caused(by: command, kind: .written, entityId: nativeId, payload: WrittenPayload(command: payload, modifiedAt: modifiedAt).json)
    }

    func count(_ table: String) async throws -> Int {
        try await pool.query("select count(*) from \(table)")[0].decode(Int.self, at: 0)
    }

    func state(of system: SystemName, _ entity: CanonicalEntityType, _ id: String) async throws -> [String: JSONValue] {
        let rows = try await pool.query("""
            select g.state::text from global_entity g join member m on m.global_id = g.id
            where m.system = $1 and m.entity_type = $2 and m.native_id = $3
            """, [system.rawValue, entity.rawValue, id])
        guard let text = try rows.first?.decode(String.self, at: 0), case .object(let o) = try JSONValue.parse(text) else { return [:] }
        return Dictionary(uniqueKeysWithValues: o.map { ($0.key, $0.value) })
    }
}
