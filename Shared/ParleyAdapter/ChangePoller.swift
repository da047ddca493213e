import Foundation
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ServiceLifecycle

/// Change capture by incremental polling (DESIGN "Adapters"): while this replica holds the
/// system's poll lease, every `interval` it reads each entity's feed from its durable
/// position, publishes the new records as `change` messages with confirms, and only then
/// advances the position. Every `rescanInterval` it reads each feed from the start and
/// publishes everything (the link service drops what it already knows), catching what an
/// incremental read missed.
public final class ChangePoller: Service, Sendable {
    let connector: any SystemConnector
    let mappers: [CanonicalEntityType: Mapper]
    let store: FeedPositionStore
    let lease: PollLease
    let publisher: AMQPPublisher
    let interval: Duration
    let overlap: Int64
    let rescanInterval: Duration
    let logger: Logger
    let metrics: PollMetrics
    /// Writes in several requests: their intermediate states are left out of the feed.
    let markers: WriteMarkers?

    public init(
        connector: any SystemConnector, mappings: Mappings, store: FeedPositionStore, lease: PollLease, publisher: AMQPPublisher,
        interval: Duration = .seconds(2), overlap: Duration = .seconds(5), rescanInterval: Duration = .seconds(3600),
        markers: WriteMarkers? = nil, logger: Logger
    ) {
        self.markers = markers
        self.connector = connector
        var mappers: [CanonicalEntityType: Mapper] = [:]
        for entity in CanonicalEntityType.allCases {
            if let mapper = mappings.mapper(system: connector.system, entity: entity) { mappers[entity] = mapper }
        }
        self.mappers = mappers
        self.store = store
        self.lease = lease
        self.publisher = publisher
        self.interval = interval
        self.overlap = Int64(overlap.components.seconds * 1000) + overlap.components.attoseconds / 1_000_000_000_000_000
        self.rescanInterval = rescanInterval
        self.logger = logger
        self.metrics = PollMetrics(system: connector.system)
    }

    /// Customers and products before orders, so an order's references usually exist already.
    var entities: [CanonicalEntityType] { [.customer, .product, .order].filter { mappers[$0] != nil } }

    public func run() async throws {
        var holding = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let holds = await lease.holds()
            if holds != holding {
                logger.info(holds ? "took the poll lease" : "lost the poll lease", metadata: ["system": "\(connector.system)"])
                holding = holds
            }
            if holds {
                try? await markers?.prune()
                for entity in entities {
                    let started = Date()
                    do {
                        try await poll(entity)
                        metrics.succeeded(entity, startedAt: started)
                        if try await rescanDue(entity) { try await rescan(entity) }
                        metrics.polled(entity)
                    } catch {
                        metrics.polled(entity, error: error)
                        logger.warning("polling failed; trying again", metadata: ["system": "\(connector.system)", "entity": "\(entity)", "error": "\(error)"])
                    }
                }
            }
            // Shutdown must not wait out a long interval.
            let interval = self.interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        await lease.release()
    }

    /// Reads the feed from the stored position to its end; returns how many changes went out.
    @discardableResult
    public func poll(_ entity: CanonicalEntityType) async throws -> Int {
        guard let mapper = mappers[entity] else { return 0 }
        var position = try await store.load(entity)
        let since = position.query(overlap: overlap).map { Date(timeIntervalSince1970: Double($0) / 1000) }
        var cursor: String? = nil
        var published = 0
        // The position moves once the whole feed is read: not every system pages in time order
        // (PowerOffice Go pages by id), and moving past a page's newest time would skip an
        // older record on a later page. A crash half-way re-publishes, which the link drops.
        var fresh: [FeedPosition.Record] = []
        repeat {
            let page = try await connector.changes(entity, since: since, cursor: cursor)
            let hidden = try await stepsOfWrites(entity, page.records, mapper: mapper)
            var messages: [OutgoingMessage] = []
            for record in page.records {
                let (id, modifiedAt) = mapper.identity(of: record)
                guard let id else {
                    logger.warning("a record without an id in the feed; skipped", metadata: ["system": "\(connector.system)", "entity": "\(entity)"])
                    continue
                }
                let item = FeedPosition.Record(id: id, modifiedAt: modifiedAt ?? 0)
                guard position.isNew(item, overlap: overlap) else { continue }
                fresh.append(item)
                // Seen, but not reported: the write's end state is newer and comes in a later poll.
                if hidden.contains(id) { continue }
                messages.append(try change(entity, id: id, modifiedAt: modifiedAt, record: record))
            }
            try await publishAll(messages)
            published += messages.count
            cursor = page.nextCursor
        } while cursor != nil
        position.advance(past: fresh, overlap: overlap)
        try await store.save(position, entity)
        if published > 0 { logger.info("changes published", metadata: ["system": "\(connector.system)", "entity": "\(entity)", "count": "\(published)"]) }
        return published
    }

    func rescanDue(_ entity: CanonicalEntityType) async throws -> Bool {
        if try await store.resyncRequested(entity) != nil { return true }  // `parley resync`
        guard let last = try await store.rescannedAt(entity) else {
            try await store.markRescanned(entity, at: Date())  // the first incremental poll read everything
            return false
        }
        return Date().timeIntervalSince(last) >= Double(rescanInterval.components.seconds)
    }

    /// Reads the whole feed and publishes every record; the position is left alone.
    @discardableResult
    public func rescan(_ entity: CanonicalEntityType) async throws -> Int {
        guard let mapper = mappers[entity] else { return 0 }
        let requested = try await store.resyncRequested(entity)
        var cursor: String? = nil
        var published = 0
        repeat {
            let page = try await connector.changes(entity, since: nil, cursor: cursor)
            let hidden = try await stepsOfWrites(entity, page.records, mapper: mapper)
            let messages = try page.records.compactMap { record -> OutgoingMessage? in
                let (id, modifiedAt) = mapper.identity(of: record)
                guard let id, !hidden.contains(id) else { return nil }
                return try change(entity, id: id, modifiedAt: modifiedAt, record: record)
            }
            try await publishAll(messages)
            published += messages.count
            cursor = page.nextCursor
        } while cursor != nil
        try await store.markRescanned(entity, at: Date())
        if let requested { try await store.clearResync(entity, requestedAt: requested) }
        logger.info("full rescan published", metadata: ["system": "\(connector.system)", "entity": "\(entity)", "count": "\(published)"])
        return published
    }

    /// The records of a page that are intermediate states of a write in several requests
    /// (``WriteMarkers``), for systems that write `entity` that way.
    func stepsOfWrites(_ entity: CanonicalEntityType, _ records: [JSONObject], mapper: Mapper) async throws -> Set<String> {
        guard let markers, connector.writesInSteps(entity) else { return [] }
        let reports = records.compactMap { record -> (id: String, modifiedAt: Int64?)? in
            let (id, modifiedAt) = mapper.identity(of: record)
            return id.map { ($0, modifiedAt) }
        }
        return try await markers.hidden(entity, reports)
    }

    func change(_ entity: CanonicalEntityType, id: String, modifiedAt: Int64?, record: JSONObject) throws -> OutgoingMessage {
        try ChangeMessage.upsert(system: connector.system, entity: entity, id: id, modifiedAt: modifiedAt, record: record)
    }

    /// Publishes with confirms; any failure throws, so the position does not move past it.
    func publishAll(_ messages: [OutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        for result in await publisher.publish(contentsOf: messages) {
            if case .failure(let error) = result { throw error }
        }
    }
}
