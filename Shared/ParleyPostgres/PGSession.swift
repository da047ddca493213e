import CLibPQ
import Foundation
import Logging

/// Owns one `PGconn *`.
///
/// Invariant (why `@unchecked Sendable` is sound): after `init`, every method and property
/// of a session is used only from its connection's `ConnectionThread` (jobs submitted via
/// `PostgresConnection`), so the `PGconn` is never touched by two threads and every
/// blocking libpq call happens on that dedicated thread.
final class PGSession: @unchecked Sendable {
    let configuration: PostgresConfiguration
    let logger: Logger
    private var conn: OpaquePointer?
    private let noticeBox: NoticeBox
    /// Statements prepared on this connection, by SQL text and parameter types: the server
    /// parses and plans each once per connection instead of on every call.
    private var prepared: [PreparedKey: String] = [:]
    static let preparedLimit = 512

    struct PreparedKey: Hashable {
        let sql: String
        let types: [Oid]
    }

    init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.noticeBox = NoticeBox(logger: logger)
    }

    deinit { disconnect() }

    // MARK: Connection state

    var isConnected: Bool { conn.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// True when no transaction is open (or there is no connection at all).
    var isIdle: Bool {
        guard let conn else { return true }
        return PQtransactionStatus(conn) == PQTRANS_IDLE
    }

    var inFailedTransaction: Bool {
        guard let conn else { return false }
        return PQtransactionStatus(conn) == PQTRANS_INERROR
    }

    func disconnect() {
        if let conn { PQfinish(conn) }
        conn = nil
        prepared = [:]
    }

    /// Only these can be prepared; anything else (DDL, SAVEPOINT, CREATE DATABASE) runs unprepared.
    static func isPreparable(_ sql: String) -> Bool {
        let head = sql.drop(while: { $0.isWhitespace }).prefix(6).lowercased()
        return ["select", "insert", "update", "delete", "with", "values"].contains { head.hasPrefix($0) }
    }

    /// The name of `sql` prepared with `types` on this connection, preparing it the first time.
    private func preparedName(_ sql: String, _ types: [Oid], _ conn: OpaquePointer) throws -> String {
        let key = PreparedKey(sql: sql, types: types)
        if let name = prepared[key] { return name }
        if prepared.count >= Self.preparedLimit {
            _ = try consume(PQexec(conn, "DEALLOCATE ALL"))
            prepared = [:]
        }
        let name = "parley_\(prepared.count + 1)"
        _ = try consume(PQprepare(conn, name, sql, Int32(types.count), types))
        prepared[key] = name
        return name
    }

    /// Opens the connection if there is none, or replaces one that is found broken.
    /// An idle connection is probed with `PQconsumeInput` first (no round trip): if the
    /// server closed it (restart, terminate), libpq notices the EOF and reports
    /// CONNECTION_BAD, and we reconnect before sending anything.
    func ensureConnected() throws {
        if let c = conn {
            if PQstatus(c) == CONNECTION_OK && (PQconsumeInput(c) == 1 && PQstatus(c) == CONNECTION_OK) {
                return
            }
            logger.info("postgres connection found broken; reconnecting", metadata: ["db": "\(configuration)"])
            disconnect()
        }
        try connect()
    }

    private func connect() throws {
        let params = configuration.libpqParameters
        var keys = params.map { strdup($0.0) }
        var values = params.map { strdup($0.1) }
        keys.append(nil)
        values.append(nil)
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        let newConn: OpaquePointer? = keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: UnsafePointer<CChar>?.self) { kp in
                    v.withMemoryRebound(to: UnsafePointer<CChar>?.self) { vp in
                        PQconnectdbParams(kp.baseAddress, vp.baseAddress, 0)
                    }
                }
            }
        }
        guard let newConn else {
            throw PostgresError(kind: .connectionFailed, message: "out of memory allocating a connection")
        }
        guard PQstatus(newConn) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(newConn))
            PQfinish(newConn)
            throw PostgresError(
                kind: .connectionFailed,
                message: "cannot connect to \(configuration): " + PostgresError.oneLine(message))
        }
        PQsetNoticeProcessor(
            newConn,
            { arg, message in
                guard let arg, let message else { return }
                let box = Unmanaged<NoticeBox>.fromOpaque(arg).takeUnretainedValue()
                box.logger.debug("postgres notice: \(PostgresError.oneLine(String(cString: message)))")
            }, Unmanaged.passUnretained(noticeBox).toOpaque())
        conn = newConn
        logger.debug("postgres connected", metadata: ["db": "\(configuration)"])
    }

    // MARK: Statements

    /// Runs one parameterised statement (prepared once per connection for SELECT, INSERT,
    /// UPDATE, DELETE, WITH and VALUES unless `planning` is `.perExecution`, else PQexecParams;
    /// parameter types declared, results in text format). Throws `PostgresError`; a
    /// connection-level failure leaves the session disconnected so the next use reconnects.
    func execute(_ sql: String, _ binds: [any PostgresEncodable], planning: PostgresPlanning = .cached) throws -> PostgresQueryResult {
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            throw PostgresError(kind: .connectionLost, message: "not connected")
        }
        let count = binds.count
        var types = [Oid](repeating: 0, count: count)
        var formats = [Int32](repeating: 0, count: count)
        var lengths = [Int32](repeating: 0, count: count)
        var buffers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
        defer { buffers.forEach { free($0) } }
        for (i, bind) in binds.enumerated() {
            types[i] = type(of: bind).postgresDataType.rawValue
            switch try bind.postgresEncode() {
            case nil:
                break
            case .text(let s):
                buffers[i] = strdup(s)
            case .binary(let bytes):
                formats[i] = 1
                lengths[i] = Int32(bytes.count)
                let p = malloc(max(bytes.count, 1))!.assumingMemoryBound(to: CChar.self)
                bytes.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { memcpy(p, base, bytes.count) }
                }
                buffers[i] = p
            }
        }
        let name = planning == .cached && Self.isPreparable(sql) ? try preparedName(sql, types, conn) : nil
        let result: OpaquePointer? = buffers.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: UnsafePointer<CChar>?.self) { bp in
                if let name {
                    PQexecPrepared(conn, name, Int32(count), bp.baseAddress, lengths, formats, 0)
                } else {
                    PQexecParams(conn, sql, Int32(count), types, bp.baseAddress, lengths, formats, 0)
                }
            }
        }
        do {
            return try consume(result)
        } catch let error as PostgresError where name != nil && (error.sqlState == "0A000" || error.sqlState == "26000") {
            // The plan went stale (a table changed shape) or the statement is gone: prepare it
            // afresh next time.
            prepared[PreparedKey(sql: sql, types: types)] = nil
            throw error
        }
    }

    /// Runs SQL text that may hold several statements, without parameters (simple query
    /// protocol, PQexec). Used only for migration files, which are trusted code.
    func executeScript(_ sql: String) throws {
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            throw PostgresError(kind: .connectionLost, message: "not connected")
        }
        _ = try consume(PQexec(conn, sql))
    }

    private func consume(_ result: OpaquePointer?) throws -> PostgresQueryResult {
        guard let result else {
            throw connectionFailure(nil)
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            break
        default:
            throw connectionFailure(result)
        }
        let tag = String(cString: PQcmdStatus(result))
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        guard status == PGRES_TUPLES_OK else {
            return PostgresQueryResult(rows: [], affectedRows: affected, commandTag: tag)
        }
        let nFields = PQnfields(result)
        let nRows = PQntuples(result)
        var names: [String] = []
        var types: [PostgresDataType] = []
        for f in 0..<nFields {
            names.append(String(cString: PQfname(result, f)))
            types.append(PostgresDataType(PQftype(result, f)))
        }
        let columns = PostgresColumns(names: names, types: types)
        var rows: [PostgresRow] = []
        rows.reserveCapacity(Int(nRows))
        for r in 0..<nRows {
            var values: [String?] = []
            values.reserveCapacity(Int(nFields))
            for f in 0..<nFields {
                if PQgetisnull(result, r, f) == 1 {
                    values.append(nil)
                } else {
                    let len = Int(PQgetlength(result, r, f))
                    let p = UnsafeRawPointer(PQgetvalue(result, r, f)!).assumingMemoryBound(to: UInt8.self)
                    values.append(String(decoding: UnsafeBufferPointer(start: p, count: len), as: UTF8.self))
                }
            }
            rows.append(PostgresRow(columns: columns, values: values))
        }
        return PostgresQueryResult(rows: rows, affectedRows: nRows > 0 ? Int(nRows) : affected, commandTag: tag)
    }

    /// Builds the error for a failed result (or a missing one) and, if the connection is
    /// gone, drops it so the next use reconnects.
    private func connectionFailure(_ result: OpaquePointer?) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let result, let p = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: p)
        }
        let broken = conn.map { PQstatus($0) != CONNECTION_OK } ?? true
        let primary = field("M") ?? conn.map { String(cString: PQerrorMessage($0)) } ?? "no connection"
        var error = PostgresError(
            kind: .server, message: PostgresError.oneLine(primary), sqlState: field("C"),
            detail: field("D"), hint: field("H"), constraint: field("n"))
        if broken || result == nil {
            error.kind = .connectionLost
            disconnect()
        } else if error.isConnectionError {
            // e.g. 57P01 admin_shutdown: the server is closing this session.
            error.kind = .connectionLost
            disconnect()
        }
        return error
    }
}

/// Carries the logger into libpq's C notice callback.
final class NoticeBox: Sendable {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

/// How a statement is planned. A prepared statement's plan is cached for the connection's life
/// and, after a few executions, may be a generic plan made when the tables were small (a hash
/// join over a whole table, say); that is right for point look-ups, whose best plan does not
/// change, and wrong for a set-based statement over a batch, whose best plan depends on the
/// batch and the tables' current sizes.
public enum PostgresPlanning: Sendable {
    /// Prepared once per connection; its plan may be cached.
    case cached
    /// Parsed and planned at every execution, with the parameters' values (unnamed statement).
    case perExecution
}
