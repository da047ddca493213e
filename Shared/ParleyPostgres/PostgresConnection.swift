import Foundation
import Logging

/// Transaction isolation levels.
public enum PostgresIsolationLevel: Sendable {
    case readCommitted
    case repeatableRead
    case serializable

    /// The complete BEGIN statement (fixed text, nothing interpolated).
    var beginStatement: String {
        switch self {
        case .readCommitted: "BEGIN ISOLATION LEVEL READ COMMITTED"
        case .repeatableRead: "BEGIN ISOLATION LEVEL REPEATABLE READ"
        case .serializable: "BEGIN ISOLATION LEVEL SERIALIZABLE"
        }
    }
}

/// One PostgreSQL session with its own dedicated thread.
///
/// All libpq work for the connection runs as jobs, one at a time, on that thread; the async
/// methods enqueue a job and await it. The connection opens lazily on first use and
/// reopens itself when it is found broken (`CONNECTION_BAD`, or the server closed it).
///
/// Retry-once rule: a statement run through `query`/`execute` while the session is idle
/// (no transaction open) that fails with a *connection* error (see
/// `PostgresError.isConnectionError`) is retried once on a fresh connection. Inside a
/// transaction a connection error is thrown to the caller. Note that if the link dies after
/// the server ran an autocommit statement but before its reply arrived, a retried
/// non-idempotent statement can run twice; use a transaction or an idempotent statement
/// when that matters.
///
/// Call `close()` when done; a connection that is dropped without `close()` still stops its
/// thread (from `deinit`).
public final class PostgresConnection: Sendable {
    public let configuration: PostgresConfiguration
    let logger: Logger
    private let thread: ConnectionThread
    private let session: PGSession

    /// Creates the connection object and its thread; connects lazily on first use.
    public init(configuration: PostgresConfiguration, logger: Logger = Logger(label: "parley.postgres")) {
        self.configuration = configuration
        self.logger = logger
        self.thread = ConnectionThread(name: "parley-postgres")
        self.session = PGSession(configuration: configuration, logger: logger)
    }

    /// Creates a connection and opens it now (throws if the server cannot be reached).
    public static func connect(
        _ configuration: PostgresConfiguration, logger: Logger = Logger(label: "parley.postgres")
    ) async throws -> PostgresConnection {
        let c = PostgresConnection(configuration: configuration, logger: logger)
        do {
            try await c.onThread { s in try s.ensureConnected() }
        } catch {
            await c.close()
            throw error
        }
        return c
    }

    deinit {
        let session = self.session
        thread.stop { session.disconnect() }
    }

    /// Runs `body` with the session on the connection's thread.
    func onThread<T: Sendable>(_ body: @escaping @Sendable (PGSession) throws -> T) async throws -> T {
        let session = self.session
        return try await thread.run { try body(session) }
    }

    /// Runs a parameterised statement and returns its rows.
    /// `try await conn.query("select name from users where id = $1", [id])`
    public func query(_ sql: String, _ binds: [any PostgresEncodable] = []) async throws -> [PostgresRow] {
        try await run(sql, binds).rows
    }

    /// Runs a parameterised statement and returns the number of affected rows.
    @discardableResult
    public func execute(_ sql: String, _ binds: [any PostgresEncodable] = []) async throws -> Int {
        try await run(sql, binds).affectedRows
    }

    /// Runs a parameterised statement and returns rows, affected count and command tag.
    public func run(_ sql: String, _ binds: [any PostgresEncodable] = []) async throws -> PostgresQueryResult {
        try await onThread { s in try s.executeWithRetry(sql, binds) }
    }

    /// Runs `body` inside a transaction on the connection's own thread: COMMIT when it
    /// returns, ROLLBACK when it throws (the error is rethrown). A failing COMMIT throws.
    ///
    /// The body is synchronous and runs on the connection thread, so its statements cost no
    /// thread hops and nothing else can interleave on this session. It must not block on
    /// other async work (no semaphores waiting for tasks) and must not let the transaction
    /// object escape.
    public func transaction<T: Sendable>(
        isolation: PostgresIsolationLevel = .readCommitted,
        _ body: @escaping @Sendable (PostgresTransaction) throws -> T
    ) async throws -> T {
        try await onThread { s in try s.runTransaction(isolation: isolation, body) }
    }

