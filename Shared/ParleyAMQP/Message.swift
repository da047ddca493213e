import CRabbitMQ
import Foundation

/// The basic properties of a message (AMQP 0-9-1 `basic` class content header).
public struct AMQPProperties: Sendable, Hashable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPTable
    /// 2 = persistent (the default: messages survive a broker restart), 1 = transient.
    public var deliveryMode: UInt8
    public var priority: UInt8?
    public var correlationId: String?
    public var replyTo: String?
    public var expiration: String?
    public var messageId: String?
    /// Seconds since 1970.
    public var timestamp: UInt64?
    public var type: String?
    public var userId: String?
    public var appId: String?

    public init(
        contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable = [:],
        deliveryMode: UInt8 = 2, priority: UInt8? = nil, correlationId: String? = nil,
        replyTo: String? = nil, expiration: String? = nil, messageId: String? = nil,
        timestamp: UInt64? = nil, type: String? = nil, userId: String? = nil, appId: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageId = messageId
        self.timestamp = timestamp
        self.type = type
        self.userId = userId
        self.appId = appId
    }

    public var isPersistent: Bool { deliveryMode == 2 }
}

/// A message to publish.
public struct OutgoingMessage: Sendable {
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var properties: AMQPProperties
    /// When true (the default), an unroutable message makes `publish` throw `.returned`.
    public var mandatory: Bool

    public init(
        exchange: String, routingKey: String, body: [UInt8], properties: AMQPProperties = .init(),
        mandatory: Bool = true
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
    }
}

// MARK: - C conversion

private func flag(_ f: Int32) -> amqp_flags_t { amqp_flags_t(UInt32(bitPattern: f)) }

extension AMQPProperties {
    /// Fills a C properties struct; strings live in `arena` for the duration of the call.
    func c(in arena: CArena) -> amqp_basic_properties_t {
        var p = amqp_basic_properties_t()
        var flags: amqp_flags_t = 0
        if let contentType { p.content_type = arena.bytes(contentType); flags |= flag(AMQP_BASIC_CONTENT_TYPE_FLAG) }
        if let contentEncoding { p.content_encoding = arena.bytes(contentEncoding); flags |= flag(AMQP_BASIC_CONTENT_ENCODING_FLAG) }
        if !headers.isEmpty { p.headers = arena.table(headers); flags |= flag(AMQP_BASIC_HEADERS_FLAG) }
        p.delivery_mode = deliveryMode; flags |= flag(AMQP_BASIC_DELIVERY_MODE_FLAG)
        if let priority { p.priority = priority; flags |= flag(AMQP_BASIC_PRIORITY_FLAG) }
        if let correlationId { p.correlation_id = arena.bytes(correlationId); flags |= flag(AMQP_BASIC_CORRELATION_ID_FLAG) }
        if let replyTo { p.reply_to = arena.bytes(replyTo); flags |= flag(AMQP_BASIC_REPLY_TO_FLAG) }
        if let expiration { p.expiration = arena.bytes(expiration); flags |= flag(AMQP_BASIC_EXPIRATION_FLAG) }
        if let messageId { p.message_id = arena.bytes(messageId); flags |= flag(AMQP_BASIC_MESSAGE_ID_FLAG) }
        if let timestamp { p.timestamp = timestamp; flags |= flag(AMQP_BASIC_TIMESTAMP_FLAG) }
        if let type { p.type = arena.bytes(type); flags |= flag(AMQP_BASIC_TYPE_FLAG) }
        if let userId { p.user_id = arena.bytes(userId); flags |= flag(AMQP_BASIC_USER_ID_FLAG) }
        if let appId { p.app_id = arena.bytes(appId); flags |= flag(AMQP_BASIC_APP_ID_FLAG) }
        p._flags = flags
        return p
    }

    /// Copies a received C properties struct.
    init(_ p: amqp_basic_properties_t) {
        func has(_ f: Int32) -> Bool { p._flags & flag(f) != 0 }
        self.init(
            contentType: has(AMQP_BASIC_CONTENT_TYPE_FLAG) ? p.content_type.string : nil,
            contentEncoding: has(AMQP_BASIC_CONTENT_ENCODING_FLAG) ? p.content_encoding.string : nil,
            headers: has(AMQP_BASIC_HEADERS_FLAG) ? AMQPTable(p.headers) : [:],
            deliveryMode: has(AMQP_BASIC_DELIVERY_MODE_FLAG) ? p.delivery_mode : 1,
            priority: has(AMQP_BASIC_PRIORITY_FLAG) ? p.priority : nil,
            correlationId: has(AMQP_BASIC_CORRELATION_ID_FLAG) ? p.correlation_id.string : nil,
            replyTo: has(AMQP_BASIC_REPLY_TO_FLAG) ? p.reply_to.string : nil,
            expiration: has(AMQP_BASIC_EXPIRATION_FLAG) ? p.expiration.string : nil,
            messageId: has(AMQP_BASIC_MESSAGE_ID_FLAG) ? p.message_id.string : nil,
            timestamp: has(AMQP_BASIC_TIMESTAMP_FLAG) ? p.timestamp : nil,
            type: has(AMQP_BASIC_TYPE_FLAG) ? p.type.string : nil,
            userId: has(AMQP_BASIC_USER_ID_FLAG) ? p.user_id.string : nil,
            appId: has(AMQP_BASIC_APP_ID_FLAG) ? p.app_id.string : nil)
    }
}
