import Foundation
import ParleyCore
import ParleyEnvelope
import ParleyJSON

// The canonical model: the one shape of Customer, Product and Order that every system's
// native records are normalised into. Every field is optional: `nil` means "not carried or
// not known", never "erase". A system that lacks a field simply leaves it `nil`, and the
// link service merges field by field (DESIGN rule 4), so `nil` never overwrites a value.
//
// Money, prices, quantities and rates are `Decimal`, never `Double`.

/// The three kinds of global entity Parley syncs. (Named apart from the envelope's open
/// `ParleyEnvelope.EntityType`; see ``messagingEntityType``.)
public enum CanonicalEntityType: String, Sendable, Hashable, CaseIterable {
    case customer
    case order
    case product
}

/// A reference to a global entity (DESIGN rule 1): the entity type and its global id.
/// Adapters translate it to and from native ids through the links (rule 6).
///
/// Canonical text form: `<entity>/<lower-case UUID>`, e.g.
/// `customer/0b6f5e1c-6c1a-4f0e-9d7a-3a1f2f1c9e11`.
public struct GlobalRef: Sendable, Hashable, CustomStringConvertible {
    public var entity: CanonicalEntityType
    public var id: UUID

    public init(_ entity: CanonicalEntityType, id: UUID) {
        self.entity = entity
        self.id = id
    }

    /// Parses `<entity>/<UUID>` (UUID in any case).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let entity = CanonicalEntityType(rawValue: String(parts[0])),
            let id = UUID(text: parts[1])
        else { return nil }
        self.init(entity, id: id)
    }

    public var description: String { "\(entity.rawValue)/\(id.lowercasedString)" }
}

