import Foundation
import Testing
import ParleyTestSupport

/// The `parley` executable as an operator runs it: what it says when the servers are not there.
@Suite("parley CLI process", .serialized, .timeLimit(.minutes(2)))
struct CLIProcessTests {
    static func run(_ arguments: [String], env extra: [String: String]) async throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = try #require(builtExecutable("parley"), "parley is not built next to the tests")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    static let nowhere = [
        "PARLEY_AMQP_URL": "amqp://parley:hunter2@127.0.0.1:1/parley",
        "PARLEY_AMQP_MANAGEMENT_URL": "http://127.0.0.1:1/",
        "PARLEY_DATABASE_URL": "postgres://parley:hunter2@127.0.0.1:1/parley",
        "PARLEY_DATABASE_URL_FILE": "", "PARLEY_AMQP_URL_FILE": ""
    ]

    @Test("status with neither the management API nor the database reachable: both reasons, exit 1, no password")
    func statusUnreachable() async throws {
        let (status, out, err) = try await Self.run(["status"], env: Self.nowhere)
        #expect(status == 1)
        #expect(
            out.contains("queues: cannot reach the RabbitMQ management API at http://127.0.0.1:1 (connection refused): is RabbitMQ running"), "\(out)"
        )
        #expect(out.contains("link service: cannot reach PostgreSQL at postgres://parley:***@127.0.0.1:1/parley"), "\(out)")
        #expect(!(out + err).contains("hunter2"))
    }

    @Test("top --once, dlq list, resync and link counts each name what cannot be reached and exit 1")
    func otherCommandsUnreachable() async throws {
        for arguments in [["top", "--once"], ["dlq", "list"], ["resync", "customerp"], ["parked"], ["link", "counts"]] {
            let (status, out, err) = try await Self.run(arguments, env: Self.nowhere)
            #expect(status == 1, "\(arguments)")
            #expect((out + err).contains("cannot reach"), "\(arguments): \(out) \(err)")
            #expect(!(out + err).contains("hunter2"), "\(arguments)")
        }
    }

    @Test("usage errors: dlq replay needs --id or --all; resync needs a known system")
    func usage() async throws {
        #expect(try await Self.run(["dlq", "replay", "link.events"], env: Self.nowhere).status == 64)
        #expect(try await Self.run(["resync", "sap"], env: Self.nowhere).status == 64)
    }
}
