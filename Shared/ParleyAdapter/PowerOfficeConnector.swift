import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ParleyCanonical
import ParleyMessaging
import ParleyJSON
import ParleyEnvelope

/// PowerOffice Go v2 (`specs/powerofficego-v2.openapi.yaml`, `docs/contracts/powerofficego.md`).
///
/// - Auth: OAuth client credentials — the application key and client key as Basic auth on the
///   token endpoint, the `Ocp-Apim-Subscription-Key` header on every call. Tokens (20 minutes)
///   are refreshed a minute before they expire, and once more when a call answers 401.
/// - At most `requestsPerSecond` calls (10 by default, Go's limit): a client-side token bucket.
/// - Reads: `lastChangedDateTimeOffsetGreaterThan` with `PageNumber`/`PageSize` paging ordered
///   by `LastChangedDateTimeOffset`; sales orders are read whole with `/SalesOrders/{id}/Complete`.
/// - Deletes: not in the feed; noticed by listing ids (`Fields=Id`, ``ids(_:cursor:)``).
/// - Writes: `POST` creates with `ExternalImportReference` (customers, orders); a product whose
///   `Code` is taken is ``SystemError/keyInUse(status:_:key:)``, found by `codes`; updates as JSON
///   Patch (`application/json-patch+json`, a `replace` per written field, `null` for cleared
///   ones); order lines are patched (conditional, with `test`), deleted and posted through
///   `/SalesOrders/{id}/Lines` (``writeLines(of:_:read:)``), a confirmed order unlocked (status
///   Draft) for the edit and confirmed again after; archive is `IsArchived: true`.
public struct PowerOfficeConnector: SystemConnector {
    public let system: SystemName = .powerofficego
    let http: HTTPJSONClient
    let pageSize: Int
    /// Records per page of an id listing (``ids(_:cursor:)``): Go's default page size; its
    /// maximum is 20,000.
    let idPageSize: Int

    public struct Credentials: Sendable {
        public var tokenURL: String
        public var applicationKey: String
        public var clientKey: String
        public var subscriptionKey: String

        public init(tokenURL: String, applicationKey: String, clientKey: String, subscriptionKey: String) {
            self.tokenURL = tokenURL
            self.applicationKey = applicationKey
            self.clientKey = clientKey
            self.subscriptionKey = subscriptionKey
        }
    }

    public init(
        baseURL: String, credentials: Credentials, requestsPerSecond: Double = 10, pageSize: Int = 500, idPageSize: Int = 5000,
        client: HTTPClient = .shared
    ) {
        let tokens = TokenSource(credentials: credentials, client: client)
        let bucket = RateLimiter(perSecond: requestsPerSecond)
        self.http = HTTPJSONClient(client: client, baseURL: baseURL) { () async throws(SystemError) -> [(String, String)] in
            await bucket.take()
            return [("Authorization", "Bearer \(try await tokens.token())"), ("Ocp-Apim-Subscription-Key", credentials.subscriptionKey)]
        } onUnauthorized: {
            await tokens.invalidate()
        }
        self.pageSize = pageSize
        self.idPageSize = idPageSize
    }

    func collection(_ entity: CanonicalEntityType) -> String {
        switch entity {
        case .customer: "/Customers"
        case .product: "/Products"
        case .order: "/SalesOrders"
        }
    }

    // MARK: Reading

    public func changes(_ entity: CanonicalEntityType, since: Date?, cursor: String?) async throws(SystemError) -> ChangePage {
        let page = Int(cursor ?? "1") ?? 1
        var query = [("PageNumber", String(page)), ("PageSize", String(pageSize)), ("OrderBy", "LastChangedDateTimeOffset")]
        if let since {
            query.append(
                ("lastChangedDateTimeOffsetGreaterThan", CivilTime.formatInstant(ms: Int64((since.timeIntervalSince1970 * 1000).rounded(.down)))))
        }
        let response = try await http.send(.GET, collection(entity), query: query)
        let items = response.body?.array?.compactMap(\.object) ?? []  // 204: no content
        var records = items
        if entity == .order {
            records = []
            for order in items {
                guard let id = order["Id"]?.string else { continue }
                records.append(try await complete(id))
            }
        }
        return ChangePage(records: records, nextCursor: items.count < pageSize ? nil : String(page + 1))
    }

