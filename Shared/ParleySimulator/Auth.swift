import Foundation
import ParleyCore

/// Who may call a simulator: an API key in `X-Api-Key` (the ERP), a consumer key and secret
/// with HTTP Basic (the webshop), and a bearer token (both). A credential left `nil` is not
/// accepted at all; with every credential `nil`, auth is off.
public struct AuthPolicy: Sendable, Equatable {
    public var apiKey: String?
    public var basic: (user: String, password: String)?
    public var bearerToken: String?

    public init(apiKey: String? = nil, basic: (user: String, password: String)? = nil, bearerToken: String? = nil) {
        self.apiKey = apiKey
        self.basic = basic
        self.bearerToken = bearerToken
    }

    public static func == (a: AuthPolicy, b: AuthPolicy) -> Bool {
        a.apiKey == b.apiKey && a.bearerToken == b.bearerToken && a.basic?.user == b.basic?.user
            && a.basic?.password == b.basic?.password
    }

    public var isOpen: Bool { apiKey == nil && basic == nil && bearerToken == nil }

    /// The `WWW-Authenticate` challenge of a 401.
    public var challenge: String {
        var schemes: [String] = []
        if basic != nil { schemes.append("Basic realm=\"parley-simulator\"") }
        if bearerToken != nil || schemes.isEmpty { schemes.append("Bearer") }
        return schemes.joined(separator: ", ")
    }

    /// Whether the request's headers carry an accepted credential. `header` looks a header up
    /// by name, case-insensitively.
    public func allows(header: (String) -> String?) -> Bool {
        if isOpen { return true }
        if let apiKey, let given = header("X-Api-Key"), constantTimeEquals(given, apiKey) { return true }
        guard let authorization = header("Authorization")?.trimmingCharacters(in: .whitespaces) else { return false }
        let parts = authorization.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return false }
        let scheme = parts[0].lowercased(), value = parts[1].trimmingCharacters(in: .whitespaces)
        if scheme == "bearer", let bearerToken { return constantTimeEquals(value, bearerToken) }
        if scheme == "basic", let basic, let data = Data(base64Encoded: value),
            let text = String(data: data, encoding: .utf8)
        {
            return constantTimeEquals(text, "\(basic.user):\(basic.password)")
        }
        return false
    }
}

func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    HMACSHA256.constantTimeEqual(Array(a.utf8), Array(b.utf8))
}
