/// A small, deterministic generator of Norwegian-looking customers, products and orders for
/// `--seed N`. Stand-in until the shared generator (`Shared/ParleySimulator/NorwegianData.swift`,
/// on another branch) is merged; replace this with it then.
public struct NorwegianSampleData: Sendable {
    private var random: SeededRandom

    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    static let firstNames = ["Ola", "Kari", "Nora", "Emma", "Jakob", "Lukas", "Ingrid", "Sofie", "Henrik", "Aksel", "Sigrid", "Maja", "Filip", "Astrid", "Magnus", "Tiril"]
    static let lastNames = ["Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen", "Jensen", "Karlsen", "Berg", "Haugen", "Bakken", "Solberg", "Dahl", "Lie"]
    static let companyStems = ["Fjord", "Nordlys", "Vidde", "Bre", "Skog", "Havbris", "Trollstig", "Midnattsol", "Elvebakken", "Granitt", "Lofot", "Sølvberg"]
    static let companySuffixes = ["AS", "AS", "ASA", "Handel AS", "Bygg AS", "Regnskap AS", "Sjømat AS"]
    static let streets = ["Storgata", "Kirkegata", "Dronningens gate", "Sjøgata", "Parkveien", "Skolegata", "Bjørkeveien", "Fjellveien"]
    static let places: [(zip: String, city: String)] = [("0150", "OSLO"), ("5003", "BERGEN"), ("7011", "TRONDHEIM"), ("4006", "STAVANGER"),
                                                         ("9008", "TROMSØ"), ("3015", "DRAMMEN"), ("4610", "KRISTIANSAND"), ("8006", "BODØ")]
    static let productNouns = ["Ullgenser", "Kaffekopp", "Ostehøvel", "Turstav", "Lue", "Votter", "Termos", "Sitteunderlag", "Skismøring", "Fiskestang"]
    static let productAdjectives = ["Klassisk", "Robust", "Lett", "Varm", "Liten", "Stor", "Grønn", "Blå"]
    static let units = ["EA", "EA", "EA", "PR", "SET", "KGM"]

    mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }

    /// A valid Norwegian organisation number: 9 digits starting with 8 or 9, check digit
    /// mod 11 with weights 3 2 7 6 5 4 3 2 (a remainder giving 10 has no valid number; draw again).
    public mutating func organisationNumber() -> String {
        while true {
            var digits = [pick([8, 9])]
            for _ in 0..<7 { digits.append(int(0...9)) }
            let sum = zip(digits, [3, 2, 7, 6, 5, 4, 3, 2]).map { $0 * $1 }.reduce(0, +)
            let check = (11 - sum % 11) % 11
            if check == 10 { continue }
            return (digits + [check]).map(String.init).joined()
        }
    }

    /// A GTIN-13 (EAN) with a valid check digit, in the Norwegian 70–709 prefix range.
    public mutating func gtin() -> String {
        var digits = [7, 0]
        for _ in 0..<10 { digits.append(int(0...9)) }
        let sum = digits.enumerated().map { $0.offset % 2 == 0 ? $0.element : $0.element * 3 }.reduce(0, +)
        return (digits + [(10 - sum % 10) % 10]).map(String.init).joined()
    }

    mutating func address() -> JSONValue {
        let place = pick(Self.places)
        return .object(["AddressLine1": .string("\(pick(Self.streets)) \(int(1...120))"), "ZipCode": .string(place.zip),
                        "City": .string(place.city), "CountryCode": .string("NO")])
    }

    /// A `CustomerPostDto`: every third one a person, the rest companies with an organisation number.
    public mutating func customer(_ index: Int) -> JSONValue {
        let phone = "\(pick(["4", "9"]))\(int(1_000_000...9_999_999))"
        if index % 3 == 2 {
            let first = pick(Self.firstNames), last = pick(Self.lastNames)
            return .object(["IsPerson": .bool(true), "FirstName": .string(first), "LastName": .string(last), "Name": .string("\(first) \(last)"),
                            "EmailAddress": .string("\(first).\(last)\(index)@example.no".lowercased().replacingOccurrences(of: "ø", with: "o")),
                            "PhoneNumber": .string(phone), "MailAddress": address(), "CurrencyCode": .string("NOK")])
        }
        let name = "\(pick(Self.companyStems)) \(pick(Self.companySuffixes))"
        return .object(["IsPerson": .bool(false), "Name": .string(name), "OrganizationNumber": .string(organisationNumber()),
                        "EmailAddress": .string("post\(index)@\(name.split(separator: " ")[0].lowercased()).example.no".replacingOccurrences(of: "ø", with: "o")),
                        "PhoneNumber": .string(phone), "MailAddress": address(), "CurrencyCode": .string("NOK")])
    }

    /// A `ProductPostDto` with code `SKU-<10001+index>`.
    public mutating func product(_ index: Int) -> JSONValue {
        let price = Double(int(49...2999))
        return .object(["Code": .string("SKU-\(10_001 + index)"), "Name": .string("\(pick(Self.productAdjectives)) \(pick(Self.productNouns).lowercased())"),
                        "UnitPrice": .double(price), "UnitCost": .double((price * 0.55).rounded()), "ProductType": .string("Product"),
                        "UnitOfMeasureCode": .string(pick(Self.units)), "StockOnHand": .double(Double(int(0...500))), "Gtin": .string(gtin())])
    }

    /// A `SalesOrderCompletePostDto` for one of `customerIds` with 1–3 lines of `productIds`.
    public mutating func salesOrder(customerIds: [Int64], productIds: [Int64]) -> JSONValue {
        var lines: [JSONValue] = []
        for _ in 0..<int(1...3) where !productIds.isEmpty {
            var line: JSONObject = ["ProductId": .int(pick(productIds)), "Quantity": .double(Double(int(1...5)))]
            if int(0...3) == 0 { line["Allowance"] = .double(10) }
            lines.append(.object(line))
        }
        return .object(["CustomerId": .int(pick(customerIds)), "SalesOrderStatus": .string(int(0...2) == 0 ? "Confirmed" : "Draft"),
                        "CustomerReference": .string("Ref \(int(100...999))"), "SalesOrderLines": .array(lines)])
    }

    /// Fills `store` with `count` customers, products and sales orders through its public
    /// create operations (so seeded data obeys the same rules as data posted by clients).
    public static func seed(_ store: inout GoStore, count: Int, seed: UInt64) throws(GoError) {
        var data = NorwegianSampleData(seed: seed)
        var customerIds: [Int64] = [], productIds: [Int64] = []
        for i in 0..<count { customerIds.append(try store.createCustomer(data.customer(i))["Id"]!.int64Value!) }
        for i in 0..<count { productIds.append(try store.createProduct(data.product(i))["Id"]!.int64Value!) }
        guard !customerIds.isEmpty else { return }
        for _ in 0..<count { _ = try store.createSalesOrder(data.salesOrder(customerIds: customerIds, productIds: productIds)) }
    }
}

import Foundation
