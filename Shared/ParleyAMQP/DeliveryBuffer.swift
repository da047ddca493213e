import Synchronization

/// Deliveries handed from a consumer's connection thread to the task that consumes them, taken
/// in one piece: each `next()` returns **everything** that arrived since the previous call (and
/// waits only when nothing did). A consumer that is busy with one batch finds the next one
/// already gathered, so batch sizes follow the backlog instead of the socket reads (a few
/// messages each); a consumer that keeps up is woken once per arrival.
public final class DeliveryBuffer: AsyncSequence, Sendable {
    public typealias Element = [AMQPDelivery]
    public typealias Failure = Never

    private struct State {
        var pending: [AMQPDelivery] = []
        var waiter: CheckedContinuation<[AMQPDelivery]?, Never>?
        var finished = false
    }
    private let state = Mutex(State())

    init() {}

    /// From the connection thread: more deliveries.
    func append(_ deliveries: [AMQPDelivery]) {
        guard !deliveries.isEmpty else { return }
        let waiter = state.withLock { s -> CheckedContinuation<[AMQPDelivery]?, Never>? in
            guard !s.finished else { return nil }
            if let waiter = s.waiter {
                s.waiter = nil
                return waiter
            }
            s.pending.append(contentsOf: deliveries)
            return nil
        }
        waiter?.resume(returning: deliveries)
    }

    /// No more deliveries: `next()` returns what is left, then `nil`.
    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<[AMQPDelivery]?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Everything that arrived since the last call; waits when nothing did. `nil` once finished
    /// and drained, or when the calling task is cancelled. One task iterates at a time.
    public func next() async -> [AMQPDelivery]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<[AMQPDelivery]?, Never>) in
                let now = state.withLock { s -> [AMQPDelivery]?? in
                    if !s.pending.isEmpty {
                        defer { s.pending.removeAll(keepingCapacity: true) }
                        return .some(s.pending)
                    }
                    if s.finished || Task.isCancelled { return .some(nil) }
                    precondition(s.waiter == nil, "DeliveryBuffer: one task iterates at a time")
                    s.waiter = c
                    return .none
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<[AMQPDelivery]?, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: DeliveryBuffer
        public mutating func next() async -> [AMQPDelivery]? { await buffer.next() }
        public mutating func next(isolation actor: isolated (any Actor)?) async -> [AMQPDelivery]? { await buffer.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: self) }
}
