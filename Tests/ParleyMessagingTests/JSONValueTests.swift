import Foundation
import Testing

@testable import ParleyMessaging
import ParleyJSON

@Suite("JSON parser")
struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONValue.parse(#" { "a" : [1, -2.5, 3e2, true, false, null, "x"], "b": {} , "c": [] } "#)
        #expect(value["a"]?[0] == 1)
        #expect(value["a"]?[1]?.number?.text == "-2.5")
        #expect(value["a"]?[2]?.number?.text == "3e2")
        #expect(value["a"]?[3] == true)
        #expect(value["a"]?[4] == false)
        #expect(value["a"]?[5] == .null)
        #expect(value["a"]?[6]?.string == "x")
        #expect(value["b"] == .object([:]))
        #expect(value["c"] == .array([]))
        #expect(value["missing"] == nil)
        #expect(value["a"]?[99] == nil)
    }

    @Test func topLevelScalars() throws {
        #expect(try JSONValue.parse("null") == .null)
        #expect(try JSONValue.parse(" 42 ") == 42)
        #expect(try JSONValue.parse(#""s""#) == "s")
        #expect(try JSONValue.parse("true") == true)
    }

    @Test func escapesAndUnicode() throws {
        let value = try JSONValue.parse(#"["\" \\ \/ \b \f \n \r \t", "\u00e6\u00F8\u00e5", "\ud83d\ude00", "ÆØÅ 😀", "\u0000"]"#)
        #expect(value[0]?.string == "\" \\ / \u{8} \u{C} \n \r \t")
        #expect(value[1]?.string == "æøå")
        #expect(value[2]?.string == "😀")
        #expect(value[3]?.string == "ÆØÅ 😀")
        #expect(value[4]?.string == "\u{0}")
    }

    @Test(arguments: [
        "12345678901234567.89", "0", "-0", "0.1", "1e3", "1E+3", "-1.5e-300", "123456789012345678901234567890.123456789",
        "9007199254740993", "100.00"
    ])
    func numbersAreKeptVerbatim(_ text: String) throws {
        let document = "{\"amount\":\(text)}"
        let value = try JSONValue.parse(document)
        #expect(value["amount"]?.number?.text == text)
        #expect(value.serializedString() == document)
    }

    @Test func decimalIsExact() throws {
        let value = try JSONValue.parse("[12345678901234567.89, 1e3, 0.1, -7, 1e200, 123456789012345678901234567890123456789012]")
        #expect(value[0]?.decimal == Decimal(string: "12345678901234567.89"))
        #expect(value[0]?.decimal?.description == "12345678901234567.89")
        #expect(value[1]?.decimal == 1000)
        #expect(value[2]?.decimal == Decimal(string: "0.1"))
        #expect(value[3]?.int == -7)
        #expect(value[1]?.int == 1000)
        #expect(value[0]?.int == nil)
        #expect(value[4]?.decimal == nil, "exponent beyond Decimal's range must not be approximated")
        #expect(value[5]?.decimal == nil, "more than 38 significant digits must not be approximated")
    }

    @Test func objectsKeepInsertionOrder() throws {
        let text = #"{"z":1,"a":2,"m":{"y":1,"b":2}}"#
        let value = try JSONValue.parse(text)
        #expect(value.object?.keys == ["z", "a", "m"])
        #expect(value.serializedString() == text)
    }

    @Test func sortedKeysOutput() throws {
        let value = try JSONValue.parse(#"{"z":1,"a":[{"d":1,"c":2}],"B":true,"é":0,"e":0}"#)
        #expect(value.serializedString(options: .sortedKeys) == #"{"B":true,"a":[{"c":2,"d":1}],"e":0,"z":1,"é":0}"#)
    }

    @Test func equalityIgnoresMemberOrderButNotNumberSpelling() throws {
        #expect(try JSONValue.parse(#"{"a":1,"b":2}"#) == JSONValue.parse(#"{"b":2,"a":1}"#))
        #expect(try JSONValue.parse("1.50") != JSONValue.parse("1.5"))
    }

    @Test func serializerRoundTrip() throws {
        let original: JSONValue = [
            "name": "Ålesund \"AS\"\n\t\u{1}",
            "price": .number(JSONNumber("12345678901234567.89")!),
            "tags": ["a", 1, 2.5, true, nil],
            "nested": ["deeper": ["deepest": [[], [:]]]]
        ]
        let bytes = original.serialized()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""Ålesund \"AS\"\n\t\u0001""#))
        let reparsed = try JSONValue.parse(bytes)
        #expect(reparsed == original)
        #expect(reparsed.serialized() == bytes)
        #expect(reparsed.object?.keys == ["name", "price", "tags", "nested"])
    }

    @Test func acceptsDepthUpToTheLimit() throws {
        let depth = JSONValue.defaultMaxDepth
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let value = try JSONValue.parse(text)
        #expect(value.serializedString() == text)
    }

    /// Guards against containers being copied per element (quadratic: a 4 MB document once took
    /// minutes in a debug build). Linear parsing takes well under a second here.
    @Test func largeDocumentsParseInLinearTime() throws {
        let count = 20_000
        let array = "[" + (0..<count).map { #"{"id":\#($0),"price":12345.67,"tags":["a"]}"# }.joined(separator: ",") + "]"
        let object = "{" + (0..<count).map { #""k\#($0)":[\#($0)]"# }.joined(separator: ",") + "}"
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try JSONValue.parse(array).array?.count == count)
        #expect(try JSONValue.parse(object).object?.count == count)
        #expect(clock.now - start < .seconds(10))
    }

    @Test func literalsAndMutation() {
        var value: JSONValue = ["a": 1]
        value["b"] = "two"
        value["a"] = nil
        #expect(value.serializedString() == #"{"b":"two"}"#)
        #expect(JSONValue(Decimal(string: "0.30")!)?.serializedString() == "0.3")
        #expect(JSONNumber("01") == nil)
        #expect(JSONNumber("1.") == nil)
        #expect(JSONNumber("-0.5e+7")?.text == "-0.5e+7")
        #expect(JSONNumber(5).text == "5")
        #expect(JSONNumber(UInt8(7)).text == "7")
        #expect(JSONNumber(1.5)?.text == "1.5")
        #expect(JSONNumber(2.0)?.text == "2")
        #expect(JSONNumber(Double.nan) == nil)
        #expect(JSONNumber(Decimal(string: "-12.340")!)?.text == "-12.34")
        let price: JSONValue = 19.99
        #expect(price.number?.text == "19.99")
    }

    @Test func codableBestEffort() throws {
        struct Holder: Codable, Equatable {
            var payload: JSONValue
        }
        let holder = Holder(payload: ["a": [1, "x", true, nil], "price": .number(JSONNumber("12345678901234567.89")!)])
        let data = try JSONEncoder().encode(holder)
        let decoded = try JSONDecoder().decode(Holder.self, from: data)
        #expect(decoded == holder)
    }
}

@Suite("JSON parser rejections")
struct JSONRejectionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: [UInt8]
        let offset: Int
        let reason: JSONParseError.Reason
        init(_ name: String, _ text: String, _ offset: Int, _ reason: JSONParseError.Reason) {
            self.init(name, Array(text.utf8), offset, reason)
        }
        init(_ name: String, _ bytes: [UInt8], _ offset: Int, _ reason: JSONParseError.Reason) {
            self.name = name
            self.bytes = bytes
            self.offset = offset
            self.reason = reason
        }
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case("empty", "", 0, .emptyInput),
        Case("only whitespace", "  ", 2, .unexpectedEndOfInput),
        Case("trailing comma in array", "[1,2,]", 5, .trailingComma),
        Case("trailing comma in object", #"{"a":1, }"#, 8, .trailingComma),
        Case("line comment", "[1] // c", 4, .commentsNotAllowed),
        Case("block comment", "[/* c */ 1]", 1, .commentsNotAllowed),
        Case("leading zero", "[01]", 1, .leadingZero),
        Case("negative leading zero", "-012", 1, .leadingZero),
        Case("bare minus", "[-]", 2, .invalidNumber("'-' must be followed by a digit")),
        Case("fraction without digits", "1.", 2, .unexpectedEndOfInput),
        Case("fraction without digits in array", "[1.]", 3, .invalidNumber("'.' must be followed by a digit")),
        Case("exponent without digits", "[1e]", 3, .invalidNumber("exponent must have a digit")),
        Case("leading plus", "+1", 0, .unexpectedByte(UInt8(ascii: "+"), expected: "a JSON value")),
        Case("leading dot", ".5", 0, .unexpectedByte(UInt8(ascii: "."), expected: "a JSON value")),
        Case("NaN", "NaN", 0, .unexpectedByte(UInt8(ascii: "N"), expected: "a JSON value")),
        Case("unescaped newline", "\"a\nb\"", 2, .unescapedControlCharacter(0x0A)),
        Case("unescaped tab", "[\"\t\"]", 2, .unescapedControlCharacter(0x09)),
        Case("unescaped NUL", [0x22, 0x00, 0x22], 1, .unescapedControlCharacter(0x00)),
        Case("invalid escape", #""\x""#, 1, .invalidEscape(UInt8(ascii: "x"))),
        Case("short unicode escape", #""\u12G4""#, 5, .invalidUnicodeEscape),
        Case("lone high surrogate", #"["ab\ud83d"]"#, 4, .loneSurrogate(0xD83D)),
        Case("high surrogate then non-surrogate", #""\ud83d\u0041""#, 1, .loneSurrogate(0xD83D)),
        Case("lone low surrogate", #""\ude00""#, 1, .loneSurrogate(0xDE00)),
        Case("invalid UTF-8 continuation", [0x22, 0x61, 0xC3, 0x28, 0x22], 2, .invalidUTF8),
        Case("stray continuation byte", [0x22, 0x80, 0x22], 1, .invalidUTF8),
        Case("overlong encoding", [0x22, 0xC0, 0xAF, 0x22], 1, .invalidUTF8),
        Case("encoded surrogate", [0x22, 0xED, 0xA0, 0x80, 0x22], 1, .invalidUTF8),
        Case("above U+10FFFF", [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 1, .invalidUTF8),
        Case("truncated sequence", [0x22, 0xE2, 0x82], 1, .invalidUTF8),
        Case(
            "byte order mark", [0xEF, 0xBB, 0xBF, 0x7B, 0x7D], 0,
            .unexpectedByte(0xEF, expected: "a JSON value (byte order marks are not allowed)")),
        Case("duplicate key", #"{"a":1,"b":2,"a":3}"#, 13, .duplicateKey("a")),
        Case("duplicate key in nested object", #"[{"x":{"k":1,"k":1}}]"#, 13, .duplicateKey("k")),
        Case("canonically equivalent keys", "{\"\u{E9}\":1,\"e\u{301}\":2}", 8, .duplicateKey("e\u{301}")),
        Case("trailing data", "{} {}", 3, .trailingData),
        Case("unterminated string", #"["abc"#, 5, .unexpectedEndOfInput),
        Case("unterminated array", "[1", 2, .unexpectedEndOfInput),
        Case("missing colon", #"{"a" 1}"#, 5, .unexpectedByte(UInt8(ascii: "1"), expected: "':'")),
        Case("unquoted key", "{a:1}", 1, .unexpectedByte(UInt8(ascii: "a"), expected: "a string key or '}'")),
        Case("single quotes", "['a']", 1, .unexpectedByte(UInt8(ascii: "'"), expected: "a JSON value")),
        Case("missing comma", "[1 2]", 3, .unexpectedByte(UInt8(ascii: "2"), expected: "',' or ']'")),
        Case("truncated literal", "tru", 3, .unexpectedEndOfInput),
        Case("misspelt literal", "[nul1]", 4, .unexpectedByte(UInt8(ascii: "1"), expected: "'null'")),
        Case(
            "too deep", String(repeating: "[", count: 513) + String(repeating: "]", count: 513), 512,
            .depthLimitExceeded(512))
    ]

    @Test(arguments: cases)
    func rejects(_ c: Case) {
        #expect(throws: JSONParseError(offset: c.offset, reason: c.reason)) {
            try JSONValue.parse(c.bytes)
        }
    }

    @Test func errorMessageNamesOffsetAndReason() {
        do {
            _ = try JSONValue.parse("[1,2,]")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "malformed JSON at byte 5: trailing comma")
        }
    }

    @Test func configurableDepth() throws {
        #expect(throws: JSONParseError(offset: 2, reason: .depthLimitExceeded(2))) {
            try JSONValue.parse("[[[]]]", maxDepth: 2)
        }
        #expect(try JSONValue.parse("[[]]", maxDepth: 2) == [[]])
    }
}
