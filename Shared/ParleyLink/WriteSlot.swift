/// One write in flight per target record (DESIGN rule 8), as a pure state machine.
///
/// `idle` → ``request(_:)`` starts a write → `inFlight`. Newer states that arrive while it is in
/// flight are coalesced: only the latest is kept, and it is sent when the write is confirmed
/// (level-triggered, like a controller), so writes to one record are never reordered and ten
/// quick edits cost at most two writes.
public struct WriteSlot: Sendable, Hashable {
    public enum State: Sendable, Hashable {
        case idle
        /// `pending` is whether a newer state waits for this write to finish.
        case inFlight(writeId: String, leaseUntil: Int64, pending: Bool)
    }

    /// What the caller must do.
    public enum Action: Sendable, Hashable {
        /// Send a sync request now, with this write id.
        case send(writeId: String)
        /// Nothing now: a write is in flight and the newer state will follow it.
        case wait
        /// Nothing: the event is not about the current write (stale or duplicate).
        case ignore
    }

    public private(set) var state: State = .idle

    public init(state: State = .idle) { self.state = state }

    /// A new canonical state should reach the target.
    public mutating func request(writeId: @autoclosure () -> String, now: Int64, lease: Int64) -> Action {
        switch state {
        case .idle:
            let id = writeId()
            state = .inFlight(writeId: id, leaseUntil: now + lease, pending: false)
            return .send(writeId: id)
        case .inFlight(let id, let until, _):
            state = .inFlight(writeId: id, leaseUntil: until, pending: true)
            return .wait
        }
    }

    /// The target confirmed (or permanently refused) write `writeId`. If a newer state waited,
    /// it is sent now under a new write id.
    public mutating func finished(writeId: String, nextWriteId: @autoclosure () -> String, now: Int64, lease: Int64) -> Action {
        guard case .inFlight(let id, _, let pending) = state, id == writeId else { return .ignore }
        if pending {
            let next = nextWriteId()
            state = .inFlight(writeId: next, leaseUntil: now + lease, pending: false)
            return .send(writeId: next)
        }
        state = .idle
        return .ignore
    }

    /// The lease ran out with no event: send the write again under the same id (the target's
    /// idempotency key makes a repeated create harmless), with a new lease.
    public mutating func expire(now: Int64, lease: Int64) -> Action {
        guard case .inFlight(let id, let until, let pending) = state, until <= now else { return .ignore }
        state = .inFlight(writeId: id, leaseUntil: now + lease, pending: pending)
        return .send(writeId: id)
    }
}
