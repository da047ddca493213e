import Foundation
import ParleyCore

/// A Norwegian customer as plain values; each simulator maps it to its own record shape.
public struct SeedCustomer: Sendable, Equatable {
    public enum Kind: String, Sendable { case company, person }
    public var kind: Kind
    /// The company name, or the person's full name.
    public var name: String
    /// The person, or the company's contact person.
    public var firstName: String
    public var lastName: String
    /// Nine digits with a valid mod-11 check digit; companies only.
    public var organizationNumber: String?
    public var email: String
    public var phone: String
    public var addressLine1: String
    public var postalCode: String
    public var city: String
    /// ISO 3166-1 alpha-2; always `NO`.
    public var countryCode: String
}

/// A product as plain values. Prices are exact decimals excluding VAT with two decimals.
public struct SeedProduct: Sendable, Equatable {
    public enum Kind: String, Sendable { case goods, service }
    public var sku: String
    public var name: String
    public var description: String
    /// EAN-13 with a valid check digit (Norwegian prefix 70); `nil` for services.
    public var gtin: String?
    /// UN/ECE Recommendation 20 code: `EA`, `KGM`, `LTR`, `MTR`, `HUR`.
    public var unitCode: String
    public var priceExclVat: Decimal
    public var costPriceExclVat: Decimal
    /// Norwegian VAT rates in percent: 25 (general), 15 (food), 12 (transport, hotels,
    /// cinema), 0 (books and newspapers).
    public var vatRate: Int
    public var kind: Kind
    /// Units in stock; `nil` for services.
    public var stock: Int?
}

public struct SeedOrderLine: Sendable, Equatable {
    /// Index into the dataset's products.
    public var productIndex: Int
    /// A whole number (the webshop takes integers only).
    public var quantity: Int
    /// 0, 5 or 10 percent; the ERP carries it, the webshop folds it into the price.
    public var discountPercent: Int
}

public struct SeedOrder: Sendable, Equatable {
    public enum Status: String, Sendable { case new, confirmed, inProgress, delivered, cancelled }
    /// Index into the dataset's customers.
    public var customerIndex: Int
    /// `YYYY-MM-DD`, within 120 days before the dataset's reference day.
    public var orderDate: String
    public var status: Status
    /// The buyer's reference (a PO number), sometimes.
    public var customerReference: String?
    public var lines: [SeedOrderLine]
}

public struct SeedDataset: Sendable, Equatable {
    public var customers: [SeedCustomer]
    public var products: [SeedProduct]
    public var orders: [SeedOrder]
}

/// Realistic Norwegian test data, deterministic for a seed: companies with valid organisation
/// numbers, people, addresses with real postcode/city pairs, e-mails and phone numbers,
/// products at the four VAT rates, and orders referring to those customers and products.
/// E-mails and SKUs are unique within a dataset (the systems' uniqueness rules).
public struct NorwegianData: Sendable {
    private var rng: SeededRandom
    private var usedEmails: Set<String> = []
    private var usedOrgNumbers: Set<String> = []

    public init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    /// `count` customers, products and orders; order dates count back from `referenceDay`
    /// (`YYYY-MM-DD`, default a fixed day so a seed always gives the same data).
    public static func dataset(seed: UInt64, count: Int, referenceDay: String = "2026-01-15") -> SeedDataset {
        dataset(seed: seed, customers: count, products: count, orders: count, referenceDay: referenceDay)
    }

    public static func dataset(seed: UInt64, customers: Int, products: Int, orders: Int, referenceDay: String = "2026-01-15") -> SeedDataset {
        var g = NorwegianData(seed: seed)
        let cs = (0..<customers).map { _ in g.customer() }
        let ps = (0..<products).map { g.product(index: $0) }
        let os =
            cs.isEmpty || ps.isEmpty
            ? []
            : (0..<orders).map { _ in
                g.order(customerCount: cs.count, productCount: ps.count, referenceDay: referenceDay)
            }
        return SeedDataset(customers: cs, products: ps, orders: os)
    }

    // MARK: - Organisation numbers

