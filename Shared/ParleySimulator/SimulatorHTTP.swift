import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// A simulator's mutable state behind one actor: the database, the fault knobs, and what the
/// admin endpoints re-seed with.
public actor SimulatorState {
    public private(set) var database: SimulatorDatabase
    public private(set) var faults: FaultSettings
    private var rng = SystemRandomNumberGenerator()

    public init(database: SimulatorDatabase, faults: FaultSettings = FaultSettings()) {
        self.database = database
        self.faults = faults
    }

    /// Runs `body` on the database atomically (the actor serialises requests).
    public func transact<T: Sendable>(_ body: @Sendable (inout SimulatorDatabase) throws -> T) throws -> T {
        var db = database
        let result = try body(&db)
        database = db
        return result
    }

    public func read<T: Sendable>(_ body: @Sendable (SimulatorDatabase) throws -> T) rethrows -> T {
        try body(database)
    }

    public func decideFault() -> FaultDecision {
        faults.decide(
            dropRoll: Double.random(in: 0..<1, using: &rng), errorRoll: Double.random(in: 0..<1, using: &rng),
            jitterRoll: Double.random(in: 0..<1, using: &rng))
    }

    public func applyFaults(_ patch: JSONValue) throws(Problem) -> FaultSettings {
        faults = try faults.applying(patch)
        return faults
    }

    public func setFaults(_ settings: FaultSettings) { faults = settings }
}

/// Thrown by a response body to drop the connection without a complete response.
struct DroppedConnection: Error {}

extension Response {
    public static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "application/json"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: JSONCoding.encode(value))))
    }

    public static func problem(_ problem: Problem) -> Response {
        var h = HTTPFields()
        h[.contentType] = Problem.contentType
        for (name, value) in problem.headers {
            if let n = HTTPField.Name(name) { h[n] = value }
        }
        return Response(
            status: .init(code: problem.status), headers: h,
            body: .init(byteBuffer: ByteBuffer(bytes: JSONCoding.encode(problem))))
    }
}

extension Request {
    public func header(_ name: String) -> String? {
        HTTPField.Name(name).flatMap { headers[$0] }
    }

    /// The body as JSON; a malformed body is a 400.
    public func jsonBody() async throws -> JSONValue {
        var request = self
        let buffer = try await request.collectBody(upTo: 4 << 20)
        guard let value = JSONCoding.decode(Data(buffer.readableBytesView)) else {
            throw Problem.badRequest("The body is not valid JSON.", field: "(body)")
        }
        return value
    }

    /// `Idempotency-Key`, required on creates (1–255 characters).
    public func idempotencyKey() throws -> String {
        guard let key = header("Idempotency-Key"), !key.isEmpty else {
            throw Problem.badRequest("The Idempotency-Key header is required on create.", field: "Idempotency-Key")
        }
        guard key.count <= 255 else {
            throw Problem.badRequest("The Idempotency-Key header is longer than 255 characters.", field: "Idempotency-Key")
        }
        return key
    }

    /// `updated_since`, `cursor` and the page size, checked.
    public func listQuery(limitName: String, defaultLimit: Int, maxLimit: Int) throws -> (since: Timestamp?, cursor: String?, limit: Int) {
        let q = uri.queryParameters
        var since: Timestamp?
        if let raw = q.get("updated_since") {
            guard let t = Timestamp.parse(raw) else {
                throw Problem.badRequest("updated_since must be an RFC 3339 date-time.", field: "updated_since")
            }
            since = t
        }
        var limit = defaultLimit
        if let raw = q.get(limitName) {
            guard let n = Int(raw), (1...maxLimit).contains(n) else {
                throw Problem.badRequest("\(limitName) must be an integer from 1 to \(maxLimit).", field: limitName)
            }
            limit = n
        }
        return (since, q.get("cursor"), limit)
    }