    func complete(_ id: String) async throws(SystemError) -> JSONObject {
        guard case .object(let order)? = try await http.send(.GET, "/SalesOrders/\(id)/Complete").body else {
            throw .permanent(status: 200, "sales order \(id): expected an object")
        }
        return order
    }

    // MARK: Writing

    public func create(_ entity: CanonicalEntityType, record: JSONObject, idempotencyKey: String) async throws(SystemError) -> JSONObject {
        var body = record
        if entity != .product { body["ExternalImportReference"] = .string(idempotencyKey) }  // ProductPostDto has none
        let path = entity == .order ? "/SalesOrders/Complete" : collection(entity)
        let response = try await http.send(.POST, path, body: .object(body), reading: [400])
        if let refusal = response.refusal {
            let detail = response.body?["detail"]?.string ?? ""
            // Go refuses a second create with the same reference (400 "ExternalImportReference is
            // already in use"): the first one happened, so that record is the result.
            if entity != .product, detail.contains("ExternalImportReference"), let existing = try await find(entity, idempotencyKey: idempotencyKey) {
                return existing
            }
            if entity == .product, let key = Self.codeInUse(detail: detail, record: record), case .permanent(let status, let message) = refusal {
                throw .keyInUse(status: status, message, key: key)
            }
            throw refusal
        }
        guard case .object(let created)? = response.body else { throw .permanent(status: response.status, "create \(entity): expected an object") }
        return created
    }

    /// A product create's 400 that says its `Code` is taken ("Product code 'X' is already in
    /// use on product Id = N"): codes are unique among Go's products, archived ones included.
    /// The key is the code the create sent (Go may quote it in another case).
    static func codeInUse(detail: String, record: JSONObject) -> NaturalKey? {
        let text = detail.lowercased()
        guard text.contains("code"), text.contains("already in use"),
            let code = record["Code"]?.string, !code.trimmingCharacters(in: .whitespaces).isEmpty
        else { return nil }
        return NaturalKey(field: "Code", value: code)
    }

    /// A product by its `Code`: `GET /Products?codes=…`, the answer checked (the same code, else
    /// the same code in another case, as Go compares them). A code with a comma cannot be asked
    /// for (the filter separates codes by commas): `nil`.
    public func existing(_ entity: CanonicalEntityType, key: NaturalKey) async throws(SystemError) -> JSONObject? {
        guard entity == .product, key.field == "Code", !key.value.contains(",") else { return nil }
        let code = key.value.trimmingCharacters(in: .whitespaces)
        let products = try await http.send(.GET, "/Products", query: [("codes", code)]).body?.array?.compactMap(\.object) ?? []
        return products.first { $0["Code"]?.string == code }
            ?? products.first { $0["Code"]?.string?.lowercased() == code.lowercased() }
    }

    /// Deletes do not show in Go's feed (it only has `LastChangedDateTimeOffset`): the adapter
    /// compares the ids it reported with these lists (``DeleteDetector``). Go deletes customers
    /// and products not in use and draft sales orders.
    public func listsIds(_ entity: CanonicalEntityType) -> Bool { true }

    /// `GET /<collection>?Fields=Id&OrderBy=Id` (the `resourceParameter` members: only the id of
    /// each record, pages of `idPageSize`).
    public func ids(_ entity: CanonicalEntityType, cursor: String?) async throws(SystemError) -> ChangePage {
        let page = Int(cursor ?? "1") ?? 1
        let response = try await http.send(
            .GET, collection(entity),
            query: [
                ("PageNumber", String(page)), ("PageSize", String(idPageSize)),
                ("Fields", "Id"), ("OrderBy", "Id")
            ])
        let items = response.body?.array?.compactMap(\.object) ?? []  // 204: no content
        return ChangePage(records: items, nextCursor: items.count < idPageSize ? nil : String(page + 1))
    }

    /// An order's update is several requests (unlock, header, each line, lock), each visible in
    /// the feed: the adapter marks it (``WriteMarkers``).
    public func writesInSteps(_ entity: CanonicalEntityType) -> Bool { entity == .order }