    /// The mod-11 check digit for the first eight digits (weights 3 2 7 6 5 4 3 2), or `nil`
    /// when none exists (remainder 1 gives 10, and such numbers are never issued).
    public static func organizationNumberCheckDigit(_ first8: [Int]) -> Int? {
        precondition(first8.count == 8)
        let sum = zip(first8, [3, 2, 7, 6, 5, 4, 3, 2]).reduce(0) { $0 + $1.0 * $1.1 }
        let check = 11 - sum % 11
        return check == 11 ? 0 : (check == 10 ? nil : check)
    }

    /// A valid organisation number; like Brønnøysund's, it starts with 8 or 9.
    public mutating func organizationNumber() -> String {
        while true {
            var digits = [pick([8, 9])]
            for _ in 0..<7 { digits.append(Int.random(in: 0...9, using: &rng)) }
            guard let check = Self.organizationNumberCheckDigit(digits) else { continue }
            let number = (digits + [check]).map(String.init).joined()
            if usedOrgNumbers.insert(number).inserted { return number }
        }
    }

    /// The EAN-13 check digit for twelve digits.
    public static func ean13CheckDigit(_ first12: [Int]) -> Int {
        let sum = first12.enumerated().reduce(0) { $0 + $1.element * ($1.offset % 2 == 0 ? 1 : 3) }
        return (10 - sum % 10) % 10
    }

    // MARK: - Customers

    public mutating func customer() -> SeedCustomer {
        let first = pick(Self.firstNames), last = pick(Self.lastNames)
        let place = pick(Self.places)
        let street = "\(pick(Self.streets)) \(Int.random(in: 1...120, using: &rng))\(chance(0.15) ? pick(["A", "B", "C"]) : "")"
        if chance(0.6) {
            let name = companyName(lastName: last)
            let slug = Self.slug(
                name.replacingOccurrences(of: " AS", with: "").replacingOccurrences(of: " ASA", with: "")
                    .replacingOccurrences(of: " DA", with: "").replacingOccurrences(of: " SA", with: "").replacingOccurrences(of: " ENK", with: ""))
            let email = unique(local: pick(["post", "faktura", "firmapost", "ordre"]), domain: "\(slug).no")
            return SeedCustomer(
                kind: .company, name: name, firstName: first, lastName: last,
                organizationNumber: organizationNumber(), email: email, phone: landline(place.areaDigit),
                addressLine1: street, postalCode: place.postcode, city: place.city, countryCode: "NO")
        }
        let email = unique(
            local: "\(Self.slug(first)).\(Self.slug(last))", domain: pick(["gmail.com", "online.no", "outlook.com", "hotmail.com", "icloud.com"]))
        return SeedCustomer(
            kind: .person, name: "\(first) \(last)", firstName: first, lastName: last, organizationNumber: nil,
            email: email, phone: mobile(), addressLine1: street, postalCode: place.postcode, city: place.city,
            countryCode: "NO")
    }

    private mutating func companyName(lastName: String) -> String {
        let trade = pick(Self.trades)
        switch Int.random(in: 0..<10, using: &rng) {
        case 0..<6: return "\(pick(Self.companyPrefixes)) \(trade) \(pick(["AS", "AS", "AS", "AS", "ASA", "DA"]))"
        case 6..<8: return "\(lastName) \(trade) \(pick(["AS", "ENK"]))"
        default: return "\(pick(Self.places).city) \(trade) \(pick(["AS", "SA"]))"
        }
    }

    private mutating func unique(local: String, domain: String) -> String {
        var candidate = "\(local)@\(domain)"
        var n = 2
        while !usedEmails.insert(candidate).inserted {
            candidate = "\(local)\(n)@\(domain)"
            n += 1
        }
        return candidate
    }

    /// Mobile numbers start with 4 or 9: `+47 412 34 567`.
    private mutating func mobile() -> String {
        let d = [pick([4, 9])] + (0..<7).map { _ in Int.random(in: 0...9, using: &rng) }
        let s = d.map(String.init).joined()
        return "+47 \(s.prefix(3)) \(s.dropFirst(3).prefix(2)) \(s.suffix(3))"
    }

    /// Landlines start with the region's digit: `+47 22 33 44 55`.
    private mutating func landline(_ areaDigit: Int) -> String {
        let d = [areaDigit] + (0..<7).map { _ in Int.random(in: 0...9, using: &rng) }
        let pairs = stride(from: 0, to: 8, by: 2).map { d[$0...$0 + 1].map(String.init).joined() }
        return "+47 " + pairs.joined(separator: " ")
    }

