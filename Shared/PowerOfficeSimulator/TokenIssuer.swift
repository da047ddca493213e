/// PowerOffice Go's OAuth 2.0 client-credentials grant (`POST /OAuth/Token`): the application
/// key and the client key as HTTP Basic credentials (application key = OAuth client id,
/// client key = client secret), `grant_type=client_credentials` in a form body, and the
/// `Ocp-Apim-Subscription-Key` header. Tokens are opaque and live `lifetime` seconds
/// (PowerOffice: 20 minutes in v2). Pure: the caller passes the time.
public struct TokenIssuer: Sendable {
    public var applicationKey: String
    public var clientKey: String
    public var lifetimeMicroseconds: Int64
    private var expiries: [String: Int64] = [:]
    private var random: SeededRandom

    public init(applicationKey: String, clientKey: String, lifetimeSeconds: Double, seed: UInt64 = 0x70CE) {
        self.applicationKey = applicationKey
        self.clientKey = clientKey
        self.lifetimeMicroseconds = Int64(lifetimeSeconds * 1_000_000)
        self.random = SeededRandom(seed: seed ^ UInt64(truncatingIfNeeded: MonotonicClock.wallClock()))
    }

    public enum Refusal: Error, Equatable, Sendable {
        case invalidClient, unsupportedGrantType
    }

    public struct Issued: Sendable, Equatable {
        public var accessToken: String
        public var expiresIn: Int
        public var body: JSONValue {
            .object(["access_token": .string(accessToken), "token_type": .string("Bearer"), "expires_in": .int(Int64(expiresIn))])
        }
    }

    /// Checks the Basic credentials (`authorization` is the whole header value) and the grant type.
    public mutating func issue(authorization: String?, grantType: String?, now: Int64) throws(Refusal) -> Issued {
        guard let authorization, authorization.lowercased().hasPrefix("basic "),
            let decoded = Base64.decode(String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(bytes: decoded, encoding: .utf8)
        else { throw .invalidClient }
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0] == applicationKey, parts[1] == clientKey else { throw .invalidClient }
        guard grantType == "client_credentials" else { throw .unsupportedGrantType }
        let token = (0..<4).map { _ in String(random.next(), radix: 36) }.joined()
        expiries[token] = now + lifetimeMicroseconds
        expiries = expiries.filter { $0.value > now }
        return Issued(accessToken: token, expiresIn: Int(lifetimeMicroseconds / 1_000_000))
    }

    /// Whether `authorization` is `Bearer <token>` for a token issued and not yet expired.
    public func isValid(authorization: String?, now: Int64) -> Bool {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else { return false }
        let token = authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard let expiry = expiries[token] else { return false }
        return now < expiry
    }

    /// Every token issued so far stops working (the admin endpoint `/_admin/expire-tokens`).
    public mutating func expireAll() { expiries.removeAll() }
}

enum Base64 {
    static func decode(_ s: String) -> [UInt8]? {
        Data(base64Encoded: s).map(Array.init)
    }
    static func encode(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
}

import Foundation
import ParleySimulator
