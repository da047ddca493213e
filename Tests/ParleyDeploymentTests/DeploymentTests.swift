import Foundation
import ParleyAMQP
import ParleyDeployment
import ParleyMessaging
import Testing
import Yams
import ParleyEnvelope

/// The repository root (this file is Tests/ParleyDeploymentTests/DeploymentTests.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Debian's docker-compose 1.29 (`apt-get install docker-compose`, or `make test-tools`).
let dockerCompose: String? = {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let path = "\(dir)/docker-compose"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}()

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

func run(_ executable: String, _ arguments: [String]) throws -> Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = repositoryRoot
    // No .env of the developer's, no COMPOSE_* of the caller's: the example file only.
    process.environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

/// `docker-compose config` with the example env file and the given profiles.
func composeConfig(profiles: [String]) throws -> Run {
    var arguments = [
        "--project-directory", repositoryRoot.path, "-f", repositoryRoot.appendingPathComponent("docker-compose.yml").path,
        "--env-file", repositoryRoot.appendingPathComponent(".env.example").path
    ]
    for profile in profiles { arguments += ["--profile", profile] }
    return try run(dockerCompose!, arguments + ["config"])
}

@Suite("docker-compose.yml")
struct ComposeFileTests {
    static let skipMessage = "docker-compose is not installed: apt-get install -y docker-compose (make test-tools does)"

    @Test(
        "docker-compose config accepts the file, with and without the demo and monitoring profiles",
        .enabled(if: dockerCompose != nil, Comment(rawValue: skipMessage)))
    func validates() throws {
        for profiles in [[], ["demo", "monitoring"]] {
            let result = try composeConfig(profiles: profiles)
            #expect(result.status == 0, "docker-compose config \(profiles): \(result.stderr)")
            #expect(!result.stderr.lowercased().contains("warning"), "docker-compose config \(profiles) warns: \(result.stderr)")
        }
    }

