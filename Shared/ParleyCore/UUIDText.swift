import Foundation

extension UUID {
    /// A random (version 4) UUID from the system's generator (`getrandom`). Foundation's `UUID()`
    /// on Linux opens, reads and closes `/dev/urandom` for every id, which the link service's
    /// profile showed as a measurable share of its CPU (it makes several ids per change).
    public static func random() -> UUID {
        var generator = SystemRandomNumberGenerator()
        var words = (generator.next() as UInt64, generator.next() as UInt64)
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { out in
            withUnsafeBytes(of: &words) { out.copyMemory(from: $0) }
        }
        bytes.6 = (bytes.6 & 0x0F) | 0x40  // version 4
        bytes.8 = (bytes.8 & 0x3F) | 0x80  // RFC 4122 variant
        return UUID(uuid: bytes)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `uuidString.lowercased()` without `snprintf` and a second string: the 8-4-4-4-12 form in
    /// lower case, as Parley's messages and tables spell ids.
    public var lowercasedString: String {
        withUnsafeBytes(of: uuid) { raw in
            String(unsafeUninitializedCapacity: 36) { out in
                var o = 0
                for i in 0..<16 {
                    if i == 4 || i == 6 || i == 8 || i == 10 {
                        out[o] = UInt8(ascii: "-")
                        o += 1
                    }
                    out[o] = Self.hexDigits[Int(raw[i] >> 4)]
                    out[o + 1] = Self.hexDigits[Int(raw[i] & 0x0F)]
                    o += 2
                }
                return 36
            }
        }
    }

    /// Parses the 8-4-4-4-12 form (either case) without `sscanf`; `nil` for anything else.
    public init?(text: some StringProtocol) {
        var string = String(text)
        guard let parsed = string.withUTF8({ Self.parse($0) }) else { return nil }
        self.init(uuid: parsed)
    }

    /// Hex digit values by byte, 0xFF for anything else.
    private static let nibbles: [UInt8] = (0..<256).map { b -> UInt8 in
        switch b {
        case 0x30...0x39: UInt8(b - 0x30)
        case 0x61...0x66: UInt8(b - 0x61 + 10)
        case 0x41...0x46: UInt8(b - 0x41 + 10)
        default: 0xFF
        }
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> uuid_t? {
        guard bytes.count == 36, bytes[8] == 0x2D, bytes[13] == 0x2D, bytes[18] == 0x2D, bytes[23] == 0x2D else { return nil }
        var result: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let ok = nibbles.withUnsafeBufferPointer { table -> Bool in
            withUnsafeMutableBytes(of: &result) { out -> Bool in
                var i = 0
                for o in 0..<16 {
                    if i == 8 || i == 13 || i == 18 || i == 23 { i += 1 }
                    let high = table[Int(bytes[i])], low = table[Int(bytes[i + 1])]
                    guard high < 16, low < 16 else { return false }
                    out[o] = high << 4 | low
                    i += 2
                }
                return true
            }
        }
        return ok ? result : nil
    }
}
