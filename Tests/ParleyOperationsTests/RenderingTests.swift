import Foundation
import Testing
import ParleyAMQP
import ParleyMessaging
@testable import ParleyOperations
import ParleyJSON

/// The pure parts of the operator tooling: tables, the status report, redaction, dead-letter
/// descriptions and replay copies.
@Suite("Operations: rendering and pure parts")
struct RenderingTests {
    @Test("resync finds a system's adapter database: its own variable, else the adapters' shared one, else the link service's")
    func adapterDatabase() throws {
        let link = "postgres://parley:pw@127.0.0.1:5432/parley"
        var env = ["PARLEY_DATABASE_URL": link]
        #expect(try OperationsDatabase.configuration(adapters: true, system: .customerp, env).0.database == "parley")
        env["PARLEY_ADAPTER_DATABASE_URL"] = "postgres://a:pw@127.0.0.1:5432/adapters"
        #expect(try OperationsDatabase.configuration(adapters: true, system: .customerp, env).0.database == "adapters")
        env["PARLEY_CUSTOMERP_ADAPTER_DATABASE_URL"] = "postgres://c:pw@127.0.0.1:5432/customerp_adapter"
        let (own, variable) = try OperationsDatabase.configuration(adapters: true, system: .customerp, env)
        #expect(own.database == "customerp_adapter" && variable == "PARLEY_CUSTOMERP_ADAPTER_DATABASE_URL")
        #expect(
            try OperationsDatabase.configuration(adapters: true, system: .powerofficego, env).0.database == "adapters", "another system's is not used"
        )
        #expect(try OperationsDatabase.configuration(env).0.database == "parley", "the link service's own")
    }

    @Test("a table pads left-aligned columns, right-aligns numbers and leaves no trailing blanks")
    func table() {
        let text = TextTable.render(["NAME", "N", "NOTE"], [["a", "1", "x"], ["long name", "123", ""]], alignments: [.left, .right, .left])
        #expect(
            text == """
                NAME         N  NOTE
                a            1  x
                long name  123
                """)
        #expect(TextTable.render(["A", "B"], []) == "A  B")
    }

    @Test("queues are shown in the order messages flow, then dead letters, then retry tiers shortest first")
    func queueOrder() {
        let names = [
            "parley.retry.600000ms", "link.events.dead", "zzz", "mapping.sync", "parley.retry.1000ms", "link.events",
            "customerp-adapter.commands", "mapping.changes", "link.canonical", "mapping.changes.dead", "parley.retry.5000ms"
        ]
        #expect(
            StatusRendering.ordered(names.map { QueueStats(name: $0) }).map(\.name) == [
                "mapping.changes", "link.canonical", "mapping.sync", "customerp-adapter.commands", "link.events",
                "mapping.changes.dead", "link.events.dead",
                "parley.retry.1000ms", "parley.retry.5000ms", "parley.retry.600000ms", "zzz"
            ])
    }

    @Test("the status report: an aligned queue table, the link counts, and a reason for what could not be read")
    func statusReport() {
        let queues = [
            QueueStats(name: "link.events", ready: 12, unacked: 3, consumers: 2, publishRate: 41.26, deliverRate: 40),
            QueueStats(name: "mapping.changes", ready: 0, unacked: 0, consumers: 1, publishRate: 0, deliverRate: 0)
        ]
        let link = LinkSummary(
            entities: [("customer", 2), ("order", 1), ("product", 0)],
            rows: [
                .init(system: "customerp", entityType: "customer", members: 2, inFlight: 0, parked: 0, failed: 1, conflicts: 0),
                .init(system: "customwebshop", entityType: "order", members: 0, inFlight: 1, parked: 1, failed: 0, conflicts: 0)
            ],
            outbox: 4)
        let report = StatusReport(
            vhost: "parley", takenAt: Date(timeIntervalSince1970: 1_795_000_000), queues: .success(queues), link: .success(link))
        #expect(!report.hasErrors)
        #expect(
            StatusRendering.render(report) == """
                Parley status of vhost parley at 2026-11-18T11:06:40Z

                QUEUE            READY  UNACKED  CONSUMERS  PUBLISH/S  DELIVER/S
                mapping.changes      0        0          1        0.0        0.0
                link.events         12        3          2       41.3       40.0

                global entities: customer 2, order 1, product 0

                SYSTEM         TYPE      MEMBERS  IN FLIGHT  PARKED  FAILED  CONFLICTS
                customerp      customer        2          0       0       1          0
                customwebshop  order           0          1       1       0          0

                writes in flight 1, parked 1, failed 1, conflicts 0, outbox backlog 4
                """)

        let broken = StatusReport(
            vhost: "parley", takenAt: Date(timeIntervalSince1970: 0),
            queues: .failure(OperationsError("cannot reach the RabbitMQ management API at http://127.0.0.1:1 (connection refused): …")),
            link: .success(link))
        #expect(broken.hasErrors)
        #expect(
            StatusRendering.render(broken).contains("queues: cannot reach the RabbitMQ management API at http://127.0.0.1:1 (connection refused)"))
        #expect(StatusRendering.render(broken).contains("outbox backlog 4"), "what could be read is still shown")
    }

    @Test("queue statistics from the management API's JSON, rates and all; missing statistics are zeros")
    func queueStatsJSON() throws {
        let json = try JSONValue.parse(
            """
            {"name":"link.events","type":"quorum","messages_ready":5,"messages_unacknowledged":2,"consumers":1,
             "message_stats":{"publish":100,"publish_details":{"rate":3.4},"deliver_get_details":{"rate":2.0}}}
            """)
        #expect(
            QueueStats(json: json)
                == QueueStats(name: "link.events", type: "quorum", ready: 5, unacked: 2, consumers: 1, publishRate: 3.4, deliverRate: 2))
        #expect(QueueStats(json: try JSONValue.parse(#"{"name":"q"}"#)) == QueueStats(name: "q", type: "classic"))
    }

    @Test("passwords never appear: URLs are redacted, lists too, URLs without one are unchanged")
    func redaction() {
        #expect(Redact.url("amqp://parley:s3cr3t@127.0.0.1:5672/parley") == "amqp://parley:***@127.0.0.1:5672/parley")
        #expect(Redact.url("http://u:p@a:1/,http://v:q@b:2/x") == "http://u:***@a:1/,http://v:***@b:2/x")
        #expect(Redact.url("http://127.0.0.1:15672/") == "http://127.0.0.1:15672/")
        #expect(Redact.url("postgres://user@host/db") == "postgres://user@host/db")
        let error = OperationsError.unreachable(
            "the RabbitMQ management API", at: "http://admin:hunter2@10.0.0.1:15672", reason: "connection refused", hint: "is RabbitMQ running?")
        #expect(
            error.description
                == "cannot reach the RabbitMQ management API at http://admin:***@10.0.0.1:15672 (connection refused): is RabbitMQ running?")
    }

    @Test("the management API URL: credentials taken out of the base and used for Basic auth; else the AMQP URL's")
    func managementURL() throws {
        let withCredentials = try ManagementAPI(url: "http://ops:pw@127.0.0.1:15672/", user: "parley", password: "x", vhost: "parley")
        #expect(withCredentials.baseURL == "http://127.0.0.1:15672")
        #expect(withCredentials.user == "ops" && withCredentials.password == "pw")
        let without = try ManagementAPI(url: "http://127.0.0.1:15672", user: "parley", password: "x", vhost: "/")
        #expect(without.user == "parley" && without.password == "x")
        #expect(without.vhostPath == "%2F")
        #expect(throws: OperationsError.self) { try ManagementAPI(url: "ftp://x", user: "u", password: "p", vhost: "/") }
        let fromEnv = try ManagementAPI.fromEnvironment(["PARLEY_AMQP_URL": "amqp://parley:pw@broker:5672/prod"])
        #expect(fromEnv.baseURL == "http://broker:15672" && fromEnv.vhost == "prod" && fromEnv.user == "parley")
    }

    @Test("a dead letter's description: Parley's reason headers, else the broker's x-death")
    func deadLetterDescription() throws {
        let parley = try #require(
            PeekedMessage(
                json: try JSONValue.parse(
                    """
                    {"routing_key":"link.events","exchange":"parley.dead-letter","redelivered":false,"payload":"{}","payload_encoding":"string",
                     "properties":{"message_id":"m-1","type":"written","headers":{"parley-error":"bad payload","parley-failed-queue":"link.events",
                       "parley-failed-at":"2026-11-22T01:00:00Z","parley-retries":2,"parley-system":"customerp","parley-entity-type":"customer"}}}
                    """)))
        let letter = DeadLetter(deadQueue: "link.events.dead", peeked: parley)
        #expect(
            letter
                == DeadLetter(
                    deadQueue: "link.events.dead", messageId: "m-1", kind: "written", system: "customerp", entityType: "customer",
                    reason: "bad payload", failedQueue: "link.events", failedAt: "2026-11-22T01:00:00Z", retries: 2))
        #expect(letter.typeDescription == "written customerp.customer")

        let broker = try #require(
            PeekedMessage(
                json: try JSONValue.parse(
                    """
                    {"routing_key":"mapping.sync","properties":{"headers":{"x-first-death-reason":"delivery_limit","x-first-death-queue":"mapping.sync",
                     "x-death":[{"reason":"delivery_limit","queue":"mapping.sync","count":1,"time":1795000000}]}}}
                    """)))
        let dropped = DeadLetter(deadQueue: "mapping.sync.dead", peeked: broker)
        #expect(dropped.reason == "dead-lettered by the broker: delivery_limit")
        #expect(dropped.failedQueue == "mapping.sync")
        #expect(dropped.failedAt == "2026-11-18T11:06:40Z")
        #expect(dropped.messageId == nil && dropped.retries == nil)
    }

    @Test("a replayed copy goes to the queue itself with the failure and retry headers removed and everything else kept")
    func replayCopy() {
        let properties = AMQPProperties(
            contentType: "application/json",
            headers: [
                "parley-error": "boom", "parley-failed-queue": "link.events", "parley-failed-at": "t", "parley-retries": 5,
                "parley-retry-queue": "link.events", "x-death": .array([]), "x-first-death-reason": "rejected", "x-delivery-count": 3,
                "parley-system": "customerp", "traceparent": "00-abc-def-01"
            ],
            messageId: "m-1", type: "change")
        let copy = DeadLetters.replayCopy(body: [1, 2, 3], properties: properties, to: "link.events", at: Date(timeIntervalSince1970: 0))
        #expect(copy.exchange == "" && copy.routingKey == "link.events" && copy.mandatory)
        #expect(copy.body == [1, 2, 3])
        #expect(copy.properties.messageId == "m-1" && copy.properties.type == "change" && copy.properties.contentType == "application/json")
        #expect(copy.properties.headers.entries.map(\.key) == ["parley-system", "traceparent", "parley-replayed-at"])
        #expect(copy.properties.isPersistent)
        #expect(DeadLetters.originalQueue(of: "link.events.dead") == "link.events")
        #expect(DeadLetters.originalQueue(of: "link.events") == "link.events")
        #expect(DeadLetters.deadQueue(of: "link.events") == "link.events.dead")
        #expect(DeadLetters.deadQueue(of: "link.events.dead") == "link.events.dead")
    }
}
