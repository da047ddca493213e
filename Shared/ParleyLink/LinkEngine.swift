import Foundation
import ParleyCanonical
import ParleyCore
import ParleyLinkCore
import ParleyMessaging
import ParleyPostgres
import ParleyEnvelope

/// The link service's decisions for one message, inside one database transaction (DESIGN
/// rules 1–10): identity and matching, field-level merge, echo suppression, references and
/// parking, one write in flight per target record, the creation chain. What must be sent is
/// written to the outbox in the same transaction and published after commit.
public struct LinkEngine: Sendable {
    public let configuration: LinkConfiguration

    public init(configuration: LinkConfiguration) {
        self.configuration = configuration
    }

    /// What handling a message did (for logs and tests).
    public typealias Outcome = LinkOutcome

    /// Handles one message in the caller's transaction, under a savepoint of its own. With an
    /// `outbox` collector, what it queues is claimed for this process and collected there, to be
    /// handed to the ``OutboxRelay`` after the commit (``OutboxRelay/publish(committed:)``).
    /// Its writes go in one statement at the end, like a batch's; when that finds the record
    /// it created a member of another entity already (``LinkStore/RaceLost``: another replica
    /// linked it meanwhile), the message is rolled back to the savepoint and handled again,
    /// now as that entity's.
    public func handle(_ envelope: Envelope, in tx: PostgresTransaction, now: Date = Date(), outbox: OutboxCollector? = nil) throws -> Outcome {
        for attempt in 1...2 {
            _ = try tx.execute("savepoint link_message")
            let collected = OutboxCollector()
            let store = LinkStore(tx: tx, cache: LinkCache(collector: outbox == nil ? nil : collected))
            do {
                let outcome = try store.claim(envelope.id) ? try handleClaimed(envelope, store: store, now: now) : .duplicate
                try store.flush()
                _ = try tx.execute("release savepoint link_message")
                outbox?.messages.append(contentsOf: collected.messages)
                return outcome
            } catch is LinkStore.RaceLost where attempt == 1 {
                _ = try tx.execute("rollback to savepoint link_message")
            }
        }
        throw LinkStore.RaceLost()
    }

    /// A message that failed inside ``handleBatch(_:in:now:)``: the transaction is unusable,
    /// roll it back; `index` is the message's place in the batch.
    public struct BatchMessageFailed: Error, CustomStringConvertible {
        public let index: Int
        public let error: any Error
        public var description: String { "message \(index) of the batch: \(error)" }
    }

    /// Handles a batch in the caller's transaction with as few statements as it can: the
    /// message ids claimed in one statement; what the messages need read, locked (all of it up
    /// front, in one order) and matched in five (``LinkStore/prefetch(_:)``); each message then decided from the
    /// transaction's ``LinkCache``, asking the database only for what the prefetch could not
    /// know (a reference, a slot in flight, a match into an existing entity); and everything
    /// written — new entities, states, snapshots, write slots, outbox rows — sent in one
    /// statement at the end (``LinkStore/flush()``). No savepoints: the first message that fails
    /// throws ``BatchMessageFailed`` (the caller rolls back and runs the batch again one
    /// savepoint per message, so that message is dead-lettered alone), as does a record another
    /// replica linked meanwhile (``LinkStore/RaceLost``); a connection error, deadlock or
    /// serialization failure is rethrown as it is. The outcomes are the same as
    /// ``handle(_:in:now:)`` one by one.
    public func handleBatch(_ envelopes: [Envelope], in tx: PostgresTransaction, now: Date = Date(), outbox: OutboxCollector? = nil) throws
        -> [Outcome]
    {
        try handleBatch(envelopes, in: tx, now: now, outbox: outbox, lockingFirst: [])
    }

    /// ``handleBatch(_:in:now:outbox:)`` that also locks `lockingFirst` up front: entities an
    /// earlier attempt met late and found locked (``LinkStore/LockBusy``, which this rethrows).
    func handleBatch(
        _ envelopes: [Envelope], in tx: PostgresTransaction, now: Date, outbox: OutboxCollector?,
        lockingFirst: Set<UUID>
    ) throws -> [Outcome] {
        let store = LinkStore(tx: tx, cache: LinkCache(lateLocksWait: false, collector: outbox))
        var claimed = try store.claim(envelopes.map(\.id))
        // Everything the batch will lock is found first and locked in one order (see
        // LinkStore.prefetch), so two transactions never wait for each other crosswise.
        try store.prefetch(Self.plan(envelopes.filter { claimed.contains($0.id) }, busy: lockingFirst, parsedInto: store.cache))
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(envelopes.count)
        for (index, envelope) in envelopes.enumerated() {
            // A message id twice in one batch: the second is a redelivery.
            guard claimed.remove(envelope.id) != nil else {
                outcomes.append(.duplicate)
                continue
            }
            do {
                outcomes.append(try handleClaimed(envelope, store: store, now: now))
            } catch let error as PostgresError where error.isConnectionError || error.isDeadlock || error.isSerializationFailure {
                throw error
            } catch let busy as LinkStore.LockBusy {
                throw busy
            } catch {
                throw BatchMessageFailed(index: index, error: error)
            }
        }
        try store.flush()
        return outcomes
    }

