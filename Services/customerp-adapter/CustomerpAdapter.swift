// customerp-adapter: the company's ERP, through the contract in docs/contracts/customerp.openapi.yaml.
import ArgumentParser
import Foundation
import Logging
import ParleyAdapter
import ParleyMessaging

@main
struct CustomerpAdapter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customerp-adapter",
        abstract: "Captures the ERP's changes and writes Parley's commands to it.",
        discussion: """
            PARLEY_CUSTOMERP_URL (base URL of the contract), PARLEY_CUSTOMERP_API_KEY (or _FILE; sent as X-Api-Key),
            PARLEY_DATABASE_URL, PARLEY_AMQP_URL (or their _FILE forms), PARLEY_REPOSITORY (the mapping tables).
            """)

    @Option(help: "Directory holding mappings/ (default: PARLEY_REPOSITORY or the working directory).")
    var repository: String?
    @Option(help: "Seconds between polls of the change feed.")
    var pollSeconds: Double = 2
    @Option(help: "Seconds between full rescans.")
    var rescanSeconds: Int = 3600
    @Option(help: "Port for /health/live, /health/ready and /metrics (default: PARLEY_HTTP_PORT or 9400; PARLEY_HTTP_HOST sets the address).")
    var httpPort: Int?

    func run() async throws {
        let environment = AdapterEnvironment()
        let logger = ServiceLogging.bootstrap(environment: environment.values, label: "parley.customerp-adapter")
        do {
            try await AdapterRuntime.run(
                name: "customerp-adapter", environment: environment, repository: repository, logger: logger,
                pollInterval: .milliseconds(Int64(pollSeconds * 1000)), rescanInterval: .seconds(rescanSeconds), httpPort: httpPort
            ) {
                let base = try environment.url(AdapterEnvironment.Key.customerpURL, "the ERP contract's base URL")
                let key = try environment.required(AdapterEnvironment.Key.customerpAPIKey, "the ERP's API key")
                return RESTContractConnector(
                    system: .customerp, http: HTTPJSONClient(baseURL: base) { [("X-Api-Key", key)] }, style: .erp)
            }
        } catch let missing as AdapterEnvironment.Missing {
            FileHandle.standardError.write(Data("customerp-adapter: \(missing)\n".utf8))
            throw ExitCode(78)
        }
    }
}
