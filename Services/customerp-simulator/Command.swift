import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ParleySimulator

@main
struct CustomerpSimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customerp-simulator",
        abstract: "Serves the custom ERP contract (docs/contracts/customerp.openapi.yaml) from memory, with fault injection.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8081
    @Option(help: "Accepted X-Api-Key (env CUSTOMERP_SIM_API_KEY).") var apiKey: String?
    @Option(help: "Accepted bearer token (env CUSTOMERP_SIM_BEARER_TOKEN).") var bearerToken: String?
    @Flag(help: "Accept requests without credentials.") var noAuth = false
    @Option(help: "Create N customers, N products and N orders at start.") var seed = 0
    @Option(help: "Random seed for the generated data.") var seedValue: UInt64 = 1
    @Option(help: "Fraction 0…1 of requests answered with --error-status.") var errorRate: Double?
    @Option(help: "The 5xx status of injected errors.") var errorStatus: Int?
    @Option(help: "Added latency per request, milliseconds.") var latencyMs: Int?
    @Option(help: "Random extra latency up to this many milliseconds.") var latencyJitterMs: Int?
    @Option(help: "Answer the first N requests 429.") var rateLimitBurst: Int?
    @Option(help: "Retry-After seconds of injected 429s.") var retryAfter: Int?
    @Option(help: "Fraction 0…1 of requests whose connection is dropped.") var dropRate: Double?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        var faults = FaultSettings.fromEnvironment(prefix: SimulatorEnvironment.Customerp.prefix)
        if let errorRate { faults.errorRate = errorRate }
        if let errorStatus { faults.errorStatus = errorStatus }
        if let latencyMs { faults.latencyMs = latencyMs }
        if let latencyJitterMs { faults.latencyJitterMs = latencyJitterMs }
        if let rateLimitBurst { faults.rateLimitBurst = rateLimitBurst }
        if let retryAfter { faults.retryAfterSeconds = retryAfter }
        if let dropRate { faults.dropRate = dropRate }
        var auth = AuthPolicy(
            apiKey: apiKey ?? env[SimulatorEnvironment.Customerp.apiKey], bearerToken: bearerToken ?? env[SimulatorEnvironment.Customerp.bearerToken])
        if auth.isOpen && !noAuth { auth.apiKey = "dev-erp-key" }
        if noAuth { auth = AuthPolicy() }
        let state = try ERPSimulator.makeState(seed: seed, seedValue: seedValue, faults: faults)
        let router = ERPSimulator.makeRouter(state: state, auth: auth, seedValue: seedValue)
        let banner = auth
        var logger = Logger(label: "customerp-simulator")
        logger.logLevel = .info
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "customerp-simulator"),
            onServerRunning: { channel in
                print("customerp-simulator listening on \(channel.localAddress?.description ?? "?")"
                    + (banner.isOpen ? " (no auth)" : banner.apiKey.map { " (X-Api-Key: \($0))" } ?? ""))
            }, logger: logger)
        try await app.runService()
    }
}
