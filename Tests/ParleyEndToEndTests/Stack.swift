import Foundation
#if canImport(Glibc)
    import Glibc
#endif
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import ParleyCanonical
import ParleyMapping
import ParleyMessaging
import ParleyPostgres
import ParleyTestSupport
import ParleyJSON
import ParleyEnvelope

/// The whole system as deployed, one test's worth: the three simulators, the mapping service,
/// the link service and every adapter (`replicas` of each) as real processes, on a vhost and a
/// database of the test's own. Logs go to a directory that is printed when a test fails.
final class Stack: Sendable {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    let erp: String
    let shop: String
    let go: String
    let logs: URL
    let vhost: ScratchVhost
    let database: PostgresConfiguration
    private let processes: Locked<[Managed]>
    /// Each adapter process's `/metrics` address.
    private let adapterMetrics: Locked<[String]>

    /// One process of the stack: how it was started (so it can be started again the same way,
    /// with the same ports) and whether it was stopped on purpose.
    struct Managed: @unchecked Sendable {
        let name: String
        let replica: Int
        let arguments: [String]
        let environment: [String: String]
        let log: URL
        var process: Process
        /// Killed by the test and not started again yet: its exit is no crash.
        var killed = false
        var label: String { "\(name)-\(replica)" }
    }

    /// The services of the product (not the simulators), as `kill`/`restart` name them.
    static let services = ["link-service", "mapping-service", "customerp-adapter", "customwebshop-adapter", "powerofficego-adapter"]

    /// Where the stack's servers are: the shared local ones (each test a scratch vhost and
    /// database there), or a private instance a test may restart (infra/local/parley-private).
    struct Servers: Sendable {
        var amqpURL: String
        var managementURL: String
        var databaseURL: String
        /// `true` for the shared servers: scratch vhosts and databases take ``ServerDisruption``'s shared lock.
        var shared: Bool

        /// The servers `make test` started (`PARLEY_AMQP_URL`, `PARLEY_DATABASE_URL`, `PARLEY_AMQP_MANAGEMENT_URL`).
        static var local: Servers {
            let env = ProcessInfo.processInfo.environment
            return Servers(
                amqpURL: env["PARLEY_AMQP_URL"] ?? "", managementURL: env["PARLEY_AMQP_MANAGEMENT_URL"] ?? "",
                databaseURL: env["PARLEY_DATABASE_URL"] ?? "", shared: true)
        }
    }

    static let erpKey = "e2e-erp-key"
    static let shopKey = "ck_e2e", shopSecret = "cs_e2e"
    static let webhookSecret = "e2e-webhook-secret"
    static let goKeys = (application: "e2e-application-key", client: "e2e-client-key", subscription: "e2e-subscription-key")

    /// Starts everything and waits until the simulators answer; the services then find each
    /// other through the broker.
    static func run<T: Sendable>(
        _ name: String, replicas: Int = 1, seed: (erp: Int, shop: Int, go: Int) = (0, 0, 0),
        on servers: Servers = .local, _ body: @Sendable (Stack) async throws -> T
    ) async throws -> T {
        @Sendable func inside(_ vhost: ScratchVhost, _ database: PostgresConfiguration, _ databaseURL: String) async throws -> T {
            let stack = try await Stack(name: name, vhost: vhost, database: database, databaseURL: databaseURL, replicas: replicas, seed: seed)
            do {
                let value = try await body(stack)
                await stack.stop()
                return value
            } catch {
                await stack.stop()
                print("end-to-end stack logs: \(stack.logs.path)")
                throw error
            }
        }
        if servers.shared {
            return try await ScratchVhost.with("parley-e2e") { vhost in
                try await ScratchDatabase.with("parley_e2e") { database, databaseURL in try await inside(vhost, database, databaseURL) }
            }
        }
        return try await ScratchVhost.with("parley-e2e", amqpURL: servers.amqpURL, managementURL: servers.managementURL) { vhost in
            try await ScratchDatabase.with("parley_e2e", serverURL: servers.databaseURL) { database, databaseURL in
                try await inside(vhost, database, databaseURL)
            }
        }
    }

