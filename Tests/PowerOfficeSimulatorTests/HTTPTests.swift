import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import Testing

@testable import PowerOfficeSimulator

/// Runs the simulator on a free port for the duration of `body`.
func withSimulator<T: Sendable>(
    _ configuration: GoSimulatorConfiguration = GoSimulatorConfiguration(), now: @escaping @Sendable () -> Int64 = MonotonicClock.wallClock,
    _ body: @Sendable (GoClient, GoSimulator) async throws -> T
) async throws -> T {
    let simulator = try GoSimulator(configuration: configuration, now: now)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = GoSimulatorServer.application(simulator: simulator, port: 0, onServerRunning: { continuation.yield($0) })
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        let client = GoClient(port: port, configuration: configuration)
        defer { group.cancelAll() }
        do {
            let result = try await body(client, simulator)
            try await client.http.shutdown()
            return result
        } catch {
            try? await client.http.shutdown()
            throw error
        }
    }
}

/// A minimal PowerOffice Go client for the tests; remembers every exchange for the
/// conformance check (method, the spec's path template, status, body).
final class GoClient: @unchecked Sendable {
    struct Exchange: Sendable { var method: String; var template: String; var status: Int; var contentType: String?; var body: [UInt8] }
    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var json: JSONValue? { try? JSONValue.parse(body) }
        var object: JSONObject { json?.objectValue ?? [:] }
    }

    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    let base: String
    let configuration: GoSimulatorConfiguration
    private let lock = NSLock()
    private var _token: String?
    private var _exchanges: [Exchange] = []
    var exchanges: [Exchange] { lock.withLock { _exchanges } }
    var token: String? {
        get { lock.withLock { _token } }
        set { lock.withLock { _token = newValue } }
    }

    init(port: Int, configuration: GoSimulatorConfiguration) {
        base = "http://127.0.0.1:\(port)"
        self.configuration = configuration
    }

    func raw(_ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Array(buffer: bytes))
    }

    @discardableResult
    func fetchToken() async throws -> Reply {
        let basic = Data("\(configuration.applicationKey):\(configuration.clientKey)".utf8).base64EncodedString()
        let reply = try await raw(
            .POST, "/OAuth/Token",
            headers: [
                ("Authorization", "Basic \(basic)"), ("Ocp-Apim-Subscription-Key", configuration.subscriptionKey),
                ("Content-Type", "application/x-www-form-urlencoded")
            ], body: Array("grant_type=client_credentials".utf8))
        token = reply.json?["access_token"]?.stringValue
        return reply
    }

    /// An authorised API call under /v2; `template` is the spec's path for the recording.
    @discardableResult
    func call(_ method: HTTPMethod, _ path: String, template: String, json: JSONValue? = nil, contentType: String? = nil) async throws -> Reply {
        if token == nil { try await fetchToken() }
        var headers = [("Ocp-Apim-Subscription-Key", configuration.subscriptionKey), ("Authorization", "Bearer \(token ?? "")")]
        if json != nil { headers.append(("Content-Type", contentType ?? (method == .PATCH ? "application/json-patch+json" : "application/json"))) }
        let reply = try await raw(method, "/v2" + path, headers: headers, body: json?.serialized())
        lock.withLock {
            _exchanges.append(
                Exchange(
                    method: method.rawValue, template: template, status: reply.status,
                    contentType: reply.headers.first(name: "Content-Type"), body: reply.body))
        }
        return reply
    }
}

@Suite("Simulator over HTTP", .serialized)
struct HTTPTests {
    @Test func subscriptionKeyAndBearerTokenAreRequired() async throws {
        try await withSimulator { client, _ in
            let noKey = try await client.raw(.GET, "/v2/Customers")
            #expect(noKey.status == 401)
            let wrongKey = try await client.raw(.GET, "/v2/Customers", headers: [("Ocp-Apim-Subscription-Key", "nope")])
            #expect(wrongKey.status == 401)
            let noToken = try await client.raw(.GET, "/v2/Customers", headers: [("Ocp-Apim-Subscription-Key", client.configuration.subscriptionKey)])
            #expect(noToken.status == 401)
            client.token = "not-a-token"
            #expect(try await client.call(.GET, "/Customers", template: "/Customers").status == 401)
            let badClient = try await client.raw(
                .POST, "/OAuth/Token",
                headers: [
                    ("Authorization", "Basic " + Data("sim-application-key:wrong".utf8).base64EncodedString()),
                    ("Ocp-Apim-Subscription-Key", client.configuration.subscriptionKey), ("Content-Type", "application/x-www-form-urlencoded")
                ], body: Array("grant_type=client_credentials".utf8))
            #expect(badClient.status == 400 && badClient.json?["error"] == .string("invalid_client"))
            let token = try await client.fetchToken()
            #expect(token.status == 200 && token.json?["expires_in"] == .int(1200) && token.json?["token_type"] == .string("Bearer"))
            #expect(try await client.call(.GET, "/Customers", template: "/Customers").status == 204)
        }
    }

