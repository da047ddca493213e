import Foundation
import ParleyCore
import ParleyCanonical
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

/// The only code that speaks a system's API: reading its change feed and writing records.
/// One implementation per kind of API (`RESTContractConnector` for the custom ERP and webshop
/// contracts, `PowerOfficeConnector` for PowerOffice Go v2). Records are native JSON in the
/// shapes of the system's contract (the mapping tables' `schema` and `writeSchema`).
public protocol SystemConnector: Sendable {
    var system: SystemName { get }

    /// One page of records of `entity` modified at or after `since` (every record when `nil`),
    /// in (modification time, id) order, continuing from `cursor` (the previous page's).
    func changes(_ entity: CanonicalEntityType, since: Date?, cursor: String?) async throws(SystemError) -> ChangePage

    /// Creates a record. `idempotencyKey` (the global id) makes a retried create return the
    /// first result instead of a second record.
    func create(_ entity: CanonicalEntityType, record: JSONObject, idempotencyKey: String) async throws(SystemError) -> JSONObject

    /// Updates a record: the members of `record` are set, the native paths in `cleared` emptied.
    /// `current`: the record as the writer read it just before (a conditional write, see
    /// ``CommandWriter``); where the system can, the write is made only if the record is still
    /// that (the ERP's `If-Unmodified-Since-Modified-At`, a JSON Patch `test` of each replaced
    /// value in PowerOffice Go), and refused as ``SystemError/modified(status:_:)`` otherwise.
    func update(_ entity: CanonicalEntityType, id: String, record: JSONObject, cleared: [String], current: JSONObject?) async throws(SystemError)
        -> JSONObject

    /// Archives a record (DESIGN rule 9), applying `record` first when it is not empty (under the
    /// same condition as ``update(_:id:record:cleared:current:)``).
    func archive(_ entity: CanonicalEntityType, id: String, record: JSONObject, current: JSONObject?) async throws(SystemError) -> JSONObject

    /// One record by its native id, as the feed would report it; `nil` when it does not exist.
    func record(_ entity: CanonicalEntityType, id: String) async throws(SystemError) -> JSONObject?

    /// The record an earlier create with this idempotency key made, if the system can say
    /// (PowerOffice Go by `ExternalImportReference`); `nil` when there is none or it cannot.
    func find(_ entity: CanonicalEntityType, idempotencyKey: String) async throws(SystemError) -> JSONObject?

    /// Whether an update or archive of `entity` takes several requests, each visible in the
    /// feed (``WriteMarkers``). Default: no.
    func writesInSteps(_ entity: CanonicalEntityType) -> Bool

    /// The record of `entity` whose natural key is `key`, as the feed would report it; `nil`
    /// when there is none or the system cannot be asked. A create the system refused with
    /// ``SystemError/keyInUse(status:_:key:)`` names the key; the writer looks the record up
    /// through this and has it linked (``CommandWriter``). Default: `nil`.
    func existing(_ entity: CanonicalEntityType, key: NaturalKey) async throws(SystemError) -> JSONObject?

    /// Whether ``ids(_:cursor:)`` lists `entity`: the system deletes records without saying so
    /// in its feed, and the adapter notices deletes by comparing the ids it reported with the
    /// ids the system lists (``DeleteDetector``). Default: no.
    func listsIds(_ entity: CanonicalEntityType) -> Bool

    /// One page of every record of `entity` that exists now, archived ones included, each with
    /// at least the member the mapping table's `id` path names — as little else as the API
    /// allows — continuing from `cursor` (the previous page's). Only called where
    /// ``listsIds(_:)``.
    func ids(_ entity: CanonicalEntityType, cursor: String?) async throws(SystemError) -> ChangePage
}

extension SystemConnector {
    public func writesInSteps(_ entity: CanonicalEntityType) -> Bool { false }
    public func existing(_ entity: CanonicalEntityType, key: NaturalKey) async throws(SystemError) -> JSONObject? { nil }
    public func listsIds(_ entity: CanonicalEntityType) -> Bool { false }
    public func ids(_ entity: CanonicalEntityType, cursor: String?) async throws(SystemError) -> ChangePage {
        throw .permanent(status: 501, "\(system) cannot list the ids of its \(entity) records")
    }
}

