// Helpers the integration tests share: a RabbitMQ virtual host and a PostgreSQL database of
// their own per test, the services' binaries, and deadlines. Real servers only: the tests fail
// (not skip) when the environment does not name them.
import Foundation
import ParleyCore
import Synchronization
import ParleyAMQP
import ParleyPostgres
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

public struct MissingServer: Error, CustomStringConvertible {
    public let variable: String
    public var description: String { "\(variable) is not set: run the tests with `make test` (it starts RabbitMQ and PostgreSQL)" }
}

/// A RabbitMQ virtual host for one test, removed afterwards.
public struct ScratchVhost: Sendable {
    public let name: String
    /// An AMQP URL for the vhost, with the test user's credentials.
    public let url: String
    let management: String
    let authorization: String

    public static func with<T: Sendable>(_ prefix: String, _ body: (ScratchVhost) async throws -> T) async throws -> T {
        try await ServerDisruption.shared { try await withoutLock(prefix, body) }
    }

    /// A vhost on a broker of the caller's own (not the shared one `make test` started), which
    /// the caller may restart: no ``ServerDisruption`` lock is taken.
    public static func with<T: Sendable>(
        _ prefix: String, amqpURL: String, managementURL: String,
        _ body: (ScratchVhost) async throws -> T
    ) async throws -> T {
        try await withoutLock(prefix, amqpURL: amqpURL, managementURL: managementURL, body)
    }

    static func withoutLock<T: Sendable>(_ prefix: String, _ body: (ScratchVhost) async throws -> T) async throws -> T {
        guard let base = ProcessInfo.processInfo.environment["PARLEY_AMQP_URL"], !base.isEmpty else {
            throw MissingServer(variable: "PARLEY_AMQP_URL")
        }
        return try await withoutLock(prefix, amqpURL: base, managementURL: ProcessInfo.processInfo.environment["PARLEY_AMQP_MANAGEMENT_URL"], body)
    }

    static func withoutLock<T: Sendable>(
        _ prefix: String, amqpURL base: String, managementURL: String?,
        _ body: (ScratchVhost) async throws -> T
    ) async throws -> T {
        let endpoint = try AMQPEndpoint(url: base)
        let name = "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        let password = endpoint.password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? endpoint.password
        let vhost = ScratchVhost(
            name: name, url: "amqp://\(endpoint.user):\(password)@\(endpoint.host):\(endpoint.port)/\(name)",
            management: managementURL.flatMap { $0.isEmpty ? nil : $0 } ?? "http://\(endpoint.host):15672",
            authorization: "Basic " + Data("\(endpoint.user):\(endpoint.password)".utf8).base64EncodedString())
        // Right after a test restarted the broker its management listener may still be starting.
        var created = -1
        for attempt in 0..<60 {
            if let status = try? await vhost.request("PUT", "/api/vhosts/\(name)", body: "{}") { created = status; break }
            if attempt < 59 { try await Task.sleep(for: .milliseconds(500)) }
        }
        guard (200..<300).contains(created),
            (200..<300).contains(
                try await vhost.request(
                    "PUT", "/api/permissions/\(name)/\(endpoint.user)",
                    body: #"{"configure":".*","write":".*","read":".*"}"#))
        else { throw MissingServer(variable: "a RabbitMQ management API that lets the test user create vhosts") }
        do {
            let value = try await body(vhost)
            _ = try? await vhost.request("DELETE", "/api/vhosts/\(name)")
            return value
        } catch {
            _ = try? await vhost.request("DELETE", "/api/vhosts/\(name)")
            throw error
        }
    }

    private func send(_ method: String, _ path: String, body: String?) async throws -> (status: Int, data: Data) {
        var request = URLRequest(url: URL(string: management + path)!)
        request.httpMethod = method
        request.setValue(authorization, forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, data)
    }

    /// A call to the management API with the test user's credentials: the status.
    func request(_ method: String, _ path: String, body: String? = nil) async throws -> Int {
        try await send(method, path, body: body).status
    }

    /// A call to the management API with the test user's credentials: the body, or an error for a non-2xx status.
    public func management(_ method: String = "GET", _ path: String, body: String? = nil) async throws -> Data {
        let (status, data) = try await send(method, path, body: body)
        guard (200..<300).contains(status) else { throw MissingServer(variable: "management API \(method) \(path): HTTP \(status)") }
        return data
    }

    public func configuration(_ connectionName: String) throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(urls: url, connectionName: connectionName)
        configuration.reconnect = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        return configuration
    }
}

/// A PostgreSQL database for one test, dropped afterwards.
public enum ScratchDatabase {
    public static func with<T: Sendable>(_ prefix: String, _ body: (PostgresConfiguration) async throws -> T) async throws -> T {
        try await with(prefix) { config, _ in try await body(config) }
    }

    /// Also gives the database's URL (with the test role's password), for a service process.
    public static func with<T: Sendable>(_ prefix: String, _ body: (PostgresConfiguration, String) async throws -> T) async throws -> T {
        try await ServerDisruption.shared { try await withoutLock(prefix, body) }
    }

