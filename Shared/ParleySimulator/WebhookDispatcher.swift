import AsyncHTTPClient
import Foundation
import ParleyCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// One change notification, as the webshop contract's `WebhookEvent`.
public struct WebhookEvent: Sendable, Equatable, Codable {
    public var event: String
    public var resource: String
    public var id: Int64
    public var occurred_at: String

    public init(event: String, resource: String, id: Int64, occurredAt: Timestamp) {
        self.event = event
        self.resource = resource
        self.id = id
        self.occurred_at = occurredAt.rfc3339
    }
}

/// Sends signed change webhooks in order, one at a time, retrying each failed delivery
/// (connection error or non-2xx) with exponential backoff. Every attempt is signed afresh,
/// so a retried webhook is never rejected as stale. After the last attempt the event is
/// dropped and counted: webhooks are a hint, polling stays the source of truth.
public final class WebhookDispatcher: Sendable {
    public struct Stats: Sendable, Equatable, Codable {
        public var delivered = 0
        public var failedAttempts = 0
        public var abandoned = 0
    }

    public let url: String
    private let secret: String
    private let maxAttempts: Int
    private let initialBackoff: Duration
    private let continuation: AsyncStream<WebhookEvent>.Continuation
    private let stats = Mutex(Stats())
    private let logger: Logger

    public init(
        url: String, secret: String, maxAttempts: Int = 6, initialBackoff: Duration = .milliseconds(250), logger: Logger = Logger(label: "webhooks")
    ) {
        self.url = url
        self.secret = secret
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.logger = logger
        let (stream, continuation) = AsyncStream<WebhookEvent>.makeStream()
        self.continuation = continuation
        Task { [self] in
            for await event in stream { await deliver(event) }
        }
    }

    public func send(_ event: WebhookEvent) { continuation.yield(event) }

    public var statistics: Stats { stats.withLock { $0 } }

    func deliver(_ event: WebhookEvent) async {
        let body = Array(JSONCoding.encode(event))
        var backoff = Backoff(initial: initialBackoff, maximum: max(initialBackoff, .seconds(30)), jitter: 0)
        for attempt in 1...maxAttempts {
            let timestamp = Int64(Date().timeIntervalSince1970)
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: WebhookVerifier.timestampHeader, value: String(timestamp))
            request.headers.add(
                name: WebhookVerifier.signatureHeader,
                value: WebhookVerifier(secret: secret).sign(timestamp: String(timestamp), body: body))
            request.body = .bytes(ByteBuffer(bytes: body))
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                _ = try? await response.body.collect(upTo: 64 << 10)
                if (200..<300).contains(response.status.code) {
                    stats.withLock { $0.delivered += 1 }
                    return
                }
                logger.warning("webhook \(event.resource) \(event.id) \(event.event): HTTP \(response.status.code) (attempt \(attempt))")
            } catch {
                logger.warning("webhook \(event.resource) \(event.id) \(event.event): \(error) (attempt \(attempt))")
            }
            stats.withLock { $0.failedAttempts += 1 }
            if attempt < maxAttempts {
                try? await Task.sleep(for: backoff.next())
            }
        }
        stats.withLock { $0.abandoned += 1 }
        logger.error("webhook \(event.resource) \(event.id) \(event.event) abandoned after \(maxAttempts) attempts")
    }
}
