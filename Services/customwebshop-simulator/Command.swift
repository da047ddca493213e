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
    @OptionGroup var options: SimulatorOptions

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let faults = options.faults(environmentPrefix: SimulatorEnvironment.Customwebshop.prefix)
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
        let state = try WebshopSimulator.makeState(seed: options.seed, seedValue: options.seedValue, faults: faults)
        let router = WebshopSimulator.makeRouter(state: state, auth: auth, seedValue: options.seedValue, webhooks: webhooks)
        let banner = auth
        var logger = Logger(label: "customwebshop-simulator")
        logger.logLevel = .info
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "customwebshop-simulator"),
            onServerRunning: { channel in
                print(
                    "customwebshop-simulator listening on \(channel.localAddress?.description ?? "?")"
                        + (banner.isOpen ? " (no auth)" : banner.basic.map { " (Basic \($0.user):…)" } ?? ""))
            }, logger: logger)
        try await app.runService()
    }
}