    /// A customer or product: one JSON Patch, conditional on `current` — each value it replaces
    /// is first `test`ed to be what the writer read (RFC 6902; the OpenAPI document lists `test`),
    /// so an edit of those fields since then refuses the whole patch
    /// (``SystemError/modified(status:_:)``). A sales order takes several requests and is not
    /// conditional beyond the writer's read.
    public func update(
        _ entity: CanonicalEntityType, id: String, record: JSONObject, cleared: [String],
        current: JSONObject?
    ) async throws(SystemError) -> JSONObject {
        if entity == .order { return try await updateOrder(id, record: record, cleared: cleared, current: current) }
        let replaced = Self.patch(record, cleared: cleared)
        let patch = (current.map { Self.tests(of: replaced, in: $0) } ?? []) + replaced
        var result: JSONObject = [:]
        if !replaced.isEmpty {
            do {
                if case .object(let updated)? = try await http.send(
                    .PATCH, "\(collection(entity))/\(id)", body: .array(patch),
                    contentType: "application/json-patch+json"
                ).body {
                    result = updated
                }
            } catch {
                if case .permanent(400, let message) = error, Self.isFailedTest(message) { throw .modified(status: 400, message) }
                throw error
            }
        }
        if result.isEmpty, case .object(let current)? = try await http.send(.GET, "\(collection(entity))/\(id)").body { result = current }
        return result
    }

    /// A sales order: header fields as JSON Patch, then the lines (``writeLines(of:_:read:)``).
    /// Go locks a confirmed order from edit ("Can be unlocked by changing state to draft again",
    /// OrderStatus in the OpenAPI document), so an edit of a confirmed order unlocks it first and
    /// confirms it again after, unless the update itself asks for another status.
    ///
    /// With `current` (the order as the writer read it), the header's patch first `test`s each
    /// value it replaces, so an edit of the header since the read refuses the write before any
    /// line is touched (the status is restored, ``SystemError/modified(status:_:)``); each line
    /// patched is tested likewise, and one edited since is left as it is.
    func updateOrder(_ id: String, record: JSONObject, cleared: [String], current: JSONObject? = nil) async throws(SystemError) -> JSONObject {
        var header = record
        let lines = header.removeValue("SalesOrderLines")
        let wanted = header.removeValue("SalesOrderStatus")?.string
        let replaced = Self.patch(header, cleared: cleared)
        let patch = replaced.isEmpty ? [] : (current.map { Self.tests(of: replaced, in: $0) } ?? []) + replaced
        let edits = !patch.isEmpty || lines != nil
        let now = try await complete(id)
        var status = now["SalesOrderStatus"]?.string
        let target = wanted ?? status
        func setStatus(_ value: String) async throws(SystemError) {
            _ = try await http.send(
                .PATCH, "/SalesOrders/\(id)", body: .array(Self.patch(["SalesOrderStatus": .string(value)], cleared: [])),
                contentType: "application/json-patch+json")
            status = value
        }
        if edits, status == "Confirmed" { try await setStatus("Draft") }
        do {
            if !patch.isEmpty {
                _ = try await http.send(.PATCH, "/SalesOrders/\(id)", body: .array(patch), contentType: "application/json-patch+json")
            }
            if case .array(let newLines)? = lines { try await writeLines(of: id, newLines, read: (current ?? now)["SalesOrderLines"]?.array) }
        } catch {
            // Not left unlocked: confirmed again (best effort) before the failure is reported.
            if status != target, let target { try? await setStatus(target) }
            if case .permanent(400, let message) = error, Self.isFailedTest(message) { throw .modified(status: 400, message) }
            throw error
        }
        if let target, status != target { try await setStatus(target) }
        return try await complete(id)
    }