    private init(
        name: String, vhost: ScratchVhost, database: PostgresConfiguration, databaseURL: String, replicas: Int, seed: (erp: Int, shop: Int, go: Int)
    ) async throws {
        self.vhost = vhost
        self.database = database
        processes = Locked([])
        adapterMetrics = Locked([])
        logs = FileManager.default.temporaryDirectory.appendingPathComponent("parley-e2e-\(name)-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let ports = (erp: Self.port(), shop: Self.port(), go: Self.port(), webhook: Self.port())
        erp = "http://127.0.0.1:\(ports.erp)"
        shop = "http://127.0.0.1:\(ports.shop)"
        go = "http://127.0.0.1:\(ports.go)"

        try start("customerp-simulator", ["--port", "\(ports.erp)", "--api-key", Self.erpKey, "--seed", "\(seed.erp)"])
        try start(
            "customwebshop-simulator",
            [
                "--port", "\(ports.shop)", "--consumer-key", Self.shopKey, "--consumer-secret", Self.shopSecret,
                "--seed", "\(seed.shop)", "--webhook-secret", Self.webhookSecret,
                "--webhook-url", "http://127.0.0.1:\(ports.webhook)/webhooks/customwebshop"
            ])
        try start(
            "powerofficego-simulator",
            [
                "--port", "\(ports.go)", "--application-key", Self.goKeys.application,
                "--client-key", Self.goKeys.client, "--subscription-key", Self.goKeys.subscription,
                "--seed", "\(seed.go)", "--rate-limit", "20"
            ])
        for url in [erp + "/_admin/records", shop + "/_admin/records", go + "/_admin/records"] { try await waitUntilAnswering(url) }

        let common = [
            "PARLEY_AMQP_URL": vhost.url, "PARLEY_DATABASE_URL": databaseURL, "PARLEY_REPOSITORY": Self.root.path,
            "PARLEY_LOG_LEVEL": "info", "PARLEY_HTTP_PORT": "0"
        ]
        // The link service migrates the database the adapters share, so it goes first.
        try start("link-service", [], env: common)
        try start("mapping-service", [], env: common)
        try await Task.sleep(for: .seconds(1))
        // Adapters serve /metrics on a port of their own, where the quiet check counts their writes.
        func adapter(_ extra: [String: String]) -> [String: String] {
            let port = Self.port()
            adapterMetrics.withLock { $0.append("http://127.0.0.1:\(port)/metrics") }
            return common.merging(extra.merging(["PARLEY_HTTP_PORT": "\(port)"]) { a, _ in a }) { _, b in b }
        }
        for replica in 0..<replicas {
            try start(
                "customerp-adapter", ["--poll-seconds", "0.5"],
                env: adapter([
                    "PARLEY_CUSTOMERP_URL": erp, "PARLEY_CUSTOMERP_API_KEY": Self.erpKey
                ]), replica: replica)
            // The simulator posts its webhooks to the first replica; the others poll if they hold the lease.
            try start(
                "customwebshop-adapter", ["--poll-seconds", "0.5", "--webhook-port", "\(replica == 0 ? ports.webhook : Self.port())"],
                env: adapter([
                    "PARLEY_CUSTOMWEBSHOP_URL": shop, "PARLEY_CUSTOMWEBSHOP_KEY": Self.shopKey, "PARLEY_CUSTOMWEBSHOP_SECRET": Self.shopSecret,
                    "PARLEY_CUSTOMWEBSHOP_WEBHOOK_SECRET": Self.webhookSecret
                ]), replica: replica)
            // Go's feed has no deletes; the adapter finds them by comparing ids, every 2 s here (300 by default).
            try start(
                "powerofficego-adapter", ["--poll-seconds", "0.5", "--reconcile-seconds", "2"],
                env: adapter([
                    "PARLEY_POWEROFFICE_URL": go + "/v2", "PARLEY_POWEROFFICE_TOKEN_URL": go + "/OAuth/Token",
                    "PARLEY_POWEROFFICE_APPLICATION_KEY": Self.goKeys.application, "PARLEY_POWEROFFICE_CLIENT_KEY": Self.goKeys.client,
                    "PARLEY_POWEROFFICE_SUBSCRIPTION_KEY": Self.goKeys.subscription
                ]), replica: replica)
        }
    }

    /// A port nothing listens on now: the kernel's pick for a socket bound to port 0.
    static func port() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : Int.random(in: 20_000...40_000)
    }

