/// Everything the simulated PowerOffice Go API decides, as one actor: a request in, a response
/// out. The HTTP server (`GoSimulatorServer`) only translates to and from Hummingbird.
public struct SimRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [(String, String)]
    /// Lower-cased names.
    public var headers: [String: String]
    public var body: [UInt8]

    public init(method: String, path: String, query: [(String, String)] = [], headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method.uppercased()
        self.path = path
        self.query = query
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { $1 })
        self.body = body
    }
}

public struct SimResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Close the connection without a complete response (fault injection).
    public var drop = false

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = []) -> SimResponse {
        SimResponse(status: status, headers: [("Content-Type", "application/json; charset=utf-8")] + headers, body: value.serialized())
    }

    public static func problem(_ error: GoError) -> SimResponse {
        SimResponse(
            status: error.status, headers: [("Content-Type", "application/problem+json; charset=utf-8")], body: error.problemDetails.serialized())
    }

    public var json: JSONValue? { try? JSONValue.parse(body) }
}

public struct GoSimulatorConfiguration: Sendable {
    public var applicationKey = "sim-application-key"
    public var clientKey = "sim-client-key"
    public var subscriptionKey = "sim-subscription-key"
    public var tokenLifetimeSeconds: Double = 1200
    public var rateLimitPerSecond: Double = 10
    public var seedCount = 0
    public var randomSeed: UInt64 = 42
    public var faults = FaultSettings()
    public init() {}
}

