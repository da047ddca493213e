import Foundation

/// Why a document is not strict JSON, and where: `offset` is the zero-based byte offset of the
/// first offending byte in the input.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        case emptyInput
        case unexpectedEndOfInput
        /// A byte where the grammar allows something else; `expected` says what.
        case unexpectedByte(UInt8, expected: String)
        case trailingComma
        case commentsNotAllowed
        case leadingZero
        case invalidNumber(String)
        /// A raw byte below 0x20 inside a string (it must be escaped).
        case unescapedControlCharacter(UInt8)
        case invalidEscape(UInt8)
        case invalidUnicodeEscape
        /// A `\uD800`–`\uDFFF` escape that is not half of a high/low surrogate pair.
        case loneSurrogate(UInt16)
        case invalidUTF8
        case duplicateKey(String)
        case depthLimitExceeded(Int)
        case trailingData

        public var description: String {
            switch self {
            case .emptyInput: "empty input"
            case .unexpectedEndOfInput: "unexpected end of input"
            case .unexpectedByte(let byte, let expected):
                "unexpected \(JSONParseError.show(byte)), expected \(expected)"
            case .trailingComma: "trailing comma"
            case .commentsNotAllowed: "comments are not allowed in JSON"
            case .leadingZero: "numbers must not have leading zeros"
            case .invalidNumber(let why): "invalid number: \(why)"
            case .unescapedControlCharacter(let byte):
                "unescaped control character \(JSONParseError.show(byte)) in string"
            case .invalidEscape(let byte): "invalid escape \\\(JSONParseError.show(byte)) in string"
            case .invalidUnicodeEscape: "\\u must be followed by four hex digits"
            case .loneSurrogate(let unit):
                "lone surrogate \\u\(String(unit, radix: 16, uppercase: true)) (not part of a surrogate pair)"
            case .invalidUTF8: "invalid UTF-8"
            case .duplicateKey(let key): "duplicate object key \"\(key)\""
            case .depthLimitExceeded(let limit): "nesting deeper than \(limit) arrays/objects"
            case .trailingData: "data after the JSON value"
            }
        }
    }

    public let offset: Int
    public let reason: Reason

    public init(offset: Int, reason: Reason) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "malformed JSON at byte \(offset): \(reason)" }

    static func show(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16, uppercase: true)
    }
}

extension JSONValue {
    /// The default nesting limit for arrays and objects.
    public static let defaultMaxDepth = 512

    /// Parses one strict RFC 8259 JSON text.
    ///
    /// Rejects trailing commas, comments, leading zeros, `NaN`/`Infinity`, unescaped control
    /// characters, invalid UTF-8 (including encoded surrogates and overlong forms), lone
    /// surrogate escapes, duplicate object keys, a byte order mark, and nesting deeper than
    /// `maxDepth`. Whitespace around the value is allowed; anything else after it is not.
    /// Numbers keep their exact text. The parser is iterative, so deep documents cannot exhaust
    /// the stack.
    public static func parse<Bytes: Collection<UInt8>>(
        _ bytes: Bytes, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        let array = bytes as? [UInt8] ?? Array(bytes)
        var parser = JSONParser(bytes: array, maxDepth: maxDepth)
        return try parser.parseDocument()
    }

