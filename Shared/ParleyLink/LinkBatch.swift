import Foundation
import ParleyLinkCore
import ParleyMessaging
import ParleyPostgres
import ParleyEnvelope

/// One batch of messages in one transaction, the way the link consumers run it.
///
/// First without savepoints (``LinkEngine/handleBatch(_:in:now:outbox:)``: few statements per
/// message). When a message fails there, the transaction is rolled back and the batch runs
/// again with a savepoint per message, each handled on its own (``LinkEngine/handle(_:in:now:outbox:)``),
/// so the one bad message is rejected (the consumer dead-letters it with its reason) and the
/// others commit. The guarantee of the savepoint loop is kept; its cost (two statements per
/// message) is paid only for a batch that holds a bad message.
public enum LinkBatch {
    public enum Result: Sendable, Equatable {
        case done
        case rejected(String)
    }

    /// Which path committed the batch (for tests and logs).
    public enum Path: Sendable, Equatable {
        case batch
        case savepoints
    }

    /// What a batch's transaction did: one result per envelope, the path that committed it, and
    /// the messages it queued in the outbox (claimed for this process: hand them to
    /// ``OutboxRelay/publish(committed:)``).
    public struct Processed: Sendable {
        public var results: [Result]
        public var path: Path
        public var outbox: [OutboxMessage]
    }

    /// Handles `envelopes` in one transaction and returns one result per envelope. Connection
    /// errors, deadlocks and serialization failures are thrown (nothing committed: the caller
    /// runs the batch again).
    public static func process(
        _ envelopes: [Envelope], engine: LinkEngine, pool: PostgresPool,
        now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> Processed {
        guard !envelopes.isEmpty else { return Processed(results: [], path: .batch, outbox: []) }
        var lockingFirst: Set<UUID> = []
        batch: for _ in 0..<4 {
            do {
                let locks = lockingFirst
                let outbox = try await pool.transaction { tx in
                    let collector = OutboxCollector()
                    _ = try engine.handleBatch(envelopes, in: tx, now: now(), outbox: collector, lockingFirst: locks)
                    return collector.messages
                }
                return Processed(results: Array(repeating: .done, count: envelopes.count), path: .batch, outbox: outbox)
            } catch let busy as LinkStore.LockBusy {
                // A lock met late was held: again, with it among those taken up front.
                lockingFirst.formUnion(busy.entities)
            } catch is LinkEngine.BatchMessageFailed {
                break batch  // rolled back: again, one savepoint per message
            } catch is LinkStore.RaceLost {
                break batch  // likewise: the per-message path handles a record that became a member meanwhile
            }
        }
        let (results, outbox) = try await pool.transaction { tx -> ([Result], [OutboxMessage]) in
            var results: [Result] = []
            var outbox: [OutboxMessage] = []
            for envelope in envelopes {
                _ = try tx.execute("savepoint message")
                // One collector per message: what a message rolled back to its savepoint queued is gone.
                let collector = OutboxCollector()
                do {
                    _ = try engine.handle(envelope, in: tx, now: now(), outbox: collector)
                    _ = try tx.execute("release savepoint message")
                    results.append(.done)
                    outbox.append(contentsOf: collector.messages)
                } catch let error as PostgresError where error.isConnectionError || error.isDeadlock || error.isSerializationFailure {
                    throw error  // the whole batch again
                } catch {
                    _ = try tx.execute("rollback to savepoint message")
                    results.append(.rejected("\(error)"))
                }
            }
            return (results, outbox)
        }
        return Processed(results: results, path: .savepoints, outbox: outbox)
    }
}
