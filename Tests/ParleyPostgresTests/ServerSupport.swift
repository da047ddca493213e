import Foundation
import Testing
@testable import ParleyPostgres

/// Helpers for tests against the real server named by PARLEY_DATABASE_URL.
enum TestServer {
    struct MissingEnvironment: Error, CustomStringConvertible {
        var description: String {
            "PARLEY_DATABASE_URL is not set: run `set -a; . /var/tmp/parley-local/parley.env; set +a` (or `make infra`) first"
        }
    }

    static func baseConfiguration() throws -> PostgresConfiguration {
        guard let url = ProcessInfo.processInfo.environment["PARLEY_DATABASE_URL"], !url.isEmpty else {
            throw MissingEnvironment()
        }
        return try PostgresConfiguration(url: url)
    }

    /// Creates `parley_test_<random>` through the parley role, runs `body` with a configuration
    /// pointing at it, and drops it afterwards (also when `body` throws).
    static func withScratchDatabase<T: Sendable>(
        _ body: (PostgresConfiguration) async throws -> T
    ) async throws -> T {
        let base = try baseConfiguration()
        let name = try PostgresIdentifier("parley_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16))
        try await admin(base) { try await $0.execute("CREATE DATABASE " + name.quoted) }
        var config = base
        config.database = name.name
        config.applicationName = "parley-test-" + name.name
        do {
            let value = try await body(config)
            try await drop(name, base)
            return value
        } catch {
            try? await drop(name, base)
            throw error
        }
    }

    private static func drop(_ name: PostgresIdentifier, _ base: PostgresConfiguration) async throws {
        try await admin(base) { try await $0.dropDatabase(name) }
    }

    /// A fresh connection to the base database (for admin statements), closed afterwards.
    @discardableResult
    static func admin<T: Sendable>(_ base: PostgresConfiguration, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let c = try await connectWithDeadline(base)
        do {
            let v = try await body(c)
            await c.close()
            return v
        } catch {
            await c.close()
            throw error
        }
    }

    /// The server may still be coming back from another test's restart: retry connection
    /// errors for a bounded time.
    static func connectWithDeadline(_ config: PostgresConfiguration, seconds: Double = 30) async throws -> PostgresConnection {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                return try await PostgresConnection.connect(config)
            } catch let e as PostgresError where e.isConnectionError && Date() < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    static func withPool<T: Sendable>(
        _ config: PostgresConfiguration, max: Int = 4, _ body: (PostgresPool) async throws -> T
    ) async throws -> T {
        let pool = PostgresPool(configuration: config, maxConnections: max)
        do {
            let v = try await body(pool)
            await pool.close()
            return v
        } catch {
            await pool.close()
            throw error
        }
    }

    /// Scratch database + pool in one.
    static func withScratchPool<T: Sendable>(max: Int = 4, _ body: (PostgresPool) async throws -> T) async throws -> T {
        try await withScratchDatabase { config in try await withPool(config, max: max, body) }
    }

    /// `$PARLEY_LOCAL_CTL pg_ctl restart -m fast -w` (server log kept in its usual file).
    static func restartServer() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let ctl = env["PARLEY_LOCAL_CTL"], !ctl.isEmpty else {
            throw PostgresError(kind: .invalidConfiguration, message: "PARLEY_LOCAL_CTL is not set")
        }
        var args = ["pg_ctl", "restart", "-m", "fast", "-w", "-t", "60"]
        if let dir = env["PARLEY_LOCAL_DIR"], FileManager.default.fileExists(atPath: dir + "/postgres/log") {
            args += ["-l", dir + "/postgres/log/postgresql.log"]
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("parley-restart-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: output) }
        // Not Foundation.Process: on Linux it notices a child's exit through a descriptor the
        // child inherits, and the postmaster that pg_ctl daemonises keeps it open, so
        // termination is never reported. posix_spawn + waitpid on a dedicated thread instead.
        let status = try await spawnAndWait(ctl, args, outputPath: output.path)
        guard status == 0 else {
            let log = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            throw PostgresError(kind: .connectionFailed, message: "pg_ctl restart failed (\(status)): \(log.suffix(500))")
        }
    }

    /// Runs `path args...` with stdout/stderr to `outputPath`; waits on its own thread.
    static func spawnAndWait(_ path: String, _ args: [String], outputPath: String) async throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else {
            throw PostgresError(kind: .invalidConfiguration, message: "cannot run \(path): errno \(rc)")
        }
        let child = pid
        return await withCheckedContinuation { (c: CheckedContinuation<Int32, Never>) in
            let waiter = Thread {
                var status: Int32 = 0
                while waitpid(child, &status, 0) == -1 && errno == EINTR {}
                // WIFEXITED / WEXITSTATUS
                c.resume(returning: (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1)
            }
            waiter.start()
        }
    }
}
