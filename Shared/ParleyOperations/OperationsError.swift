import Foundation

/// An operator-facing failure: one line that says what could not be done, where, and what to
/// check. Never carries a password (URLs go through ``Redact``).
public struct OperationsError: Error, Sendable, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// "cannot reach <what> at <url> (<reason>): <hint>".
    public static func unreachable(_ what: String, at url: String, reason: String, hint: String) -> OperationsError {
        OperationsError("cannot reach \(what) at \(Redact.url(url)) (\(reason)): \(hint)")
    }
}

/// Passwords out of URLs before they are printed.
public enum Redact {
    /// `scheme://user:secret@host/...` → `scheme://user:***@host/...`; every URL of a
    /// comma-separated list; anything without a password unchanged.
    public static func url(_ text: String) -> String {
        text.split(separator: ",", omittingEmptySubsequences: false).map { part -> String in
            let s = String(part)
            guard let scheme = s.range(of: "://") else { return s }
            let rest = s[scheme.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            guard let at = authority.lastIndex(of: "@") else { return s }
            let userinfo = authority[..<at]
            guard let colon = userinfo.firstIndex(of: ":") else { return s }
            return String(s[..<colon]) + ":***" + String(s[at...])
        }.joined(separator: ",")
    }

    /// A network error's cause in a few words ("connection refused", "timed out"), from its
    /// description; the description itself when it is not one of the usual ones.
    public static func reason(_ error: any Error) -> String {
        reason(text: String(describing: error))
    }

    public static func reason(text: String) -> String {
        let lower = text.lowercased()
        if lower.contains("refused") { return "connection refused" }
        if lower.contains("timeout") || lower.contains("timedout") || lower.contains("timed out") { return "timed out" }
        if lower.contains("resolve") || lower.contains("unknown host") || lower.contains("nodename") { return "host name not found" }
        if lower.contains("unreachable") { return "network unreachable" }
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}
