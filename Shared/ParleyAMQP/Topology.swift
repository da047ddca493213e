import ParleyCore

/// The broker topology as one declarative value. Every service declares the same value on
/// every (re)connect; declaring is idempotent, so the order services start in does not matter.
///
/// From the exchanges and work queues it is given, `declarations()` derives the rest:
/// - every work queue is a durable **quorum** queue with `x-delivery-limit` (poison messages),
///   at-least-once dead-lettering (`x-dead-letter-strategy=at-least-once`, which needs
///   `x-overflow=reject-publish`) into the dead-letter exchange, routed by the queue's name to
///   its own dead-letter queue `<queue>.dead`;
/// - a delayed-retry path: one quorum queue per delay tier (`parley.retry.<ms>ms`, with
///   `x-message-ttl`) that dead-letters expired messages into the headers exchange
///   `parley.requeue`, where each work queue is bound on the header
///   `parley-retry-queue = <queue>`. A consumer retries a message later by publishing a copy
///   to a tier queue with that header and then acknowledging the original.
public struct Topology: Sendable, Hashable {
    public enum ExchangeKind: String, Sendable, Hashable { case topic, direct, fanout, headers }

    public struct Exchange: Sendable, Hashable {
        public var name: String
        public var kind: ExchangeKind
        public init(_ name: String, kind: ExchangeKind = .topic) {
            self.name = name
            self.kind = kind
        }
    }

    public struct Binding: Sendable, Hashable {
        public var exchange: String
        public var routingKey: String
        public var arguments: AMQPTable
        public init(exchange: String, routingKey: String, arguments: AMQPTable = [:]) {
            self.exchange = exchange
            self.routingKey = routingKey
            self.arguments = arguments
        }
    }

    public struct Queue: Sendable, Hashable {
        public var name: String
        public var bindings: [Binding]
        /// Deliveries after which the broker dead-letters a message that keeps being
        /// returned (a consumer that crashes on it, or nacks it with requeue).
        public var deliveryLimit: Int
        public init(_ name: String, bindings: [Binding], deliveryLimit: Int = 10) {
            self.name = name
            self.bindings = bindings
            self.deliveryLimit = deliveryLimit
        }
    }

    /// A queue or exchange declaration as the broker sees it.
    public struct QueueDeclaration: Sendable, Hashable {
        public var name: String
        public var arguments: AMQPTable
    }

    public struct Declarations: Sendable, Hashable {
        public var exchanges: [Exchange]
        public var queues: [QueueDeclaration]
        public var bindings: [(queue: String, binding: Binding)]

        public static func == (a: Declarations, b: Declarations) -> Bool {
            a.exchanges == b.exchanges && a.queues == b.queues
                && a.bindings.map(\.queue) == b.bindings.map(\.queue) && a.bindings.map(\.binding) == b.bindings.map(\.binding)
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(exchanges)
            hasher.combine(queues)
        }
    }

    public var exchanges: [Exchange]
    public var queues: [Queue]
    public var deadLetterExchange: String
    public var requeueExchange: String
    /// The delays of the retry tiers, shortest first.
    public var retryDelays: [Duration]

    /// The header a retried copy carries to find its way back.
    public static let retryQueueHeader = "parley-retry-queue"

    public init(
        exchanges: [Exchange], queues: [Queue], deadLetterExchange: String = "parley.dead-letter",
        requeueExchange: String = "parley.requeue",
        retryDelays: [Duration] = [.seconds(1), .seconds(10), .seconds(60)]
    ) {
        self.exchanges = exchanges
        self.queues = queues
        self.deadLetterExchange = deadLetterExchange
        self.requeueExchange = requeueExchange
        self.retryDelays = retryDelays
    }

    public static func deadLetterQueue(for queue: String) -> String { "\(queue).dead" }

    public static func retryQueue(delay: Duration) -> String {
        let ms = Int64((delay.inSeconds * 1000).rounded())
        return "parley.retry.\(ms)ms"
    }

    /// The retry tier for the n-th retry (0-based): the tiers in turn, then the longest.
    public func retryQueue(forAttempt n: Int) -> String? {
        guard !retryDelays.isEmpty else { return nil }
        return Self.retryQueue(delay: retryDelays[min(max(n, 0), retryDelays.count - 1)])
    }

    public func queue(named name: String) -> Queue? { queues.first { $0.name == name } }

    /// Everything to declare, in dependency order: exchanges, queues, bindings.
    public func declarations() -> Declarations {
        var exchanges = self.exchanges
        exchanges.append(Exchange(deadLetterExchange, kind: .direct))
        if !retryDelays.isEmpty { exchanges.append(Exchange(requeueExchange, kind: .headers)) }

        var queues: [QueueDeclaration] = []
        var bindings: [(queue: String, binding: Binding)] = []
        let quorum: AMQPTable = ["x-queue-type": "quorum"]
        for q in self.queues {
            var args = quorum
            args["x-delivery-limit"] = .int64(Int64(q.deliveryLimit))
            args["x-dead-letter-exchange"] = .string(deadLetterExchange)
            args["x-dead-letter-routing-key"] = .string(q.name)
            args["x-dead-letter-strategy"] = "at-least-once"
            args["x-overflow"] = "reject-publish"
            queues.append(QueueDeclaration(name: q.name, arguments: args))
            for b in q.bindings { bindings.append((q.name, b)) }

            let dead = Self.deadLetterQueue(for: q.name)
            queues.append(QueueDeclaration(name: dead, arguments: quorum))
            bindings.append((dead, Binding(exchange: deadLetterExchange, routingKey: q.name)))

            if !retryDelays.isEmpty {
                bindings.append(
                    (
                        q.name,
                        Binding(
                            exchange: requeueExchange, routingKey: "",
                            arguments: ["x-match": "all", Self.retryQueueHeader: .string(q.name)])
                    ))
            }
        }
        for delay in retryDelays {
            var args = quorum
            args["x-message-ttl"] = .int64(Int64((delay.inSeconds * 1000).rounded()))
            args["x-dead-letter-exchange"] = .string(requeueExchange)
            args["x-dead-letter-strategy"] = "at-least-once"
            args["x-overflow"] = "reject-publish"
            queues.append(QueueDeclaration(name: Self.retryQueue(delay: delay), arguments: args))
        }
        return Declarations(exchanges: exchanges, queues: queues, bindings: bindings)
    }
}
