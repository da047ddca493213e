/// A validated SQL identifier (schema, table or database name).
///
/// Identifiers cannot be statement parameters, so the few places that need one (the
/// migration table's schema, test databases) accept only `[a-z_][a-z0-9_]{0,62}` and emit it
/// double-quoted. That is the only text ever spliced into SQL by this layer, and it can never
/// contain a quote.
public struct PostgresIdentifier: Sendable, Hashable, CustomStringConvertible {
    public let name: String

    public init(_ name: String) throws {
        let bytes = Array(name.utf8)
        let ok =
            !bytes.isEmpty && bytes.count <= 63
            && bytes.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
            && !(bytes[0] >= 48 && bytes[0] <= 57)
        guard ok else {
            throw PostgresError(
                kind: .invalidConfiguration,
                message: "invalid identifier '\(name.prefix(70))': use 1-63 characters of a-z, 0-9 and _, not starting with a digit")
        }
        self.name = name
    }

    /// `"name"`
    public var quoted: String { "\"" + name + "\"" }
    public var description: String { quoted }
}