    private func start(_ name: String, _ arguments: [String], env extra: [String: String] = [:], replica: Int = 0) throws {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        let log = logs.appendingPathComponent("\(name)-\(replica).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = try Self.launch(name, arguments, environment: env, log: log)
        processes.withLock { $0.append(Managed(name: name, replica: replica, arguments: arguments, environment: env, log: log, process: process)) }
    }

    /// Starts `name` with its output appended to `log`.
    private static func launch(_ name: String, _ arguments: [String], environment: [String: String], log: URL) throws -> Process {
        guard let executable = builtExecutable(name) else {
            throw HTTPError(description: "\(name) is not built next to the tests (swift build --build-tests)")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    /// Every process that exited without the test stopping it (a crash shows up here rather than as a time-out).
    func exited() -> [String] {
        processes.withLock { $0.filter { !$0.killed && !$0.process.isRunning }.map { "\($0.label) (status \($0.process.terminationStatus))" } }
    }

    /// The processes of one service (every replica), as `Stack.services` names them.
    func labels(of name: String) -> [String] {
        processes.withLock { $0.filter { $0.name == name }.map(\.label) }
    }

    /// SIGKILLs one process (`<name>-<replica>`) and waits until it is gone; ``restart(_:)`` starts it again.
    func kill(_ label: String) async throws {
        guard
            let process = processes.withLock({ all -> Process? in
                guard let i = all.firstIndex(where: { $0.label == label }) else { return nil }
                all[i].killed = true
                return all[i].process
            })
        else { throw HTTPError(description: "no process \(label)") }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        for _ in 0..<600 where process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        appendToLog(label, "----- killed with SIGKILL by the test -----")
    }

    /// Starts a process again with the arguments, environment and ports it had (its log continues).
    func restart(_ label: String) throws {
        guard let entry = processes.withLock({ all in all.first { $0.label == label } }) else { throw HTTPError(description: "no process \(label)") }
        appendToLog(label, "----- started again by the test -----")
        let process = try Self.launch(entry.name, entry.arguments, environment: entry.environment, log: entry.log)
        processes.withLock { all in
            guard let i = all.firstIndex(where: { $0.label == label }) else { return }
            all[i].process = process
            all[i].killed = false
        }
    }

    /// Restarts every process that exited on its own; returns their labels and exit statuses.
    func restartExited() throws -> [String] {
        let gone = processes.withLock { $0.filter { !$0.killed && !$0.process.isRunning }.map { ($0.label, $0.process.terminationStatus) } }
        for (label, _) in gone { try restart(label) }
        return gone.map { "\($0.0) (status \($0.1))" }
    }

    private func appendToLog(_ label: String, _ line: String) {
        guard let log = processes.withLock({ all in all.first { $0.label == label }?.log }),
            let handle = try? FileHandle(forWritingTo: log)
        else { return }
        handle.seekToEndOfFile()
        handle.write(Data("\(line)\n".utf8))
        try? handle.close()
    }

    func stop() async {
        let all = processes.withLock { $0.map(\.process) }
        for process in all.reversed() where process.isRunning { process.terminate() }
        for _ in 0..<300 where all.contains(where: \.isRunning) { try? await Task.sleep(for: .milliseconds(50)) }
        for process in all where process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

    // MARK: The systems' APIs

    struct HTTPError: Error, CustomStringConvertible {
        let description: String
    }

    @discardableResult
    static func http(
        _ method: String, _ url: String, headers: [String: String] = [:], body: JSONValue? = nil,
        contentType: String = "application/json"
    ) async throws -> (Int, JSONValue?) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        if let body {
            request.httpBody = Data(body.serializedString().utf8)
            request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, data.isEmpty ? nil : try? JSONValue.parse(String(decoding: data, as: UTF8.self)))
    }

    /// A call that must succeed (2xx); returns the body.
    @discardableResult
    func call(_ system: SystemName, _ method: String, _ path: String, _ body: JSONValue? = nil) async throws -> JSONValue? {
        let (status, answer) = try await request(system, method, path, body)
        guard (200..<300).contains(status) else {
            throw HTTPError(description: "\(method) \(system) \(path): HTTP \(status) \(answer.map { $0.serializedString() } ?? "")")
        }
        return answer
    }

    /// A call to a system's API as its users make them (credentials, `Idempotency-Key` on a
    /// create, JSON Patch for PowerOffice Go), whatever the answer: its status and body. The
    /// simulators' rate limits apply to tests too, so a 429 is waited out and tried again.
    func request(
        _ system: SystemName, _ method: String, _ path: String, _ body: JSONValue? = nil,
        headers extra: [String: String] = [:]
    ) async throws -> (Int, JSONValue?) {
        var headers: [String: String] = extra
        var base: String
        var contentType = "application/json"
        switch system {
        case .customerp:
            base = erp
            headers["X-Api-Key"] = Self.erpKey
            if method == "POST" { headers["Idempotency-Key"] = UUID().uuidString }
        case .customwebshop:
            base = shop
            headers["Authorization"] = "Basic " + Data("\(Self.shopKey):\(Self.shopSecret)".utf8).base64EncodedString()
            if method == "POST" { headers["Idempotency-Key"] = UUID().uuidString }
        case .powerofficego:
            base = go + "/v2"
            headers["Ocp-Apim-Subscription-Key"] = Self.goKeys.subscription
            if method == "PATCH" { contentType = "application/json-patch+json" }
        default:
            throw HTTPError(description: "no simulator for \(system)")
        }
        for _ in 0..<40 {
            if system == .powerofficego { headers["Authorization"] = "Bearer " + (try await goToken()) }
            let (status, answer) = try await Self.http(method, base + path, headers: headers, body: body, contentType: contentType)
            if status == 429 { try await Task.sleep(for: .milliseconds(500)); continue }
            if status == 401 && system == .powerofficego { token.withLock { $0 = nil }; continue }
            return (status, answer)
        }
        throw HTTPError(description: "\(method) \(system) \(path): still 429 after 40 tries")
    }

    private let token = Locked<String?>(nil)

    private func goToken() async throws -> String {
        if let cached = token.withLock({ $0 }) { return cached }
        var request = URLRequest(url: URL(string: go + "/OAuth/Token")!)
        request.httpMethod = "POST"
        request.setValue(
            "Basic " + Data("\(Self.goKeys.application):\(Self.goKeys.client)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        request.setValue(Self.goKeys.subscription, forHTTPHeaderField: "Ocp-Apim-Subscription-Key")
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data("grant_type=client_credentials".utf8)
        let (data, _) = try await URLSession.shared.data(for: request)
        guard case .string(let fresh)? = (try? JSONValue.parse(String(decoding: data, as: UTF8.self)))?["access_token"] else {
            throw HTTPError(description: "no PowerOffice Go token: \(String(decoding: data, as: UTF8.self))")
        }
        token.withLock { $0 = fresh }
        return fresh
    }

    /// Every record a simulator holds, by its collection name (`customers`, `products`, and
    /// `orders`, or `salesorders` for PowerOffice Go).
    func records(_ system: SystemName) async throws -> [String: [JSONObject]] {
        let base = system == .customerp ? erp : system == .customwebshop ? shop : go
        let (_, body) = try await Self.http("GET", base + "/_admin/records")
        guard case .object(let all)? = body else { throw HTTPError(description: "\(system) /_admin/records: not an object") }
        var result: [String: [JSONObject]] = [:]
        for (name, value) in all {
            guard case .array(let items) = value else { continue }
            result[name] = items.compactMap { if case .object(let o) = $0 { o } else { nil } }
        }
        return result
    }

    /// Stores a record in the ERP's or the webshop's simulator as given, past the contract's
    /// validation: the dirty data an old system holds (`POST /_admin/records/{entity}`).
    func insertDirty(_ system: SystemName, _ collection: String, _ fields: JSONValue) async throws {
        let (status, body) = try await Self.http("POST", (system == .customerp ? erp : shop) + "/_admin/records/\(collection)", body: fields)
        guard status == 201 else { throw HTTPError(description: "dirty \(collection): HTTP \(status) \(body?.serializedString() ?? "")") }
    }

    static func collection(_ system: SystemName, _ entity: CanonicalEntityType) -> String {
        switch entity {
        case .customer: "customers"
        case .product: "products"
        case .order: system == .powerofficego ? "salesorders" : "orders"
        }
    }

    func records(_ system: SystemName, _ entity: CanonicalEntityType) async throws -> [JSONObject] {
        try await records(system)[Self.collection(system, entity)] ?? []
    }

    /// The commands the adapters carried out so far, per system (`parley_commands_total` of
    /// every adapter process, whatever the outcome): every write Parley makes to a system is one.
    /// Read from the adapters themselves because RabbitMQ's queue statistics are sampled every
    /// five seconds: a write made just before the quiet check began showed up in it as a late one.
    func commandsDelivered() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for url in adapterMetrics.withLock({ $0 }) {
            guard let (data, _) = try? await URLSession.shared.data(from: URL(string: url)!) else { continue }
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("parley_commands_total{") {
                guard let system = line.firstRange(of: "system=\"").map({ line[$0.upperBound...].prefix { $0 != "\"" } }),
                    let value = line.split(separator: " ").last.flatMap({ Double($0) })
                else { continue }
                counts["\(system)-adapter.commands", default: 0] += Int(value)
            }
        }
        return counts
    }

    /// Waits until no adapter has carried out a command for three seconds, then counts the
    /// commands of the next `window`: after convergence there must be none (rule 5: a quiet
    /// system stays quiet). Read from the adapters' own `/metrics`, so it is exact.
    func quietWrites(window: Duration = .seconds(10)) async throws -> Int {
        var previous = try await commandsDelivered()
        for _ in 0..<60 {
            try await Task.sleep(for: .seconds(3))
            let now = try await commandsDelivered()
            if now == previous { break }
            previous = now
        }
        try await Task.sleep(for: window)
        let after = try await commandsDelivered()
        let writes = after.filter { $0.value != previous[$0.key] }.map { "\($0.key) +\($0.value - (previous[$0.key] ?? 0))" }
        if !writes.isEmpty { print("writes after convergence: \(writes.sorted()) (logs: \(logs.path))") }
        return after.values.reduce(0, +) - previous.values.reduce(0, +)
    }

    private func management(_ path: String, method: String = "GET", body: String? = nil) async throws -> JSONValue? {
        try JSONValue.parse(String(decoding: try await vhost.management(method, path, body: body), as: UTF8.self))
    }

    /// The `parley-error` header of each message in a dead-letter queue (read and put back).
    func deadLetterReasons(_ queue: String) async throws -> [String] {
        let messages = try await management(
            "/api/queues/\(vhost.name)/\(queue).dead/get", method: "POST",
            body: #"{"count":50,"ackmode":"ack_requeue_true","encoding":"auto"}"#)
        return (messages?.array ?? []).compactMap { $0["properties"]?["headers"]?["parley-error"]?.string }
    }

    /// Every message waiting in any dead-letter queue of the stack's vhost, as `<queue>: <reason>`.
    /// Read with `get` (and put back), not from the queue statistics, which are sampled.
    func deadLettered() async throws -> [String] {
        let queues = try await management("/api/queues/\(vhost.name)")?.array ?? []
        var out: [String] = []
        for name in queues.compactMap({ $0["name"]?.string }).filter({ $0.hasSuffix(".dead") }).sorted() {
            let base = String(name.dropLast(".dead".count))
            let messages =
                try await management(
                    "/api/queues/\(vhost.name)/\(name)/get", method: "POST",
                    body: #"{"count":50,"ackmode":"ack_requeue_true","encoding":"auto"}"#)?.array ?? []
            for message in messages {
                let reason = message["properties"]?["headers"]?["parley-error"]?.string ?? "no parley-error header"
                out.append("\(base): \(reason)")
            }
        }
        return out
    }

    /// A queue of the test's own bound to every exchange of the product (`#`): a copy of every
    /// message between the services, for the record of a failed run. Durable, so it outlives a
    /// broker restart. Waits until the services have declared the exchanges.
    func startTrace() async throws {
        let exchanges = ["parley.changes", "parley.canonical", "parley.sync", "parley.commands", "parley.events"]
        for _ in 0..<240 {
            let names = Set(((try? await management("/api/exchanges/\(vhost.name)"))??.array ?? []).compactMap { $0["name"]?.string })
            if names.isSuperset(of: exchanges) { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        _ = try await vhost.management(
            "PUT", "/api/queues/\(vhost.name)/test.trace", body: #"{"durable":true,"auto_delete":false,"arguments":{"x-queue-type":"classic"}}"#)
        for exchange in exchanges {
            _ = try await vhost.management("POST", "/api/bindings/\(vhost.name)/e/\(exchange)/q/test.trace", body: ##"{"routing_key":"#"}"##)
        }
    }

    /// Everything the trace queue holds, one line per message: routing key and body.
    func drainTrace() async throws -> [String] {
        var out: [String] = []
        while true {
            let batch =
                try await management(
                    "/api/queues/\(vhost.name)/test.trace/get", method: "POST",
                    body: #"{"count":2000,"ackmode":"ack_requeue_false","encoding":"auto"}"#)?.array ?? []
            for message in batch {
                out.append("\(message["exchange"]?.string ?? "?") \(message["routing_key"]?.string ?? "?") \(message["payload"]?.string ?? "")")
            }
            if batch.count < 2000 { return out }
        }
    }

    /// The reasons the link service recorded for failed entities.
    func failedReasons() async throws -> [String] {
        let pool = PostgresPool(configuration: database, maxConnections: 1)
        defer { Task { await pool.close() } }
        return try await pool.query("select system || ': ' || reason from failed order by failed_at").map { try $0.decode(String.self, at: 0) }
    }

    /// Dead-lettered messages waiting in one queue's dead-letter queue.
    func deadLetters(_ queue: String) async throws -> Int {
        try await management("/api/queues/\(vhost.name)/\(queue).dead")?["messages"]?.int ?? 0
    }
}

/// Waits until `condition` holds, re-evaluating it every half second; fails after `limit`
/// with the last value `describe` gives.
func eventually(
    _ what: String, within limit: Duration = .seconds(90), _ stack: Stack,
    _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: limit)
    var lastError: (any Error)?
    while clock.now < deadline {
        do {
            if try await condition() { return }
            lastError = nil
        } catch { lastError = error }
        let gone = stack.exited()
        if !gone.isEmpty { throw Stack.HTTPError(description: "while waiting for \(what): processes exited: \(gone.joined(separator: ", "))") }
        try await Task.sleep(for: .milliseconds(500))
    }
    throw DeadlineExceeded(what: what + (lastError.map { " (last error: \($0))" } ?? ""))
}
