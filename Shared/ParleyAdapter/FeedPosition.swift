/// How far an entity's change feed has been published, kept durably by the adapter.
///
/// The feed is read with `updated_since = since − overlap`: systems stamp records with times
/// that can tie, and a record committed a moment late can carry a time just before the newest
/// one seen. Records inside the overlap window that were already published (`seen`, by id and
/// modification time) are skipped, so the window costs a re-read, not a re-publish. What even
/// the window misses, the periodic full rescan finds.
public struct FeedPosition: Sendable, Hashable {
    /// The newest modification time published, in milliseconds since 1970; `nil` before the first poll.
    public var since: Int64?
    /// `"<id>@<ms>"` of the records published with a time within the overlap window before `since`.
    public var seen: Set<String>

    public init(since: Int64? = nil, seen: Set<String> = []) {
        self.since = since
        self.seen = seen
    }

    public struct Record: Sendable, Hashable {
        public var id: String
        public var modifiedAt: Int64
        public init(id: String, modifiedAt: Int64) {
            self.id = id
            self.modifiedAt = modifiedAt
        }
        var key: String { "\(id)@\(modifiedAt)" }
    }

    /// The `updated_since` to ask the system for (milliseconds), `nil` for everything.
    public func query(overlap: Int64) -> Int64? { since.map { $0 - overlap } }

    /// Whether a record read from the feed still has to be published.
    public func isNew(_ record: Record, overlap: Int64) -> Bool {
        guard let since else { return true }
        if record.modifiedAt > since { return true }
        if record.modifiedAt < since - overlap { return false }
        return !seen.contains(record.key)
    }

    /// After `records` were published (confirmed by the broker): move past them.
    public mutating func advance(past records: [Record], overlap: Int64) {
        guard !records.isEmpty else { return }
        let newest = max(since ?? Int64.min, records.map(\.modifiedAt).max()!)
        since = newest
        seen = seen.union(records.map(\.key)).filter { key in
            guard let at = key.split(separator: "@").last.flatMap({ Int64($0) }) else { return false }
            return at >= newest - overlap
        }
    }
}
