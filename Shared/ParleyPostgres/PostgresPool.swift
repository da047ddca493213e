import Foundation
import Logging

/// A small pool of `PostgresConnection`s (each with its own thread).
///
/// Connections are created lazily, up to `maxConnections`; when all are busy, callers wait
/// in FIFO order (a cancelled waiter leaves the queue with `CancellationError`).
///
/// Reconnect rule: a connection found broken (`CONNECTION_BAD`, or closed by the server,
/// e.g. after a restart) is reset and reconnected on its next use. A `query`/`execute`
/// that fails with a connection error on an idle pooled connection (no transaction open)
/// is retried ONCE on a fresh connection, transparently. Inside `transaction` a connection
/// error during the body or COMMIT is thrown to the caller (only a failed BEGIN, before
/// anything ran, is retried).
public final class PostgresPool: Sendable {
    public let configuration: PostgresConfiguration
    public let maxConnections: Int
    private let logger: Logger
    private let state: PoolState

    public init(
        configuration: PostgresConfiguration, maxConnections: Int = 4,
        logger: Logger = Logger(label: "parley.postgres.pool")
    ) {
        precondition(maxConnections > 0, "maxConnections must be positive")
        self.configuration = configuration
        self.maxConnections = maxConnections
        self.logger = logger
        self.state = PoolState(maxConnections: maxConnections)
    }

    /// Leases a connection for the duration of `body`, then returns it to the pool.
    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection: PostgresConnection
        switch try await state.acquire() {
        case .connection(let c):
            connection = c
        case .newSlot:
            connection = PostgresConnection(configuration: configuration, logger: logger)
        }
        do {
            let value = try await body(connection)
            await release(connection)
            return value
        } catch {
            await release(connection)
            throw error
        }
    }

    private func release(_ connection: PostgresConnection) async {
        await connection.resetSessionState()
        if let toClose = await state.release(connection) { await toClose.close() }
    }

    /// See `PostgresConnection.query`. Retried once on a connection error (idle connection).
    public func query(_ sql: String, _ binds: [any PostgresEncodable] = []) async throws -> [PostgresRow] {
        try await withConnection { try await $0.query(sql, binds) }
    }

    /// See `PostgresConnection.execute`. Retried once on a connection error (idle connection).
    @discardableResult
    public func execute(_ sql: String, _ binds: [any PostgresEncodable] = []) async throws -> Int {
        try await withConnection { try await $0.execute(sql, binds) }
    }

    public func run(_ sql: String, _ binds: [any PostgresEncodable] = []) async throws -> PostgresQueryResult {
        try await withConnection { try await $0.run(sql, binds) }
    }

    /// See `PostgresConnection.transaction`: the synchronous body runs on the leased
    /// connection's own thread; COMMIT on return, ROLLBACK on throw.
    public func transaction<T: Sendable>(
        isolation: PostgresIsolationLevel = .readCommitted,
        _ body: @escaping @Sendable (PostgresTransaction) throws -> T
    ) async throws -> T {
        try await withConnection { try await $0.transaction(isolation: isolation, body) }
    }

    /// Closes idle connections now and busy ones when they are returned; waiters and later
    /// calls get `PostgresError.closed`.
    public func close() async {
        for c in await state.close() { await c.close() }
    }
}

/// The pool's bookkeeping.
actor PoolState {
    enum Lease: Sendable {
        case connection(PostgresConnection)
        /// The caller may create a new connection (counted already).
        case newSlot
    }

    let maxConnections: Int
    private var idle: [PostgresConnection] = []
    private var opened = 0
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Lease, any Error>)] = []
    private var nextWaiterID: UInt64 = 0
    private var closed = false

    init(maxConnections: Int) { self.maxConnections = maxConnections }

    func acquire() async throws -> Lease {
        if closed { throw PostgresError(kind: .closed, message: "pool is closed") }
        if let c = idle.popLast() { return .connection(c) }
        if opened < maxConnections {
            opened += 1
            return .newSlot
        }
        nextWaiterID += 1
        let id = nextWaiterID
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: UInt64) {
        if let i = waiters.firstIndex(where: { $0.id == id }) {
            waiters.remove(at: i).continuation.resume(throwing: CancellationError())
        }
    }

    /// Hands the connection to the next waiter or parks it; returns it if it must be closed.
    func release(_ connection: PostgresConnection) -> PostgresConnection? {
        if closed {
            opened -= 1
            return connection
        }
        if !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: .connection(connection))
        } else {
            idle.append(connection)
        }
        return nil
    }

    func close() -> [PostgresConnection] {
        closed = true
        for w in waiters { w.continuation.resume(throwing: PostgresError(kind: .closed, message: "pool is closed")) }
        waiters.removeAll()
        let toClose = idle
        opened -= idle.count
        idle.removeAll()
        return toClose
    }
}

/// Dropping a database (scratch databases of tests and benchmarks), whoever is still connected.
/// `WITH (FORCE)` ends other sessions, but PostgreSQL 15 refuses it to a role that may not
/// signal every one of them — an autovacuum worker visiting the database is such a session
/// ("must be a member of the role whose process is being terminated"); a plain `DROP DATABASE`
/// ends autovacuum workers itself, so it is tried next, a few times, while other sessions finish.
enum DatabaseDrop {
    static func drop(_ name: PostgresIdentifier, attempts: Int, execute: (String) async throws -> Void) async throws {
        do {
            try await execute("DROP DATABASE IF EXISTS " + name.quoted + " WITH (FORCE)")
            return
        } catch let error as PostgresError where error.sqlState == "42501" {
            // Not allowed to end some session: wait for it below.
        }
        var attempt = 1
        while true {
            do {
                try await execute("DROP DATABASE IF EXISTS " + name.quoted)
                return
            } catch let error as PostgresError where error.sqlState == "55006" && attempt < attempts {
                attempt += 1
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }
}

extension PostgresPool {
    /// Drops a database even while others are connected (``DatabaseDrop``).
    public func dropDatabase(_ name: PostgresIdentifier, attempts: Int = 20) async throws {
        try await DatabaseDrop.drop(name, attempts: attempts) { _ = try await execute($0) }
    }
}

extension PostgresConnection {
    /// Drops a database even while others are connected (``DatabaseDrop``).
    public func dropDatabase(_ name: PostgresIdentifier, attempts: Int = 20) async throws {
        try await DatabaseDrop.drop(name, attempts: attempts) { _ = try await execute($0) }
    }
}
