/// Publisher-confirm bookkeeping for one channel in confirm mode, as a pure value.
///
/// The broker numbers publishes on a channel 1, 2, 3 … and answers each with `basic.ack` or
/// `basic.nack` (possibly `multiple`, covering every tag up to it). A mandatory message that
/// cannot be routed comes back first as `basic.return` (which carries no delivery tag) and is
/// then acked; returns are matched to publishes by message id, in publish order.
/// When the channel or connection goes away every pending publish fails: it is never
/// reported as confirmed.
public struct ConfirmTracker<Token> {
    public enum Outcome: Equatable, Sendable {
        case confirmed
        case returned(code: UInt16, text: String)
        case nacked
        case failed(AMQPError)
    }

    struct Entry {
        var tag: UInt64
        var messageId: String
        var token: Token?
        var returned: (code: UInt16, text: String)?
    }

    /// Pending entries in tag order; `head` skips the settled prefix without moving memory.
    private var entries: [Entry] = []
    private var head = 0
    private var settledInside = 0
    public private(set) var nextTag: UInt64 = 1

    public init() {}

    /// Publishes sent and not yet settled.
    public var inFlight: Int { entries.count - head - settledInside }

    /// Records a publish about to be sent; returns its delivery tag.
    @discardableResult
    public mutating func register(messageId: String, token: Token) -> UInt64 {
        let tag = nextTag
        nextTag += 1
        entries.append(Entry(tag: tag, messageId: messageId, token: token))
        return tag
    }

    /// A `basic.return` for a message with this id: the earliest unsettled, not yet returned
    /// publish with that id is the one (the broker returns before it acks).
    public mutating func markReturned(messageId: String, code: UInt16, text: String) {
        for i in head..<entries.count where entries[i].token != nil && entries[i].returned == nil && entries[i].messageId == messageId {
            entries[i].returned = (code, text)
            return
        }
    }

    public mutating func ack(tag: UInt64, multiple: Bool) -> [(Token, Outcome)] {
        settle(tag: tag, multiple: multiple) { e in
            if let r = e.returned { return .returned(code: r.code, text: r.text) }
            return .confirmed
        }
    }

    public mutating func nack(tag: UInt64, multiple: Bool) -> [(Token, Outcome)] {
        settle(tag: tag, multiple: multiple) { _ in .nacked }
    }

    /// The channel is gone: every pending publish fails with `error`, and tags restart at 1
    /// (a new channel in confirm mode numbers from 1 again).
    public mutating func failAll(_ error: AMQPError) -> [(Token, Outcome)] {
        var out: [(Token, Outcome)] = []
        for i in head..<entries.count {
            if let t = entries[i].token { out.append((t, .failed(error))) }
        }
        entries.removeAll(keepingCapacity: true)
        head = 0
        settledInside = 0
        nextTag = 1
        return out
    }

    private mutating func settle(tag: UInt64, multiple: Bool, outcome: (Entry) -> Outcome) -> [(Token, Outcome)] {
        var out: [(Token, Outcome)] = []
        if multiple {
            while head < entries.count, entries[head].tag <= tag {
                if let t = entries[head].token {
                    out.append((t, outcome(entries[head])))
                } else {
                    settledInside -= 1
                }
                head += 1
            }
        } else if let i = index(of: tag), let t = entries[i].token {
            out.append((t, outcome(entries[i])))
            entries[i].token = nil
            if i == head {
                head += 1
            } else {
                settledInside += 1
            }
        }
        // Drop a settled prefix left behind by out-of-order single acks.
        while head < entries.count, entries[head].token == nil {
            head += 1
            settledInside -= 1
        }
        if head > 1024, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return out
    }

    private func index(of tag: UInt64) -> Int? {
        // Tags are consecutive from entries[head].tag, so the index is arithmetic.
        guard head < entries.count else { return nil }
        let first = entries[head].tag
        guard tag >= first else { return nil }
        let i = head + Int(tag - first)
        return i < entries.count && entries[i].tag == tag ? i : nil
    }
}
