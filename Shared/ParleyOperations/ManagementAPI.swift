import AsyncHTTPClient
import Foundation
import ParleyCore
import NIOCore
import NIOHTTP1
import ParleyAMQP
import ParleyMessaging
import ParleyJSON

/// One queue's numbers from RabbitMQ's management API.
public struct QueueStats: Sendable, Hashable {
    public var name: String
    public var type: String
    public var ready: Int
    public var unacked: Int
    public var consumers: Int
    /// Messages per second over the management plugin's sampling window (5 s by default).
    public var publishRate: Double
    /// Deliveries and gets (acked or not) per second.
    public var deliverRate: Double

    public init(
        name: String, type: String = "quorum", ready: Int = 0, unacked: Int = 0, consumers: Int = 0,
        publishRate: Double = 0, deliverRate: Double = 0
    ) {
        self.name = name
        self.type = type
        self.ready = ready
        self.unacked = unacked
        self.consumers = consumers
        self.publishRate = publishRate
        self.deliverRate = deliverRate
    }

    public var depth: Int { ready + unacked }

    /// From one element of `GET /api/queues/<vhost>`.
    public init?(json: JSONValue) {
        guard let name = json["name"]?.string else { return nil }
        func rate(_ key: String) -> Double {
            json["message_stats"]?[key]?["rate"]?.number.flatMap { Double($0.text) } ?? 0
        }
        self.init(
            name: name, type: json["type"]?.string ?? "classic",
            ready: json["messages_ready"]?.int ?? 0, unacked: json["messages_unacknowledged"]?.int ?? 0,
            consumers: json["consumers"]?.int ?? 0,
            publishRate: rate("publish_details"), deliverRate: rate("deliver_get_details"))
    }
}

/// A message looked at through the management API's "get messages" and put back.
public struct PeekedMessage: Sendable, Hashable {
    public var routingKey: String
    public var exchange: String
    public var redelivered: Bool
    public var messageId: String?
    public var type: String?
    public var headers: JSONObject
    /// The body as text when it is UTF-8 (truncated by the API to `truncate` bytes), else base64.
    public var payload: String

    public init?(json: JSONValue) {
        guard let properties = json["properties"] else { return nil }
        routingKey = json["routing_key"]?.string ?? ""
        exchange = json["exchange"]?.string ?? ""
        redelivered = json["redelivered"]?.bool ?? false
        messageId = properties["message_id"]?.string
        type = properties["type"]?.string
        headers = properties["headers"]?.object ?? JSONObject()
        payload = json["payload"]?.string ?? ""
    }
}

/// RabbitMQ's management HTTP API (`PARLEY_AMQP_MANAGEMENT_URL`) for one virtual host: queue
/// statistics and a look at messages without taking them. Errors are ``OperationsError``s that
/// name the API's URL without its password.
public struct ManagementAPI: Sendable {
    /// Scheme, host, port and path prefix, without credentials or a trailing slash.
    public let baseURL: String
    public let user: String
    let password: String
    public let vhost: String
    let timeout: Duration

    /// `url` may carry `user:password@`; without it `user` and `password` are used (the AMQP
    /// URL's, as RabbitMQ's users are the same for both).
    public init(url: String, user: String?, password: String?, vhost: String, timeout: Duration = .seconds(5)) throws {
        guard var components = URLComponents(string: url), let scheme = components.scheme, ["http", "https"].contains(scheme),
            components.host != nil
        else {
            throw OperationsError("PARLEY_AMQP_MANAGEMENT_URL must be an http(s) URL such as http://127.0.0.1:15672/ (got \(Redact.url(url)))")
        }
        let urlUser = components.user.flatMap { $0.removingPercentEncoding ?? $0 }
        let urlPassword = components.password.flatMap { $0.removingPercentEncoding ?? $0 }
        components.user = nil
        components.password = nil
        guard let resolvedUser = urlUser ?? user else {
            throw OperationsError("no user for the RabbitMQ management API: put user:password@ in PARLEY_AMQP_MANAGEMENT_URL or set PARLEY_AMQP_URL")
        }
        var base = components.string ?? url
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.user = resolvedUser
        self.password = urlPassword ?? password ?? ""
        self.vhost = vhost
        self.timeout = timeout
    }

