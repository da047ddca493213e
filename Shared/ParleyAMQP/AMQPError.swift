/// Every failure the AMQP layer reports. Server-side failures carry the AMQP reply code and
/// text (e.g. 404 NOT_FOUND), library failures carry rabbitmq-c's status and its string.
public enum AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The URL could not be understood; the text says which part.
    case invalidURL(String)
    /// rabbitmq-c reported a status (socket, heartbeat, protocol, TLS ...).
    case library(operation: String, status: Int32, message: String)
    /// The broker closed the connection (connection.close) with this reply.
    case connectionClosed(code: UInt16, text: String)
    /// The broker closed the channel (channel.close) with this reply, e.g. 404 for a publish
    /// to a missing exchange. Every publish in flight on that channel fails with it.
    case channelClosed(code: UInt16, text: String)
    /// The broker answered a publish with basic.nack: it did not take responsibility for it.
    case nacked
    /// A mandatory publish could not be routed to any queue (basic.return).
    case returned(code: UInt16, text: String)
    /// The connection dropped while the publish was in flight; the broker may or may not have
    /// it, so the caller must retry (consumers are idempotent).
    case connectionLost(String)
    /// The publisher or consumer was closed.
    case closed
    /// A delivery from a connection that no longer exists cannot be acknowledged; the broker
    /// redelivers it.
    case staleDelivery
    /// A value that AMQP cannot carry (e.g. a string too long for a short string).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .invalidURL(let why): return "invalid AMQP URL: \(why)"
        case .library(let op, let status, let message): return "AMQP \(op) failed: \(message) (status \(status))"
        case .connectionClosed(let code, let text): return "AMQP connection closed by broker: \(code) \(text)"
        case .channelClosed(let code, let text): return "AMQP channel closed by broker: \(code) \(text)"
        case .nacked: return "AMQP publish was nacked by the broker"
        case .returned(let code, let text): return "AMQP mandatory publish was returned unroutable: \(code) \(text)"
        case .connectionLost(let why): return "AMQP connection lost before the broker confirmed: \(why)"
        case .closed: return "AMQP client is closed"
        case .staleDelivery: return "AMQP delivery belongs to a connection that is gone; the broker will redeliver it"
        case .invalidArgument(let why): return "invalid AMQP argument: \(why)"
        }
    }

    /// The AMQP reply code, where the broker gave one.
    public var replyCode: UInt16? {
        switch self {
        case .connectionClosed(let code, _), .channelClosed(let code, _), .returned(let code, _): return code
        default: return nil
        }
    }

    /// Whether retrying the same operation later may succeed.
    public var isTransient: Bool {
        switch self {
        case .invalidURL, .invalidArgument, .closed: return false
        case .channelClosed(let code, _): return !(code == 403 || code == 404 || code == 406)
        case .returned: return false
        default: return true
        }
    }
}
