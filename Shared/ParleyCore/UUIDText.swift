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
        var result: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var utf8 = text.utf8.makeIterator()
        let ok = withUnsafeMutableBytes(of: &result) { out -> Bool in
            func nibble(_ c: UInt8?) -> UInt8? {
                switch c {
                case .some(let c) where c >= 0x30 && c <= 0x39: c - 0x30
                case .some(let c) where c >= 0x61 && c <= 0x66: c - 0x61 + 10
                case .some(let c) where c >= 0x41 && c <= 0x46: c - 0x41 + 10
                default: nil
                }
            }
            for i in 0..<16 {
                if i == 4 || i == 6 || i == 8 || i == 10 {
                    guard utf8.next() == UInt8(ascii: "-") else { return false }
                }
                guard let high = nibble(utf8.next()), let low = nibble(utf8.next()) else { return false }
                out[i] = high << 4 | low
            }
            return utf8.next() == nil
        }
        guard ok else { return nil }
        self.init(uuid: result)
    }
}
