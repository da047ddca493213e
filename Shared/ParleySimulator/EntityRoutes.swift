import Foundation
import Hummingbird
import ParleyCore

/// What a simulator tells `EntityRoutes` about one entity of its contract.
public struct EntityAPI: Sendable {
    public enum UpdateMethod: Sendable { case put, patch }

    /// The entity's store name and path segment, e.g. `customers`.
    public var name: String
    /// The request body's members.
    public var schema: ObjectSchema
    /// The stored fields from the checked request members merged over the current fields
    /// (`nil` on create): defaults, numbers the server assigns, computed members, and checks
    /// that need other records (a 422 naming the member). Runs inside the transaction.
    public var derive: @Sendable (_ merged: [String: JSONValue], _ current: StoredRecord?, _ db: SimulatorDatabase) throws -> [String: JSONValue]
    /// A record as the contract shows it.
    public var render: @Sendable (StoredRecord) -> JSONValue
    public var updateMethod: UpdateMethod
    /// The name of the page-size query parameter and its default and maximum.
    public var limitName: String
    public var defaultLimit: Int
    public var maxLimit: Int
    /// The optimistic-lock header on updates, if the contract has one.
    public var preconditionHeader: String?
    /// List filters by a unique member (the webshop's `email`, `sku`): the query parameter is
    /// the rule's `field`, and a record matches when its value compares equal by the rule
    /// (`UniqueRule.caseInsensitive` for e-mails) — the record a duplicate's 409 refers to.
    public var filters: [UniqueRule]

    public init(
        name: String, schema: ObjectSchema,
        derive: @escaping @Sendable ([String: JSONValue], StoredRecord?, SimulatorDatabase) throws -> [String: JSONValue],
        render: @escaping @Sendable (StoredRecord) -> JSONValue, updateMethod: UpdateMethod, limitName: String,
        defaultLimit: Int, maxLimit: Int, preconditionHeader: String? = nil, filters: [UniqueRule] = []
    ) {
        self.filters = filters
        self.name = name
        self.schema = schema
        self.derive = derive
        self.render = render
        self.updateMethod = updateMethod
        self.limitName = limitName
        self.defaultLimit = defaultLimit
        self.maxLimit = maxLimit
        self.preconditionHeader = preconditionHeader
    }
}

/// A change the simulator made: `created`, `updated` or `archived`.
public struct RecordChange: Sendable {
    public var event: String
    public var entity: String
    public var record: StoredRecord
}

/// The five operations of every entity in both contracts: list (incremental, cursor paging),
/// create (Idempotency-Key), get, update, archive.
public enum EntityRoutes {
    public static func add<Context: RequestContext>(
        _ api: EntityAPI, to router: Router<Context>, state: SimulatorState,
        onChange: @escaping @Sendable (RecordChange) -> Void = { _ in }
    ) {
        let path = RouterPath("/\(api.name)")
        let idPath = RouterPath("/\(api.name)/:id")
        let archivePath = RouterPath("/\(api.name)/:id/archive")

        router.get(path) { request, _ in
            let q = try request.listQuery(limitName: api.limitName, defaultLimit: api.defaultLimit, maxLimit: api.maxLimit)
            let filter = try request.listFilter(api.filters)
            let page = try await state.read { db in try db.list(api.name, since: q.since, cursor: q.cursor, limit: q.limit, where: filter) }
            return Response.json(
                JSONValue.object([
                    "items": .array(page.items.map(api.render)),
                    "nextCursor": page.nextCursor.map { .string($0.token) } ?? .null
                ]))
        }

        router.post(path) { request, _ in
            let key = try request.idempotencyKey()
            let body = try await request.jsonBody()
            let (checked, errors) = api.schema.validate(body, partial: false)
            if !errors.isEmpty { throw Problem.validation(errors) }
            let hash = SimulatorDatabase.requestHash(body)
            let wall = Timestamp.now()
            let (record, replayed) = try await state.transact { db in
                let fields = try api.derive(checked, nil, db)
                return try db.create(api.name, fields: fields, idempotencyKey: key, requestHash: hash, wall: wall)
            }
            if !replayed { onChange(RecordChange(event: "created", entity: api.name, record: record)) }
            return Response.json(api.render(record), status: replayed ? .ok : .created)
        }

        router.get(idPath) { _, context in
            let id = try pathId(context)
            let record = try await state.read { db in try db.get(api.name, id) }
            return Response.json(api.render(record))
        }

        let update: @Sendable (Request, Context) async throws -> Response = { request, context in
            let id = try pathId(context)
            let body = try await request.jsonBody()
            let (checked, errors) = api.schema.validate(body, partial: true)
            if !errors.isEmpty { throw Problem.validation(errors) }
            var expected: Timestamp?
            if let header = api.preconditionHeader, let raw = request.header(header) {
                guard let t = Timestamp.parse(raw) else {
                    throw Problem.badRequest("\(header) must be an RFC 3339 date-time.", field: header)
                }
                expected = t
            }
            let wall = Timestamp.now()
            let expectedModifiedAt = expected
            let record = try await state.transact { db in
                let current = try db.get(api.name, id)
                let fields = try api.derive(current.fields.merging(patch: checked), current, db)
                return try db.update(api.name, id: id, fields: fields, expectedModifiedAt: expectedModifiedAt, wall: wall)
            }
            onChange(RecordChange(event: "updated", entity: api.name, record: record))
            return Response.json(api.render(record))
        }
        switch api.updateMethod {
        case .put: router.put(idPath, use: update)
        case .patch: router.patch(idPath, use: update)
        }

        router.post(archivePath) { _, context in
            let id = try pathId(context)
            let wall = Timestamp.now()
            let (record, changed) = try await state.transact { db in try db.archive(api.name, id: id, wall: wall) }
            if changed { onChange(RecordChange(event: "archived", entity: api.name, record: record)) }
            return Response.json(api.render(record))
        }
    }
}

/// Small helpers the simulators' `derive` closures share.
public enum Derive {
    /// A 422 unless the number has at most two decimals (amounts in both contracts).
    public static func requireCents(_ value: JSONValue?, field: String) throws {
        guard let d = value?.decimalValue else { return }
        if d != d.roundedHalfAwayFromZero(scale: 2) {
            throw Problem.validation([.init(field: field, message: "must have at most two decimals")])
        }
    }

    /// A 422 unless the string member is non-empty after trimming.
    public static func requireText(_ fields: [String: JSONValue], _ name: String) throws {
        if let s = fields[name]?.stringValue, s.trimmingCharacters(in: .whitespaces).isEmpty {
            throw Problem.validation([.init(field: name, message: "may not be empty")])
        }
    }

    /// The next free number `prefix + n` among `entity`'s `member` values, from `start`.
    public static func nextNumber(_ db: SimulatorDatabase, entity: String, member: String, prefix: String, start: Int) -> String {
        let used = Set(db.store(entity).records.values.compactMap { $0.fields[member]?.stringValue })
        var n = start + db.store(entity).records.count
        while used.contains("\(prefix)\(n)") { n += 1 }
        return "\(prefix)\(n)"
    }
}
