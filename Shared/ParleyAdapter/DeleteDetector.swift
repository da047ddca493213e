import Foundation
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyMapping
import ParleyMessaging

/// Notices records deleted in a system whose change feed does not show deletes (PowerOffice Go:
/// its feed is `LastChangedDateTimeOffset`, and a deleted record simply stops being listed), so
/// their linked records get archived (DESIGN rule 9) through the same path as the webshop's
/// `deleted` webhook: a `change` with `operation: delete` and no record.
///
/// The feed keeps the ids it reported (``ReportedIds``). Now and then the lease holder
/// reconciles an entity:
///
/// 1. it reads the ids reported so far — **before** it lists anything;
/// 2. it lists the ids of every record the system has now, page by page, as cheaply as the API
///    allows (``SystemConnector/ids(_:cursor:)``: PowerOffice Go returns only `Id` with `Fields=Id`);
/// 3. a reported id missing from the list is a *candidate*; each candidate is asked for by id
///    (``SystemConnector/record(_:id:)``), and only one the system answers "not found" for is gone;
/// 4. a delete is published (confirmed) for each one gone, and then its id is forgotten, so it is
///    published once.
///
/// Why a record that exists never looks deleted:
///
/// - *Created while (or after) the list is read*: its id is not among those read in step 1 —
///   the feed can only report a record after it exists, and the ids were read before the list
///   began — so it is no candidate, whether the list caught it or not. Any id read in step 1
///   belongs to a record that existed before the list was read: if it still exists, the list
///   has it, but for the next case.
/// - *A list read while other records are deleted*: Go pages by position (`PageNumber`), so a
///   record deleted from an earlier page moves every later record one place forward, and the
///   record at a page boundary is never returned. It becomes a candidate; step 3 finds it and
///   it is kept. (A record created meanwhile moves later ones back: read twice, harmless.)
/// - *A list that fails half-way* publishes nothing: candidates are only taken from a list read
///   to its last page.
///
/// Step 3 costs one request per candidate; at most `confirmationsPerRound` per entity and round,
/// so a list that comes back wrong (empty) cannot turn into a flood of requests — the rest wait
/// for the next round.
public struct DeleteDetector: Sendable {
    let connector: any SystemConnector
    let reported: ReportedIds
    let publisher: AMQPPublisher
    let confirmationsPerRound: Int
    let logger: Logger

    public init(connector: any SystemConnector, reported: ReportedIds, publisher: AMQPPublisher, confirmationsPerRound: Int = 200, logger: Logger) {
        self.connector = connector
        self.reported = reported
        self.publisher = publisher
        self.confirmationsPerRound = confirmationsPerRound
        self.logger = logger
    }

    /// The ids to ask the system about: reported (read before the list) and not listed, in a
    /// stable order, at most `limit`. Pure.
    public static func candidates(reported: Set<String>, listed: Set<String>, limit: Int) -> [String] {
        Array(reported.subtracting(listed).sorted().prefix(max(0, limit)))
    }

    /// One reconciliation of `entity`; returns the ids whose delete was published.
    @discardableResult
    public func reconcile(_ entity: CanonicalEntityType, mapper: Mapper) async throws -> [String] {
        guard connector.listsIds(entity) else { return [] }
        // 1. Before the list: only records that existed before it was read can be candidates.
        let before = try await reported.all(entity)
        guard !before.isEmpty else { return [] }
        // 2. Every id the system lists now, to the last page.
        var listed: Set<String> = []
        var cursor: String? = nil
        repeat {
            let page = try await connector.ids(entity, cursor: cursor)
            for record in page.records {
                if let id = mapper.identity(of: record).id { listed.insert(id) }
            }
            cursor = page.nextCursor
        } while cursor != nil
        // 3. Each candidate asked for by id: a page shifted under the list is no delete.
        var gone: [String] = []
        for id in Self.candidates(reported: before, listed: listed, limit: confirmationsPerRound) {
            if try await connector.record(entity, id: id) == nil { gone.append(id) }
        }
        // 4. Published, then forgotten: once.
        for id in gone {
            try await publisher.publish(try ChangeMessage.delete(system: connector.system, entity: entity, id: id))
            try await reported.remove(entity, id)
            logger.info(
                "a deleted record noticed; published its delete", metadata: ["system": "\(connector.system)", "entity": "\(entity)", "id": "\(id)"])
        }
        return gone
    }
}