    /// A database on a server of the caller's own (not the shared one `make test` started),
    /// which the caller may restart: no ``ServerDisruption`` lock is taken.
    public static func with<T: Sendable>(
        _ prefix: String, serverURL: String,
        _ body: (PostgresConfiguration, String) async throws -> T
    ) async throws -> T {
        try await withoutLock(prefix, serverURL: serverURL, body)
    }

    static func withoutLock<T: Sendable>(_ prefix: String, _ body: (PostgresConfiguration, String) async throws -> T) async throws -> T {
        guard let url = ProcessInfo.processInfo.environment["PARLEY_DATABASE_URL"], !url.isEmpty else {
            throw MissingServer(variable: "PARLEY_DATABASE_URL")
        }
        return try await withoutLock(prefix, serverURL: url, body)
    }

    static func withoutLock<T: Sendable>(
        _ prefix: String, serverURL url: String,
        _ body: (PostgresConfiguration, String) async throws -> T
    ) async throws -> T {
        let base = try PostgresConfiguration(url: url)
        let name = try PostgresIdentifier(prefix + "_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12))
        let admin = PostgresPool(configuration: base, maxConnections: 1)
        _ = try await admin.execute("CREATE DATABASE " + name.quoted)
        var config = base
        config.database = name.name
        var components = URLComponents(string: url)
        components?.path = "/" + name.name
        let scratchURL = components?.string ?? url
        do {
            let value = try await body(config, scratchURL)
            try? await admin.dropDatabase(name)
            await admin.close()
            return value
        } catch {
            try? await admin.dropDatabase(name)
            await admin.close()
            throw error
        }
    }
}

/// A service binary built next to the test bundle (`mapping-service`, `link-service`, …).
public func builtExecutable(_ name: String) -> URL? {
    let buildDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    return [buildDir, buildDir.deletingLastPathComponent()].map { $0.appendingPathComponent(name) }
        .first { FileManager.default.isExecutableFile(atPath: $0.path) }
}

public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let what: String
    public init(what: String) { self.what = what }
    public var description: String { "\(what) did not happen in time" }
}

/// Runs `body`, failing with ``DeadlineExceeded`` after `limit`, so a broken test fails instead of hanging CI.
public func withDeadline<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw DeadlineExceeded(what: what) }
        return value
    }
}

/// A lock-protected value that escaping closures can share (a `Mutex` cannot be captured).
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// All test targets run in one process and share the two local servers. A few tests restart a
/// server on purpose (PostgreSQL's pool recovery, RabbitMQ's broker restart); they take this
/// lock exclusively, and every test that merely uses a server (through ``ScratchVhost`` and
/// ``ScratchDatabase``, or by calling ``shared(_:)``) takes it shared, so a restart never pulls
/// the server from under another suite. First come, first served: a waiting restart holds back
/// new users, so it is not starved.
public actor ServerDisruption {
    public static let lock = ServerDisruption()

    @TaskLocal static var holdsShared = false

    private var readers = 0
    private var writer = false
    private var waiting: [(exclusive: Bool, continuation: CheckedContinuation<Void, Never>)] = []

    private func acquire(exclusive: Bool) async {
        if waiting.isEmpty && !writer && (!exclusive || readers == 0) {
            grant(exclusive)
            return
        }
        await withCheckedContinuation { waiting.append((exclusive, $0)) }
    }

    private func grant(_ exclusive: Bool) {
        if exclusive { writer = true } else { readers += 1 }
    }

    private func release(exclusive: Bool) {
        if exclusive { writer = false } else { readers -= 1 }
        while let next = waiting.first, !writer, !next.exclusive || readers == 0 {
            waiting.removeFirst()
            grant(next.exclusive)
            next.continuation.resume()
            if next.exclusive { break }
        }
    }

    /// Runs `body` while no server is being restarted (re-entrant within one task tree).
    public static func shared<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        if holdsShared { return try await body() }
        await lock.acquire(exclusive: false)
        do {
            let value = try await $holdsShared.withValue(true) { try await body() }
            await lock.release(exclusive: false)
            return value
        } catch {
            await lock.release(exclusive: false)
            throw error
        }
    }

    /// Runs `body`, which restarts a server, while no other test uses one.
    public static func exclusive<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await lock.acquire(exclusive: true)
        do {
            let value = try await body()
            await lock.release(exclusive: true)
            return value
        } catch {
            await lock.release(exclusive: true)
            throw error
        }
    }
}

/// Waits until `url` answers at all (any HTTP status): a server process has started listening.
public func waitUntilAnswering(_ url: String, within limit: Duration = .seconds(60)) async throws {
    _ = try await withDeadline(limit, "\(url) answering") {
        while true {
            if (try? await URLSession.shared.data(from: URL(string: url)!)) != nil { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// How long a test waits for an AMQP connection to come up. Generous on purpose: a CI run once
/// saw the broker answer no login for about fifty seconds (every vhost at once, in the middle of
/// the suite), which failed waits of thirty. Nothing is measured by it; a connection that never
/// comes up still fails the test.
public let brokerReadyTimeout: Duration = .seconds(120)