    /// Rolls back a transaction left open by hand (e.g. a `query("BEGIN")`). Used by the pool
    /// before a connection is reused.
    func resetSessionState() async {
        _ = try? await onThread { s in
            if s.isConnected && !s.isIdle { _ = try? s.execute("ROLLBACK", []) }
        }
    }

    /// Closes the libpq connection and stops the thread. Later calls throw `.closed`.
    public func close() async {
        let session = self.session
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let accepted = thread.stop {
                session.disconnect()
                c.resume()
            }
            if !accepted { c.resume() }
        }
    }
}

extension PGSession {
    /// Autocommit statement with the retry-once rule (see `PostgresConnection`).
    func executeWithRetry(_ sql: String, _ binds: [any PostgresEncodable]) throws -> PostgresQueryResult {
        try ensureConnected()
        let wasIdle = isIdle
        do {
            return try execute(sql, binds)
        } catch let error as PostgresError where error.isConnectionError && wasIdle {
            logger.warning("postgres connection lost; reconnecting and retrying once", metadata: ["error": "\(error)"])
            disconnect()
            try ensureConnected()
            return try execute(sql, binds)
        }
    }

    /// `retryBegin: false` when the session carries state a fresh connection would not have
    /// (the migrator's advisory lock).
    func runTransaction<T>(
        isolation: PostgresIsolationLevel, retryBegin: Bool = true, _ body: (PostgresTransaction) throws -> T
    ) throws -> T {
        if retryBegin {
            try ensureConnected()
        } else if !isConnected {
            throw PostgresError(kind: .connectionLost, message: "connection lost")
        }
        guard isIdle else {
            throw PostgresError(kind: .invalidUsage, message: "a transaction is already open on this connection")
        }
        // BEGIN runs nothing yet, so a connection error here may be retried once.
        if retryBegin {
            _ = try executeWithRetry(isolation.beginStatement, [])
        } else {
            _ = try execute(isolation.beginStatement, [])
        }
        let tx = PostgresTransaction(session: self)
        defer { tx.isActive = false }
        let value: T
        do {
            value = try body(tx)
        } catch {
            if isConnected && !isIdle {
                do { _ = try execute("ROLLBACK", []) } catch {
                    logger.warning("postgres rollback failed", metadata: ["error": "\(error)"])
                }
            }
            throw error
        }
        let commit = try execute("COMMIT", [])
        if commit.commandTag == "ROLLBACK" {
            throw PostgresError(
                kind: .transactionAborted,
                message: "transaction was rolled back at COMMIT because a statement in it failed")
        }
        return value
    }
}

/// A transaction in progress, handed to the body of `transaction { tx in ... }`.
/// Its methods are synchronous and run on the connection's own thread; it is only valid
/// inside the body.
public final class PostgresTransaction {
    let session: PGSession
    var isActive = true

    init(session: PGSession) { self.session = session }

    private func check() throws {
        guard isActive else {
            throw PostgresError(kind: .invalidUsage, message: "transaction used outside its closure")
        }
    }

    public func query(_ sql: String, _ binds: [any PostgresEncodable] = [], planning: PostgresPlanning = .cached) throws -> [PostgresRow] {
        try run(sql, binds, planning: planning).rows
    }

    @discardableResult
    public func execute(_ sql: String, _ binds: [any PostgresEncodable] = [], planning: PostgresPlanning = .cached) throws -> Int {
        try run(sql, binds, planning: planning).affectedRows
    }

    public func run(_ sql: String, _ binds: [any PostgresEncodable] = [], planning: PostgresPlanning = .cached) throws -> PostgresQueryResult {
        try check()
        return try session.execute(sql, binds, planning: planning)
    }
}