    /// The list filters of `rules` present in the query (`?email=…`, `?sku=…`), as one
    /// predicate; `nil` when none is. An empty value is a 400 (it would match nothing).
    public func listFilter(_ rules: [UniqueRule]) throws -> (@Sendable (StoredRecord) -> Bool)? {
        let q = uri.queryParameters
        var wanted: [(UniqueRule, String)] = []
        for rule in rules {
            guard let raw = q.get(rule.field) else { continue }
            guard let key = rule.key([rule.field: .string(raw)]), !key.isEmpty else {
                throw Problem.badRequest("\(rule.field) must not be empty.", field: rule.field)
            }
            wanted.append((rule, key))
        }
        guard !wanted.isEmpty else { return nil }
        let filters = wanted
        return { record in filters.allSatisfy { rule, key in rule.key(record.fields) == key } }
    }
}

/// Turns thrown problems and store errors into problem+json responses, and any route the
/// contract lacks into a 404 problem.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return .problem(problem)
        } catch let error as StoreError {
            return .problem(error.problem)
        } catch let error as HTTPError {
            let status = Int(error.status.code)
            if status == 413 { return .problem(Problem(status: 413, title: "Content Too Large")) }
            return .problem(Problem(status: status, title: error.status.reasonPhrase, detail: error.body))
        } catch is DroppedConnection {
            throw DroppedConnection()
        }
    }
}

/// Fault injection on the contract's endpoints (never on `/_admin`): latency, 429 bursts,
/// 5xx errors, dropped connections.
public struct FaultMiddleware<Context: RequestContext>: RouterMiddleware {
    let state: SimulatorState

    public init(state: SimulatorState) { self.state = state }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/_admin") { return try await next(request, context) }
        let decision = await state.decideFault()
        if decision.delayMs > 0 { try await Task.sleep(for: .milliseconds(decision.delayMs)) }
        switch decision.outcome {
        case .serve:
            return try await next(request, context)
        case .rateLimited(let seconds):
            return .problem(
                Problem(
                    status: 429, title: "Too Many Requests", detail: "Rate limited (injected fault). Retry after \(seconds) s.",
                    headers: ["Retry-After": String(seconds)]))
        case .error(let status):
            return .problem(Problem(status: status, title: "Server Error", detail: "Injected fault."))
        case .drop:
            // The body throws before anything is written: the server closes the connection.
            return Response(status: .ok, body: ResponseBody { _ in throw DroppedConnection() })
        }
    }
}

/// Credentials on the contract's endpoints; `/_admin` is open (a test tool).
public struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: AuthPolicy

    public init(policy: AuthPolicy) { self.policy = policy }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/_admin") || policy.allows(header: { request.header($0) }) {
            return try await next(request, context)
        }
        return .problem(.unauthorized(policy.challenge))
    }
}

/// The admin endpoints both simulators serve, for tests and demos.
public enum AdminRoutes {
    /// - `GET /_admin/faults`, `POST /_admin/faults` (a JSON object of knobs to change)
    /// - `POST /_admin/reset` (forget every record; body `{"seed": N}` re-seeds N of each)
    /// - `GET /_admin/records` (every record of every entity, archived ones included)
    /// - `POST /_admin/records/{entity}` (store a record as given, without the contract's
    ///   validation: the dirty data an old system holds, for tests of bad input; no webhook)
    public static func add<Context: RequestContext>(
        to router: Router<Context>, state: SimulatorState, render: @escaping @Sendable (String, StoredRecord) -> JSONValue,
        seed: @escaping @Sendable (Int, inout SimulatorDatabase) throws -> Void
    ) {
        router.get("/_admin/faults") { _, _ in Response.json(await state.faults) }
        router.post("/_admin/faults") { request, _ in
            let patch = try await request.jsonBody()
            return Response.json(try await state.applyFaults(patch))
        }
        router.post("/_admin/reset") { request, _ in
            var n = 0
            if let value = try? await request.jsonBody(), let s = value["seed"] {
                guard let count = s.intValue, (0...100_000).contains(count) else {
                    throw Problem.validation([.init(field: "seed", message: "must be an integer from 0 to 100000")])
                }
                n = Int(count)
            }
            let seedCount = n
            try await state.transact { db in
                db.reset()
                try seed(seedCount, &db)
            }
            return Response(status: .noContent)
        }
        router.get("/_admin/records") { _, _ in
            let all = await state.read { db in
                db.entities.mapValues { store in
                    JSONValue.array(store.records.values.sorted { $0.id < $1.id }.map { render(store.name, $0) })
                }
            }
            return Response.json(JSONValue.object(all))
        }
        router.post("/_admin/records/:entity") { request, context in
            let entity = try context.parameters.require("entity")
            guard case .object(let fields) = try await request.jsonBody() else {
                throw Problem.validation([.init(field: "", message: "expected a JSON object of fields")])
            }
            let wall = Timestamp.now()
            let record = try await state.transact { db in
                guard db.entities[entity] != nil else { throw Problem.validation([.init(field: "entity", message: "no entity \(entity)")]) }
                return try db.create(entity, fields: fields, wall: wall).record
            }
            return Response.json(render(entity, record), status: .created)
        }
    }
}

