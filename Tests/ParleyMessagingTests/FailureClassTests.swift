import Testing
import ParleyAMQP
@testable import ParleyMessaging

/// `parley_failures_total{reason}` takes its label from a small fixed set, never from error text.
@Suite struct FailureClassTests {
    struct Other: Error {}

    @Test("A handler failure's class: transient or permanent by default, or the one it names")
    func handlerFailures() {
        #expect(FailureClass.of(HandlerFailure.transient("503 from the webshop")) == .transient)
        #expect(FailureClass.of(HandlerFailure.permanent("no name")) == .permanent)
        #expect(FailureClass.of(HandlerFailure.permanent("malformed message: not JSON", .malformed)) == .malformed)
        #expect(FailureClass.of(HandlerFailure(.permanent, "price abc", .unmappable)) == .unmappable)
    }

    @Test("Anything else is permanent; the labels are the documented ones")
    func others() {
        #expect(FailureClass.of(Other()) == .permanent)
        #expect(FailureClass.of(AMQPError.connectionLost("reset")) == (AMQPError.connectionLost("reset").isTransient ? .transient : .permanent))
        #expect(FailureClass.allCases.map(\.rawValue) == ["malformed", "invalid_payload", "unmappable", "api_error", "transient", "permanent"])
    }
}
