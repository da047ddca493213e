import Foundation
import ParleyCore
import ParleyAMQP
import ParleyDeployment
import ParleyMessaging
import ParleyTestSupport
import Testing
import ParleyEnvelope

/// The deployment's RabbitMQ users, for real: with the permissions `BrokerAccess` derives, a
/// service that verifies the topology (`PARLEY_AMQP_TOPOLOGY=verify`) publishes and consumes,
/// and can neither create nor change the topology, nor publish where it has no business.
@Suite("Broker permissions of the deployment", .serialized, .timeLimit(.minutes(3)))
struct BrokerPermissionTests {
    @Test("link-service's user: verifying works, declaring is refused, publishing to another service's exchange is refused")
    func linkServiceUser() async throws {
        try await ScratchVhost.with("parley-test-perms") { vhost in
            // The administrator's topology (in a deployment: definitions.json, imported by init.sh).
            let admin = AMQPPublisher(configuration: try vhost.configuration("test-admin"), topology: ParleyTopology.standard)
            #expect(await admin.readiness.wait(timeout: brokerReadyTimeout))
            await admin.close()

            let grant = try #require(BrokerAccess.grants["link-service"])
            let permissions = BrokerAccess.permissions(grant)
            let user = "parley_test_" + UUID().uuidString.prefix(8).lowercased()
            let password = UUID().uuidString
            _ = try await vhost.management("PUT", "/api/users/\(user)", body: #"{"password":"\#(password)","tags":""}"#)
            defer { Task { _ = try? await vhost.management("DELETE", "/api/users/\(user)") } }
            let body = try String(
                decoding: JSONSerialization.data(withJSONObject: [
                    "configure": permissions.configure, "write": permissions.write, "read": permissions.read
                ]), as: UTF8.self)
            _ = try await vhost.management("PUT", "/api/permissions/\(vhost.name)/\(user)", body: body)

            let base = try AMQPEndpoint(url: vhost.url)
            func configuration(_ mode: AMQPConfiguration.TopologyMode) throws -> AMQPConfiguration {
                var c = try AMQPConfiguration(
                    urls: "amqp://\(user):\(password)@\(base.host):\(base.port)/\(vhost.name)", connectionName: "test-perms")
                c.reconnect = Backoff(initial: .milliseconds(100), maximum: .seconds(1))
                c.topology = mode
                return c
            }

            let publisher = AMQPPublisher(configuration: try configuration(.verify), topology: ParleyTopology.standard)
            #expect(await publisher.readiness.wait(timeout: brokerReadyTimeout), "verifying needs no configure permission")
            let ok = await publisher.publish(contentsOf: [
                OutgoingMessage(
                    exchange: ParleyTopology.Exchanges.sync,
                    routingKey: "customwebshop.customer.syncRequest", body: Array("{}".utf8))
            ])
            #expect((try? ok[0].get()) != nil, "\(ok)")
            let consumer = AMQPConsumer(
                configuration: try configuration(.verify), queue: ParleyTopology.Queues.linkCanonical,
                topology: ParleyTopology.standard)
            #expect(await consumer.readiness.wait(timeout: brokerReadyTimeout))
            await consumer.close()
            await publisher.close()

            // The same user declaring the topology is refused (configure is ^$): never ready.
            let declaring = AMQPPublisher(configuration: try configuration(.declare), topology: ParleyTopology.standard)
            #expect(!(await declaring.readiness.wait(timeout: .seconds(4))))
            await declaring.close()

            // And it may not publish where the mapping service publishes.
            let other = AMQPPublisher(configuration: try configuration(.verify), topology: ParleyTopology.standard)
            #expect(await other.readiness.wait(timeout: brokerReadyTimeout))
            let refused = await other.publish(contentsOf: [
                OutgoingMessage(
                    exchange: ParleyTopology.Exchanges.commands,
                    routingKey: "customwebshop.customer.command", body: Array("{}".utf8))
            ])
            #expect((try? refused[0].get()) == nil, "write on parley.commands is not granted")
            await other.close()
        }
    }

    @Test("Verifying a vhost without the topology fails, and creates nothing")
    func verifyNeedsTheTopology() async throws {
        try await ScratchVhost.with("parley-test-verify") { vhost in
            var configuration = try vhost.configuration("test-verify")
            configuration.topology = .verify
            let publisher = AMQPPublisher(configuration: configuration, topology: ParleyTopology.standard)
            #expect(!(await publisher.readiness.wait(timeout: .seconds(4))))
            await publisher.close()
            let queues = try JSONSerialization.jsonObject(with: try await vhost.management("GET", "/api/queues/\(vhost.name)")) as? [Any]
            #expect(queues?.isEmpty == true)
        }
    }
}
