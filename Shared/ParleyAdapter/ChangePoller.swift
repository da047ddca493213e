import Foundation
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ServiceLifecycle
import ParleyJSON

/// Change capture by incremental polling (DESIGN "Adapters"): while this replica holds the
/// system's poll lease, every `interval` it reads each entity's feed from its durable
/// position, publishes the new records as `change` messages with confirms, and only then
/// advances the position. Every `rescanInterval` it reads each feed from the start and
/// publishes everything (the link service drops what it already knows), catching what an
/// incremental read missed. Where the system's feed does not show deletes, every
/// `reconcileInterval` it compares the ids it reported with the ids the system lists and
/// publishes a delete for each record gone (``DeleteDetector``).
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
    /// The ids the feed reported, kept for the entities the connector lists ids of
    /// (``SystemConnector/listsIds(_:)``), and the reconciliation that notices deletes with them.
    let reported: ReportedIds?
    let deletes: DeleteDetector?
    let reconcileInterval: Duration

    /// `reported`: where to keep the reported ids; with it, every `reconcileInterval` the
    /// entities the connector lists ids of are reconciled (``DeleteDetector``).
    public init(
        connector: any SystemConnector, mappings: Mappings, store: FeedPositionStore, lease: PollLease, publisher: AMQPPublisher,
        interval: Duration = .seconds(2), overlap: Duration = .seconds(5), rescanInterval: Duration = .seconds(3600),
        markers: WriteMarkers? = nil, reported: ReportedIds? = nil, reconcileInterval: Duration = .seconds(300), logger: Logger
    ) {
        self.markers = markers
        self.reported = reported
        self.deletes = reported.map { DeleteDetector(connector: connector, reported: $0, publisher: publisher, logger: logger) }
        self.reconcileInterval = reconcileInterval
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
                        if try await reconcileDue(entity) { try await reconcile(entity) }
                        metrics.polled(entity)
                    } catch {
                        metrics.polled(entity, error: error)
                        logger.warning(
                            "polling failed; trying again", metadata: ["system": "\(connector.system)", "entity": "\(entity)", "error": "\(error)"])
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
            var ids: [String] = []
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
                ids.append(id)
            }
            try await publishAll(messages)
            try await remember(entity, ids)
            published += messages.count
            cursor = page.nextCursor
        } while cursor != nil
        position.advance(past: fresh, overlap: overlap)
        try await store.save(position, entity)
        if published > 0 {
            logger.info("changes published", metadata: ["system": "\(connector.system)", "entity": "\(entity)", "count": "\(published)"])
        }
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
            let changes = try page.records.compactMap { record -> (id: String, message: OutgoingMessage)? in
                let (id, modifiedAt) = mapper.identity(of: record)
                guard let id, !hidden.contains(id) else { return nil }
                return (id, try change(entity, id: id, modifiedAt: modifiedAt, record: record))
            }
            let messages = changes.map(\.message)
            try await publishAll(messages)
            try await remember(entity, changes.map(\.id))
            published += messages.count
            cursor = page.nextCursor
        } while cursor != nil
        try await store.markRescanned(entity, at: Date())
        if let requested { try await store.clearResync(entity, requestedAt: requested) }
        logger.info("full rescan published", metadata: ["system": "\(connector.system)", "entity": "\(entity)", "count": "\(published)"])
        return published
    }

    /// Keeps the ids of published changes where deletes are noticed by listing ids.
    func remember(_ entity: CanonicalEntityType, _ ids: [String]) async throws {
        guard let reported, connector.listsIds(entity) else { return }
        try await reported.add(entity, ids)
    }

    func reconcileDue(_ entity: CanonicalEntityType) async throws -> Bool {
        guard deletes != nil, connector.listsIds(entity) else { return false }
        guard let last = try await store.reconciledAt(entity) else { return true }
        return Date().timeIntervalSince(last) >= Double(reconcileInterval.components.seconds) + Double(reconcileInterval.components.attoseconds)
            / 1e18
    }

    /// Compares the ids the feed reported with the ids the system lists, and publishes a delete
    /// for each record gone (``DeleteDetector``); returns their ids.
    @discardableResult
    public func reconcile(_ entity: CanonicalEntityType) async throws -> [String] {
        guard let deletes, let mapper = mappers[entity] else { return [] }
        let gone = try await deletes.reconcile(entity, mapper: mapper)
        try await store.markReconciled(entity, at: Date())
        return gone
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