    /// What a batch's messages will read and lock (``LinkStore/prefetch(_:)``); canonical
    /// payloads are parsed once here and kept in `cache` for the messages' turns (a bad one is
    /// left for its turn to reject).
    static func plan(_ envelopes: [Envelope], busy: Set<UUID>, parsedInto cache: LinkCache) -> LinkStore.Prefetch {
        var plan = LinkStore.Prefetch(busy: busy)
        for envelope in envelopes {
            guard let entity = CanonicalEntityType(rawValue: envelope.entityType.rawValue) else { continue }
            switch envelope.kind {
            case .canonical:
                let record = RecordKey(envelope.system, entity, envelope.entityId)
                guard let parsed = try? ParsedCanonical(envelope, entity: entity) else {
                    plan.records[record] = plan.records[record] ?? []
                    continue
                }
                cache.parsed[envelope.id] = parsed
                plan.records[record, default: []].append(contentsOf: parsed.keys)
                for reference in parsed.payload.references {
                    plan.references.insert(RecordKey(envelope.system, reference.entity, reference.id))
                }
                if let origin = parsed.payload.origin.flatMap(GlobalRef.init), origin.entity == entity { plan.entities.insert(origin.id) }
            case .written:
                guard let payload = try? WrittenPayload(json: envelope.payload), let ref = GlobalRef(payload.globalId), ref.entity == entity else {
                    continue
                }
                plan.entities.insert(ref.id)
                plan.releases.append(LinkStore.Prefetch.Release(ref: ref, system: envelope.system))
                for reference in payload.expected.references {
                    plan.references.insert(RecordKey(envelope.system, reference.entity, reference.id))
                }
            case .failed:
                guard let payload = try? FailedPayload(json: envelope.payload), let ref = GlobalRef(payload.globalId ?? envelope.entityId),
                    ref.entity == entity
                else { continue }
                plan.entities.insert(ref.id)
            default:
                continue
            }
        }
        return plan
    }

    /// One message's decisions (``LinkRules``) against the transaction's store.
    func handleClaimed(_ envelope: Envelope, store: LinkStore, now: Date) throws -> Outcome {
        guard let entity = CanonicalEntityType(rawValue: envelope.entityType.rawValue) else {
            throw LinkError("unknown entity type \(envelope.entityType)")
        }
        var rules = LinkRules(store: store, entity: entity, cause: envelope, now: now, configuration: configuration)
        return try rules.decide()
    }

    /// Sends again every write whose lease ran out (no written or failed event came): same write
    /// id, same idempotency key, the entity's current state. Returns how many.
    public func expireLeases(in tx: PostgresTransaction, now: Date = Date(), limit: Int = 100, outbox: OutboxCollector? = nil) throws -> Int {
        var count = 0
        for (global, system) in try LinkStore(tx: tx).expiredSlots(now: now, limit: limit) {
            // Each slot on its own savepoint and store: one whose entity or references another
            // transaction holds is left for the next round (it holds locks this one may want,
            // and waiting for it could wait for a transaction that waits for this one).
            _ = try tx.execute("savepoint lease")
            let sent = OutboxCollector()
            let store = LinkStore(tx: tx, cache: LinkCache(lateLocksWait: false, collector: outbox == nil ? nil : sent))
            do {
                // The entity first, as every path locks; one another replica holds is its to handle.
                guard try store.lockEntityIfFree(global), let writeId = try store.expiredSlot(global, system, now: now),
                    let entity = try store.entityType(of: global)
                else {
                    _ = try tx.execute("release savepoint lease")
                    continue
                }
                let cause = try Envelope(
                    kind: "leaseExpired", system: system, entityType: entity.messagingEntityType,
                    entityId: GlobalRef(entity, id: global).description, time: now, payload: .null)
                var requests = WriteRequests(store: store, entity: entity, cause: cause, now: now, lease: configuration.lease)
                try requests.send(global: global, to: system, state: try store.lockEntity(global, entity), writeId: writeId)
                try store.flush()
                _ = try tx.execute("release savepoint lease")
                outbox?.messages.append(contentsOf: sent.messages)
                count += 1
            } catch is LinkStore.LockBusy {
                _ = try tx.execute("rollback to savepoint lease")
            }
        }
        return count
    }
}
