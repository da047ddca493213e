import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ParleySimulator

@main
struct CustomwebshopSimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customwebshop-simulator",
        abstract: "Serves the custom webshop contract (docs/contracts/customwebshop.openapi.yaml) from memory, with fault injection.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8082
    @Option(help: "Consumer key for HTTP Basic (env CUSTOMWEBSHOP_SIM_CONSUMER_KEY).") var consumerKey: String?
    @Option(help: "Consumer secret for HTTP Basic (env CUSTOMWEBSHOP_SIM_CONSUMER_SECRET).") var consumerSecret: String?
    @Option(help: "Where to POST signed change webhooks (env CUSTOMWEBSHOP_SIM_WEBHOOK_URL).") var webhookUrl: String?
    @Option(help: "The webhooks' HMAC secret (env CUSTOMWEBSHOP_SIM_WEBHOOK_SECRET).") var webhookSecret: String?
    @Option(help: "Delivery attempts per webhook before it is abandoned.") var webhookAttempts = 6
    @Option(help: "Accepted bearer token (env CUSTOMWEBSHOP_SIM_BEARER_TOKEN).") var bearerToken: String?
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
        var faults = FaultSettings.fromEnvironment(prefix: SimulatorEnvironment.Customwebshop.prefix)
        if let errorRate { faults.errorRate = errorRate }
        if let errorStatus { faults.errorStatus = errorStatus }
        if let latencyMs { faults.latencyMs = latencyMs }
        if let latencyJitterMs { faults.latencyJitterMs = latencyJitterMs }
        if let rateLimitBurst { faults.rateLimitBurst = rateLimitBurst }
        if let retryAfter { faults.retryAfterSeconds = retryAfter }
        if let dropRate { faults.dropRate = dropRate }
        let key = consumerKey ?? env[SimulatorEnvironment.Customwebshop.consumerKey]
        let secret = consumerSecret ?? env[SimulatorEnvironment.Customwebshop.consumerSecret]
        var auth = AuthPolicy(
            basic: key.map { ($0, secret ?? "") }, bearerToken: bearerToken ?? env[SimulatorEnvironment.Customwebshop.bearerToken])
        if auth.isOpen && !noAuth { auth.basic = ("ck_dev", "cs_dev") }
        if noAuth { auth = AuthPolicy() }
        var webhooks: WebhookDispatcher?
        if let url = webhookUrl ?? env[SimulatorEnvironment.Customwebshop.webhookURL] {
            guard let s = webhookSecret ?? env[SimulatorEnvironment.Customwebshop.webhookSecret], !s.isEmpty else {
                throw ValidationError("--webhook-url needs --webhook-secret")
            }
            webhooks = WebhookDispatcher(url: url, secret: s, maxAttempts: webhookAttempts)
        }
        let state = try WebshopSimulator.makeState(seed: seed, seedValue: seedValue, faults: faults)
        let router = WebshopSimulator.makeRouter(state: state, auth: auth, seedValue: seedValue, webhooks: webhooks)
        let banner = auth
        var logger = Logger(label: "customwebshop-simulator")
        logger.logLevel = .info
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "customwebshop-simulator"),
            onServerRunning: { channel in
                print("customwebshop-simulator listening on \(channel.localAddress?.description ?? "?")"
                    + (banner.isOpen ? " (no auth)" : banner.basic.map { " (Basic \($0.user):…)" } ?? ""))
            }, logger: logger)
        try await app.runService()
    }
}