    @Test func expiredTokenGets401ThenANewTokenWorks() async throws {
        let clock = ManualClock(MonotonicClock.wallClock())
        var configuration = GoSimulatorConfiguration()
        configuration.tokenLifetimeSeconds = 60
        try await withSimulator(configuration, now: clock.function) { client, simulator in
            try await client.fetchToken()
            #expect(try await client.call(.GET, "/Products", template: "/Products").status == 204)
            clock.advance(seconds: 61)
            #expect(try await client.call(.GET, "/Products", template: "/Products").status == 401)
            try await client.fetchToken()
            #expect(try await client.call(.GET, "/Products", template: "/Products").status == 204)
            // The admin endpoint expires every token at once.
            #expect(try await client.raw(.POST, "/_admin/expire-tokens").status == 204)
            #expect(try await client.call(.GET, "/Products", template: "/Products").status == 401)
        }
    }

    /// The simulator's clock stands still here, so "quick" does not depend on how busy the
    /// machine running the tests is: the token request and ten API calls are eleven requests
    /// in the same instant.
    @Test func elevenQuickRequestsGetA429WithRetryAfter() async throws {
        let clock = ManualClock(MonotonicClock.wallClock())
        try await withSimulator(now: clock.function) { client, _ in
            try await client.fetchToken()  // request 1
            var statuses: [Int] = []
            var retryAfter: String?
            for _ in 0..<10 {
                let reply = try await client.call(.GET, "/Customers", template: "/Customers")
                statuses.append(reply.status)
                if reply.status == 429 { retryAfter = reply.headers.first(name: "Retry-After") }
            }
            #expect(statuses == Array(repeating: 204, count: 9) + [429])
            #expect(retryAfter == "1")  // 0.1 s until the next token, rounded up to whole seconds
            clock.advance(seconds: 0.1)
            #expect(try await client.call(.GET, "/Customers", template: "/Customers").status == 204)
            #expect(try await client.call(.GET, "/Customers", template: "/Customers").status == 429)
            clock.advance(seconds: 1)
            #expect(try await client.call(.GET, "/Customers", template: "/Customers").status == 204)
        }
    }

    @Test func patchOfAReadOnlyPathIs400AndWrongContentTypeIs415() async throws {
        try await withSimulator { client, _ in
            let created = try await client.call(.POST, "/Customers", template: "/Customers", json: json(#"{"Name": "Fjord AS"}"#))
            #expect(created.status == 201)
            let id = created.json!["Id"]!.int64Value!
            let readOnly = try await client.call(
                .PATCH, "/Customers/\(id)", template: "/Customers/{id}",
                json: json(#"[{"op": "replace", "path": "/LastChangedDateTimeOffset", "value": "2020-01-01T00:00:00Z"}]"#))
            #expect(readOnly.status == 400)
            #expect(readOnly.json?["detail"]?.stringValue?.contains("read-only") == true)
            let asJSON = try await client.call(
                .PATCH, "/Customers/\(id)", template: "/Customers/{id}",
                json: json(#"[{"op": "replace", "path": "/Name", "value": "x"}]"#), contentType: "application/json")
            #expect(asJSON.status == 415)
        }
    }

    @Test func faultsAreSettableAtRunTime() async throws {
        try await withSimulator { client, _ in
            try await client.fetchToken()
            let set = try await client.raw(.POST, "/_admin/faults", body: Array(#"{"throttleBurst": 2, "throttleRetryAfterSeconds": 3}"#.utf8))
            #expect(set.status == 200)
            let first = try await client.call(.GET, "/Products", template: "/Products")
            #expect(first.status == 429 && first.headers.first(name: "Retry-After") == "3")
            #expect(try await client.call(.GET, "/Products", template: "/Products").status == 429)
            #expect(try await client.call(.GET, "/Products", template: "/Products").status == 204)
            _ = try await client.raw(.POST, "/_admin/faults", body: Array(#"{"errorRate": 1}"#.utf8))
            let failed = try await client.call(.GET, "/Products", template: "/Products")
            #expect(failed.status == 500 && failed.json?["title"] != nil)
            _ = try await client.raw(.POST, "/_admin/faults", body: Array(#"{"dropRate": 1}"#.utf8))
            await #expect(throws: (any Error).self) { try await client.call(.GET, "/Products", template: "/Products") }
            #expect(try await client.raw(.POST, "/_admin/reset").status == 204)
            #expect(try await client.call(.GET, "/Products", template: "/Products").status == 204)
        }
    }
}
