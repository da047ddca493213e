/// Names and types of a result's columns, shared by all its rows.
public final class PostgresColumns: Sendable {
    public let names: [String]
    public let types: [PostgresDataType]
    let indexByName: [String: Int]

    init(names: [String], types: [PostgresDataType]) {
        self.names = names
        self.types = types
        var index: [String: Int] = [:]
        for (i, n) in names.enumerated() where index[n] == nil { index[n] = i }  // first wins
        self.indexByName = index
    }

    public var count: Int { names.count }
}

/// One result row. Values arrive in PostgreSQL's text format; decode them with
/// `decode(_:at:)` / `decode(_:column:)`. Mismatches throw `PostgresError(kind: .decoding)`
/// naming the column, its PostgreSQL type and the requested Swift type.
public struct PostgresRow: Sendable {
    public let columns: PostgresColumns
    /// Raw text per column, nil for NULL.
    public let values: [String?]

    init(columns: PostgresColumns, values: [String?]) {
        self.columns = columns
        self.values = values
    }

    public var count: Int { values.count }

    public func isNull(at index: Int) -> Bool { values[index] == nil }

    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at index: Int) throws -> T {
        guard values.indices.contains(index) else {
            throw PostgresError(kind: .decoding, message: "no column at index \(index) (row has \(values.count) columns)")
        }
        do {
            return try T.postgresDecode(values[index], type: columns.types[index])
        } catch let failure as PostgresDecodingFailure {
            let name = columns.names[index]
            throw PostgresError(
                kind: .decoding,
                message: "cannot decode column \"\(name)\" (\(columns.types[index])) as \(T.self): \(failure.reason)",
                column: name)
        }
    }

    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column name: String) throws -> T {
        guard let index = columns.indexByName[name] else {
            throw PostgresError(
                kind: .decoding,
                message: "no column named \"\(name)\" (columns: \(columns.names.joined(separator: ", ")))",
                column: name)
        }
        return try decode(T.self, at: index)
    }

    /// `try row["id", as: Int.self]`
    public subscript<T: PostgresDecodable>(name: String, as type: T.Type) -> T {
        get throws { try decode(T.self, column: name) }
    }

    /// `try row[0, as: String.self]`
    public subscript<T: PostgresDecodable>(index: Int, as type: T.Type) -> T {
        get throws { try decode(T.self, at: index) }
    }
}

/// What a statement returned: rows (possibly none) and the affected-row count
/// (`INSERT`/`UPDATE`/`DELETE`/`SELECT` row counts as reported by the server).
public struct PostgresQueryResult: Sendable {
    public let rows: [PostgresRow]
    public let affectedRows: Int
    /// The command tag, e.g. `INSERT 0 1`.
    public let commandTag: String
}
