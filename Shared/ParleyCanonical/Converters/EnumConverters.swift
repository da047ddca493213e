import Foundation
import ParleyEnvelope
import ParleyJSON

/// A table between native enum values and canonical enum values, for `enum:<table>` converters.
///
/// - ``read`` maps every native value a system may send to its canonical value. Several native
///   values may map to one canonical value (many-to-one: lossy).
/// - ``write`` maps every canonical value to the one native value written back. A canonical value
///   missing from ``write`` cannot be written to this system (an error, not a silent default).
///
/// Native values are matched ignoring case and surrounding whitespace; the spelling written back
/// is the one in ``write``.
public struct EnumTable: Sendable {
    public let name: String
    public let read: [String: String]
    public let write: [String: String]
    private let readFolded: [String: String]

    public init(name: String, read: [String: String], write: [String: String]) {
        self.name = name
        self.read = read
        self.write = write
        self.readFolded = Dictionary(read.map { (Self.fold($0.key), $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    static func fold(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }

    public func canonical(forNative native: String) -> String? { readFolded[Self.fold(native)] }
}

/// `enum:<table>` (and the alias `unitOfMeasure` for `enum:unitOfMeasure.webshop`): native
/// string ⇄ canonical string through an ``EnumTable``. Unknown values are errors naming the value
/// and the table.
public struct EnumConverter: Converter {
    public let name: String
    public let table: EnumTable

    public init(table: EnumTable, name: String? = nil) {
        self.table = table
        self.name = name ?? "enum:\(table.name)"
    }

    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            let value = try expectString(v, "a \(table.name) value")
            guard let canonical = table.canonical(forNative: value) else {
                throw ConversionError("unknown \(table.name) value \"\(value)\" (known: \(table.read.keys.sorted().joined(separator: ", ")))")
            }
            return .string(canonical)
        }
    }

    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in
            let value = try expectString(v, "a canonical \(table.name) value")
            guard let native = table.write[value] else {
                throw ConversionError("canonical value \"\(value)\" has no \(table.name) equivalent")
            }
            return .string(native)
        }
    }
}

/// The built-in enum tables. Canonical values are lower-case words (order status, product type)
/// or UN/ECE Recommendation 20 codes (unit of measure).
public enum EnumTables {
    /// Canonical order statuses (from the model, so the two cannot drift apart).
    public static let orderStatuses = OrderStatus.allCases.map(\.rawValue)

    /// WooCommerce-style webshop statuses. Lossy: `refunded` and `failed` read as `cancelled`
    /// (written back as `cancelled`); `checkout-draft` reads as `draft` (written back as `pending`).
    public static let orderStatusWebshop = EnumTable(
        name: "orderStatus.webshop",
        read: [
            "pending": "draft", "checkout-draft": "draft", "on-hold": "confirmed", "processing": "processing",
            "completed": "completed", "cancelled": "cancelled", "refunded": "cancelled", "failed": "cancelled"
        ],
        write: [
            "draft": "pending", "confirmed": "on-hold", "processing": "processing", "completed": "completed",
            "cancelled": "cancelled"
        ])

    /// PowerOffice Go v2 `OrderStatus` (SalesOrderStatus): only `Draft` and `Confirmed`. Lossy:
    /// canonical `confirmed`, `processing` and `completed` are all written as `Confirmed` (and
    /// read back as `confirmed`). `cancelled` cannot be written: Go has no cancelled sales order
    /// (a cancelled order is deleted or credited there), so the caller must handle it.
    public static let orderStatusPowerOffice = EnumTable(
        name: "orderStatus.poweroffice",
        read: ["Draft": "draft", "Confirmed": "confirmed"],
        write: ["draft": "Draft", "confirmed": "Confirmed", "processing": "Confirmed", "completed": "Confirmed"])

    /// PowerOffice Go v2 `ProductType` ⇄ canonical `product` / `service`.
    public static let productTypePowerOffice = EnumTable(
        name: "productType.poweroffice",
        read: ["Product": "product", "Service": "service"],
        write: ["product": "Product", "service": "Service"])

    /// ERP (`customerp`) `customerType` ⇄ canonical customer kind: `PERSON` ⇄ `person`,
    /// `COMPANY` ⇄ `company`. One to one, not lossy.
    public static let customerKindErp = EnumTable(
        name: "customerKind.erp",
        read: ["PERSON": "person", "COMPANY": "company"],
        write: ["person": "PERSON", "company": "COMPANY"])

    /// ERP (`customerp`) `itemType` ⇄ canonical product type. The contract says "STOCK and
    /// NONSTOCK are goods; SERVICE is a service". Lossy: `NONSTOCK` reads as `product`, and
    /// canonical `product` is written as `STOCK` (the canonical model carries `stock`, and most
    /// goods the webshop and PowerOffice know are stocked), so a NONSTOCK item becomes STOCK if
    /// Parley ever writes its type.
    public static let productTypeErp = EnumTable(
        name: "productType.erp",
        read: ["STOCK": "product", "NONSTOCK": "product", "SERVICE": "service"],
        write: ["product": "STOCK", "service": "SERVICE"])