    // MARK: - Products

    /// The product at `index` of a dataset (its SKU is `NL-` + 1000 + index, so unique).
    public mutating func product(index: Int) -> SeedProduct {
        let rateRoll = Int.random(in: 0..<100, using: &rng)
        let pool = rateRoll < 55 ? Self.generalGoods : rateRoll < 80 ? Self.food : rateRoll < 90 ? Self.reducedRate : Self.zeroRate
        let template = pick(pool)
        let variant = chance(0.5) ? "" : " \(pick(template.variants))"
        let price = Decimal(Int.random(in: template.minKroner * 100...template.maxKroner * 100, using: &rng)) / 100
        let cost = (price * Decimal(Int.random(in: 45...75, using: &rng)) / 100).roundedHalfAwayFromZero(scale: 2)
        var gtin: String?
        if template.kind == .goods {
            let first12 = [7, 0] + (0..<10).map { _ in Int.random(in: 0...9, using: &rng) }
            gtin = (first12 + [Self.ean13CheckDigit(first12)]).map(String.init).joined()
        }
        return SeedProduct(
            sku: "NL-\(1000 + index)", name: template.name + variant, description: template.description,
            gtin: gtin, unitCode: template.unit, priceExclVat: price.roundedHalfAwayFromZero(scale: 2),
            costPriceExclVat: cost, vatRate: template.vatRate, kind: template.kind,
            stock: template.kind == .goods ? Int.random(in: 0...500, using: &rng) : nil)
    }

    // MARK: - Orders

    public mutating func order(customerCount: Int, productCount: Int, referenceDay: String) -> SeedOrder {
        let lineCount = Int.random(in: 1...min(5, productCount), using: &rng)
        var chosen: [Int] = []
        while chosen.count < lineCount {
            let p = Int.random(in: 0..<productCount, using: &rng)
            if !chosen.contains(p) { chosen.append(p) }
        }
        let lines = chosen.map {
            SeedOrderLine(
                productIndex: $0, quantity: Int.random(in: 1...12, using: &rng),
                discountPercent: chance(0.2) ? pick([5, 10]) : 0)
        }
        let parts = referenceDay.split(separator: "-").compactMap { Int64($0) }
        let refDays = parts.count == 3 ? CivilCalendar.daysFromCivil(parts[0], parts[1], parts[2]) : 20_468
        let (y, m, d) = CivilCalendar.civilFromDays(refDays - Int64(Int.random(in: 0...120, using: &rng)))
        let date = String(format: "%04lld-%02lld-%02lld", y, m, d)
        let statusRoll = Int.random(in: 0..<100, using: &rng)
        let status: SeedOrder.Status =
            statusRoll < 30 ? .new : statusRoll < 55 ? .confirmed : statusRoll < 70 ? .inProgress : statusRoll < 95 ? .delivered : .cancelled
        return SeedOrder(
            customerIndex: Int.random(in: 0..<customerCount, using: &rng), orderDate: date, status: status,
            customerReference: chance(0.4) ? "PO-\(Int.random(in: 10_000...99_999, using: &rng))" : nil, lines: lines)
    }

    // MARK: - Helpers