    @Test(
        "every Parley service and simulator sets only keys it reads, and every key it requires",
        .enabled(if: dockerCompose != nil, Comment(rawValue: skipMessage)))
    func environmentMatchesTheCode() throws {
        let result = try composeConfig(profiles: ["demo", "monitoring"])
        try #require(result.status == 0, "docker-compose config: \(result.stderr)")
        let config = try #require(try Yams.load(yaml: result.stdout) as? [String: Any])
        let services = try #require(config["services"] as? [String: Any])

        for name in ServiceEnvironment.services.keys.sorted() {
            let spec = ServiceEnvironment.services[name]!
            let service = try #require(services[name] as? [String: Any], "\(name) is not in docker-compose.yml")
            let environment = Self.environment(service["environment"])
            let unknown = Set(environment.keys).subtracting(spec.keys)
            #expect(unknown.isEmpty, "\(name) sets keys it does not read: \(unknown.sorted())")
            for alternatives in spec.required {
                #expect(
                    alternatives.contains { !(environment[$0] ?? "").isEmpty },
                    "\(name) needs one of \(alternatives.joined(separator: " / "))")
            }
            // A secret file named in *_FILE must be mounted into that service.
            let mounted = Set(
                ((service["secrets"] as? [Any]) ?? []).compactMap { entry -> String? in
                    (entry as? [String: Any]).flatMap { $0["target"] as? String ?? $0["source"] as? String } ?? entry as? String
                })
            for (key, value) in environment where key.hasSuffix("_FILE") && value.hasPrefix("/run/secrets/") {
                let secret = String(value.dropFirst("/run/secrets/".count))
                #expect(mounted.contains(secret), "\(name): \(key) names secret \(secret), which is not mounted")
            }
        }
    }

    @Test(
        "adapters scale: no container_name, no host ports",
        .enabled(if: dockerCompose != nil, Comment(rawValue: skipMessage)))
    func adaptersScale() throws {
        let result = try composeConfig(profiles: [])
        try #require(result.status == 0)
        let config = try #require(try Yams.load(yaml: result.stdout) as? [String: Any])
        let services = try #require(config["services"] as? [String: Any])
        for name in ["customerp-adapter", "customwebshop-adapter", "powerofficego-adapter"] {
            let service = try #require(services[name] as? [String: Any])
            #expect(service["container_name"] == nil, "\(name) has a container_name")
            #expect(service["ports"] == nil, "\(name) publishes host ports")
        }
    }

    @Test(
        "every long-running service has a healthcheck and waits for healthy or completed dependencies",
        .enabled(if: dockerCompose != nil, Comment(rawValue: skipMessage)))
    func healthchecksAndDependencies() throws {
        let result = try composeConfig(profiles: ["demo", "monitoring"])
        try #require(result.status == 0)
        let config = try #require(try Yams.load(yaml: result.stdout) as? [String: Any])
        let services = try #require(config["services"] as? [String: Any])
        let oneShot: Set<String> = ["rabbitmq-init", "postgres-init", "seeder"]
        for (name, value) in services {
            let service = try #require(value as? [String: Any])
            if !oneShot.contains(name) {
                #expect(service["healthcheck"] != nil, "\(name) has no healthcheck")
            }
            for (dependency, condition) in (service["depends_on"] as? [String: Any]) ?? [:] {
                let wanted = oneShot.contains(dependency) ? "service_completed_successfully" : "service_healthy"
                #expect((condition as? [String: Any])?["condition"] as? String == wanted, "\(name) → \(dependency) should wait for \(wanted)")
            }
        }
    }

    static func environment(_ value: Any?) -> [String: String] {
        if let map = value as? [String: Any] {
            return map.mapValues { "\($0)" }
        }
        var out: [String: String] = [:]
        for item in (value as? [Any]) ?? [] {
            let text = "\(item)"
            let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            out[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return out
    }
}

@Suite("infra/rabbitmq and infra/grafana")
struct BrokerFilesTests {
    @Test("permissions.tsv is what BrokerAccess derives from ParleyTopology.standard")
    func permissionsFile() throws {
        let url = repositoryRoot.appendingPathComponent("infra/rabbitmq/permissions.tsv")
        if ProcessInfo.processInfo.environment["PARLEY_WRITE_DEFINITIONS"] == "1" {
            let header = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix("#") }
            let order = ["mapping-service", "link-service"] + ParleyTopology.systems.map { "\($0.rawValue)-adapter" }
            let lines = order.compactMap { service in
                BrokerAccess.grants[service].map { grant in
                    let p = BrokerAccess.permissions(grant)
                    return [service, grant.user, p.configure, p.write, p.read].joined(separator: "\t")
                }
            }
            try ((header.map(String.init) + lines).joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        }
        let text = try String(contentsOf: url, encoding: .utf8)
        var seen: Set<String> = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            try #require(fields.count == 5, "\(line)")
            let grant = try #require(BrokerAccess.grants[fields[0]], "unknown service \(fields[0])")
            #expect(fields[1] == grant.user)
            let expected = BrokerAccess.permissions(grant)
            #expect(fields[2] == expected.configure, "\(fields[0]) configure")
            #expect(fields[3] == expected.write, "\(fields[0]) write")
            #expect(fields[4] == expected.read, "\(fields[0]) read")
            seen.insert(fields[0])
        }
        #expect(seen == Set(BrokerAccess.grants.keys))
        #expect(seen == Set(ServiceEnvironment.parleyServices))
    }

    @Test("the permissions grant consuming only a service's own queues and publishing only to its exchanges")
    func permissionsAreNarrow() throws {
        let d = ParleyTopology.standard.declarations()
        let workQueues = ParleyTopology.standard.queues.map(\.name)
        for (service, grant) in BrokerAccess.grants {
            let p = BrokerAccess.permissions(grant)
            let read = try Regex(p.read), write = try Regex(p.write), configure = try Regex(p.configure)
            for queue in workQueues {
                #expect((try read.wholeMatch(in: queue) != nil) == grant.consumes.contains(queue), "\(service) read \(queue)")
            }
            for exchange in d.exchanges.map(\.name) + [BrokerAccess.defaultExchange] {
                let publishes = grant.publishes.contains(exchange) || exchange == ParleyTopology.standard.deadLetterExchange
                #expect((try write.wholeMatch(in: exchange) != nil) == publishes, "\(service) write \(exchange)")
            }
            // Services only verify the topology the administrator created: nothing to configure,
            // no queue to write to (bind), no exchange to read from.
            for name in d.exchanges.map(\.name) + d.queues.map(\.name) + [BrokerAccess.defaultExchange] {
                #expect(try configure.wholeMatch(in: name) == nil, "\(service) configure \(name)")
            }
            for name in d.queues.map(\.name) { #expect(try write.wholeMatch(in: name) == nil, "\(service) write \(name)") }
            for name in d.exchanges.map(\.name) { #expect(try read.wholeMatch(in: name) == nil, "\(service) read \(name)") }
        }
    }

    @Test("definitions.json is ParleyTopology.standard")
    func definitionsFile() throws {
        let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("infra/rabbitmq/definitions.json"))
        let committed = try JSONSerialization.jsonObject(with: data)
        func canonical(_ object: Any) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        let expected = try canonical(BrokerDefinitions.object())
        if try canonical(committed) != expected, ProcessInfo.processInfo.environment["PARLEY_WRITE_DEFINITIONS"] == "1" {
            try (try BrokerDefinitions.text() + "\n").write(
                to: repositoryRoot.appendingPathComponent("infra/rabbitmq/definitions.json"),
                atomically: true, encoding: .utf8)
        }
        #expect(
            try canonical(committed) == expected,
            "infra/rabbitmq/definitions.json is stale: PARLEY_WRITE_DEFINITIONS=1 swift test --filter ParleyDeploymentTests")
    }

    /// The service metric names (docs/deployment.md) and the RabbitMQ plugin's.
    static let knownMetrics: Set<String> = [
        "parley_messages_consumed_total", "parley_messages_published_total", "parley_message_processing_seconds_bucket",
        "parley_failures_total", "parley_link_inflight_writes", "parley_link_parked_entities", "parley_link_waiting_changes",
        "parley_link_failed_entities",
        "parley_link_conflicts", "parley_sync_latency_seconds_bucket", "parley_poll_lag_seconds", "parley_commands_total",
        "rabbitmq_queue_messages", "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_consumers",
        "rabbitmq_detailed_queue_exchange_messages_published_total", "rabbitmq_detailed_queue_messages_delivered_ack_total",
        "rabbitmq_global_messages_dead_lettered_delivery_limit_total"
    ]

    @Test("the Grafana dashboard queries only metrics that exist")
    func dashboardMetrics() throws {
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("infra/grafana/dashboards/parley.json"), encoding: .utf8)
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        var used: Set<String> = []
        for panel in panels {
            for target in (panel["targets"] as? [[String: Any]]) ?? [] {
                let expr = try #require(target["expr"] as? String)
                for match in expr.matches(of: /\b(parley|rabbitmq)_[a-z_]+/) { used.insert(String(match.output.0)) }
            }
        }
        #expect(!used.isEmpty)
        #expect(used.subtracting(Self.knownMetrics).isEmpty, "unknown metrics: \(used.subtracting(Self.knownMetrics).sorted())")
    }
}
