/// Turns a batch of settlements for one channel into as few frames as possible, as a pure value.
///
/// The broker numbers deliveries on a channel 1, 2, 3 …; `basic.ack` with `multiple` settles
/// every outstanding tag up to it. That is only safe when every tag up to it is being acked
/// now or was settled before — a multiple ack must never cover a delivery a handler still
/// holds, and no tag may be settled twice (the broker closes the channel with 406). So acks
/// that extend the settled prefix become one multiple ack; the rest (out of order, beyond a
/// gap) and every nack/reject go out singly.
public struct AckBatcher: Sendable {
    public enum Kind: Equatable, Sendable {
        case ack
        case nack(requeue: Bool)
        case reject(requeue: Bool)
    }

    public struct Frame: Equatable, Sendable {
        public var kind: Kind
        public var tag: UInt64
        public var multiple: Bool
    }

    /// Every tag below this is settled.
    public private(set) var settledBelow: UInt64 = 1
    /// Tags at or above `settledBelow` already settled (sent singly).
    private var settledAhead: Set<UInt64> = []

    public init() {}

    /// The frames to send for these settlements, in order.
    public mutating func frames(for batch: [(tag: UInt64, kind: Kind)]) -> [Frame] {
        var out: [Frame] = []
        var acks = Set<UInt64>()
        for s in batch where s.tag >= settledBelow && !settledAhead.contains(s.tag) {
            if s.kind == .ack {
                acks.insert(s.tag)
            } else if !acks.contains(s.tag) {
                out.append(Frame(kind: s.kind, tag: s.tag, multiple: false))
                settledAhead.insert(s.tag)
            }
        }
        // The contiguous run from settledBelow of tags acked now or settled before.
        var t = settledBelow
        var highestAck: UInt64?
        while acks.contains(t) || settledAhead.contains(t) {
            if acks.remove(t) != nil { highestAck = t }
            t += 1
        }
        if let highestAck {
            out.append(Frame(kind: .ack, tag: highestAck, multiple: true))
        }
        // Advance past the run (and anything settled singly right behind it).
        while t > settledBelow {
            settledAhead.remove(settledBelow)
            settledBelow += 1
        }
        for tag in acks.sorted() {
            out.append(Frame(kind: .ack, tag: tag, multiple: false))
            settledAhead.insert(tag)
        }
        return out
    }

    /// A new channel numbers its deliveries from 1 again.
    public mutating func reset() {
        settledBelow = 1
        settledAhead.removeAll()
    }
}
