/// Every error thrown by ParleyPostgres.
///
/// `kind` says what went wrong at a coarse level; for server errors `sqlState` carries the
/// five-character SQLSTATE code (see https://www.postgresql.org/docs/15/errcodes-appendix.html)
/// together with the server's message, detail and hint. `description` is one line.
public struct PostgresError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// Could not open a connection (server down, wrong credentials, ...).
        case connectionFailed
        /// An open connection broke while (or before) a statement ran.
        case connectionLost
        /// The server rejected a statement; see `sqlState`.
        case server
        /// A result value could not be decoded into the requested Swift type.
        case decoding
        /// A Swift value could not be encoded as a parameter.
        case encoding
        /// A configuration (URL, parameters, identifiers) is invalid.
        case invalidConfiguration
        /// A transaction could not be committed because it had already failed
        /// (the server turned COMMIT into ROLLBACK).
        case transactionAborted
        /// A migration set or the migration history is inconsistent.
        case migration
        /// The connection or pool was closed.
        case closed
        /// The library was used in a way it does not support.
        case invalidUsage
    }

    public var kind: Kind
    public var message: String
    /// SQLSTATE code from the server (for `.server`, and sometimes `.connectionLost`).
    public var sqlState: String?
    public var detail: String?
    public var hint: String?
    /// Name of the constraint involved, when the server reports one.
    public var constraint: String?
    /// Column involved (decoding errors: the result column's name).
    public var column: String?

    public init(
        kind: Kind, message: String, sqlState: String? = nil, detail: String? = nil,
        hint: String? = nil, constraint: String? = nil, column: String? = nil
    ) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.column = column
    }

    /// One line: kind, SQLSTATE, message, detail and hint.
    public var description: String {
        var s = "PostgresError.\(kind.rawValue)"
        if let sqlState { s += " [\(sqlState)]" }
        s += ": " + Self.oneLine(message)
        if let detail, !detail.isEmpty { s += " | detail: " + Self.oneLine(detail) }
        if let hint, !hint.isEmpty { s += " | hint: " + Self.oneLine(hint) }
        return s
    }

    /// 23505 unique_violation.
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// 23503 foreign_key_violation.
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    /// 40001 serialization_failure (retry the transaction).
    public var isSerializationFailure: Bool { sqlState == "40001" }
    /// 40P01 deadlock_detected (retry the transaction).
    public var isDeadlock: Bool { sqlState == "40P01" }
    /// 42601 syntax_error.
    public var isSyntaxError: Bool { sqlState == "42601" }

    /// True when the failure is about the connection rather than the statement: libpq lost or
    /// could not open the connection, SQLSTATE class 08 (connection exception), or the server
    /// is shutting down / restarting (57P01 admin_shutdown, 57P02 crash_shutdown,
    /// 57P03 cannot_connect_now).
    public var isConnectionError: Bool {
        if kind == .connectionLost || kind == .connectionFailed { return true }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState)
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: { $0.isNewline }).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }
}

import Foundation
