import Foundation
import NIOHTTP1
import ParleyCanonical
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

/// A connector for the two contracts Parley publishes (`docs/contracts/customerp.openapi.yaml`,
/// `customwebshop.openapi.yaml`): `GET /<entities>?updated_since=&cursor=` pages of
/// `{items, nextCursor}`, `POST` with `Idempotency-Key` (a retried create returns the first
/// result, so `find` is never needed), update by `PUT` (ERP) or `PATCH` (webshop) where `null`
/// clears a field, and `POST /<entities>/{id}/archive`.
///
/// A create refused with `409` whose problem `errors` name the entity's unique member (the
/// webshop's customer `email`, product `sku`) is ``SystemError/keyInUse(status:_:key:)``: the
/// contract lists records by that member (`GET /customers?email=`, `GET /products?sku=`), so
/// ``existing(_:key:)`` finds the record that has it.
public struct RESTContractConnector: SystemConnector {
    public struct Style: Sendable {
        public var pageSizeParameter: String
        public var pageSize: Int
        public var update: HTTPMethod
        /// Where a create also stores its idempotency key in the record, for the system to report
        /// back (the mapping table's `origin`), when the contract has such a place.
        public var originPath: [String]? = nil
        /// Per entity, the unique member a create can collide on, which the contract also lists
        /// records by (a query parameter of the same name).
        public var naturalKeys: [CanonicalEntityType: KeyRule] = [:]
        /// The header that makes an update conditional on the record's modification time, and
        /// the record's member it is read from (the ERP's `If-Unmodified-Since-Modified-At`,
        /// exact comparison, `412` on mismatch), when the contract has one.
        public var unmodifiedSince: (header: String, member: String)? = nil

        public static let erp = Style(
            pageSizeParameter: "limit", pageSize: 200, update: .PUT,
            unmodifiedSince: (header: "If-Unmodified-Since-Modified-At", member: "modifiedAt"))
        public static let webshop = Style(
            pageSizeParameter: "per_page", pageSize: 100, update: .PATCH, originPath: ["meta_data", "parley_key"],
            naturalKeys: [
                .customer: KeyRule(field: "email", caseInsensitive: true),
                .product: KeyRule(field: "sku", caseInsensitive: false)
            ])
    }

    /// A unique member and how the system compares its values (trimmed; maybe case-insensitively).
    public struct KeyRule: Sendable, Hashable {
        public var field: String
        public var caseInsensitive: Bool

        public init(field: String, caseInsensitive: Bool) {
            self.field = field
            self.caseInsensitive = caseInsensitive
        }

        func normalised(_ value: String) -> String {
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            return caseInsensitive ? trimmed.lowercased() : trimmed
        }

        /// The key of a record, when it has a non-empty one.
        func key(of record: JSONObject) -> NaturalKey? {
            guard let value = record[field]?.string, !normalised(value).isEmpty else { return nil }
            return NaturalKey(field: field, value: value)
        }
    }

    public let system: SystemName
    let http: HTTPJSONClient
    let style: Style

    public init(system: SystemName, http: HTTPJSONClient, style: Style) {
        self.system = system
        self.http = http
        self.style = style
    }

    func collection(_ entity: CanonicalEntityType) -> String {
        switch entity {
        case .customer: "/customers"
        case .product: "/products"
        case .order: "/orders"
        }
    }

    static func object(_ response: HTTPJSONClient.Response, _ what: String) throws(SystemError) -> JSONObject {
        guard case .object(let object)? = response.body else { throw .permanent(status: response.status, "\(what): expected a JSON object") }
        return object
    }

    public func changes(_ entity: CanonicalEntityType, since: Date?, cursor: String?) async throws(SystemError) -> ChangePage {
        var query = [(style.pageSizeParameter, String(style.pageSize))]
        if let cursor {
            query.append(("cursor", cursor))
        } else if let since {
            query.append(("updated_since", Self.format(since)))
        }
        let page = try Self.object(try await http.send(.GET, collection(entity), query: query), "list \(entity)")
        guard case .array(let items)? = page["items"] else { throw .permanent(status: 200, "list \(entity): no items") }
        return ChangePage(records: items.compactMap(\.object), nextCursor: page["nextCursor"]?.string)
    }

