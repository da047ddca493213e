import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ParleyAMQP
import ParleyCanonical
import ParleyCore
import ParleyMapping
import ParleyMessaging
import ParleyJSON

/// Receives the webshop's webhooks on any replica: checks the signature (401 and nothing
/// published when it is wrong or stale), reads the record the event names, publishes it as a
/// `change` with a confirm, and only then answers 204 — so a webhook the sender saw accepted
/// is never lost. Trouble reading the record or publishing answers 503: the sender retries.
public struct WebhookHandler: Sendable {
    let verifier: WebhookVerifier
    let connector: any SystemConnector
    let mappings: Mappings
    let publisher: AMQPPublisher
    let logger: Logger

    public init(verifier: WebhookVerifier, connector: any SystemConnector, mappings: Mappings, publisher: AMQPPublisher, logger: Logger) {
        self.verifier = verifier
        self.connector = connector
        self.mappings = mappings
        self.publisher = publisher
        self.logger = logger
    }

    /// The HTTP status to answer.
    public func handle(timestamp: String?, signature: String?, body: [UInt8]) async -> Int {
        do {
            try verifier.verify(timestamp: timestamp, signature: signature, body: body)
        } catch {
            logger.warning("webhook refused", metadata: ["reason": "\(error)"])
            return 401
        }
        let event: WebhookEvent
        do {
            event = try WebhookEvent(json: try JSONValue.parse(body))
        } catch {
            logger.warning("webhook body not understood", metadata: ["error": "\(error)"])
            return 400
        }
        do {
            let record = event.event == "deleted" ? nil : try await connector.record(event.entity, id: event.id)
            let message: OutgoingMessage
            if let record {
                let modified = mappings.mapper(system: connector.system, entity: event.entity)?.identity(of: record).modifiedAt
                message = try ChangeMessage.upsert(system: connector.system, entity: event.entity, id: event.id, modifiedAt: modified, record: record)
            } else {
                message = try ChangeMessage.delete(system: connector.system, entity: event.entity, id: event.id)
            }
            try await publisher.publish(message)
            return 204
        } catch {
            logger.warning("webhook not published; the sender will retry", metadata: ["error": "\(error)"])
            return 503
        }
    }

    /// An HTTP server (a ServiceLifecycle service) answering `POST /webhooks/<system>`.
    public func application(host: String = "0.0.0.0", port: Int) -> some ApplicationProtocol {
        let router = Router()
        let handler = self
        let timestampName = HTTPField.Name("X-Parley-Timestamp")!
        let signatureName = HTTPField.Name("X-Parley-Signature")!
        router.post("/webhooks/\(connector.system.rawValue)") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let status = await handler.handle(
                timestamp: request.headers[timestampName], signature: request.headers[signatureName],
                body: Array(buffer.readableBytesView))
            return Response(status: .init(code: status))
        }
        router.get("/health") { _, _ -> Response in Response(status: .ok) }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
    }
}