    /// ERP (`customerp`) order `status` (`OrderStatus` in the contract) ⇄ canonical order status,
    /// one to one: `ENTERED` (registered, not confirmed) ⇄ `draft`, `CONFIRMED` ⇄ `confirmed`,
    /// `PICKING` (being picked/packed) ⇄ `processing`, `DELIVERED` (shipped and invoiced) ⇄
    /// `completed`, `CANCELLED` ⇄ `cancelled`. Every canonical status can be written; not lossy.
    public static let orderStatusErp = EnumTable(
        name: "orderStatus.erp",
        read: [
            "ENTERED": "draft", "CONFIRMED": "confirmed", "PICKING": "processing", "DELIVERED": "completed",
            "CANCELLED": "cancelled"
        ],
        write: [
            "draft": "ENTERED", "confirmed": "CONFIRMED", "processing": "PICKING", "completed": "DELIVERED",
            "cancelled": "CANCELLED"
        ])

    /// Webshop product `type` ⇄ canonical product type: `simple` ⇄ `product`, `virtual` (no
    /// shipping: a service, says the contract) ⇄ `service`. The contract's enum has only these
    /// two, so the table is one to one; any other type a shop sends (WooCommerce's `variable`,
    /// `grouped`, `external`) is an error naming the value, not a guess.
    public static let productTypeWebshop = EnumTable(
        name: "productType.webshop",
        read: ["simple": "product", "virtual": "service"],
        write: ["product": "simple", "service": "virtual"])

    /// Webshop unit words ⇄ UN/ECE codes. Lossy: several words read as one code (`pcs`, `pc`,
    /// `stk`, `each`, `ea` → `EA`); the first word of each group below is written back.
    public static let unitOfMeasureWebshop: EnumTable = {
        let groups: [(code: String, words: [String])] = [
            ("EA", ["pcs", "pc", "piece", "pieces", "each", "ea", "stk", "unit", "units"]),
            ("KGM", ["kg", "kilogram", "kilo", "kgs"]),
            ("GRM", ["g", "gram", "grams"]),
            ("LTR", ["l", "liter", "litre", "liters", "litres"]),
            ("MLT", ["ml", "milliliter", "millilitre"]),
            ("MTR", ["m", "meter", "metre", "meters", "metres"]),
            ("CMT", ["cm", "centimeter", "centimetre"]),
            ("MMT", ["mm", "millimeter", "millimetre"]),
            ("KMT", ["km", "kilometer", "kilometre"]),
            ("MTK", ["m2", "m²", "sqm"]),
            ("MTQ", ["m3", "m³"]),
            ("HUR", ["hour", "hours", "h", "hr", "time", "timer"]),
            ("DAY", ["day", "days", "dag", "dager"]),
            ("WEE", ["week", "weeks", "uke", "uker"]),
            ("MON", ["month", "months", "måned", "måneder"]),
            ("ANN", ["year", "years", "år"]),
            ("BX", ["box", "boxes", "eske"]),
            ("PR", ["pair", "pairs", "par"]),
            ("SET", ["set", "sets", "sett"]),
            ("XPK", ["package", "packages", "pk", "pakke"]),
            ("TNE", ["tonne", "tonnes", "tonn"]),
            ("KWH", ["kwh"])
        ]
        var read: [String: String] = [:]
        var write: [String: String] = [:]
        for group in groups {
            for word in group.words { read[word] = group.code }
            write[group.code] = group.words[0]
        }
        return EnumTable(name: "unitOfMeasure.webshop", read: read, write: write)
    }()

    /// PowerOffice Go v2 `UnitOfMeasureType` codes (UN/ECE), identical to canonical: the table
    /// only checks the code is one Go accepts.
    public static let unitOfMeasurePowerOffice: EnumTable = {
        let codes = [
            "BX", "MTR", "KMT", "KGM", "EA", "LTR", "HUR", "DAY", "MTK", "MTQ", "TNE", "MON", "ANN", "QAN", "NL",
            "XRO", "XBA", "XPL", "XPC", "PR", "XCI", "XBG", "SET", "XTY", "XOF", "FTK", "KWH", "MWH", "LBR", "CMT",
            "DMT", "LM", "XPK", "GRM", "HGM", "XFL", "XBE", "E54", "MMT", "DAA", "H18", "MLT", "HLT", "DLT", "AK",
            "XCR", "E14", "MJ", "J57", "XJG", "XCT", "XSA", "XTU", "WEE", "XCA", "XCN", "NAR", "M4", "XVQ", "P1",
            "MFU", "KMK", "LM3", "FOT", "FM3", "E34", "E35"
        ]
        let identity = Dictionary(uniqueKeysWithValues: codes.map { ($0, $0) })
        return EnumTable(name: "unitOfMeasure.poweroffice", read: identity, write: identity)
    }()

    public static let all: [EnumTable] = [
        orderStatusWebshop, orderStatusPowerOffice, orderStatusErp, productTypePowerOffice, productTypeErp,
        productTypeWebshop, customerKindErp, unitOfMeasureWebshop, unitOfMeasurePowerOffice
    ]
}
