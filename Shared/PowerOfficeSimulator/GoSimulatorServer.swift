import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The HTTP face of `GoSimulator`: Hummingbird 2 with one responder that hands every request
/// to the actor. Paths: `POST /OAuth/Token`, the API under `/v2` (PowerOffice's base URL is
/// `…/v2`, its token URL `…/OAuth/Token`), and `/_admin/…`.
public enum GoSimulatorServer {
    public static let maxBodyBytes = 4 * 1024 * 1024

    /// An application serving `simulator` on `host:port` (port 0: any free port; pass
    /// `onServerRunning` to learn which).
    public static func application(
        simulator: GoSimulator, host: String = "127.0.0.1", port: Int,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger = Logger(label: "powerofficego-simulator")
    ) -> some ApplicationProtocol {
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            var request = request
            let body = try await request.collectBody(upTo: maxBodyBytes)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let query = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
            let simRequest = SimRequest(
                method: request.method.rawValue, path: request.uri.path, query: query,
                headers: headers, body: Array(buffer: body))
            let isAPI = !request.uri.path.lowercased().hasPrefix("/_admin")
            if isAPI {
                let latency = await simulator.latencyMs
                if latency > 0 { try await Task.sleep(for: .milliseconds(latency)) }
            }
            let response = await simulator.handle(simRequest)
            var fields = HTTPFields()
            for (name, value) in response.headers {
                if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
            }
            if response.drop {
                // Send a head, then fail the body: the server closes the connection mid-response.
                return Response(status: .ok, headers: fields, body: ResponseBody { _ in throw DroppedConnection() })
            }
            return Response(
                status: HTTPResponse.Status(code: response.status), headers: fields,
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: response.body)))
        }
        return Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "powerofficego-simulator"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    struct DroppedConnection: Error {}
}