    private mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &rng)] }
    private mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    /// Lower-case ASCII for e-mail addresses and domains: æ → ae, ø → o, å → a.
    static func slug(_ text: String) -> String {
        var out = ""
        for ch in text.lowercased() {
            switch ch {
            case "æ": out += "ae"
            case "ø", "ö": out += "o"
            case "å", "ä": out += "a"
            case "é": out += "e"
            case "a"..."z", "0"..."9": out.append(ch)
            case " ", "-": if !out.hasSuffix("-"), !out.isEmpty { out += "-" }
            default: break
            }
        }
        return out.hasSuffix("-") ? String(out.dropLast()) : out
    }

    struct Place: Sendable { var postcode: String; var city: String; var areaDigit: Int }
    struct ProductTemplate: Sendable {
        var name: String; var description: String; var unit: String; var vatRate: Int
        var kind: SeedProduct.Kind; var minKroner: Int; var maxKroner: Int; var variants: [String]
    }

    static let firstNames = [
        "Ola", "Kari", "Nora", "Emma", "Jakob", "Lukas", "Ingrid", "Sofie", "Henrik", "Marius", "Sigrid", "Astrid",
        "Magnus", "Håkon", "Eirik", "Ida", "Thea", "Solveig", "Lars", "Knut", "Åse", "Bjørn", "Mari", "Jonas",
        "Sindre", "Ragnhild", "Øystein", "Tone", "Kristian", "Hanne", "Per", "Liv", "Torbjørn", "Maja", "Even"
    ]
    static let lastNames = [
        "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen", "Jensen", "Karlsen",
        "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen", "Johannessen", "Andreassen", "Jacobsen", "Dahl",
        "Jørgensen", "Halvorsen", "Henriksen", "Lund", "Sørensen", "Bakken", "Moen", "Strand", "Solberg", "Aas", "Lie",
        "Ødegård", "Østby", "Brekke", "Sæther"
    ]
    static let companyPrefixes = [
        "Nordlys", "Fjell", "Vestland", "Fjord", "Havbris", "Midnattsol", "Polar", "Skog", "Viking", "Bjørke",
        "Solstrand", "Tindefjell", "Brattli", "Aurora", "Lofot", "Trollheim", "Elveli", "Nordkyst"
    ]
    static let trades = [
        "Bygg", "Elektro", "Rør", "Regnskap", "Transport", "Maskin", "Data", "Eiendom", "Sjømat", "Bakeri",
        "Trelast", "Blomster", "Bil", "Konsult", "Marine", "Entreprenør", "Handel", "Tak og Fasade"
    ]
    static let streets = [
        "Storgata", "Kirkegata", "Parkveien", "Skolegata", "Bjørkeveien", "Industriveien", "Fjordgata", "Sjøgata",
        "Strandveien", "Granveien", "Kongens gate", "Dronningens gate", "Hegdehaugsveien", "Thorvald Meyers gate",
        "Løkkeveien", "Solbakken", "Markveien", "Bryggen", "Nedre Slottsgate", "Havnegata"
    ]
    static let places = [
        Place(postcode: "0150", city: "Oslo", areaDigit: 2), Place(postcode: "0161", city: "Oslo", areaDigit: 2),
        Place(postcode: "0250", city: "Oslo", areaDigit: 2), Place(postcode: "0557", city: "Oslo", areaDigit: 2),
        Place(postcode: "1337", city: "Sandvika", areaDigit: 6), Place(postcode: "1530", city: "Moss", areaDigit: 6),
        Place(postcode: "1606", city: "Fredrikstad", areaDigit: 6), Place(postcode: "2317", city: "Hamar", areaDigit: 6),
        Place(postcode: "2609", city: "Lillehammer", areaDigit: 6), Place(postcode: "3015", city: "Drammen", areaDigit: 3),
        Place(postcode: "3117", city: "Tønsberg", areaDigit: 3), Place(postcode: "3616", city: "Kongsberg", areaDigit: 3),
        Place(postcode: "4006", city: "Stavanger", areaDigit: 5), Place(postcode: "4608", city: "Kristiansand S", areaDigit: 3),
        Place(postcode: "5003", city: "Bergen", areaDigit: 5), Place(postcode: "5014", city: "Bergen", areaDigit: 5),
        Place(postcode: "6002", city: "Ålesund", areaDigit: 7), Place(postcode: "6800", city: "Førde", areaDigit: 5),
        Place(postcode: "7010", city: "Trondheim", areaDigit: 7), Place(postcode: "7030", city: "Trondheim", areaDigit: 7),
        Place(postcode: "8006", city: "Bodø", areaDigit: 7), Place(postcode: "9008", city: "Tromsø", areaDigit: 7),
        Place(postcode: "9600", city: "Hammerfest", areaDigit: 7)
    ]

    static let generalGoods = [
        ProductTemplate(
            name: "Arbeidshansker", description: "Slitesterke arbeidshansker i skinn.", unit: "EA", vatRate: 25, kind: .goods, minKroner: 79,
            maxKroner: 249, variants: ["str. 8", "str. 9", "str. 10"]),
        ProductTemplate(
            name: "Hodelykt LED", description: "Oppladbar hodelykt, 400 lumen.", unit: "EA", vatRate: 25, kind: .goods, minKroner: 199,
            maxKroner: 899, variants: ["svart", "oransje"]),
        ProductTemplate(
            name: "Ullsokker", description: "Varme ullsokker av norsk ull.", unit: "EA", vatRate: 25, kind: .goods, minKroner: 99, maxKroner: 299,
            variants: ["2-pk", "3-pk", "str. 40-45"]),
        ProductTemplate(
            name: "Kabel 3x2,5 mm²", description: "Installasjonskabel PFSP.", unit: "MTR", vatRate: 25, kind: .goods, minKroner: 12, maxKroner: 39,
            variants: ["grå", "hvit"]),
        ProductTemplate(
            name: "Maling hvit", description: "Vannbasert interiørmaling.", unit: "LTR", vatRate: 25, kind: .goods, minKroner: 89, maxKroner: 329,
            variants: ["matt", "halvblank"]),
        ProductTemplate(
            name: "Kaffetrakter", description: "Kaffetrakter med termokanne.", unit: "EA", vatRate: 25, kind: .goods, minKroner: 599, maxKroner: 2499,
            variants: ["1,25 l", "1,8 l"]),
        ProductTemplate(
            name: "Strøsand", description: "Strøsand i sekk.", unit: "KGM", vatRate: 25, kind: .goods, minKroner: 3, maxKroner: 9,
            variants: ["fin", "grov"]),
        ProductTemplate(
            name: "Konsulenttime", description: "Rådgivning, per påbegynte time.", unit: "HUR", vatRate: 25, kind: .service, minKroner: 950,
            maxKroner: 1850, variants: ["senior", "junior"]),
        ProductTemplate(
            name: "Montering", description: "Montering på stedet.", unit: "HUR", vatRate: 25, kind: .service, minKroner: 650, maxKroner: 1200,
            variants: ["kveld", "helg"])
    ]
    static let food = [
        ProductTemplate(
            name: "Kaffe hele bønner", description: "Lysbrent kaffe fra Kenya.", unit: "EA", vatRate: 15, kind: .goods, minKroner: 89, maxKroner: 249,
            variants: ["250 g", "500 g", "1 kg"]),
        ProductTemplate(
            name: "Brunost", description: "Gudbrandsdalsost.", unit: "EA", vatRate: 15, kind: .goods, minKroner: 59, maxKroner: 129,
            variants: ["500 g", "1 kg"]),
        ProductTemplate(
            name: "Røkt laks", description: "Kaldrøkt laks fra Lofoten.", unit: "KGM", vatRate: 15, kind: .goods, minKroner: 249, maxKroner: 499,
            variants: ["skivet", "hel side"]),
        ProductTemplate(
            name: "Knekkebrød", description: "Grovt knekkebrød med frø.", unit: "EA", vatRate: 15, kind: .goods, minKroner: 29, maxKroner: 69,
            variants: ["rug", "spelt"]),
        ProductTemplate(
            name: "Multesyltetøy", description: "Syltetøy av multer.", unit: "EA", vatRate: 15, kind: .goods, minKroner: 79, maxKroner: 189,
            variants: ["350 g"])
    ]
    static let reducedRate = [
        ProductTemplate(
            name: "Hotellovernatting", description: "Overnatting med frokost.", unit: "EA", vatRate: 12, kind: .service, minKroner: 990,
            maxKroner: 2490, variants: ["enkeltrom", "dobbeltrom"]),
        ProductTemplate(
            name: "Fergebillett", description: "Billett for person.", unit: "EA", vatRate: 12, kind: .service, minKroner: 45, maxKroner: 390,
            variants: ["voksen", "honnør"]),
        ProductTemplate(
            name: "Kinobillett", description: "Billett til kinoforestilling.", unit: "EA", vatRate: 12, kind: .service, minKroner: 110,
            maxKroner: 180, variants: ["voksen", "barn"])
    ]
    static let zeroRate = [
        ProductTemplate(
            name: "Bok: Norsk kokekunst", description: "Innbundet kokebok.", unit: "EA", vatRate: 0, kind: .goods, minKroner: 299, maxKroner: 499,
            variants: ["bokmål", "nynorsk"]),
        ProductTemplate(
            name: "Avisabonnement", description: "Papiravis levert på døren.", unit: "EA", vatRate: 0, kind: .service, minKroner: 299, maxKroner: 699,
            variants: ["3 mnd", "12 mnd"])
    ]
}
