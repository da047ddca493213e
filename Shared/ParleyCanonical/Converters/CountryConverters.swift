import Foundation
import ParleyEnvelope
import ParleyJSON

/// Countries. Canonical form: ISO 3166-1 alpha-2 code in upper case (`"NO"`).
public enum Countries {
    /// One known country: code, English name, Norwegian name, and other spellings read as it.
    public struct Entry: Sendable {
        public let code: String
        public let english: String
        public let norwegian: String
        public let aliases: [String]
    }

    /// The Nordic countries, every other EU/EEA country, Switzerland, the UK and the US.
    public static let all: [Entry] = [
        Entry(code: "NO", english: "Norway", norwegian: "Norge", aliases: ["Noreg"]),
        Entry(code: "SE", english: "Sweden", norwegian: "Sverige", aliases: []),
        Entry(code: "DK", english: "Denmark", norwegian: "Danmark", aliases: []),
        Entry(code: "FI", english: "Finland", norwegian: "Finland", aliases: ["Suomi"]),
        Entry(code: "IS", english: "Iceland", norwegian: "Island", aliases: []),
        Entry(code: "DE", english: "Germany", norwegian: "Tyskland", aliases: ["Deutschland"]),
        Entry(
            code: "GB", english: "United Kingdom", norwegian: "Storbritannia",
            aliases: ["UK", "Great Britain", "Det forente kongerike", "Storbritannia og Nord-Irland"]),
        Entry(
            code: "US", english: "United States", norwegian: "USA",
            aliases: ["United States of America", "USA", "US", "De forente stater"]),
        Entry(code: "AT", english: "Austria", norwegian: "Østerrike", aliases: []),
        Entry(code: "BE", english: "Belgium", norwegian: "Belgia", aliases: []),
        Entry(code: "BG", english: "Bulgaria", norwegian: "Bulgaria", aliases: []),
        Entry(code: "HR", english: "Croatia", norwegian: "Kroatia", aliases: []),
        Entry(code: "CY", english: "Cyprus", norwegian: "Kypros", aliases: []),
        Entry(code: "CZ", english: "Czechia", norwegian: "Tsjekkia", aliases: ["Czech Republic", "Den tsjekkiske republikk"]),
        Entry(code: "EE", english: "Estonia", norwegian: "Estland", aliases: []),
        Entry(code: "FR", english: "France", norwegian: "Frankrike", aliases: []),
        Entry(code: "GR", english: "Greece", norwegian: "Hellas", aliases: ["Grekenland"]),
        Entry(code: "HU", english: "Hungary", norwegian: "Ungarn", aliases: []),
        Entry(code: "IE", english: "Ireland", norwegian: "Irland", aliases: []),
        Entry(code: "IT", english: "Italy", norwegian: "Italia", aliases: []),
        Entry(code: "LV", english: "Latvia", norwegian: "Latvia", aliases: []),
        Entry(code: "LI", english: "Liechtenstein", norwegian: "Liechtenstein", aliases: []),
        Entry(code: "LT", english: "Lithuania", norwegian: "Litauen", aliases: []),
        Entry(code: "LU", english: "Luxembourg", norwegian: "Luxembourg", aliases: []),
        Entry(code: "MT", english: "Malta", norwegian: "Malta", aliases: []),
        Entry(code: "NL", english: "Netherlands", norwegian: "Nederland", aliases: ["The Netherlands", "Holland"]),
        Entry(code: "PL", english: "Poland", norwegian: "Polen", aliases: []),
        Entry(code: "PT", english: "Portugal", norwegian: "Portugal", aliases: []),
        Entry(code: "RO", english: "Romania", norwegian: "Romania", aliases: []),
        Entry(code: "SK", english: "Slovakia", norwegian: "Slovakia", aliases: []),
        Entry(code: "SI", english: "Slovenia", norwegian: "Slovenia", aliases: []),
        Entry(code: "ES", english: "Spain", norwegian: "Spania", aliases: []),
        Entry(code: "CH", english: "Switzerland", norwegian: "Sveits", aliases: [])
    ]

    /// Lower-cased (and trimmed) name → code, over English names, Norwegian names and aliases.
    static let codeByName: [String: String] = {
        var map: [String: String] = [:]
        for entry in all {
            for name in [entry.english, entry.norwegian] + entry.aliases { map[key(name)] = entry.code }
        }
        return map
    }()

    static let entryByCode: [String: Entry] = Dictionary(uniqueKeysWithValues: all.map { ($0.code, $0) })

    static func key(_ name: String) -> String {
        name.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    /// The code for a country name in English or Norwegian, any case; `nil` if unknown.
    public static func code(forName name: String) -> String? { codeByName[key(name)] }
}

/// `countryName.en` / `countryName.no`: a native country name ⇄ canonical ISO alpha-2 code.
///
/// Reading accepts English and Norwegian names and the aliases in ``Countries/all`` whatever the
/// variant, ignoring case and surrounding whitespace (`"norge"`, `"Norway"` → `"NO"`); an unknown
/// name is an error naming it. Writing uses the variant's language (`countryName.no`: `"Norge"`).
/// Writing a code that is not in the table is an error (there is no name to write).
public struct CountryNameConverter: Converter {
    public enum Language: String, Sendable { case english = "en", norwegian = "no" }
    public let language: Language
    public var name: String { "countryName.\(language.rawValue)" }
    public init(language: Language) { self.language = language }

    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            let name = try expectString(v, "a country name")
            guard let code = Countries.code(forName: name) else {
                throw ConversionError("unknown country name \"\(name)\"")
            }
            return .string(code)
        }
    }

    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in
            let code = try CountryCodeConverter.validCode(try expectString(v, "a country code"))
            guard let entry = Countries.entryByCode[code] else {
                throw ConversionError("no country name known for code \"\(code)\"")
            }
            return .string(language == .english ? entry.english : entry.norwegian)
        }
    }
}

/// `countryCode`: native ISO 3166-1 alpha-2 code (PowerOffice `CountryCode`) ⇄ canonical code.
/// Checks the shape (two ASCII letters) and upper-cases; it does not check the code is assigned,
/// so countries outside ``Countries/all`` still pass through.
public struct CountryCodeConverter: Converter {
    public let name = "countryCode"
    public init() {}

    static func validCode(_ raw: String) throws(ConversionError) -> String {
        let code = raw.trimmingCharacters(in: .whitespaces).uppercased()
        guard code.utf8.count == 2, code.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            throw ConversionError("\"\(raw)\" is not an ISO 3166-1 alpha-2 country code (two letters, like NO)")
        }
        return code
    }

    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in .string(try Self.validCode(try expectString(v, "a country code"))) }
    }

    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in .string(try Self.validCode(try expectString(v, "a country code"))) }
    }
}
