import Crypto

/// SHA-256 (swift-crypto's, BoringSSL underneath on Linux) as the few byte-array calls Parley
/// makes: migration checksums, canonical hashes, ids derived from names.
public enum SHA256 {
    /// Lower-case hex of the digest.
    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        Hex.lower(hash(Array(bytes)))
    }

    public static func hash(_ message: [UInt8]) -> [UInt8] {
        Array(Crypto.SHA256.hash(data: message))
    }
}

/// Lower-case hex digits of bytes.
enum Hex {
    static func lower(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
