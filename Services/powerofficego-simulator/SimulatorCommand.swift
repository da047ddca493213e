import ArgumentParser
import Hummingbird
import Logging
import PowerOfficeSimulator

/// A PowerOffice Go v2 simulator for development and tests: OAuth client credentials,
/// customers, products and sales orders in memory, the 10 requests/s limit, and faults on
/// demand (`POST /_admin/faults`). See docs/simulators.md.
@main
struct SimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "powerofficego-simulator",
        abstract: "Serve a simulated PowerOffice Go v2 API (token at /OAuth/Token, API under /v2).")

    @Option(help: "Port to listen on (0: any free port).") var port = 8093
    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "The integration's application key (OAuth client id).") var applicationKey = "sim-application-key"
    @Option(help: "The client key (OAuth client secret).") var clientKey = "sim-client-key"
    @Option(help: "The Ocp-Apim-Subscription-Key every call must carry.") var subscriptionKey = "sim-subscription-key"
    @Option(help: "Access token lifetime in seconds (PowerOffice: 20 minutes).") var tokenLifetimeSeconds: Double = 1200
    @Option(help: "Requests per second before 429 (0: unlimited).") var rateLimit: Double = 10
    @Option(help: "Create N customers, N products and N sales orders at start-up.") var seed = 0
    @Option(help: "Seed of the generators (data, ids, fault decisions).") var randomSeed: UInt64 = 42
    @Option(help: "Fault: share of API requests answered 500 (0…1).") var errorRate: Double = 0
    @Option(help: "Fault: milliseconds added to every API request.") var latencyMs = 0
    @Option(help: "Fault: the first N API requests get 429.") var throttleBurst = 0
    @Option(help: "Fault: share of API requests whose connection is dropped (0…1).") var dropRate: Double = 0

    func run() async throws {
        var configuration = GoSimulatorConfiguration()
        configuration.applicationKey = applicationKey
        configuration.clientKey = clientKey
        configuration.subscriptionKey = subscriptionKey
        configuration.tokenLifetimeSeconds = tokenLifetimeSeconds
        configuration.rateLimitPerSecond = rateLimit
        configuration.seedCount = seed
        configuration.randomSeed = randomSeed
        configuration.faults.errorRate = errorRate
        configuration.faults.latencyMs = latencyMs
        configuration.faults.throttleBurst = throttleBurst
        configuration.faults.dropRate = dropRate
        let simulator = try GoSimulator(configuration: configuration)
        var logger = Logger(label: "powerofficego-simulator")
        logger.logLevel = .info
        let app = GoSimulatorServer.application(
            simulator: simulator, host: host, port: port,
            onServerRunning: { port in
                print("powerofficego-simulator listening on http://\(host):\(port) (token: /OAuth/Token, API: /v2)")
            }, logger: logger)
        try await app.runService()
    }
}