    /// Makes the order's lines `lines`, in order. Lines have no identity shared with other
    /// systems, so they are paired by position: while the line there is of the same product (its
    /// `ProductId` and `ProductCode`, which a line keeps from when it was added), the members
    /// that differ are patched, each `test`ed first to be what the writer read (`read`, the
    /// lines of the order as read before the write; without it they are read now). From the
    /// first line that is not, the rest are deleted and the wanted ones posted, which keeps
    /// their order. An edit someone made to a line since the read — the patch's `test` failed,
    /// or the line is gone — is left as it is, and the write goes on: the read that ends the
    /// write shows it, and the writer reports it
    /// (``CommandWriter/interleaved(_:entity:id:command:mapper:cause:)``). A line deleted or
    /// posted is not conditional.
    func writeLines(of id: String, _ lines: [JSONValue], read: [JSONValue]?) async throws(SystemError) {
        let existing = if let read { read } else { try await http.send(.GET, "/SalesOrders/\(id)/Lines").body?.array ?? [] }
        let kept = zip(existing, lines).prefix { Self.sameProduct($0, $1) }.count
        for (have, want) in zip(existing, lines).prefix(kept) {
            guard let lineId = have["Id"]?.string, case .object(let wanted) = want else { continue }
            var patch: [JSONValue] = []
            for (member, value) in wanted where !Self.lineIdentity.contains(member) && !CommandWriter.holds(have[member], value) {
                let path = JSONValue.string("/" + member)
                patch += [["op": "test", "path": path, "value": have[member] ?? .null], ["op": "replace", "path": path, "value": value]]
            }
            guard !patch.isEmpty else { continue }
            do {
                _ = try await http.send(.PATCH, "/SalesOrders/\(id)/Lines/\(lineId)", body: .array(patch), contentType: "application/json-patch+json")
            } catch {
                // Edited or removed since the read: left as it is (the writer reports it).
                if case .permanent(400, let message) = error, Self.isFailedTest(message) { continue }
                if case .permanent(404, _) = error { continue }
                throw error
            }
        }
        for line in existing.dropFirst(kept) {
            guard let lineId = line["Id"]?.string else { continue }
            do {
                _ = try await http.send(.DELETE, "/SalesOrders/\(id)/Lines/\(lineId)")
            } catch {
                if case .permanent(404, _) = error { continue }  // removed meanwhile: as wanted
                throw error
            }
        }
        for line in lines.dropFirst(kept) { _ = try await http.send(.POST, "/SalesOrders/\(id)/Lines", body: line) }
    }

    /// The members that say which product a line is of; a line is never patched to another.
    static let lineIdentity: Set<String> = ["Id", "ProductId", "ProductCode"]

    /// Whether line `have` is of the product `want` names (by each identity member `want` has).
    static func sameProduct(_ have: JSONValue, _ want: JSONValue) -> Bool {
        guard case .object(let wanted) = want else { return false }
        return lineIdentity.allSatisfy { member in wanted[member].map { CommandWriter.holds(have[member], $0) } ?? true }
    }

    public func archive(_ entity: CanonicalEntityType, id: String, record: JSONObject, current: JSONObject?) async throws(SystemError) -> JSONObject {
        guard entity != .order else { throw .permanent(status: 400, "PowerOffice Go sales orders cannot be archived") }
        var body = record
        body["IsArchived"] = true
        return try await update(entity, id: id, record: body, cleared: [], current: current)
    }

