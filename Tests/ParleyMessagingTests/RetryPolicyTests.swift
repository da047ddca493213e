import Testing
import ParleyAMQP
@testable import ParleyMessaging
import ParleyEnvelope

@Suite("Retry policy")
struct RetryPolicyTests {
    let topology = Topology(exchanges: [], queues: [], retryDelays: [.seconds(1), .seconds(10)])

    @Test("Transient failures go through the tiers, then are dead-lettered with the reason")
    func transient() {
        let policy = RetryPolicy(maxRetries: 3)
        let e = HandlerFailure.transient("503 from the webshop")
        #expect(policy.decide(error: e, retriesSoFar: 0, topology: topology) == .retry(tierQueue: "parley.retry.1000ms", attempt: 1))
        #expect(policy.decide(error: e, retriesSoFar: 1, topology: topology) == .retry(tierQueue: "parley.retry.10000ms", attempt: 2))
        #expect(policy.decide(error: e, retriesSoFar: 2, topology: topology) == .retry(tierQueue: "parley.retry.10000ms", attempt: 3))
        #expect(policy.decide(error: e, retriesSoFar: 3, topology: topology) == .deadLetter(reason: "gave up after 3 retries: 503 from the webshop"))
    }

    @Test("Permanent failures and unknown errors are dead-lettered at once")
    func permanent() {
        struct Boom: Error {}
        let policy = RetryPolicy()
        #expect(policy.decide(error: HandlerFailure.permanent("no name"), retriesSoFar: 0, topology: topology) == .deadLetter(reason: "no name"))
        #expect(policy.decide(error: Boom(), retriesSoFar: 0, topology: topology) == .deadLetter(reason: "Boom()"))
    }

    @Test("Transient broker errors are retried; a topology without tiers dead-letters")
    func brokerErrors() {
        let policy = RetryPolicy()
        #expect(
            policy.decide(error: AMQPError.connectionLost("x"), retriesSoFar: 0, topology: topology)
                == .retry(tierQueue: "parley.retry.1000ms", attempt: 1))
        let noTiers = Topology(exchanges: [], queues: [], retryDelays: [])
        #expect(
            policy.decide(error: HandlerFailure.transient("x"), retriesSoFar: 0, topology: noTiers)
                == .deadLetter(reason: "gave up after 0 retries: x"))
    }
}

@Suite("Parley's topology")
struct ParleyTopologyTests {
    @Test("Every step of the message flow has its exchange, queue and binding")
    func flow() {
        let d = ParleyTopology.standard.declarations()
        let bound = Set(d.bindings.map { "\($0.binding.exchange) -> \($0.queue) [\($0.binding.routingKey)]" })
        #expect(bound.contains("parley.changes -> mapping.changes [#]"))
        #expect(bound.contains("parley.canonical -> link.canonical [#]"))
        #expect(bound.contains("parley.sync -> mapping.sync [#]"))
        #expect(bound.contains("parley.events -> link.events [#]"))
        for system in ParleyTopology.systems {
            #expect(bound.contains("parley.commands -> \(system.rawValue)-adapter.commands [\(system.rawValue).#]"))
        }
        #expect(ParleyTopology.routingKey(system: .powerofficego, entityType: .order, kind: .written) == "powerofficego.order.written")
        #expect(d.queues.filter { $0.name.hasSuffix(".dead") }.count == 7)
    }
}
