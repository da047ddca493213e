import Foundation
import ParleyCore

/// HMAC-SHA256 (RFC 2104) on ParleyCore's SHA-256.
public enum HMACSHA256 {
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        let blockSize = 64
        var k = key.count > blockSize ? SHA256.hash(key) : key
        k += [UInt8](repeating: 0, count: blockSize - k.count)
        let inner = SHA256.hash(k.map { $0 ^ 0x36 } + message)
        return SHA256.hash(k.map { $0 ^ 0x5c } + inner)
    }

    public static func hex(key: String, message: [UInt8]) -> String {
        mac(key: Array(key.utf8), message: message).map { String(format: "%02x", $0) }.joined()
    }
}

/// The webshop's change-webhook signature (the contract's `x-webhooks`): the lower-case hex
/// HMAC-SHA256 of `<timestamp>.<raw body>` with the shared secret, the timestamp being Unix
/// seconds in `X-Parley-Timestamp`. Receivers reject a wrong signature or a timestamp more
/// than 5 minutes from their clock.
public enum WebhookSignature {
    public static let timestampHeader = "X-Parley-Timestamp"
    public static let signatureHeader = "X-Parley-Signature"
    public static let tolerance: Int64 = 300

    public static func sign(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        HMACSHA256.hex(key: secret, message: Array("\(timestamp).".utf8) + body)
    }

    public enum Verdict: Sendable, Equatable { case valid, badSignature, staleTimestamp, malformed }

    public static func verify(
        secret: String, timestamp: String?, signature: String?, body: [UInt8], now: Int64, tolerance: Int64 = tolerance
    ) -> Verdict {
        guard let timestamp, let ts = Int64(timestamp), let signature else { return .malformed }
        guard abs(now - ts) <= tolerance else { return .staleTimestamp }
        let expected = sign(secret: secret, timestamp: ts, body: body)
        return constantTimeEquals(expected, signature.lowercased()) ? .valid : .badSignature
    }
}
