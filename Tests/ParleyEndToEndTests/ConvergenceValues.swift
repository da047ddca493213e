import Foundation
import ParleyCanonical
import ParleyMessaging
import ParleyJSON

/// The convergence test's one source of randomness: SplitMix64, seeded. Every choice the test
/// makes (which operation, which record, which value, when a service is killed) is drawn from
/// a generator made from the seed, so a seed names one run (docs/testing.md).
struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 ^ 0xD1B5_4A32_D192_ED03 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &self)] }

    /// One of `items`, each with its weight.
    mutating func weighted<T>(_ items: [(T, Int)]) -> T {
        let total = items.reduce(0) { $0 + $1.1 }
        var roll = Int.random(in: 0..<total, using: &self)
        for (item, weight) in items {
            if roll < weight { return item }
            roll -= weight
        }
        return items[items.count - 1].0
    }
}

/// Values no record of the run has had before: every edit writes a value new to its field, so
/// an edit is always a change and never brings back an earlier value (which a system polled
/// between the two edits could not tell from no edit at all). Valid for every contract: prices
/// with two decimals, whole stock and quantities, units and countries each system can hold.
struct FreshValues: Sendable {
    let seed: UInt64
    private var counter = 0
    private var orgBase: Int

    init(seed: UInt64) {
        self.seed = seed
        orgBase = 800_000_00 + Int(seed % 9_000) * 1_000
    }

    mutating func next() -> Int {
        counter += 1
        return counter
    }

    /// A tag that makes text values unique within the run and readable in the operation log.
    mutating func tag() -> String { "\(seed)-\(next())" }

    static let firstNames = ["Kari", "Ola", "Ingrid", "Per", "Sigrid", "Lars", "Astrid", "Nils", "Solveig", "Jon", "Marit", "Eirik"]
    static let lastNames = ["Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Berg", "Haugen", "Dahl", "Lie", "Moen", "Strand", "Bakke"]
    static let companyWords = ["Fjord", "Nordlys", "Vidde", "Kyst", "Fjell", "Skog", "Elv", "Bre", "Dal", "Vik"]
    static let trades = ["Bakeri", "Verksted", "Handel", "Transport", "Konsult", "Bygg", "Fisk", "Data"]
    static let cities = ["Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø", "Bodø", "Ålesund", "Drammen", "Kristiansand", "Hamar"]
    /// Countries every system can hold: ISO codes (ERP, PowerOffice Go) with a Norwegian name the webshop's table knows.
    static let countries = ["NO", "SE", "DK", "FI", "IS", "DE", "NL", "FR", "ES", "IT", "GB", "PL", "AT", "BE", "IE", "PT"]
    static let currencies = ["NOK", "SEK", "DKK", "EUR", "USD", "GBP", "CHF", "PLN", "ISK", "CZK"]
    /// UN/ECE units the webshop has a word for and PowerOffice Go has in its enum.
    static let units = [
        "EA", "KGM", "LTR", "MTR", "HUR", "DAY", "GRM", "MLT", "CMT", "MMT", "KMT", "MTK", "MTQ", "WEE", "MON", "ANN", "BX", "PR", "SET", "XPK",
        "TNE", "KWH"
    ]
    static let vatPercents = [25, 15, 12, 0]

    mutating func firstName(_ r: inout SeededRandom) -> String { r.pick(Self.firstNames) + "\(next())" }
    mutating func lastName(_ r: inout SeededRandom) -> String { r.pick(Self.lastNames) + "\(next())" }
    mutating func companyName(_ r: inout SeededRandom) -> String { "\(r.pick(Self.companyWords)) \(r.pick(Self.trades)) \(tag()) AS" }
    mutating func email(_ r: inout SeededRandom) -> String { "\(r.pick(Self.firstNames).lowercased()).\(tag())@example.no" }
    mutating func phone() -> String { "+47 9\(String(format: "%07d", (Int(seed % 1000) * 10_000 + next()) % 10_000_000))" }
    mutating func street(_ r: inout SeededRandom) -> String {
        "\(r.pick(["Storgata", "Kirkeveien", "Strandgata", "Fjordveien", "Bakkegata"])) \(next())"
    }
    mutating func line2() -> String { "Inngang \(tag())" }
    mutating func postalCode() -> String { String(format: "%04d", (Int(seed % 97) * 100 + next() * 7) % 10_000) }
    mutating func city(_ r: inout SeededRandom) -> String { "\(r.pick(Self.cities)) \(next())" }
    mutating func sku() -> String { "SKU-\(tag())" }
    mutating func productName(_ r: inout SeededRandom) -> String {
        "\(r.pick(["Grovbrød", "Hvetemel", "Kaffe", "Tau", "Maling", "Konsulenttime", "Frakt"])) \(tag())"
    }
    mutating func description() -> String { "Beskrivelse \(tag())" }
    mutating func orderNo() -> String { "SO-\(tag())" }
    mutating func reference() -> String { "Ref \(tag())" }
    mutating func lineText(_ r: inout SeededRandom) -> String { "Linje \(r.pick(["brød", "mel", "kaffe", "tau"])) \(tag())" }

    /// A 13-digit GTIN, unique in the run.
    mutating func gtin() -> String { String(format: "70%011d", (Int(seed % 10_000) * 1_000_000 + next()) % 100_000_000_000) }

    /// A valid Norwegian organisation number (mod 11), unique in the run.
    mutating func organizationNumber() -> String {
        while true {
            orgBase += 1
            let base = String(orgBase)
            let digits = base.compactMap { $0.wholeNumberValue }
            let weights = [3, 2, 7, 6, 5, 4, 3, 2]
            let sum = zip(digits, weights).reduce(0) { $0 + $1.0 * $1.1 }
            var check = 11 - sum % 11
            if check == 11 { check = 0 }
            if check == 10 { continue }
            return base + String(check)
        }
    }

    /// An amount with two decimals, unique in the run (the last digits carry the counter).
    mutating func amount(_ r: inout SeededRandom, upTo: Int = 2000) -> Decimal {
        let whole = r.int(1...upTo)
        let cents = next() % 100
        return Decimal(whole) + Decimal(cents) / 100
    }

    /// A whole number unique in the run.
    mutating func count(_ r: inout SeededRandom) -> Int { r.int(1...50) * 1000 + next() }

    mutating func quantity(_ r: inout SeededRandom) -> Int { r.int(1...20) + 20 * (next() % 50) }

    mutating func date(_ r: inout SeededRandom) -> String {
        let n = next()
        return String(format: "2026-%02d-%02d", 1 + (n + r.int(0...11)) % 12, 1 + (n * 7 + r.int(0...27)) % 28)
    }
}

extension JSONValue {
    static func decimal(_ d: Decimal) -> JSONValue { JSONValue(d) ?? .null }
    static func int(_ i: Int) -> JSONValue { .number(JSONNumber(i)) }
}
