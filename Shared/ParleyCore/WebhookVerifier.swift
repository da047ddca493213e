import Foundation

/// The webshop's signed webhooks (`x-webhooks` in `docs/contracts/customwebshop.openapi.yaml`):
/// `X-Parley-Signature` is hex(HMAC-SHA256(secret, timestamp + "." + raw body)) and
/// `X-Parley-Timestamp` the Unix time it was sent; older than `tolerance` is refused, so a
/// captured request cannot be replayed later.
public struct WebhookVerifier: Sendable {
    public static let timestampHeader = "X-Parley-Timestamp"
    public static let signatureHeader = "X-Parley-Signature"

    let secret: [UInt8]
    let tolerance: TimeInterval

    public init(secret: String, tolerance: TimeInterval = 300) {
        self.secret = Array(secret.utf8)
        self.tolerance = tolerance
    }

    public enum Rejection: Error, Equatable, CustomStringConvertible {
        case missingHeaders, staleTimestamp, badSignature
        public var description: String {
            switch self {
            case .missingHeaders: "X-Parley-Timestamp and X-Parley-Signature are required"
            case .staleTimestamp: "the timestamp is not within 5 minutes of now"
            case .badSignature: "the signature does not match"
            }
        }
    }

    public func verify(timestamp: String?, signature: String?, body: [UInt8], now: Date = Date()) throws(Rejection) {
        guard let timestamp, let signature, let seconds = TimeInterval(timestamp) else { throw .missingHeaders }
        guard abs(now.timeIntervalSince1970 - seconds) <= tolerance else { throw .staleTimestamp }
        let expected = HMACSHA256.hex(key: secret, message: Array((timestamp + ".").utf8) + body)
        guard HMACSHA256.constantTimeEqual(Array(expected.utf8), Array(signature.lowercased().utf8)) else { throw .badSignature }
    }

    /// The signature a sender puts on `body` at `timestamp`.
    public func sign(timestamp: String, body: [UInt8]) -> String {
        HMACSHA256.hex(key: secret, message: Array((timestamp + ".").utf8) + body)
    }
}
