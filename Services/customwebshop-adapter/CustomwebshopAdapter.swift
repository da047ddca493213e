// customwebshop-adapter: the company's webshop, through docs/contracts/customwebshop.openapi.yaml,
// polling its feed and receiving its signed webhooks.
import ArgumentParser
import Foundation
import Logging
import ParleyAdapter
import ParleyCore
import ParleyMapping
import ParleyMessaging

@main
struct CustomwebshopAdapter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customwebshop-adapter",
        abstract: "Captures the webshop's changes (feed and webhooks) and writes Parley's commands to it.",
        discussion: """
            PARLEY_CUSTOMWEBSHOP_URL (base URL of the contract), PARLEY_CUSTOMWEBSHOP_KEY and PARLEY_CUSTOMWEBSHOP_SECRET
            (consumer key and secret, sent as Basic auth; or _FILE), PARLEY_CUSTOMWEBSHOP_WEBHOOK_SECRET (or _FILE),
            PARLEY_DATABASE_URL, PARLEY_AMQP_URL (or their _FILE forms), PARLEY_REPOSITORY (the mapping tables).
            """)

    @Option(help: "Directory holding mappings/ (default: PARLEY_REPOSITORY or the working directory).")
    var repository: String?
    @Option(help: "Seconds between polls of the change feed.")
    var pollSeconds: Double = 5
    @Option(help: "Seconds between full rescans.")
    var rescanSeconds: Int = 3600
    @Option(help: "Port for /health/live, /health/ready and /metrics (default: PARLEY_HTTP_PORT or 9400; PARLEY_HTTP_HOST sets the address).")
    var httpPort: Int?
    @Option(help: "Port for the webhook receiver (POST /webhooks/customwebshop).")
    var webhookPort: Int = 8081

    func run() async throws {
        let environment = AdapterEnvironment()
        let logger = ServiceLogging.bootstrap(environment: environment.values, label: "parley.customwebshop-adapter")
        let port = webhookPort
        do {
            let base = try environment.url(AdapterEnvironment.Key.customwebshopURL, "the webshop contract's base URL")
            let key = try environment.required(AdapterEnvironment.Key.customwebshopKey, "the webshop's consumer key")
            let secret = try environment.required(AdapterEnvironment.Key.customwebshopSecret, "the webshop's consumer secret")
            let webhookSecret = try environment.required(
                AdapterEnvironment.Key.customwebshopWebhookSecret, "the secret the webshop signs webhooks with")
            let basic = "Basic " + Data("\(key):\(secret)".utf8).base64EncodedString()
            let connector = RESTContractConnector(
                system: .customwebshop, http: HTTPJSONClient(baseURL: base) { [("Authorization", basic)] },
                style: .webshop)
            try await AdapterRuntime.run(
                name: "customwebshop-adapter", environment: environment, repository: repository, logger: logger,
                pollInterval: .milliseconds(Int64(pollSeconds * 1000)), rescanInterval: .seconds(rescanSeconds), httpPort: httpPort,
                makeConnector: { connector },
                extraServices: { publisher, mappings in
                    [
                        WebhookHandler(
                            verifier: WebhookVerifier(secret: webhookSecret), connector: connector, mappings: mappings,
                            publisher: publisher, logger: logger
                        ).application(port: port)
                    ]
                })
        } catch let missing as AdapterEnvironment.Missing {
            FileHandle.standardError.write(Data("customwebshop-adapter: \(missing)\n".utf8))
            throw ExitCode(78)
        }
    }
}
