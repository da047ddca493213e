// powerofficego-adapter: PowerOffice Go through its v2 API (specs/powerofficego-v2.openapi.yaml).
import ArgumentParser
import Foundation
import Logging
import ParleyAdapter
import ParleyMessaging

@main
struct PowerOfficeGoAdapter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "powerofficego-adapter",
        abstract: "Captures PowerOffice Go's changes and writes Parley's commands to it.",
        discussion: """
            PARLEY_POWEROFFICE_URL (API base, e.g. https://goapi.poweroffice.net/v2), PARLEY_POWEROFFICE_TOKEN_URL,
            PARLEY_POWEROFFICE_APPLICATION_KEY, PARLEY_POWEROFFICE_CLIENT_KEY, PARLEY_POWEROFFICE_SUBSCRIPTION_KEY (each or _FILE),
            PARLEY_DATABASE_URL, PARLEY_AMQP_URL (or their _FILE forms), PARLEY_REPOSITORY (the mapping tables).
            """)

    @Option(help: "Directory holding mappings/ (default: PARLEY_REPOSITORY or the working directory).")
    var repository: String?
    @Option(help: "Seconds between polls.")
    var pollSeconds: Double = 10
    @Option(help: "Seconds between full rescans.")
    var rescanSeconds: Int = 6 * 3600
    @Option(help: "Seconds between id reconciliations, which notice records deleted in PowerOffice Go (its feed does not show deletes).")
    var reconcileSeconds: Double = 300
    @Option(help: "Port for /health/live, /health/ready and /metrics (default: PARLEY_HTTP_PORT or 9400; PARLEY_HTTP_HOST sets the address).")
    var httpPort: Int?
    @Option(help: "Requests per second at most (PowerOffice Go allows 10).")
    var requestsPerSecond: Double = 10

    func validate() throws {
        guard reconcileSeconds > 0 else { throw ValidationError("--reconcile-seconds must be more than 0") }
    }

    func run() async throws {
        let environment = AdapterEnvironment()
        let logger = ServiceLogging.bootstrap(environment: environment.values, label: "parley.powerofficego-adapter")
        do {
            let credentials = PowerOfficeConnector.Credentials(
                tokenURL: try environment.url(AdapterEnvironment.Key.powerOfficeTokenURL, "PowerOffice Go's OAuth token endpoint"),
                applicationKey: try environment.required(AdapterEnvironment.Key.powerOfficeApplicationKey, "the application key"),
                clientKey: try environment.required(AdapterEnvironment.Key.powerOfficeClientKey, "the client key"),
                subscriptionKey: try environment.required(AdapterEnvironment.Key.powerOfficeSubscriptionKey, "the Ocp-Apim-Subscription-Key"))
            let base = try environment.url(AdapterEnvironment.Key.powerOfficeURL, "PowerOffice Go's API base URL")
            let rate = requestsPerSecond
            try await AdapterRuntime.run(
                name: "powerofficego-adapter", environment: environment, repository: repository, logger: logger,
                pollInterval: .milliseconds(Int64(pollSeconds * 1000)), rescanInterval: .seconds(rescanSeconds),
                reconcileInterval: .milliseconds(Int64(reconcileSeconds * 1000)), httpPort: httpPort
            ) {
                PowerOfficeConnector(baseURL: base, credentials: credentials, requestsPerSecond: rate)
            }
        } catch let missing as AdapterEnvironment.Missing {
            FileHandle.standardError.write(Data("powerofficego-adapter: \(missing)\n".utf8))
            throw ExitCode(78)
        }
    }
}
