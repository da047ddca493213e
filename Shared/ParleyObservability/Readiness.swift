import Foundation
import ParleyAMQP
import ParleyPostgres
import Synchronization

/// One thing a service needs before it can do its work: a broker connection, the database.
/// `/health/ready` answers 200 only when every probe of the service says up.
public protocol ReadinessProbe: Sendable {
    /// Names the dependency in the readiness body, e.g. `broker.publisher`, `database`.
    var name: String { get }
    /// Up, or why not. Called for every request to `/health/ready`, so it must be cheap.
    func check() async -> ProbeResult
}

public enum ProbeResult: Sendable, Equatable {
    case up
    case down(String)

    public var isUp: Bool { self == .up }
}

/// A probe from a closure: returning `true` is up, `false` is down ("not connected"), throwing
/// is down with the error. A probe that takes longer than `timeout` is down.
public struct ReadinessCheck: ReadinessProbe {
    public let name: String
    public let timeout: Duration
    let body: @Sendable () async throws -> Bool

    public init(_ name: String, timeout: Duration = .seconds(3), _ body: @escaping @Sendable () async throws -> Bool) {
        self.name = name
        self.timeout = timeout
        self.body = body
    }

    public func check() async -> ProbeResult {
        let body = self.body, timeout = self.timeout
        // The check runs in a task of its own and is raced against the timeout without waiting
        // for it: a blocking call that does not return (a database that hangs) must not hang
        // the readiness request with it.
        return await withCheckedContinuation { (continuation: CheckedContinuation<ProbeResult, Never>) in
            let once = ResumeOnce(continuation)
            let resume: @Sendable (ProbeResult) -> Void = { result in once.resume(returning: result) }
            let work = Task {
                do {
                    resume(try await body() ? .up : .down("not connected"))
                } catch {
                    resume(.down(String(describing: error)))
                }
            }
            Task {
                try? await Task.sleep(for: timeout)
                resume(.down("no answer within \(timeout)"))
                work.cancel()
            }
        }
    }

    /// An AMQP connection (a publisher's or a consumer's) is up: connected, topology declared,
    /// confirm mode on or consuming.
    public static func amqp(_ name: String, _ readiness: ConnectionReadiness) -> ReadinessCheck {
        ReadinessCheck(name) { readiness.isReady }
    }

    /// The service's own database pool runs `SELECT 1` (so a pool whose every connection is
    /// busy for longer than the timeout counts as down too).
    public static func postgres(_ pool: PostgresPool, name: String = "database", timeout: Duration = .seconds(3)) -> ReadinessCheck {
        ReadinessCheck(name, timeout: timeout) {
            let rows = try await pool.query("select 1")
            return try rows.first?.decode(Int.self, at: 0) == 1
        }
    }
}

/// A continuation the first of two racing tasks resumes.
private final class ResumeOnce: Sendable {
    private let continuation: Mutex<CheckedContinuation<ProbeResult, Never>?>
    init(_ continuation: CheckedContinuation<ProbeResult, Never>) { self.continuation = Mutex(continuation) }
    func resume(returning result: ProbeResult) { continuation.withLock { $0.take() }?.resume(returning: result) }
}

/// The probes of one service, asked together.
public struct Readiness: Sendable {
    public var probes: [any ReadinessProbe]

    public init(_ probes: [any ReadinessProbe] = []) {
        self.probes = probes
    }

    public struct Report: Sendable, Equatable {
        /// Per probe, in the order given.
        public var results: [(name: String, result: ProbeResult)]
        public var isReady: Bool { results.allSatisfy { $0.result.isUp } }
        public var down: [String] { results.filter { !$0.result.isUp }.map(\.name) }

        public static func == (a: Report, b: Report) -> Bool {
            a.results.map(\.name) == b.results.map(\.name) && a.results.map(\.result) == b.results.map(\.result)
        }

        /// `{"status":"ready"|"not ready","down":[names],"checks":[{"name":…,"status":"up"|"down","detail":…}]}`
        public var json: [UInt8] {
            struct Check: Encodable {
                var name: String
                var status: String
                var detail: String?
            }
            struct Body: Encodable {
                var status: String
                var down: [String]
                var checks: [Check]
            }
            let body = Body(
                status: isReady ? "ready" : "not ready", down: down,
                checks: results.map { name, result in
                    switch result {
                    case .up: Check(name: name, status: "up")
                    case .down(let why): Check(name: name, status: "down", detail: why)
                    }
                })
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return Array((try? encoder.encode(body)) ?? Data(#"{"status":"not ready"}"#.utf8))
        }
    }

    /// Asks every probe at once.
    public func evaluate() async -> Report {
        let probes = self.probes
        let results = await withTaskGroup(of: (Int, ProbeResult).self) { group in
            for (index, probe) in probes.enumerated() {
                group.addTask { (index, await probe.check()) }
            }
            var results = [ProbeResult](repeating: .down("not asked"), count: probes.count)
            for await (index, result) in group { results[index] = result }
            return results
        }
        return Report(results: zip(probes, results).map { ($0.name, $1) })
    }
}