/// A record's natural key as the system names it: the member the system keeps unique (the
/// webshop's `sku` or `email`, PowerOffice Go's product `Code`) and the value the refused create
/// sent. The system's own rule says how values compare (the webshop's e-mails case-insensitively).
public struct NaturalKey: Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var value: String

    public init(field: String, value: String) {
        self.field = field
        self.value = value
    }

    public var description: String { "\(field) '\(value)'" }
}

/// One page of a change feed.
public struct ChangePage: Sendable {
    public var records: [JSONObject]
    /// Where the next page starts; `nil` on the last page.
    public var nextCursor: String?

    public init(records: [JSONObject], nextCursor: String?) {
        self.records = records
        self.nextCursor = nextCursor
    }
}

/// What went wrong talking to a system, decided once where the response is read.
public enum SystemError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Worth trying again: 5xx, 429, timeouts, connection failures. `retryAfter` is the
    /// system's own `Retry-After`, when it sent one.
    case transient(String, retryAfter: Duration?)
    /// The system refused the request for good (4xx other than 408/429): its message, for the
    /// operator. Retrying the same request gives the same answer.
    case permanent(status: Int, String)
    /// A create refused because a record with the same natural key exists (the webshop's 409
    /// naming `sku` or `email`, PowerOffice Go's 400 "Product code … already in use"): as
    /// permanent as ``permanent(status:_:)``, but the record can be found by `key`
    /// (``SystemConnector/existing(_:key:)``). Only the connector, which knows the system's
    /// answers, decides that a refusal is this one.
    case keyInUse(status: Int, String, key: NaturalKey)
    /// A conditional update the system refused because the record is no longer what the writer
    /// read just before (the ERP's `412`, PowerOffice Go's failed JSON Patch `test`): someone
    /// edited it in between. The writer has the record merged before writing again.
    case modified(status: Int, String)

    public var description: String {
        switch self {
        case .transient(let reason, let retryAfter):
            retryAfter.map { "\(reason) (retry after \($0))" } ?? reason
        case .permanent(let status, let reason), .keyInUse(let status, let reason, _), .modified(let status, let reason): "HTTP \(status): \(reason)"
        }
    }

    /// The HTTP status of a refusal; `nil` for a transient failure.
    public var status: Int? {
        switch self {
        case .transient: nil
        case .permanent(let status, _), .keyInUse(let status, _, _), .modified(let status, _): status
        }
    }

    public var isTransient: Bool { if case .transient = self { true } else { false } }

    /// Classifies an HTTP status with the body's message.
    public static func http(status: Int, message: String, retryAfter: Duration?) -> SystemError {
        switch status {
        case 408, 425, 429, 500...599: .transient("HTTP \(status): \(message)", retryAfter: retryAfter)
        default: .permanent(status: status, message)
        }
    }
}

/// Backoff for transient failures that honours the system's `Retry-After` (DESIGN rule 10).
public struct RetrySchedule: Sendable, Hashable {
    public var attempts: Int
    public var base: Duration
    public var maximum: Duration

    public init(attempts: Int = 5, base: Duration = .milliseconds(200), maximum: Duration = .seconds(30)) {
        self.attempts = attempts
        self.base = base
        self.maximum = maximum
    }

    /// The wait before attempt `attempt` (1 = the first retry): `Retry-After` when the system
    /// gave one (capped at `maximum`), else exponential with full jitter.
    public func delay(attempt: Int, retryAfter: Duration?, random: Double = Double.random(in: 0...1)) -> Duration {
        if let retryAfter { return min(retryAfter, maximum) }
        return Backoff(initial: base, maximum: maximum, jitter: 0).ceiling(forAttempt: attempt - 1) * random
    }

    /// Runs `body`, retrying transient failures; a permanent one, or the last transient one,
    /// is thrown.
    public func run<T: Sendable>(_ body: () async throws(SystemError) -> T) async throws(SystemError) -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch {
                attempt += 1
                guard case .transient(_, let retryAfter) = error, attempt < attempts else { throw error }
                try? await Task.sleep(for: delay(attempt: attempt, retryAfter: retryAfter))
            }
        }
    }
}