/// Where a simulator listens and what it serves with.
public struct SimulatorConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var auth: AuthPolicy
    public var faults: FaultSettings
    public var seed: Int
    public var seedValue: UInt64

    public init(
        host: String = "127.0.0.1", port: Int, auth: AuthPolicy, faults: FaultSettings = FaultSettings(), seed: Int = 0, seedValue: UInt64 = 1
    ) {
        self.host = host
        self.port = port
        self.auth = auth
        self.faults = faults
        self.seed = seed
        self.seedValue = seedValue
    }
}

extension FaultSettings {
    /// The fault knobs' environment key suffixes (`<PREFIX>_ERROR_RATE`, …).
    public static let environmentKeySuffixes = [
        "ERROR_RATE", "ERROR_STATUS", "LATENCY_MS", "LATENCY_JITTER_MS", "RATE_LIMIT_BURST", "RETRY_AFTER", "DROP_RATE"
    ]

    /// Every key `fromEnvironment(prefix:)` reads.
    public static func environmentKeys(prefix: String) -> [String] { environmentKeySuffixes.map { "\(prefix)_\($0)" } }

    /// Knobs from the environment (`<PREFIX>_ERROR_RATE`, `_ERROR_STATUS`, `_LATENCY_MS`,
    /// `_LATENCY_JITTER_MS`, `_RATE_LIMIT_BURST`, `_RETRY_AFTER`, `_DROP_RATE`).
    public static func fromEnvironment(prefix: String, _ env: [String: String] = ProcessInfo.processInfo.environment) -> FaultSettings {
        var s = FaultSettings()
        if let v = env["\(prefix)_ERROR_RATE"].flatMap(Double.init) { s.errorRate = v }
        if let v = env["\(prefix)_ERROR_STATUS"].flatMap(Int.init) { s.errorStatus = v }
        if let v = env["\(prefix)_LATENCY_MS"].flatMap(Int.init) { s.latencyMs = v }
        if let v = env["\(prefix)_LATENCY_JITTER_MS"].flatMap(Int.init) { s.latencyJitterMs = v }
        if let v = env["\(prefix)_RATE_LIMIT_BURST"].flatMap(Int.init) { s.rateLimitBurst = v }
        if let v = env["\(prefix)_RETRY_AFTER"].flatMap(Int.init) { s.retryAfterSeconds = v }
        if let v = env["\(prefix)_DROP_RATE"].flatMap(Double.init) { s.dropRate = v }
        return s
    }
}

/// `X-Parley-Record-Id`-style helpers: parse a path id.
public func pathId<Context: RequestContext>(_ context: Context, _ name: String = "id") throws -> Int64 {
    guard let raw = context.parameters.get(name), let id = Int64(raw) else {
        throw Problem(status: 404, title: "Not Found", detail: "No record with id \(context.parameters.get(name) ?? "").")
    }
    return id
}