    /// Parses JSON text given as a Swift string.
    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    var i = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private enum Container {
        case array
        case object
    }

    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        if bytes.isEmpty { throw JSONParseError(offset: 0, reason: .emptyInput) }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            throw JSONParseError(offset: 0, reason: .unexpectedByte(0xEF, expected: "a JSON value (byte order marks are not allowed)"))
        }
        // Open containers, innermost last. Their contents live in separate stacks that are
        // mutated in place (never copied out and back), which keeps parsing linear.
        var open: [Container] = []
        var arrays: [[JSONValue]] = []
        var objects: [JSONObject] = []
        var keys: [String] = []
        var value: JSONValue

        // Each turn of the loop reads one value start; containers are pushed and the loop
        // continues with their first element, and completed values are folded into the
        // enclosing containers.
        parseValue: while true {
            skipWhitespace()
            guard i < bytes.count else { throw error(.unexpectedEndOfInput) }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                if open.count >= maxDepth { throw error(.depthLimitExceeded(maxDepth)) }
                i += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "}") {
                    i += 1
                    value = .object(JSONObject())
                } else {
                    keys.append(try parseKey(in: JSONObject(), first: true))
                    open.append(.object)
                    objects.append(JSONObject())
                    continue parseValue
                }
            case UInt8(ascii: "["):
                if open.count >= maxDepth { throw error(.depthLimitExceeded(maxDepth)) }
                i += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "]") {
                    i += 1
                    value = .array([])
                } else {
                    open.append(.array)
                    arrays.append([])
                    continue parseValue
                }
            default:
                value = try parseScalar()
            }

            // Fold the finished value into its container(s).
            while true {
                guard let container = open.last else {
                    skipWhitespace()
                    if i < bytes.count {
                        if bytes[i] == UInt8(ascii: "/") { throw error(.commentsNotAllowed) }
                        throw error(.trailingData)
                    }
                    return value
                }
                switch container {
                case .array:
                    arrays[arrays.count - 1].append(value)
                    skipWhitespace()
                    switch try next() {
                    case UInt8(ascii: ","):
                        skipWhitespace()
                        if peek() == UInt8(ascii: "]") { throw error(.trailingComma) }
                        continue parseValue
                    case UInt8(ascii: "]"):
                        open.removeLast()
                        value = .array(arrays.removeLast())
                    case let byte:
                        throw unexpected(byte, at: i - 1, expected: "',' or ']'")
                    }
                case .object:
                    objects[objects.count - 1].insertNew(keys.removeLast(), value)
                    skipWhitespace()
                    switch try next() {
                    case UInt8(ascii: ","):
                        skipWhitespace()
                        if peek() == UInt8(ascii: "}") { throw error(.trailingComma) }
                        keys.append(try parseKey(in: objects[objects.count - 1], first: false))
                        continue parseValue
                    case UInt8(ascii: "}"):
                        open.removeLast()
                        value = .object(objects.removeLast())
                    case let byte:
                        throw unexpected(byte, at: i - 1, expected: "',' or '}'")
                    }
                }
            }
        }
    }

    /// Reads `"key" :` (whitespace already skipped before the quote).
    private mutating func parseKey(in object: JSONObject, first: Bool) throws(JSONParseError) -> String {
        let expected = first ? "a string key or '}'" : "a string key"
        guard i < bytes.count else { throw error(.unexpectedEndOfInput) }
        guard bytes[i] == Self.quote else { throw unexpected(bytes[i], at: i, expected: expected) }
        let keyOffset = i
        let key = try parseString()
        if object[key] != nil { throw JSONParseError(offset: keyOffset, reason: .duplicateKey(key)) }
        skipWhitespace()
        let colon = try next()
        guard colon == UInt8(ascii: ":") else { throw unexpected(colon, at: i - 1, expected: "':'") }
        return key
    }

    private mutating func parseScalar() throws(JSONParseError) -> JSONValue {
        let byte = bytes[i]
        switch byte {
        case Self.quote:
            return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "/"):
            throw error(.commentsNotAllowed)
        default:
            throw unexpected(byte, at: i, expected: "a JSON value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let start = i
        let count = word.utf8CodeUnitCount
        for k in 0..<count {
            let expected = word.utf8Start[k]
            guard start + k < bytes.count else { throw JSONParseError(offset: start + k, reason: .unexpectedEndOfInput) }
            guard bytes[start + k] == expected else {
                throw unexpected(bytes[start + k], at: start + k, expected: "'\(word)'")
            }
        }
        i = start + count
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = i
        if bytes[i] == UInt8(ascii: "-") {
            i += 1
            guard isDigit(peek()) else {
                if i >= bytes.count { throw error(.unexpectedEndOfInput) }
                throw error(.invalidNumber("'-' must be followed by a digit"))
            }
        }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if isDigit(peek()) { throw JSONParseError(offset: i - 1, reason: .leadingZero) }
        } else {
            while isDigit(peek()) { i += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            i += 1
            guard isDigit(peek()) else {
                if i >= bytes.count { throw error(.unexpectedEndOfInput) }
                throw error(.invalidNumber("'.' must be followed by a digit"))
            }
            while isDigit(peek()) { i += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            i += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { i += 1 }
            guard isDigit(peek()) else {
                if i >= bytes.count { throw error(.unexpectedEndOfInput) }
                throw error(.invalidNumber("exponent must have a digit"))
            }
            while isDigit(peek()) { i += 1 }
        }
        return JSONNumber(uncheckedText: String(decoding: bytes[start..<i], as: UTF8.self))
    }

    /// Reads a string starting at the opening quote. Validates UTF-8 and escapes.
    private mutating func parseString() throws(JSONParseError) -> String {
        i += 1  // opening quote
        let contentStart = i
        // Fast path: no escapes, so the content can be decoded straight from the input.
        var buffer: [UInt8]? = nil
        var runStart = i
        while true {
            guard i < bytes.count else { throw error(.unexpectedEndOfInput) }
            let byte = bytes[i]
            switch byte {
            case Self.quote:
                let result: String
                if var escaped = buffer {
                    escaped.append(contentsOf: bytes[runStart..<i])
                    result = String(decoding: escaped, as: UTF8.self)
                } else {
                    result = String(decoding: bytes[contentStart..<i], as: UTF8.self)
                }
                i += 1
                return result
            case Self.backslash:
                if buffer == nil { buffer = [] }
                buffer!.append(contentsOf: bytes[runStart..<i])
                try parseEscape(into: &buffer!)
                runStart = i
            case 0x00..<0x20:
                throw error(.unescapedControlCharacter(byte))
            case 0x20..<0x80:
                i += 1
            default:
                try skipUTF8Sequence()
            }
        }
    }

    /// At a backslash: decodes one escape and appends its UTF-8.
    private mutating func parseEscape(into out: inout [UInt8]) throws(JSONParseError) {
        let escapeStart = i
        i += 1
        guard i < bytes.count else { throw error(.unexpectedEndOfInput) }
        let byte = bytes[i]
        i += 1
        switch byte {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            let unit = try hex4()
            var scalarValue = UInt32(unit)
            if (0xD800...0xDBFF).contains(unit) {
                // A high surrogate must be followed by an escaped low surrogate.
                guard i + 1 < bytes.count, bytes[i] == Self.backslash, bytes[i + 1] == UInt8(ascii: "u") else {
                    throw JSONParseError(offset: escapeStart, reason: .loneSurrogate(unit))
                }
                i += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw JSONParseError(offset: escapeStart, reason: .loneSurrogate(unit))
                }
                scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw JSONParseError(offset: escapeStart, reason: .loneSurrogate(unit))
            }
            let scalar = Unicode.Scalar(scalarValue)!  // surrogates excluded above
            out.append(contentsOf: UTF8.encode(scalar)!)
        default:
            throw JSONParseError(offset: escapeStart, reason: .invalidEscape(byte))
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard i < bytes.count else { throw error(.unexpectedEndOfInput) }
            let byte = bytes[i]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error(.invalidUnicodeEscape)
            }
            value = value << 4 | UInt16(digit)
            i += 1
        }
        return value
    }

    /// Validates one multi-byte UTF-8 sequence at `i` (Unicode table 3-7: no overlong forms,
    /// no encoded surrogates, nothing above U+10FFFF) and steps over it.
    private mutating func skipUTF8Sequence() throws(JSONParseError) {
        let lead = bytes[i]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        default: throw error(.invalidUTF8)
        }
        for k in 1..<length {
            guard i + k < bytes.count else { throw JSONParseError(offset: i, reason: .invalidUTF8) }
            let range = k == 1 ? secondRange : 0x80...0xBF
            guard range.contains(bytes[i + k]) else { throw JSONParseError(offset: i, reason: .invalidUTF8) }
        }
        i += length
    }

    // MARK: helpers

    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

    private func isDigit(_ byte: UInt8?) -> Bool {
        guard let byte else { return false }
        return byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    /// Consumes one byte, failing at end of input.
    private mutating func next() throws(JSONParseError) -> UInt8 {
        guard i < bytes.count else { throw error(.unexpectedEndOfInput) }
        defer { i += 1 }
        return bytes[i]
    }

    private func error(_ reason: JSONParseError.Reason) -> JSONParseError {
        JSONParseError(offset: i, reason: reason)
    }

    private func unexpected(_ byte: UInt8, at offset: Int, expected: String) -> JSONParseError {
        if byte == UInt8(ascii: "/") { return JSONParseError(offset: offset, reason: .commentsNotAllowed) }
        return JSONParseError(offset: offset, reason: .unexpectedByte(byte, expected: expected))
    }
}
