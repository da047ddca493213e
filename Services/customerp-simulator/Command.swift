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
    @OptionGroup var options: SimulatorOptions

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let faults = options.faults(environmentPrefix: SimulatorEnvironment.Customerp.prefix)
        var auth = AuthPolicy(
            apiKey: apiKey ?? env[SimulatorEnvironment.Customerp.apiKey], bearerToken: bearerToken ?? env[SimulatorEnvironment.Customerp.bearerToken])
        if auth.isOpen && !noAuth { auth.apiKey = "dev-erp-key" }
        if noAuth { auth = AuthPolicy() }
        let state = try ERPSimulator.makeState(seed: options.seed, seedValue: options.seedValue, faults: faults)
        let router = ERPSimulator.makeRouter(state: state, auth: auth, seedValue: options.seedValue)
        let banner = auth
        var logger = Logger(label: "customerp-simulator")
        logger.logLevel = .info
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "customerp-simulator"),
            onServerRunning: { channel in
                print(
                    "customerp-simulator listening on \(channel.localAddress?.description ?? "?")"
                        + (banner.isOpen ? " (no auth)" : banner.apiKey.map { " (X-Api-Key: \($0))" } ?? ""))
            }, logger: logger)
        try await app.runService()
    }
}