    /// From `PARLEY_AMQP_MANAGEMENT_URL` (or `_FILE`), with the user, password and vhost of
    /// `PARLEY_AMQP_URL` (or `_FILE`); without a management URL, port 15672 on the broker's host.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ManagementAPI {
        let broker: AMQPEndpoint?
        do {
            broker = try AMQPConfiguration.fromEnvironment(environment, connectionName: "parley").endpoints.first
        } catch {
            broker = nil
        }
        let given: String?
        do { given = try Secret.read("PARLEY_AMQP_MANAGEMENT_URL", from: environment) } catch { throw OperationsError(error.description) }
        guard let url = given ?? broker.map({ "http://\($0.host):15672/" }) else {
            throw OperationsError("set PARLEY_AMQP_MANAGEMENT_URL (e.g. http://127.0.0.1:15672/) and PARLEY_AMQP_URL (its user and vhost)")
        }
        return try ManagementAPI(url: url, user: broker?.user, password: broker?.password, vhost: broker?.vhost ?? "/")
    }

    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "_-."))) ?? s
    }

    var vhostPath: String { Self.escape(vhost) }

    // MARK: Queries

    /// Every queue of the vhost, sorted by name.
    public func queues() async throws -> [QueueStats] {
        let json: JSONValue
        do {
            json = try await request(
                .GET, "/api/queues/\(vhostPath)?columns=name,type,messages_ready,messages_unacknowledged,consumers,message_stats")
        } catch is NotFound {
            throw OperationsError("no vhost \(vhost) on the broker behind \(baseURL): check the vhost in PARLEY_AMQP_URL")
        }
        return (json.array ?? []).compactMap(QueueStats.init(json:)).sorted { $0.name < $1.name }
    }

    /// One queue, or nil when it does not exist.
    public func queue(_ name: String) async throws -> QueueStats? {
        do {
            return QueueStats(json: try await request(.GET, "/api/queues/\(vhostPath)/\(Self.escape(name))"))
        } catch let error as NotFound {
            _ = error
            return nil
        }
    }

    /// Up to `count` messages from the head of `queue`, each put straight back (the API's
    /// `ack_requeue_true`): nothing is consumed. A requeued message counts as redelivered.
    public func peek(_ queue: String, count: Int, truncate: Int = 50_000) async throws -> [PeekedMessage] {
        let body: JSONValue = [
            "count": .number(JSONNumber(count)), "ackmode": "ack_requeue_true", "encoding": "auto",
            "truncate": .number(JSONNumber(truncate))
        ]
        do {
            let json = try await request(.POST, "/api/queues/\(vhostPath)/\(Self.escape(queue))/get", body: body)
            return (json.array ?? []).compactMap(PeekedMessage.init(json:))
        } catch is NotFound {
            throw OperationsError("no queue \(queue) in vhost \(vhost)")
        }
    }

    /// The broker's version (`GET /api/overview`): a cheap check that the API answers.
    public func version() async throws -> String {
        try await request(.GET, "/api/overview")["rabbitmq_version"]?.string ?? "?"
    }

    // MARK: HTTP

    struct NotFound: Error {}

    func request(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.serializedString()))
        }
        let response: HTTPClientResponse
        let data: ByteBuffer
        do {
            response = try await HTTPClient.shared.execute(
                request,
                timeout: .nanoseconds(
                    Int64(timeout.components.seconds) * 1_000_000_000
                        + timeout.components.attoseconds / 1_000_000_000))
            data = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw OperationsError.unreachable(
                "the RabbitMQ management API", at: baseURL, reason: Redact.reason(error),
                hint: "is RabbitMQ running with the management plugin? set PARLEY_AMQP_MANAGEMENT_URL")
        }
        let text = String(buffer: data)
        switch response.status.code {
        case 200..<300:
            do {
                return text.isEmpty ? .null : try JSONValue.parse(text)
            } catch {
                throw OperationsError("the RabbitMQ management API at \(baseURL) answered \(path) with something that is not JSON: \(error)")
            }
        case 401:
            throw OperationsError(
                "the RabbitMQ management API at \(baseURL) refused user \(user) (HTTP 401): check the user and password of PARLEY_AMQP_URL, or put them in PARLEY_AMQP_MANAGEMENT_URL"
            )
        case 403:
            throw OperationsError(
                "user \(user) may not use the RabbitMQ management API at \(baseURL) (HTTP 403): it needs the management (or monitoring) tag and permissions on vhost \(vhost)"
            )
        case 404:
            throw NotFound()
        default:
            throw OperationsError(
                "the RabbitMQ management API at \(baseURL) answered \(method.rawValue) \(path) with HTTP \(response.status.code): \(text.prefix(300))"
            )
        }
    }
}
