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
            func member(_ index: Int, _ member: JSONObject.Member) {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, into: &out, sortedKeys: sortedKeys)
            }
            if sortedKeys {
                for (index, m) in object.membersSortedByKey.enumerated() { member(index, m) }
            } else {
                for index in object.indices { member(index, object[index]) }
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Runs of bytes that need no escaping (almost all of them) are copied at once.
    static func writeString(_ string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { bytes in
            var start = 0
            for i in 0..<bytes.count {
                let byte = bytes[i]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if start < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i])) }
                start = i + 1
                out.append(0x5C)
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                default:
                    out.append(UInt8(ascii: "u"))
                    out.append(0x30)
                    out.append(0x30)
                    out.append(hexDigits[Int(byte >> 4)])
                    out.append(hexDigits[Int(byte & 0x0F)])
                }
            }
            if start < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...])) }
        }
        out.append(UInt8(ascii: "\""))
    }
}