public actor GoSimulator {
    public let configuration: GoSimulatorConfiguration
    public private(set) var store: GoStore
    private var tokens: TokenIssuer
    private var bucket: TokenBucket
    private var faults: FaultInjector
    private let now: @Sendable () -> Int64

    /// `now` is wall time in microseconds; tests pass a manual clock to expire tokens.
    public init(configuration: GoSimulatorConfiguration, now: @escaping @Sendable () -> Int64 = MonotonicClock.wallClock) throws(GoError) {
        self.configuration = configuration
        self.now = now
        self.store = try Self.seededStore(configuration, now: now)
        self.tokens = TokenIssuer(
            applicationKey: configuration.applicationKey, clientKey: configuration.clientKey,
            lifetimeSeconds: configuration.tokenLifetimeSeconds, seed: configuration.randomSeed)
        self.bucket = TokenBucket(ratePerSecond: configuration.rateLimitPerSecond)
        self.faults = FaultInjector(seed: configuration.randomSeed)
        self.faults.settings = configuration.faults
    }

    static func seededStore(_ configuration: GoSimulatorConfiguration, now: @escaping @Sendable () -> Int64) throws(GoError) -> GoStore {
        var store = GoStore(clock: MonotonicClock(now: now), uuidSeed: configuration.randomSeed)
        try NorwegianSampleData.seed(&store, count: configuration.seedCount, seed: configuration.randomSeed)
        return store
    }

    public var faultSettings: FaultSettings { faults.settings }

    /// The latency the current fault settings add to an API request, in milliseconds.
    public var latencyMs: Int { faults.settings.latencyMs }

    public func handle(_ request: SimRequest) -> SimResponse {
        let segments = request.path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        let lower = segments.map { $0.lowercased() }
        if lower.first == "_admin" { return admin(request, Array(lower.dropFirst())) }

        // API Management in front of Go: the subscription key on every call, then throttling.
        guard let key = request.headers["ocp-apim-subscription-key"], key == configuration.subscriptionKey else {
            return .json(
                401,
                .object([
                    "statusCode": .int(401),
                    "message": .string(
                        request.headers["ocp-apim-subscription-key"] == nil
                            ? "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."
                            : "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.")
                ]))
        }
        let fault = faults.decide()
        switch fault {
        case .throttle(let seconds): return throttled(Double(seconds))
        case .drop: var r = SimResponse(status: 200); r.drop = true; return r
        default: break
        }
        if case .throttled(let retryAfter) = bucket.take(now: now()) { return throttled(retryAfter) }

        if lower == ["oauth", "token"] {
            guard request.method == "POST" else { return SimResponse(status: 405) }
            return token(request)
        }
        guard lower.first == "v2" else { return SimResponse(status: 404) }
        guard tokens.isValid(authorization: request.headers["authorization"], now: now()) else {
            return SimResponse(status: 401, headers: [("WWW-Authenticate", "Bearer error=\"invalid_token\"")])
        }
        if fault == .serverError {
            return .problem(GoError(status: 500, title: "An error occurred while processing your request.", detail: "Injected fault (simulator)."))
        }
        do {
            return try route(request, Array(segments.dropFirst()), Array(lower.dropFirst()))
        } catch {
            return .problem(error)
        }
    }

    private func throttled(_ retryAfter: Double) -> SimResponse {
        let seconds = max(1, Int(retryAfter.rounded(.up)))
        return .json(
            429, .object(["statusCode": .int(429), "message": .string("Rate limit is exceeded. Try again in \(seconds) seconds.")]),
            headers: [("Retry-After", String(seconds))])
    }

    private func token(_ request: SimRequest) -> SimResponse {
        let form = Self.formFields(request.body)
        do {
            let issued = try tokens.issue(authorization: request.headers["authorization"], grantType: form["grant_type"], now: now())
            return .json(200, issued.body, headers: [("Cache-Control", "no-store")])
        } catch TokenIssuer.Refusal.invalidClient {
            return .json(400, .object(["error": .string("invalid_client")]))
        } catch {
            return .json(400, .object(["error": .string("unsupported_grant_type")]))
        }
    }

    static func formFields(_ body: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            out[kv[0]] = kv.count > 1 ? kv[1] : ""
        }
        return out
    }

    private func route(_ request: SimRequest, _ segments: [String], _ lower: [String]) throws(GoError) -> SimResponse {
        let query = ListQuery(request.query)
        let m = request.method
        func body() throws(GoError) -> JSONValue {
            let type = request.headers["content-type"]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            let accepted =
                m == "PATCH"
                ? ["application/json-patch+json"]
                : ["application/json", "text/json", "application/json-patch+json"]
            guard accepted.contains(type) || (m != "PATCH" && type.hasPrefix("application/") && type.hasSuffix("+json")) else {
                throw GoError(
                    status: 415, title: "Unsupported Media Type",
                    detail: "Content-Type '\(type)' is not supported here; use \(accepted.joined(separator: " or ")).")
            }
            do { return try JSONValue.parse(request.body) } catch { throw .badRequest("The request body is not valid JSON.") }
        }
        func list(_ items: [JSONObject], _ dto: String) throws(GoError) -> SimResponse {
            let shaped = try query.shape(items, as: dto)
            return shaped.isEmpty ? SimResponse(status: 204) : .json(200, .array(shaped.map { .object($0) }))
        }
        func int64(_ s: String) throws(GoError) -> Int64 {
            guard let i = Int64(s) else { throw .badRequest("The value '\(s)' is not a valid id.") }
            return i
        }
        // The route's shape: ids become "*" ("salesorders/complete" stays as it is).
        let shape = lower.enumerated().map { index, segment in
            (index == 1 && !(lower[0] == "salesorders" && segment == "complete" && lower.count == 2)) || index == 3 ? "*" : segment
        }.joined(separator: "/")
        switch (m, shape) {
        case ("GET", "customers"): return try list(try store.listCustomers(query), "CustomerDto")
        case ("POST", "customers"): return .json(201, .object(try store.createCustomer(try body())))
        case ("GET", "customers/*"): return .json(200, .object(try store.customer(try int64(segments[1]))))
        case ("PATCH", "customers/*"): return .json(200, .object(try store.patchCustomer(try int64(segments[1]), try body())))
        case ("DELETE", "customers/*"): try store.deleteCustomer(try int64(segments[1])); return SimResponse(status: 200)

        case ("GET", "products"): return try list(try store.listProducts(query), "ProductDto")
        // The spec documents 200 (not 201) for a created product.
        case ("POST", "products"): return .json(200, .object(try store.createProduct(try body())))
        case ("GET", "products/*"): return .json(200, .object(try store.product(try int64(segments[1]))))
        case ("PATCH", "products/*"): return .json(200, .object(try store.patchProduct(try int64(segments[1]), try body())))
        case ("DELETE", "products/*"): try store.deleteProduct(try int64(segments[1])); return SimResponse(status: 200)

        case ("GET", "salesorders"): return try list(try store.listSalesOrders(query), "SalesOrderDto")
        case ("POST", "salesorders/complete"): return .json(201, .object(try store.createSalesOrder(try body())))
        case ("GET", "salesorders/*"): return .json(200, .object(try store.salesOrder(segments[1])))
        case ("PATCH", "salesorders/*"): return .json(200, .object(try store.patchSalesOrder(segments[1], try body())))
        case ("DELETE", "salesorders/*"): try store.deleteSalesOrder(segments[1]); return SimResponse(status: 200)
        case ("GET", "salesorders/*/complete"): return .json(200, .object(try store.salesOrderComplete(segments[1])))
        case ("GET", "salesorders/*/lines"): return try list(try store.salesOrderLines(segments[1], query), "SalesOrderLineDto")
        case ("POST", "salesorders/*/lines"): return .json(201, .object(try store.addSalesOrderLine(segments[1], try body())))
        case ("GET", "salesorders/*/lines/*"): return .json(200, .object(try store.salesOrderLine(segments[1], segments[3])))
        case ("PATCH", "salesorders/*/lines/*"):
            return .json(200, .object(try store.patchSalesOrderLine(segments[1], segments[3], try body())))
        case ("DELETE", "salesorders/*/lines/*"):
            try store.deleteSalesOrderLine(segments[1], segments[3]); return SimResponse(status: 200)
        default:
            let known = [
                "customers", "customers/*", "products", "products/*", "salesorders", "salesorders/complete",
                "salesorders/*", "salesorders/*/complete", "salesorders/*/lines", "salesorders/*/lines/*"
            ]
            let pathExists = known.contains(shape)
            return SimResponse(status: pathExists ? 405 : 404)
        }
    }

    // MARK: Admin (no auth, no rate limit, no faults)

    private func admin(_ request: SimRequest, _ lower: [String]) -> SimResponse {
        switch (request.method, lower) {
        case ("GET", ["faults"]):
            return SimResponse(
                status: 200, headers: [("Content-Type", "application/json")], body: Array((try? JSONEncoder().encode(faults.settings)) ?? Data()))
        case ("POST", ["faults"]):
            guard let settings = try? JSONDecoder().decode(FaultSettings.self, from: Data(request.body)) else {
                return .problem(
                    .badRequest("Expected {\"errorRate\", \"latencyMs\", \"throttleBurst\", \"throttleRetryAfterSeconds\", \"dropRate\"}."))
            }
            faults.settings = settings
            return SimResponse(
                status: 200, headers: [("Content-Type", "application/json")], body: Array((try? JSONEncoder().encode(settings)) ?? Data()))
        case ("GET", ["records"]):
            // Every record, sorted by id, sales orders complete with their lines (a test tool's view).
            let customers = store.customers.sorted { $0.key < $1.key }.map { JSONValue.object($0.value) }
            let products = store.products.sorted { $0.key < $1.key }.map { JSONValue.object($0.value) }
            let orders = store.orders.keys.sorted().compactMap { try? store.salesOrderComplete($0) }.map(JSONValue.object)
            return .json(200, .object(["customers": .array(customers), "products": .array(products), "salesorders": .array(orders)]))
        case ("POST", ["reset"]):
            reset()
            return SimResponse(status: 204)
        case ("POST", ["expire-tokens"]):
            tokens.expireAll()
            return SimResponse(status: 204)
        default:
            return SimResponse(status: 404)
        }
    }

    /// Back to the state after start-up: the seeded data, no faults, a full rate-limit bucket.
    /// Issued tokens stay valid.
    public func reset() {
        store = (try? Self.seededStore(configuration, now: now)) ?? GoStore(clock: MonotonicClock(now: now))
        faults = FaultInjector(seed: configuration.randomSeed)
        bucket = TokenBucket(ratePerSecond: configuration.rateLimitPerSecond)
    }

    public func expireTokens() { tokens.expireAll() }
    public func setFaults(_ settings: FaultSettings) { faults.settings = settings }
}

import Foundation
