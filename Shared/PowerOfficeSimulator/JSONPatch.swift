import Foundation

/// RFC 6902 JSON Patch over `JSONValue`, with RFC 6901 pointers. Pure; the store decides which
/// paths a patch may touch (readOnly properties) before applying it.
public struct JSONPatch: Sendable, Equatable {
    public enum Op: String, Sendable { case add, remove, replace, move, copy, test }

    public struct Operation: Sendable, Equatable {
        public var op: Op
        public var path: [String]
        public var from: [String]?
        public var value: JSONValue?
        public init(op: Op, path: [String], from: [String]? = nil, value: JSONValue? = nil) {
            self.op = op
            self.path = path
            self.from = from
            self.value = value
        }
    }

    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public var operations: [Operation]

    public init(operations: [Operation]) { self.operations = operations }

    /// Parses a patch document: an array of `{"op", "path", "value"?, "from"?}` objects.
    public init(parsing document: JSONValue) throws(Failure) {
        guard case .array(let items) = document else { throw Failure(message: "A JSON Patch document must be an array of operations.") }
        var operations: [Operation] = []
        for (index, item) in items.enumerated() {
            guard case .object(let fields) = item else { throw Failure(message: "Operation \(index) is not an object.") }
            // ASP.NET reads the member names case-insensitively.
            var lower: [String: JSONValue] = [:]
            for (k, v) in fields { lower[k.lowercased()] = v }
            guard let opName = lower["op"]?.stringValue, let op = Op(rawValue: opName.lowercased()) else {
                throw Failure(message: "Operation \(index): 'op' must be one of add, remove, replace, move, copy, test.")
            }
            guard let pathText = lower["path"]?.stringValue else { throw Failure(message: "Operation \(index): 'path' is required.") }
            let path = try Self.pointer(pathText)
            var from: [String]?
            if op == .move || op == .copy {
                guard let fromText = lower["from"]?.stringValue else { throw Failure(message: "Operation \(index): '\(opName)' needs 'from'.") }
                from = try Self.pointer(fromText)
            }
            let value = lower["value"]
            if [.add, .replace, .test].contains(op), value == nil {
                throw Failure(message: "Operation \(index): '\(opName)' needs 'value'.")
            }
            operations.append(Operation(op: op, path: path, from: from, value: value))
        }
        self.operations = operations
    }

    /// RFC 6901: "" is the whole document, "/a/b" the tokens a, b; ~1 is "/" and ~0 is "~".
    public static func pointer(_ text: String) throws(Failure) -> [String] {
        if text.isEmpty { return [] }
        guard text.hasPrefix("/") else { throw Failure(message: "The path '\(text)' is not a JSON pointer (it must start with '/').") }
        return text.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    public func apply(to document: JSONValue) throws(Failure) -> JSONValue {
        var doc = document
        for operation in operations {
            switch operation.op {
            case .add:
                doc = try Self.add(operation.value!, at: operation.path, in: doc)
            case .remove:
                doc = try Self.remove(at: operation.path, in: doc).document
            case .replace:
                _ = try Self.get(operation.path, in: doc)
                doc = try Self.add(operation.value!, at: operation.path, in: Self.remove(at: operation.path, in: doc).document, replacing: true)
            case .move:
                let removed = try Self.remove(at: operation.from!, in: doc)
                doc = try Self.add(removed.value, at: operation.path, in: removed.document)
            case .copy:
                doc = try Self.add(try Self.get(operation.from!, in: doc), at: operation.path, in: doc)
            case .test:
                guard try Self.get(operation.path, in: doc) == operation.value! else {
                    throw Failure(message: "The test at '/\(operation.path.joined(separator: "/"))' failed.")
                }
            }
        }
        return doc
    }

    static func get(_ path: [String], in doc: JSONValue) throws(Failure) -> JSONValue {
        var current = doc
        for token in path {
            switch current {
            case .object(let o):
                guard let next = o[token] else { throw Failure(message: "The target location '\(token)' was not found.") }
                current = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i) else { throw Failure(message: "The index '\(token)' is out of bounds.") }
                current = a[i]
            default:
                throw Failure(message: "The target location '\(token)' is inside a value that is neither an object nor an array.")
            }
        }
        return current
    }

    /// Adds (or, with `replacing`, puts back at the same index) `value` at `path`.
    static func add(_ value: JSONValue, at path: [String], in doc: JSONValue, replacing: Bool = false) throws(Failure) -> JSONValue {
        guard let token = path.first else { return value }
        let rest = Array(path.dropFirst())
        switch doc {
        case .object(var o):
            if rest.isEmpty {
                o[token] = value
            } else {
                guard let child = o[token] else { throw Failure(message: "The target location '\(token)' was not found.") }
                o[token] = try add(value, at: rest, in: child, replacing: replacing)
            }
            return .object(o)
        case .array(var a):
            if rest.isEmpty {
                if token == "-" && !replacing { a.append(value); return .array(a) }
                guard let i = Int(token), i >= 0, i <= a.count else { throw Failure(message: "The index '\(token)' is out of bounds.") }
                a.insert(value, at: i)
                return .array(a)
            }
            guard let i = Int(token), a.indices.contains(i) else { throw Failure(message: "The index '\(token)' is out of bounds.") }
            a[i] = try add(value, at: rest, in: a[i], replacing: replacing)
            return .array(a)
        default:
            throw Failure(message: "The target location '\(token)' is inside a value that is neither an object nor an array.")
        }
    }

    static func remove(at path: [String], in doc: JSONValue) throws(Failure) -> (document: JSONValue, value: JSONValue) {
        guard let token = path.first else { throw Failure(message: "The whole document cannot be removed.") }
        let rest = Array(path.dropFirst())
        switch doc {
        case .object(var o):
            guard let child = o[token] else { throw Failure(message: "The target location '\(token)' was not found.") }
            if rest.isEmpty { o[token] = nil; return (.object(o), child) }
            let inner = try remove(at: rest, in: child)
            o[token] = inner.document
            return (.object(o), inner.value)
        case .array(var a):
            guard let i = Int(token), a.indices.contains(i) else { throw Failure(message: "The index '\(token)' is out of bounds.") }
            if rest.isEmpty { let v = a.remove(at: i); return (.array(a), v) }
            let inner = try remove(at: rest, in: a[i])
            a[i] = inner.document
            return (.array(a), inner.value)
        default:
            throw Failure(message: "The target location '\(token)' is inside a value that is neither an object nor an array.")
        }
    }
}
