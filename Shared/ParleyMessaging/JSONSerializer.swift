import Foundation

extension JSONValue {
    public struct SerializationOptions: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// Object members sorted by key (Unicode code point order, i.e. UTF-8 byte order)
        /// instead of insertion order. Together with the compact output and verbatim numbers this
        /// gives one spelling per value, suitable for hashing. (Not RFC 8785/JCS: numbers are
        /// kept exactly as written, never re-formatted through `Double`.)
        public static let sortedKeys = SerializationOptions(rawValue: 1 << 0)
    }

    /// Compact UTF-8 JSON: no insignificant whitespace, numbers verbatim, strings escaped
    /// minimally (`"`, `\`, and control characters; everything else is written as UTF-8).
    public func serialized(options: SerializationOptions = []) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        JSONValue.write(self, into: &out, sortedKeys: options.contains(.sortedKeys))
        return out
    }

    public func serializedData(options: SerializationOptions = []) -> Data {
        Data(serialized(options: options))
    }

    public func serializedString(options: SerializationOptions = []) -> String {
        String(decoding: serialized(options: options), as: UTF8.self)
    }

    /// Recursive; values built in memory are not depth limited, parsed ones are (see
    /// ``parse(_:maxDepth:)``).
    static func write(_ value: JSONValue, into out: inout [UInt8], sortedKeys: Bool) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(true): out.append(contentsOf: "true".utf8)
        case .bool(false): out.append(contentsOf: "false".utf8)
        case .number(let number): out.append(contentsOf: number.text.utf8)
        case .string(let string): writeString(string, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                write(element, into: &out, sortedKeys: sortedKeys)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            let members = sortedKeys ? object.membersSortedByKey : Array(object)
            for (index, member) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, into: &out, sortedKeys: sortedKeys)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x00..<0x20:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30])
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
