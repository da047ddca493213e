import Foundation
import ParleyCore

/// One broker address, parsed from `amqp://user:pass@host:port/vhost` or `amqps://…`.
/// `description` never shows the password.
public struct AMQPEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var vhost: String
    public var user: String
    public var password: String
    public var tls: Bool

    public init(
        host: String, port: Int? = nil, vhost: String = "/", user: String = "guest",
        password: String = "guest", tls: Bool = false
    ) {
        self.host = host
        self.port = port ?? (tls ? 5671 : 5672)
        self.vhost = vhost
        self.user = user
        self.password = password
        self.tls = tls
    }

    /// Parses an AMQP URI (https://www.rabbitmq.com/uri-spec.html): the vhost is the
    /// percent-decoded path without its leading slash; an absent path means `/`.
    public init(url string: String) throws {
        let trimmed = string.trimmingCharacters(in: .whitespaces)
        guard let schemeEnd = trimmed.range(of: "://") else {
            throw AMQPError.invalidURL("missing scheme in \(Self.redact(trimmed))")
        }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "amqp" || scheme == "amqps" else {
            throw AMQPError.invalidURL("scheme must be amqp or amqps, not \(scheme)")
        }
        tls = scheme == "amqps"
        var rest = trimmed[schemeEnd.upperBound...]
        if let q = rest.firstIndex(of: "?") { rest = rest[..<q] }
        var path: Substring? = nil
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var userinfo: Substring? = nil
        if let at = rest.lastIndex(of: "@") {
            userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        // host, [ipv6], :port
        var hostPart = rest
        var portPart: Substring? = nil
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw AMQPError.invalidURL("unclosed [ in host") }
            let after = hostPart[hostPart.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() }
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
        } else if let colon = hostPart.lastIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        host = hostPart.isEmpty ? "localhost" : try Self.decode(hostPart, "host")
        if let portPart, !portPart.isEmpty {
            guard let p = Int(portPart), (1...65535).contains(p) else {
                throw AMQPError.invalidURL("port must be 1-65535, not \(portPart)")
            }
            port = p
        } else {
            port = tls ? 5671 : 5672
        }
        if let userinfo {
            if let colon = userinfo.firstIndex(of: ":") {
                user = try Self.decode(userinfo[..<colon], "user")
                password = try Self.decode(userinfo[userinfo.index(after: colon)...], "password")
            } else {
                user = try Self.decode(userinfo, "user")
                password = ""
            }
        } else {
            user = "guest"
            password = "guest"
        }
        if let path {
            vhost = try Self.decode(path, "vhost")
        } else {
            vhost = "/"
        }
    }

    private static func decode(_ s: Substring, _ part: String) throws -> String {
        guard let v = String(s).removingPercentEncoding else {
            throw AMQPError.invalidURL("bad percent-encoding in \(part)")
        }
        return v
    }

    static func redact(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://"), let at = url[schemeEnd.upperBound...].lastIndex(of: "@") else { return url }
        let userinfo = url[schemeEnd.upperBound..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }

    public var description: String {
        let vh = vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
        return "\(tls ? "amqps" : "amqp")://\(user):***@\(host):\(port)/\(vh)"
    }
}

/// TLS settings for `amqps://` endpoints (rabbitmq-c's OpenSSL socket).
public struct AMQPTLSOptions: Sendable, Hashable {
    public var caCertificatePath: String?
    public var clientCertificatePath: String?
    public var clientKeyPath: String?
    public var verifyPeer: Bool
    public var verifyHostname: Bool

    public init(
        caCertificatePath: String? = nil, clientCertificatePath: String? = nil,
        clientKeyPath: String? = nil, verifyPeer: Bool = true, verifyHostname: Bool = true
    ) {
        self.caCertificatePath = caCertificatePath
        self.clientCertificatePath = clientCertificatePath
        self.clientKeyPath = clientKeyPath
        self.verifyPeer = verifyPeer
        self.verifyHostname = verifyHostname
    }
}

/// Everything needed to open (and re-open) a connection.
public struct AMQPConfiguration: Sendable {
    /// Broker addresses, tried in turn (a cluster); after a failure the next one is tried.
    public var endpoints: [AMQPEndpoint]
    /// Heartbeat interval negotiated with the broker; a peer silent for two intervals is dead.
    public var heartbeat: Duration
    public var connectTimeout: Duration
    /// Shown in the management UI as the connection's name.
    public var connectionName: String
    public var frameMax: Int32
    public var reconnect: Backoff
    public var tls: AMQPTLSOptions
    /// How a connection meets the topology (``TopologyMode``).
    public var topology: TopologyMode = .declare

    /// Whether publishers and consumers create the topology or only check that it is there.
    public enum TopologyMode: String, Sendable, CaseIterable {
        /// Declare every exchange, queue and binding on each (re)connect (idempotent); needs the
        /// configure permission on all of them. For development, tests and single-user setups.
        case declare
        /// Passive declarations only: a missing exchange or queue is an error, nothing is
        /// created, bound or changed. Needs no configure permission at all, so a deployment
        /// whose administrator imported the topology can give each service only the queues it
        /// reads and the exchanges it writes (docs/deployment.md).
        case verify
    }

    public init(
        endpoints: [AMQPEndpoint], heartbeat: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(10), connectionName: String = "parley",
        frameMax: Int32 = 131_072, reconnect: Backoff = Backoff(), tls: AMQPTLSOptions = .init()
    ) {
        precondition(!endpoints.isEmpty, "at least one broker endpoint")
        self.endpoints = endpoints
        self.heartbeat = heartbeat
        self.connectTimeout = connectTimeout
        self.connectionName = connectionName
        self.frameMax = frameMax
        self.reconnect = reconnect
        self.tls = tls
    }

    /// From one URL or a comma-separated list of URLs (a cluster).
    public init(urls: String, connectionName: String = "parley") throws {
        let parts = urls.split(separator: ",").map { String($0) }.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !parts.isEmpty else { throw AMQPError.invalidURL("no URL given") }
        self.init(endpoints: try parts.map(AMQPEndpoint.init(url:)), connectionName: connectionName)
    }
}
