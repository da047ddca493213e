import Foundation
#if canImport(Glibc)
    import Glibc
#endif
import Testing
import ParleyTestSupport

/// The link-service process started while PostgreSQL cannot be reached (issue 17: it exited):
/// it waits, retrying with backoff, and starts when the database is there.
@Suite("link-service starting before its database", .serialized, .timeLimit(.minutes(3)))
struct LinkServiceStartTests {
    @Test("Started while PostgreSQL is unreachable, the link service keeps trying, starts once it is reachable, and stops on SIGTERM")
    func waitsForTheDatabase() async throws {
        try await ScratchVhost.with("parley-test-start") { vhost in
            try await ScratchDatabase.with("parley_link_start") { _, databaseURL in
                // The service is given a port nothing listens on yet; a relay to the real
                // PostgreSQL opens it later.
                var url = try #require(URLComponents(string: databaseURL))
                let real = (host: url.host ?? "127.0.0.1", port: url.port ?? 5432)
                let port = Self.freePort()
                url.port = port
                let log = FileManager.default.temporaryDirectory.appendingPathComponent("link-service-start-\(port).log")
                FileManager.default.createFile(atPath: log.path, contents: nil)
                let service = Process()
                service.executableURL = try #require(builtExecutable("link-service"), "link-service is not built next to the tests")
                var env = ProcessInfo.processInfo.environment
                env["PARLEY_AMQP_URL"] = vhost.url
                env["PARLEY_DATABASE_URL"] = try #require(url.string)
                env["PARLEY_REPOSITORY"] = LinkHarness.root.path
                env["PARLEY_HTTP_PORT"] = "0"
                service.environment = env
                let handle = try FileHandle(forWritingTo: log)
                service.standardOutput = handle
                service.standardError = handle
                try service.run()
                let relay = Process()
                defer {
                    if service.isRunning { kill(service.processIdentifier, SIGKILL) }
                    // SIGKILL: a child of the test process may inherit SIGTERM blocked.
                    if relay.isRunning { kill(relay.processIdentifier, SIGKILL) }
                }
                func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

                try await Self.waitUntil("the service to report the database unreachable", within: .seconds(30)) {
                    logText().contains("database unreachable")
                }
                try await Task.sleep(for: .seconds(2))
                #expect(service.isRunning, "it must not exit while the database is away: \(logText())")

                relay.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                relay.arguments = ["python3", "-c", Self.relayScript, String(port), real.host, String(real.port)]
                try relay.run()
                try await Self.waitUntil("the service to start once the database is reachable", within: .seconds(60)) {
                    logText().contains("database ready")
                }
                // Consuming: the service group runs, with its SIGTERM handler (a SIGTERM before that ends the process as a signal does).
                try await Self.waitUntil("the service to consume both queues", within: .seconds(30)) {
                    logText().components(separatedBy: "AMQP consuming").count > 2
                }
                #expect(service.isRunning)
                service.terminate()
                try await Self.waitUntil("the service to stop on SIGTERM", within: .seconds(10)) { !service.isRunning }
                #expect(service.terminationStatus == 0, "\(logText())")
            }
        }
    }

    /// A TCP relay from 127.0.0.1:<port> to <host>:<port>, one thread per direction.
    static let relayScript = """
        import socket, sys, threading
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", int(sys.argv[1])))
        listener.listen(64)
        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        while True:
            client, _ = listener.accept()
            upstream = socket.create_connection((sys.argv[2], int(sys.argv[3])))
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        """

    /// A port nothing listens on now: the kernel's pick for a socket bound to port 0.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func waitUntil(_ what: String, within limit: Duration, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw DeadlineExceeded(what: what)
    }
}
