import Foundation
import ParleyMessaging
import ParleyPostgres

/// One batch of messages in one transaction, the way the link consumers run it.
///
/// First without savepoints (``LinkEngine/handleBatch(_:in:now:)``: few statements per
/// message). When a message fails there, the transaction is rolled back and the batch runs
/// again with a savepoint per message, each handled on its own (``LinkEngine/handle(_:in:now:)``),
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

    /// Handles `envelopes` in one transaction and returns one result per envelope. Connection
    /// errors, deadlocks and serialization failures are thrown (nothing committed: the caller
    /// runs the batch again).
    public static func process(_ envelopes: [Envelope], engine: LinkEngine, pool: PostgresPool,
                               now: @escaping @Sendable () -> Date = { Date() }) async throws -> (results: [Result], path: Path) {
        guard !envelopes.isEmpty else { return ([], .batch) }
        do {
            try await pool.transaction { tx in _ = try engine.handleBatch(envelopes, in: tx, now: now()) }
            return (Array(repeating: .done, count: envelopes.count), .batch)
        } catch is LinkEngine.BatchMessageFailed {
            // Rolled back: again, one savepoint per message.
        } catch is LinkStore.RaceLost {
            // Likewise: the per-message path handles a record that became a member meanwhile.
        }
        let results = try await pool.transaction { tx -> [Result] in
            var results: [Result] = []
            for envelope in envelopes {
                _ = try tx.execute("savepoint message")
                do {
                    _ = try engine.handle(envelope, in: tx, now: now())
                    _ = try tx.execute("release savepoint message")
                    results.append(.done)
                } catch let error as PostgresError where error.isConnectionError || error.isDeadlock || error.isSerializationFailure {
                    throw error  // the whole batch again
                } catch {
                    _ = try tx.execute("rollback to savepoint message")
                    results.append(.rejected("\(error)"))
                }
            }
            return results
        }
        return (results, .savepoints)
    }
}
