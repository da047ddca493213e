import Foundation
import ParleyCore

/// How to reach a PostgreSQL server.
///
/// Build it from a URL (`postgres://user:pass@host:port/db?sslmode=require&application_name=x`,
/// percent-encoded parts are decoded) or from parameters. Every connection is opened with the
/// session settings `TimeZone=UTC`, `DateStyle=ISO`, `bytea_output=hex` and
/// `client_encoding=UTF8` (sent in the startup packet, not as SQL), so text results are
/// parseable, plus `application_name`.
///
/// `description` never contains the password.
public struct PostgresConfiguration: Sendable, Equatable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    public var applicationName: String
    /// Seconds libpq waits for a connection to open (0 = forever).
    public var connectTimeout: Int

    public init(
        host: String = "127.0.0.1", port: Int = 5432, user: String, password: String? = nil,
        database: String, sslMode: SSLMode = .prefer, applicationName: String = "parley",
        connectTimeout: Int = 10
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.sslMode = sslMode
        self.applicationName = applicationName
        self.connectTimeout = connectTimeout
    }

    /// Parses `postgres://` or `postgresql://` URLs. Supported query parameters: `sslmode`,
    /// `application_name`, `connect_timeout`; any other parameter is an error (better than
    /// silently ignoring it).
    public init(url: String) throws {
        func bad(_ why: String) -> PostgresError {
            // Never echo the URL itself: it may carry the password.
            PostgresError(kind: .invalidConfiguration, message: "invalid PostgreSQL URL: \(why)")
        }
        func decode(_ s: Substring, _ what: String) throws -> String {
            guard let d = String(s).removingPercentEncoding else { throw bad("bad percent-encoding in \(what)") }
            return d
        }
        var rest: Substring
        if url.hasPrefix("postgres://") {
            rest = url.dropFirst("postgres://".count)
        } else if url.hasPrefix("postgresql://") {
            rest = url.dropFirst("postgresql://".count)
        } else {
            throw bad("scheme must be postgres:// or postgresql://")
        }
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring = ""
        var authority = rest
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        }
        var user = ""
        var password: String?
        var hostPort = authority
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try decode(userInfo[..<colon], "user")
                password = try decode(userInfo[userInfo.index(after: colon)...], "password")
            } else {
                user = try decode(userInfo, "user")
            }
        }
        var host = "127.0.0.1"
        var port = 5432
        var portPart: Substring?
        if hostPort.hasPrefix("[") {  // [IPv6]:port
            guard let close = hostPort.firstIndex(of: "]") else { throw bad("unterminated IPv6 address") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() } else if !after.isEmpty { throw bad("junk after IPv6 address") }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = try decode(hostPort[..<colon], "host")
            portPart = hostPort[hostPort.index(after: colon)...]
        } else if !hostPort.isEmpty {
            host = try decode(hostPort, "host")
        }
        if let portPart {
            guard let p = Int(portPart), (1...65535).contains(p) else { throw bad("port must be 1...65535") }
            port = p
        }
        guard !user.isEmpty else { throw bad("missing user") }
        let database = try decode(path, "database")
        guard !database.isEmpty else { throw bad("missing database name") }
        self.init(host: host, port: port, user: user, password: password, database: database)
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try decode(parts[0], "parameter name")
            let value = parts.count > 1 ? try decode(parts[1], "parameter \(key)") : ""
            switch key {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else { throw bad("unknown sslmode '\(value)'") }
                sslMode = mode
            case "application_name":
                applicationName = value
            case "connect_timeout":
                guard let t = Int(value), t >= 0 else { throw bad("connect_timeout must be a non-negative integer") }
                connectTimeout = t
            default:
                throw bad("unsupported parameter '\(key)'")
            }
        }
    }

    /// The URL form with the password replaced by `***`.
    public var description: String { redactedURL }

    public var redactedURL: String {
        let userPart = percentEncode(user) + (password == nil ? "" : ":***")
        let hostPart = host.contains(":") ? "[\(host)]" : percentEncode(host)
        return "postgres://\(userPart)@\(hostPart):\(port)/\(percentEncode(database))"
            + "?sslmode=\(sslMode.rawValue)&application_name=\(percentEncode(applicationName))"
    }

    private func percentEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    /// libpq keyword/value pairs (includes the password: never log this).
    var libpqParameters: [(String, String)] {
        var p: [(String, String)] = [
            ("host", host), ("port", String(port)), ("user", user), ("dbname", database),
            ("sslmode", sslMode.rawValue), ("application_name", applicationName),
            ("connect_timeout", String(connectTimeout)), ("client_encoding", "UTF8"),
            ("options", "-c TimeZone=UTC -c DateStyle=ISO -c bytea_output=hex")
        ]
        if let password { p.append(("password", password)) }
        return p
    }
}

extension PostgresConfiguration {
    /// The names of the settings `fromEnvironment` reads (one of the two is required).
    public enum EnvironmentKey {
        public static let url = "PARLEY_DATABASE_URL"
        public static let urlFile = "PARLEY_DATABASE_URL_FILE"
    }

    /// Every key `fromEnvironment` reads.
    public static let environmentKeys: [String] = [EnvironmentKey.url, EnvironmentKey.urlFile]

    /// The database every Parley service reads from its environment: `PARLEY_DATABASE_URL`
    /// (`postgres://user:password@host:5432/db?sslmode=require`), or `PARLEY_DATABASE_URL_FILE`,
    /// a file holding it (a Docker secret). Errors name the variable, never its value.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, applicationName: String
    ) throws -> PostgresConfiguration {
        let given: String?
        do {
            given = try Secret.read(EnvironmentKey.url, from: environment)
        } catch {
            throw PostgresError(kind: .invalidConfiguration, message: error.description)
        }
        guard let url = given else {
            throw PostgresError(kind: .invalidConfiguration, message: "set PARLEY_DATABASE_URL or PARLEY_DATABASE_URL_FILE")
        }
        var configuration = try PostgresConfiguration(url: url)
        configuration.applicationName = applicationName
        return configuration
    }
}
