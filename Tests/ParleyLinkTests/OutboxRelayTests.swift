import Foundation
import Logging
import Testing
import ParleyAMQP
import ParleyCanonical
import ParleyCore
import ParleyMessaging
import ParleyPostgres
import ParleyTestSupport
@testable import ParleyLink
import ParleyLinkCore
import ParleyEnvelope

/// The outbox relay on RabbitMQ and PostgreSQL.
@Suite("Outbox relay", .serialized, .timeLimit(.minutes(3)))
struct OutboxRelayTests {
    @Test(
        "A confirmed message whose row could not be deleted (PostgreSQL restarting) is deleted at the next sweep, not published again after its claim"
    )
    func failedDeleteIsRetried() async throws {
        try await ScratchVhost.with("parley-test-outbox") { vhost in
            try await LinkSchemaTests.withScratchDatabase(connections: 1) { pool in
                _ = try await Migrator(migrations: LinkSchema.migrations, schema: "public").migrate(on: pool)
                let amqp = try vhost.configuration("test-outbox")
                let publisher = AMQPPublisher(configuration: amqp, topology: ParleyTopology.standard)
                defer { Task { await publisher.close() } }
                #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout))
                let relay = OutboxRelay(pool: pool, publisher: publisher, logger: Logger(label: "test"))

                // A sync request a transaction queued and claimed, as `LinkStore.enqueue` does.
                let envelope = try Envelope(
                    kind: .syncRequest, system: .customwebshop, entityType: .customer, entityId: "customer/x",
                    payload: SyncRequestPayload(operation: .create, targetId: nil, entity: ["name": "x"]).json)
                let message = OutgoingMessage(
                    envelope: envelope, exchange: ParleyTopology.Exchanges.sync,
                    routingKey: ParleyTopology.routingKey(system: .customwebshop, entityType: .customer, kind: .syncRequest))
                _ = try await pool.execute(
                    """
                    insert into outbox (message_id, exchange, routing_key, body, claimed_until)
                    values ($1, $2, $3, $4, now() + interval '30 seconds')
                    """, [envelope.id, message.exchange, message.routingKey, message.body])

                // Its delete fails once the broker confirmed it.
                _ = try await pool.execute(
                    """
                    create function refuse_delete() returns trigger language plpgsql as $$
                    begin raise exception 'the database system is shutting down'; end $$
                    """)
                _ = try await pool.execute("create trigger refuse_delete before delete on outbox for each row execute function refuse_delete()")
                await relay.publishCommitted([OutboxMessage(id: envelope.id, message: message)])
                #expect(relay.undeleted.withLock { $0 } == [envelope.id.lowercasedString])
                #expect(try await Self.rows(pool) == 1)
                await #expect(throws: (any Error).self, "still failing: the sweep stops before claiming anything") { try await relay.sweep() }

                // PostgreSQL back: the next sweep deletes the row, publishing nothing.
                _ = try await pool.execute("drop trigger refuse_delete on outbox")
                #expect(try await relay.sweep() == 0)
                #expect(try await Self.rows(pool) == 0)
                #expect(relay.undeleted.withLock { $0 }.isEmpty)
                #expect(try await Self.deliveries(ParleyTopology.Queues.mappingSync, amqp) == [envelope.id], "published once")
            }
        }
    }

    static func rows(_ pool: PostgresPool) async throws -> Int {
        try await pool.query("select count(*)::int from outbox")[0].decode(Int.self, at: 0)
    }

    /// The message ids on `queue` until a second passes with nothing new.
    static func deliveries(_ queue: String, _ amqp: AMQPConfiguration) async throws -> [UUID] {
        let consumer = AMQPConsumer(configuration: amqp, queue: queue)
        defer { Task { await consumer.close() } }
        let got = Locked<[UUID]>([])
        let reader = Task {
            for await delivery in consumer.deliveries {
                if let envelope = try? delivery.envelope() { got.withLock { $0.append(envelope.id) } }
                delivery.ack()
            }
        }
        defer { reader.cancel() }
        var seen = -1
        while seen != got.withLock({ $0.count }) {
            seen = got.withLock { $0.count }
            try await Task.sleep(for: .seconds(1))
        }
        return got.withLock { $0 }
    }
}