    /// A `test` of each path the patch replaces, with the value `current` has there (`null` when
    /// it has none: Go's typed DTOs hold every property).
    static func tests(of patch: [JSONValue], in current: JSONObject) -> [JSONValue] {
        patch.compactMap { operation -> JSONValue? in
            guard case .string(let path)? = operation["path"] else { return nil }
            var value: JSONValue = .object(current)
            for token in path.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
                let key = token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                value = value[key] ?? .null
            }
            return ["op": "test", "path": .string(path), "value": value]
        }
    }

    /// Go's answer to a patch whose `test` failed: the simulator's "The test at '/Name' failed.",
    /// ASP.NET Core JsonPatch's "The current value '…' at path '…' is not equal to the test value '…'".
    static func isFailedTest(_ message: String) -> Bool {
        let text = message.lowercased()
        return text.contains("test value") || (text.contains("the test at") && text.contains("failed"))
    }

    public func find(_ entity: CanonicalEntityType, idempotencyKey: String) async throws(SystemError) -> JSONObject? {
        switch entity {
        case .customer:
            return try await http.send(.GET, "/Customers", query: [("externalImportReference", idempotencyKey)]).body?.array?.first?.object
        case .order:
            // Orders cannot be filtered by reference: look among this integration's recent ones.
            let since = CivilTime.formatInstant(ms: Int64((Date().addingTimeInterval(-86_400).timeIntervalSince1970 * 1000)))
            let orders =
                try await http.send(
                    .GET, "/SalesOrders",
                    query: [
                        ("onlyCreatedByCurrentIntegration", "true"),
                        ("lastChangedDateTimeOffsetGreaterThan", since)
                    ]
                ).body?.array ?? []
            guard let id = orders.first(where: { $0["ExternalImportReference"]?.string == idempotencyKey })?["Id"]?.string else { return nil }
            return try await complete(id)
        case .product:
            return nil  // products carry no reference; Go refuses a second product with the same Code (``existing(_:key:)``)
        }
    }

    public func record(_ entity: CanonicalEntityType, id: String) async throws(SystemError) -> JSONObject? {
        do {
            if entity == .order { return try await complete(id) }
            return try await http.send(.GET, "\(collection(entity))/\(id)").body?.object
        } catch {
            if case .permanent(404, _) = error { return nil }
            throw error
        }
    }

    /// JSON Patch operations: a `replace` per leaf of `record` (`/MailAddress/City`), `null` for `cleared`.
    static func patch(_ record: JSONObject, cleared: [String]) -> [JSONValue] {
        var operations: [JSONValue] = []
        func walk(_ object: JSONObject, _ prefix: String) {
            for (key, value) in object {
                let path = prefix + "/" + key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
                if case .object(let child) = value, !child.isEmpty {
                    walk(child, path)
                } else {
                    operations.append(["op": "replace", "path": .string(path), "value": value])
                }
            }
        }
        walk(record, "")
        for path in cleared {
            operations.append(["op": "replace", "path": .string("/" + path.replacingOccurrences(of: ".", with: "/")), "value": .null])
        }
        return operations
    }
}

extension JSONObject {
    mutating func removeValue(_ key: String) -> JSONValue? {
        let value = self[key]
        self[key] = nil
        return value
    }
}

/// PowerOffice Go access tokens: fetched with client credentials, reused until a minute before
/// they expire, fetched again after a 401.
actor TokenSource {
    let credentials: PowerOfficeConnector.Credentials
    let client: HTTPClient
    private var current: (token: String, expires: ContinuousClock.Instant)?

    init(credentials: PowerOfficeConnector.Credentials, client: HTTPClient) {
        self.credentials = credentials
        self.client = client
    }

    func invalidate() { current = nil }

    func token() async throws(SystemError) -> String {
        if let current, ContinuousClock.now < current.expires - .seconds(60) { return current.token }
        var request = HTTPClientRequest(url: credentials.tokenURL)
        request.method = .POST
        let basic = Data("\(credentials.applicationKey):\(credentials.clientKey)".utf8).base64EncodedString()
        request.headers.add(name: "Authorization", value: "Basic \(basic)")
        request.headers.add(name: "Ocp-Apim-Subscription-Key", value: credentials.subscriptionKey)
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: "grant_type=client_credentials"))
        let status: Int
        let text: String
        do {
            let response = try await client.execute(request, timeout: .seconds(30))
            status = Int(response.status.code)
            text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        } catch {
            throw .transient("token: \(error)", retryAfter: nil)
        }
        guard status < 400 else { throw SystemError.http(status: status, message: "token: \(text.prefix(300))", retryAfter: nil) }
        guard let json = try? JSONValue.parse(text), let token = json["access_token"]?.string else {
            throw .permanent(status: status, "token: no access_token in the answer")
        }
        let lifetime = json["expires_in"]?.int ?? 1200
        current = (token, ContinuousClock.now + .seconds(lifetime))
        return token
    }
}

/// A token bucket: at most `perSecond` calls per second, bursts up to that many.
actor RateLimiter {
    let perSecond: Double
    private var tokens: Double
    private var last = ContinuousClock.now

    init(perSecond: Double) {
        self.perSecond = max(perSecond, 0.1)
        self.tokens = max(perSecond, 1)
    }

    func take() async {
        while true {
            let now = ContinuousClock.now
            let elapsed = now - last
            last = now
            tokens = min(perSecond, tokens + perSecond * (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
            if tokens >= 1 {
                tokens -= 1
                return
            }
            try? await Task.sleep(for: .milliseconds(Int64((1 - tokens) / perSecond * 1000) + 1))
        }
    }
}
