import Foundation
#if canImport(Glibc)
    import Glibc
#endif
import ParleyTestSupport

/// The convergence test's chaos mode (docs/testing.md): every service SIGKILLed once at a
/// random operation and started again a moment later, one RabbitMQ restart and one PostgreSQL
/// restart — on a private broker and database (infra/local/parley-private), so restarting them
/// disturbs no other test and nobody else on the machine.
enum Chaos {
    enum Action: Sendable, CustomStringConvertible {
        case kill(String, downMilliseconds: Int)
        case restartBroker
        case restartDatabase

        var description: String {
            switch self {
            case .kill(let label, let down): "SIGKILL \(label), start it again after \(down) ms"
            case .restartBroker: "restart RabbitMQ"
            case .restartDatabase: "restart PostgreSQL"
            }
        }
    }

    struct Event: Sendable {
        var atOperation: Int
        var action: Action
    }

    /// The seed's schedule: at which operation each service dies, and for how long; when the
    /// broker and the database restart. From a generator of its own, so a seed's operations are
    /// the same with and without chaos.
    static func schedule(seed: UInt64, operations: Int, labels: [String]) -> [Event] {
        var r = SeededRandom(seed: seed ^ 0xC4A0_5C4A_05C4_A05C)
        let first = min(8, max(0, operations - 1)), last = max(first, operations - 1)
        var events = labels.map { Event(atOperation: r.int(first...last), action: .kill($0, downMilliseconds: r.int(200...3000))) }
        events.append(Event(atOperation: r.int(first...last), action: .restartBroker))
        events.append(Event(atOperation: r.int(first...last), action: .restartDatabase))
        return events.sorted { $0.atOperation < $1.atOperation }
    }

    /// Carries out the schedule as the operations reach each event's index.
    static func run(_ events: [Event], stack: Stack, progress: Locked<Int>, note: @escaping @Sendable (String) async -> Void) async {
        for event in events {
            while progress.withLock({ $0 }) < event.atOperation { try? await Task.sleep(for: .milliseconds(100)) }
            await note("chaos: \(event.action)")
            do {
                switch event.action {
                case .kill(let label, let down):
                    try await stack.kill(label)
                    try await Task.sleep(for: .milliseconds(down))
                    try stack.restart(label)
                case .restartBroker:
                    try await PrivateServers.control("restart-rabbitmq")
                case .restartDatabase:
                    try await PrivateServers.control("restart-postgres")
                }
                await note("chaos: done: \(event.action)")
            } catch {
                await note("chaos: \(event.action) failed: \(error)")
            }
        }
    }
}

/// The private RabbitMQ node and PostgreSQL cluster of `infra/local/parley-private`.
enum PrivateServers {
    static var script: String { Stack.root.appendingPathComponent("infra/local/parley-private").path }
    static var directory: String { ProcessInfo.processInfo.environment["PARLEY_PRIVATE_DIR"] ?? "/var/tmp/parley-private" }

    /// Whether both servers run now.
    static func running() async throws -> Bool {
        let (_, output) = try await spawn(script, ["status"])
        return output.contains("rabbitmq: running") && output.contains("postgresql: running")
    }

    /// Starts them (idempotent) and returns where they are.
    static func up() async throws -> Stack.Servers {
        try await control("up")
        let env = try String(contentsOfFile: directory + "/parley.env", encoding: .utf8)
        var values: [String: String] = [:]
        for line in env.split(separator: "\n") where !line.hasPrefix("#") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        guard let amqp = values["PARLEY_AMQP_URL"], let management = values["PARLEY_AMQP_MANAGEMENT_URL"],
            let database = values["PARLEY_DATABASE_URL"]
        else {
            throw Stack.HTTPError(description: "\(directory)/parley.env lacks PARLEY_AMQP_URL, PARLEY_AMQP_MANAGEMENT_URL or PARLEY_DATABASE_URL")
        }
        return Stack.Servers(amqpURL: amqp, managementURL: management, databaseURL: database, shared: false)
    }

    /// `parley-private <command>`; throws with its output when it fails.
    static func control(_ command: String) async throws {
        let (status, output) = try await spawn(script, [command])
        guard status == 0 else { throw Stack.HTTPError(description: "parley-private \(command) failed (\(status)): \(output.suffix(800))") }
    }

    /// Runs a program with its output to a file and waits for it on a thread of its own. Not
    /// Foundation.Process: on Linux it notices a child's exit through a descriptor the child
    /// inherits, and the servers these scripts start in the background keep it open.
    static func spawn(_ path: String, _ arguments: [String]) async throws -> (Int32, String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("parley-private-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw Stack.HTTPError(description: "cannot run \(path): \(String(cString: strerror(rc)))") }
        let child = pid
        let status: Int32 = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(child, &status, 0) == -1 && errno == EINTR {}
                continuation.resume(returning: (status >> 8) & 0xff)
            }
        }
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }
}
