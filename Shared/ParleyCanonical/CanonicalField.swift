/// The single registry of canonical fields: every field path of every entity, with its kind.
///
/// Mapping tables name these paths; the link service merges by them (DESIGN rule 4); the
/// canonical hash (``CanonicalHash``) covers a set of them; canonical JSON
/// (``CanonicalEntity``) is keyed by them. A path is dot-separated: `postalAddress.city` is the
/// member `city` of the JSON object `postalAddress`.
///
/// **Order lines are one merge field**, `lines`, merged line by line and member by member:
/// lines are told apart by ``OrderLineIdentity`` (their product, else SKU, and occurrence; no
/// system's own line ids are shared), and the members of a line are registered as *line
/// fields* (`lines.quantity`, with ``isLineField`` true), so mapping tables can name them and a
/// system that does not carry, say, `lines.vatRate` never erases it (docs/canonical-model.md,
/// "Order lines"). Line fields are not merge fields of their own: the link service reports a
/// change of any line as a change of `lines`.
public struct CanonicalField: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// A JSON string.
        case text
        /// An exact JSON number (`Decimal`).
        case decimal
        /// A JSON boolean.
        case bool
        /// A ``CalendarDate`` as a `YYYY-MM-DD` string.
        case date
        /// One of ``CanonicalField/allowedValues`` as a string.
        case enumeration
        /// A ``GlobalRef`` as a `<entity>/<uuid>` string.
        case reference
        /// The order lines: a JSON array of line objects.
        case lines
    }

    public let entity: CanonicalEntityType
    /// Dot-separated path, e.g. `postalAddress.city`, `lines.quantity`.
    public let path: String
    public let kind: Kind
    /// The canonical values of an `enumeration` field, else empty.
    public let allowedValues: [String]
    /// The entity a `reference` field points to, else `nil`.
    public let referencedEntity: CanonicalEntityType?

    init(
        _ entity: CanonicalEntityType, _ path: String, _ kind: Kind, allowed: [String] = [],
        references: CanonicalEntityType? = nil
    ) {
        self.entity = entity
        self.path = path
        self.kind = kind
        self.allowedValues = allowed
        self.referencedEntity = references
    }

    /// The path's components (`["postalAddress", "city"]`).
    public var components: [String] { path.split(separator: ".").map(String.init) }

    /// A member of an order line (`lines.sku`), not a merge field of its own.
    public var isLineField: Bool { entity == .order && path.hasPrefix("lines.") }

    /// The member name inside a line object (`sku` for `lines.sku`), `nil` for other fields.
    public var lineMember: String? { isLineField ? String(path.dropFirst("lines.".count)) : nil }

    public var description: String { "\(entity.rawValue).\(path)" }

    // MARK: Look-up

    /// The field with this exact path, or `nil` when the entity has no such field (an unknown
    /// path in a mapping table). Finds merge fields and line fields.
    public static func named(_ path: String, entity: CanonicalEntityType) -> CanonicalField? {
        index[entity]?[path]
    }

    /// The merge fields of an entity, in canonical order (line fields excluded).
    public static func fields(of entity: CanonicalEntityType) -> [CanonicalField] {
        switch entity {
        case .customer: customer
        case .product: product
        case .order: order
        }
    }

    /// The merge fields and the line fields of an entity.
    public static func allFields(of entity: CanonicalEntityType) -> [CanonicalField] {
        entity == .order ? order + orderLine : fields(of: entity)
    }

    // MARK: The registry

    public static let customer: [CanonicalField] = [
        .init(.customer, "kind", .enumeration, allowed: CustomerKind.allCases.map(\.rawValue)),
        .init(.customer, "name", .text),
        .init(.customer, "firstName", .text),
        .init(.customer, "lastName", .text),
        .init(.customer, "email", .text),
        .init(.customer, "organizationNumber", .text),
        .init(.customer, "phone", .text),
        .init(.customer, "postalAddress.addressLine1", .text),
        .init(.customer, "postalAddress.addressLine2", .text),
        .init(.customer, "postalAddress.postalCode", .text),
        .init(.customer, "postalAddress.city", .text),
        .init(.customer, "postalAddress.country", .text),
        .init(.customer, "currency", .text),
        .init(.customer, "archived", .bool)
    ]

    public static let product: [CanonicalField] = [
        .init(.product, "sku", .text),
        .init(.product, "name", .text),
        .init(.product, "description", .text),
        .init(.product, "gtin", .text),
        .init(.product, "unitOfMeasure", .text),
        .init(.product, "salesPriceExclVat", .decimal),
        .init(.product, "costPrice", .decimal),
        .init(.product, "vatRate", .decimal),
        .init(.product, "productType", .enumeration, allowed: ProductType.allCases.map(\.rawValue)),
        .init(.product, "stock", .decimal),
        .init(.product, "archived", .bool)
    ]

    public static let order: [CanonicalField] = [
        .init(.order, "orderNumber", .text),
        .init(.order, "customer", .reference, references: .customer),
        .init(.order, "orderDate", .date),
        .init(.order, "deliveryDate", .date),
        .init(.order, "currency", .text),
        .init(.order, "status", .enumeration, allowed: OrderStatus.allCases.map(\.rawValue)),
        .init(.order, "customerReference", .text),
        .init(.order, "lines", .lines),
        .init(.order, "archived", .bool)
    ]

    /// The members of an order line (see the type's note on how lines are merged).
    public static let orderLine: [CanonicalField] = [
        .init(.order, "lines.product", .reference, references: .product),
        .init(.order, "lines.sku", .text),
        .init(.order, "lines.description", .text),
        .init(.order, "lines.quantity", .decimal),
        .init(.order, "lines.unitPriceExclVat", .decimal),
        .init(.order, "lines.discountPercent", .decimal),
        .init(.order, "lines.vatRate", .decimal)
    ]

    private static let index: [CanonicalEntityType: [String: CanonicalField]] = {
        var result: [CanonicalEntityType: [String: CanonicalField]] = [:]
        for entity in CanonicalEntityType.allCases {
            var byPath: [String: CanonicalField] = [:]
            for field in allFields(of: entity) { byPath[field.path] = field }
            result[entity] = byPath
        }
        return result
    }()
}
