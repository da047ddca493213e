import Crypto

/// HMAC-SHA256 (RFC 2104, swift-crypto's): the webshop's webhook signatures.
public enum HMACSHA256 {
    public static func authenticationCode(key: [UInt8], message: [UInt8]) -> [UInt8] {
        Array(HMAC<Crypto.SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// Lower-case hex of the code.
    public static func hex(key: [UInt8], message: [UInt8]) -> String {
        Hex.lower(authenticationCode(key: key, message: message))
    }

    /// Compares two codes in time independent of where they differ.
    public static func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