    public func create(_ entity: CanonicalEntityType, record: JSONObject, idempotencyKey: String) async throws(SystemError) -> JSONObject {
        var body = record
        if let originPath = style.originPath { body.set(.string(idempotencyKey), at: originPath) }
        let response = try await http.send(
            .POST, collection(entity), body: .object(body), extraHeaders: [("Idempotency-Key", idempotencyKey)],
            reading: [409])
        if let refusal = response.refusal { throw classify(refusal, problem: response.body, entity: entity, record: record) }
        return try Self.object(response, "create \(entity)")
    }

    /// A create's `409`: ``SystemError/keyInUse(status:_:key:)`` when its problem's `errors` name
    /// the entity's unique member and the record sent has a value there; else the refusal as
    /// it is (an `Idempotency-Key` used with another body is a 409 too, naming that header).
    func classify(_ refusal: SystemError, problem: JSONValue?, entity: CanonicalEntityType, record: JSONObject) -> SystemError {
        guard case .permanent(let status, let message) = refusal, let rule = style.naturalKeys[entity], let key = rule.key(of: record),
            let errors = problem?["errors"]?.array, errors.contains(where: { $0["field"]?.string == rule.field })
        else { return refusal }
        return .keyInUse(status: status, message, key: key)
    }

    /// `GET /<entities>?<member>=<value>`; the answer is checked (the system's comparison), so a
    /// system that ignored the filter yields nothing rather than some other record.
    public func existing(_ entity: CanonicalEntityType, key: NaturalKey) async throws(SystemError) -> JSONObject? {
        guard let rule = style.naturalKeys[entity], rule.field == key.field else { return nil }
        let wanted = rule.normalised(key.value)
        let page = try Self.object(
            try await http.send(.GET, collection(entity), query: [(rule.field, key.value), (style.pageSizeParameter, "10")]),
            "find \(entity) by \(key.field)")
        return page["items"]?.array?.compactMap(\.object).first { rule.key(of: $0).map { rule.normalised($0.value) } == wanted }
    }

    /// The ERP's contract makes the write conditional: `If-Unmodified-Since-Modified-At` with the
    /// `modifiedAt` the record had when read (its own text, so the exact comparison holds); a
    /// `412` is ``SystemError/modified(status:_:)``. The webshop's contract has no such lock.
    public func update(
        _ entity: CanonicalEntityType, id: String, record: JSONObject, cleared: [String],
        current: JSONObject?
    ) async throws(SystemError) -> JSONObject {
        var body = record
        for path in cleared { body.set(.null, at: path.split(separator: ".").map(String.init)) }
        var headers: [(String, String)] = []
        if let condition = style.unmodifiedSince, case .string(let modifiedAt)? = current?[condition.member] {
            headers.append((condition.header, modifiedAt))
        }
        do {
            return try Self.object(
                try await http.send(style.update, "\(collection(entity))/\(Self.escape(id))", body: .object(body), extraHeaders: headers),
                "update \(entity) \(id)")
        } catch {
            if case .permanent(412, let message) = error { throw .modified(status: 412, message) }
            throw error
        }
    }

    public func archive(_ entity: CanonicalEntityType, id: String, record: JSONObject, current: JSONObject?) async throws(SystemError) -> JSONObject {
        if !record.isEmpty { _ = try await update(entity, id: id, record: record, cleared: [], current: current) }
        return try Self.object(try await http.send(.POST, "\(collection(entity))/\(Self.escape(id))/archive"), "archive \(entity) \(id)")
    }

    public func find(_ entity: CanonicalEntityType, idempotencyKey: String) async throws(SystemError) -> JSONObject? { nil }

    public func record(_ entity: CanonicalEntityType, id: String) async throws(SystemError) -> JSONObject? {
        do {
            return try Self.object(try await http.send(.GET, "\(collection(entity))/\(Self.escape(id))"), "get \(entity) \(id)")
        } catch {
            if case .permanent(404, _) = error { return nil }
            throw error
        }
    }

    static func escape(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? id
    }

    static func format(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        return CivilTime.formatInstant(ms: ms)
    }
}