/// A calendar day without time or time zone (order and delivery dates are days, and systems
/// disagree on zones). Canonical text form: ISO 8601 `YYYY-MM-DD`.
public struct CalendarDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let year: Int
    public let month: Int
    public let day: Int

    /// `nil` unless the day exists in the proleptic Gregorian calendar (years 1...9999).
    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month),
            (1...CalendarDate.daysIn(month: month, year: year)).contains(day)
        else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses exactly `YYYY-MM-DD`.
    public init?(_ text: String) {
        let b = Array(text.utf8)
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var n = 0
            for i in range {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                n = n * 10 + Int(b[i] - 0x30)
            }
            return n
        }
        guard let y = number(0..<4), let m = number(5..<7), let d = number(8..<10) else { return nil }
        self.init(year: y, month: m, day: d)
    }

    public var description: String {
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    public static func < (lhs: CalendarDate, rhs: CalendarDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

/// A postal address. Two separate address lines rather than a list: each line is its own
/// field for the merge, so a system that carries only the first line never erases the second.
public struct PostalAddress: Sendable, Hashable {
    public var addressLine1: String?
    public var addressLine2: String?
    public var postalCode: String?
    public var city: String?
    /// ISO 3166-1 alpha-2, upper case ("NO").
    public var country: String?

    public init(
        addressLine1: String? = nil, addressLine2: String? = nil, postalCode: String? = nil,
        city: String? = nil, country: String? = nil
    ) {
        self.addressLine1 = addressLine1
        self.addressLine2 = addressLine2
        self.postalCode = postalCode
        self.city = city
        self.country = country
    }

    /// Whether no field is carried.
    public var isEmpty: Bool {
        addressLine1 == nil && addressLine2 == nil && postalCode == nil && city == nil && country == nil
    }
}

public enum CustomerKind: String, Sendable, Hashable, CaseIterable {
    case person
    case company
}

public struct Customer: Sendable, Hashable {
    public var kind: CustomerKind?
    /// Display name: the company name, or the person's full name.
    public var name: String?
    public var firstName: String?
    public var lastName: String?
    public var email: String?
    public var organizationNumber: String?
    public var phone: String?
    public var postalAddress: PostalAddress?
    /// ISO 4217 ("NOK").
    public var currency: String?
    public var archived: Bool?

    public init(
        kind: CustomerKind? = nil, name: String? = nil, firstName: String? = nil, lastName: String? = nil,
        email: String? = nil, organizationNumber: String? = nil, phone: String? = nil,
        postalAddress: PostalAddress? = nil, currency: String? = nil, archived: Bool? = nil
    ) {
        self.kind = kind
        self.name = name
        self.firstName = firstName
        self.lastName = lastName
        self.email = email
        self.organizationNumber = organizationNumber
        self.phone = phone
        self.postalAddress = postalAddress
        self.currency = currency
        self.archived = archived
    }
}

public enum ProductType: String, Sendable, Hashable, CaseIterable {
    case product
    case service
}

public struct Product: Sendable, Hashable {
    public var sku: String?
    public var name: String?
    public var description: String?
    public var gtin: String?
    /// UN/ECE Recommendation 20 code ("EA", "KGM", "LTR").
    public var unitOfMeasure: String?
    public var salesPriceExclVat: Decimal?
    public var costPrice: Decimal?
    /// A fraction: 0.25 is 25 %.
    public var vatRate: Decimal?
    public var productType: ProductType?
    public var stock: Decimal?
    public var archived: Bool?

    public init(
        sku: String? = nil, name: String? = nil, description: String? = nil, gtin: String? = nil,
        unitOfMeasure: String? = nil, salesPriceExclVat: Decimal? = nil, costPrice: Decimal? = nil,
        vatRate: Decimal? = nil, productType: ProductType? = nil, stock: Decimal? = nil, archived: Bool? = nil
    ) {
        self.sku = sku
        self.name = name
        self.description = description
        self.gtin = gtin
        self.unitOfMeasure = unitOfMeasure
        self.salesPriceExclVat = salesPriceExclVat
        self.costPrice = costPrice
        self.vatRate = vatRate
        self.productType = productType
        self.stock = stock
        self.archived = archived
    }
}

/// Canonical order status. Systems with other status sets map onto these (lossily; the echo
/// rule 5 takes care of what comes back).
public enum OrderStatus: String, Sendable, Hashable, CaseIterable {
    case draft
    case confirmed
    case processing
    case completed
    case cancelled
}

public struct OrderLine: Sendable, Hashable {
    public var product: GlobalRef?
    public var sku: String?
    public var description: String?
    public var quantity: Decimal?
    public var unitPriceExclVat: Decimal?
    /// Percent, 0...100 (10 is 10 %), unlike `vatRate`, because every system states
    /// line discounts in percent.
    public var discountPercent: Decimal?
    /// A fraction: 0.25 is 25 %.
    public var vatRate: Decimal?

    public init(
        product: GlobalRef? = nil, sku: String? = nil, description: String? = nil, quantity: Decimal? = nil,
        unitPriceExclVat: Decimal? = nil, discountPercent: Decimal? = nil, vatRate: Decimal? = nil
    ) {
        self.product = product
        self.sku = sku
        self.description = description
        self.quantity = quantity
        self.unitPriceExclVat = unitPriceExclVat
        self.discountPercent = discountPercent
        self.vatRate = vatRate
    }
}

public struct Order: Sendable, Hashable {
    public var orderNumber: String?
    public var customer: GlobalRef?
    public var orderDate: CalendarDate?
    public var deliveryDate: CalendarDate?
    /// ISO 4217 ("NOK").
    public var currency: String?
    public var status: OrderStatus?
    /// The buyer's own reference text ("your reference").
    public var customerReference: String?
    /// The lines, as one merge field: `nil` = not carried; `[]` = an order without lines.
    public var lines: [OrderLine]?
    public var archived: Bool?

    public init(
        orderNumber: String? = nil, customer: GlobalRef? = nil, orderDate: CalendarDate? = nil,
        deliveryDate: CalendarDate? = nil, currency: String? = nil, status: OrderStatus? = nil,
        customerReference: String? = nil, lines: [OrderLine]? = nil, archived: Bool? = nil
    ) {
        self.orderNumber = orderNumber
        self.customer = customer
        self.orderDate = orderDate
        self.deliveryDate = deliveryDate
        self.currency = currency
        self.status = status
        self.customerReference = customerReference
        self.lines = lines
        self.archived = archived
    }
}

extension CanonicalEntityType {
    /// The envelope's entity type name (`ParleyEnvelope.EntityType` is an open, validated
    /// name; this one is the closed set the canonical model knows).
    public var messagingEntityType: ParleyEnvelope.EntityType {
        switch self {
        case .customer: .customer
        case .order: .order
        case .product: .product
        }
    }

    /// `nil` for an entity type the canonical model does not know.
    public init?(_ messaging: ParleyEnvelope.EntityType) {
        self.init(rawValue: messaging.rawValue)
    }
}
