import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON
import Testing

@Suite struct CountryConverterTests {
    let no = CountryNameConverter(language: .norwegian)
    let en = CountryNameConverter(language: .english)

    @Test(arguments: [
        ("Norge", "NO"), ("Norway", "NO"), ("NORWAY", "NO"), (" norge ", "NO"), ("Sverige", "SE"), ("Sweden", "SE"),
        ("Danmark", "DK"), ("Denmark", "DK"), ("Finland", "FI"), ("Island", "IS"), ("Iceland", "IS"),
        ("Tyskland", "DE"), ("Germany", "DE"), ("Storbritannia", "GB"), ("United Kingdom", "GB"), ("UK", "GB"),
        ("USA", "US"), ("United States", "US"), ("Netherlands", "NL"), ("Nederland", "NL"), ("Østerrike", "AT"),
        ("Austria", "AT"), ("Poland", "PL"), ("Liechtenstein", "LI"), ("Czech Republic", "CZ"), ("Switzerland", "CH")
    ])
    func namesToCodes(_ name: String, _ code: String) throws {
        #expect(try no.toCanonical(.string(name), context: ctx) == .string(code))
        #expect(try en.toCanonical(.string(name), context: ctx) == .string(code))
    }

    @Test func codesToNamesPerLanguage() throws {
        #expect(try no.toNative("NO", context: ctx) == "Norge")
        #expect(try en.toNative("NO", context: ctx) == "Norway")
        #expect(try no.toNative("GB", context: ctx) == "Storbritannia")
        #expect(try en.toNative("GB", context: ctx) == "United Kingdom")
        #expect(try no.toNative("DE", context: ctx) == "Tyskland")
        #expect(try en.toNative("us", context: ctx) == "United States")
    }

    @Test func everyKnownCountryRoundTrips() throws {
        for entry in Countries.all {
            for converter in [no, en] {
                let name = try converter.toNative(.string(entry.code), context: ctx)
                #expect(try converter.toCanonical(name, context: ctx) == .string(entry.code))
            }
        }
    }

    @Test func rejections() {
        #expect(failure { try no.toCanonical("Narnia", context: ctx) } == "unknown country name \"Narnia\"")
        #expect(failure { try no.toCanonical("NO", context: ctx) } == "unknown country name \"NO\"")
        #expect(failure { try no.toNative("JP", context: ctx) } == "no country name known for code \"JP\"")
        #expect(failure { try no.toNative("Norge", context: ctx) }?.contains("not an ISO 3166-1 alpha-2") == true)
        #expect(failure { try no.toCanonical(47, context: ctx) } != nil)
    }

    @Test func countryCode() throws {
        let c = CountryCodeConverter()
        #expect(try c.toCanonical("NO", context: ctx) == "NO")
        #expect(try c.toCanonical("se", context: ctx) == "SE")
        #expect(try c.toCanonical("JP", context: ctx) == "JP")
        #expect(try c.toNative("DK", context: ctx) == "DK")
        #expect(failure { try c.toCanonical("NOR", context: ctx) } == "\"NOR\" is not an ISO 3166-1 alpha-2 country code (two letters, like NO)")
        #expect(failure { try c.toCanonical("N1", context: ctx) } != nil)
        #expect(failure { try c.toCanonical("", context: ctx) } != nil)
    }
}

@Suite struct EnumConverterTests {
    let registry = ConverterRegistry.standard

    func conv(_ name: String) -> any Converter { registry.converter(named: name)! }

    @Test func webshopOrderStatus() throws {
        let c = conv("enum:orderStatus.webshop")
        let read: [(String, String)] = [
            ("pending", "draft"), ("on-hold", "confirmed"), ("processing", "processing"), ("completed", "completed"),
            ("cancelled", "cancelled"), ("refunded", "cancelled"), ("failed", "cancelled"), ("Processing", "processing")
        ]
        for (native, canonical) in read {
            #expect(try c.toCanonical(.string(native), context: ctx) == .string(canonical))
        }
        let write: [(String, String)] = [
            ("draft", "pending"), ("confirmed", "on-hold"), ("processing", "processing"), ("completed", "completed"),
            ("cancelled", "cancelled")
        ]
        for (canonical, native) in write {
            #expect(try c.toNative(.string(canonical), context: ctx) == .string(native))
        }
        #expect(failure { try c.toCanonical("shipped", context: ctx) }?.hasPrefix("unknown orderStatus.webshop value \"shipped\"") == true)
        #expect(failure { try c.toNative("refunded", context: ctx) } == "canonical value \"refunded\" has no orderStatus.webshop equivalent")
    }

    @Test func everyCanonicalOrderStatusIsWrittenToTheWebshop() throws {
        let c = conv("enum:orderStatus.webshop")
        for status in EnumTables.orderStatuses {
            let native = try c.toNative(.string(status), context: ctx)
            #expect(try c.toCanonical(native, context: ctx) == .string(status))
        }
    }

    @Test func powerOfficeOrderStatus() throws {
        let c = conv("enum:orderStatus.poweroffice")
        #expect(try c.toCanonical("Draft", context: ctx) == "draft")
        #expect(try c.toCanonical("Confirmed", context: ctx) == "confirmed")
        #expect(try c.toNative("draft", context: ctx) == "Draft")
        #expect(try c.toNative("confirmed", context: ctx) == "Confirmed")
        #expect(try c.toNative("processing", context: ctx) == "Confirmed")
        #expect(try c.toNative("completed", context: ctx) == "Confirmed")
        #expect(failure { try c.toNative("cancelled", context: ctx) } == "canonical value \"cancelled\" has no orderStatus.poweroffice equivalent")
        #expect(failure { try c.toCanonical("Invoiced", context: ctx) } != nil)
    }

    @Test func productType() throws {
        let c = conv("enum:productType.poweroffice")
        #expect(try c.toCanonical("Product", context: ctx) == "product")
        #expect(try c.toCanonical("Service", context: ctx) == "service")
        #expect(try c.toNative("product", context: ctx) == "Product")
        #expect(try c.toNative("service", context: ctx) == "Service")
        #expect(failure { try c.toNative("bundle", context: ctx) } != nil)
    }

    @Test func unitOfMeasure() throws {
        let c = conv("unitOfMeasure")
        let read: [(String, String)] = [
            ("pcs", "EA"), ("stk", "EA"), ("kg", "KGM"), ("l", "LTR"), ("m", "MTR"), ("hour", "HUR"), ("day", "DAY"),
            ("KG", "KGM"), ("timer", "HUR")
        ]
        for (native, canonical) in read {
            #expect(try c.toCanonical(.string(native), context: ctx) == .string(canonical))
        }
        for (canonical, native) in [("EA", "pcs"), ("KGM", "kg"), ("LTR", "l"), ("MTR", "m"), ("HUR", "hour"), ("DAY", "day")] {
            #expect(try c.toNative(.string(canonical), context: ctx) == .string(native))
        }
        #expect(failure { try c.toCanonical("furlong", context: ctx) } != nil)
        #expect(failure { try c.toNative("XRO", context: ctx) } == "canonical value \"XRO\" has no unitOfMeasure.webshop equivalent")
    }

    @Test func powerOfficeUnitsAreCanonicalCodes() throws {
        let c = conv("enum:unitOfMeasure.poweroffice")
        #expect(try c.toCanonical("KGM", context: ctx) == "KGM")
        #expect(try c.toNative("XRO", context: ctx) == "XRO")
        #expect(failure { try c.toNative("kg", context: ctx) } != nil)
        // Every unit the webshop can send, PowerOffice can receive.
        for code in Set(EnumTables.unitOfMeasureWebshop.read.values) {
            #expect(try c.toNative(.string(code), context: ctx) == .string(code))
        }
    }
}

@Suite struct DateConverterTests {
    @Test func dates() throws {
        let c = DateConverter()
        #expect(try c.toCanonical("2025-01-31", context: ctx) == "2025-01-31")
        #expect(try c.toCanonical("2024-02-29", context: ctx) == "2024-02-29")
        #expect(try c.toNative("2025-12-01", context: ctx) == "2025-12-01")
        #expect(failure { try c.toCanonical("2025-02-29", context: ctx) } == "\"2025-02-29\" is not a calendar date")
        #expect(failure { try c.toCanonical("2025-13-01", context: ctx) } == "\"2025-13-01\" is not a calendar date")
        #expect(failure { try c.toCanonical("31.01.2025", context: ctx) } == "\"31.01.2025\" is not a date like 2025-01-31 (yyyy-MM-dd)")
        #expect(failure { try c.toCanonical("2025-01-31T00:00:00Z", context: ctx) } != nil)
    }

    @Test(arguments: [
        ("2025-01-31T13:00:00+01:00", "2025-01-31T12:00:00.000Z"),
        ("2025-01-31T12:00:00Z", "2025-01-31T12:00:00.000Z"),
        ("2025-01-31t12:00:00.5z", "2025-01-31T12:00:00.500Z"),
        ("2022-07-11T12:46:59.123456+00:00", "2022-07-11T12:46:59.123Z"),
        ("2022-07-11 12:46:59.9996+00:00", "2022-07-11T12:47:00.000Z"),
        ("2025-01-01T00:30:00+02:00", "2024-12-31T22:30:00.000Z"),
        ("1969-12-31T23:59:59.999-00:30", "1970-01-01T00:29:59.999Z")
    ])
    func dateTimes(_ native: String, _ canonical: String) throws {
        let c = DateTimeConverter()
        #expect(try c.toCanonical(.string(native), context: ctx) == .string(canonical))
        #expect(try c.toNative(.string(canonical), context: ctx) == .string(canonical))
    }

    @Test func dateTimeRejections() {
        let c = DateTimeConverter()
        #expect(
            failure { try c.toCanonical("2025-01-31T12:00:00", context: ctx) } == "\"2025-01-31T12:00:00\" has no time zone offset (add Z or ±HH:MM)")
        #expect(failure { try c.toCanonical("2025-01-31", context: ctx) }?.contains("not an RFC 3339 date-time") == true)
        #expect(failure { try c.toCanonical("2025-01-31T25:00:00Z", context: ctx) } == "\"2025-01-31T25:00:00Z\" has a time out of range")
        #expect(failure { try c.toCanonical("2025-01-31T12:00:00+24:00", context: ctx) }?.contains("offset out of range") == true)
        #expect(failure { try c.toCanonical("2025-02-30T12:00:00Z", context: ctx) } == "\"2025-02-30\" is not a calendar date")
    }

    @Test func dateInOslo() throws {
        let c = try #require(ConverterRegistry.standard.converter(named: "dateInZone:Europe/Oslo"))
        // Winter (UTC+1) and summer (UTC+2): late UTC evening is already tomorrow in Oslo.
        #expect(try c.toNative("2025-01-31T22:59:59.999Z", context: ctx) == "2025-01-31")
        #expect(try c.toNative("2025-01-31T23:00:00.000Z", context: ctx) == "2025-02-01")
        #expect(try c.toNative("2025-06-30T22:30:00.000Z", context: ctx) == "2025-07-01")
        #expect(try c.toNative("2025-06-30T21:59:00+00:00", context: ctx) == "2025-06-30")
        // A date becomes the instant its day starts in Oslo.
        #expect(try c.toCanonical("2025-02-01", context: ctx) == "2025-01-31T23:00:00.000Z")
        #expect(try c.toCanonical("2025-07-01", context: ctx) == "2025-06-30T22:00:00.000Z")
        // DST change days (30 March and 26 October 2025) start at the right instant.
        #expect(try c.toCanonical("2025-03-30", context: ctx) == "2025-03-29T23:00:00.000Z")
        #expect(try c.toCanonical("2025-10-26", context: ctx) == "2025-10-25T22:00:00.000Z")
        #expect(failure { try c.toCanonical("2025-02-30", context: ctx) } != nil)
        #expect(ConverterRegistry.standard.converter(named: "dateInZone:Mars/Olympus") == nil)
    }

    @Test func dateOfInstantInOslo() throws {
        let c = try #require(ConverterRegistry.standard.converter(named: "dateOfInstant:Europe/Oslo"))
        #expect(c.name == "dateOfInstant:Europe/Oslo")
        // An instant's calendar date in Oslo: late UTC evening is already tomorrow there.
        #expect(try c.toCanonical("2025-01-31T22:59:59Z", context: ctx) == "2025-01-31")
        #expect(try c.toCanonical("2025-01-31T23:00:00Z", context: ctx) == "2025-02-01")
        #expect(try c.toCanonical("2025-06-30T22:30:00.000Z", context: ctx) == "2025-07-01")
        #expect(try c.toCanonical("2025-06-30T21:59:59+00:00", context: ctx) == "2025-06-30")
        #expect(try c.toCanonical("2025-07-01T00:30:00+02:00", context: ctx) == "2025-07-01")
        #expect(try c.toCanonical("2025-01-31 12:00:00-05:00", context: ctx) == "2025-01-31")
        // A date is written as the instant its day starts in Oslo, in UTC (DST days too).
        #expect(try c.toNative("2025-02-01", context: ctx) == "2025-01-31T23:00:00.000Z")
        #expect(try c.toNative("2025-07-01", context: ctx) == "2025-06-30T22:00:00.000Z")
        #expect(try c.toNative("2025-03-30", context: ctx) == "2025-03-29T23:00:00.000Z")
        #expect(try c.toNative("2025-10-26", context: ctx) == "2025-10-25T22:00:00.000Z")
        #expect(try c.toCanonical(nil, context: ctx) == nil)
        #expect(try c.toCanonical(.null, context: ctx) == .null)
        #expect(try c.toNative(.null, context: ctx) == .null)
        #expect(
            failure { try c.toCanonical("2025-01-31T12:00:00", context: ctx) }
                == "\"2025-01-31T12:00:00\" has no time zone offset (add Z or ±HH:MM)")
        #expect(failure { try c.toCanonical("2025-01-31", context: ctx) }?.contains("not an RFC 3339 date-time") == true)
        #expect(failure { try c.toNative("2025-02-30", context: ctx) } == "\"2025-02-30\" is not a calendar date")
        #expect(failure { try c.toNative("2025-01-31T12:00:00Z", context: ctx) } != nil)
        #expect(ConverterRegistry.standard.converter(named: "dateOfInstant:Mars/Olympus") == nil)
        #expect(!ConverterRegistry.standard.contains("dateOfInstant:"))
    }

    @Test func dateOfInstantIsDateInZoneReversed() throws {
        let ofInstant = try #require(DateOfInstantConverter(zoneIdentifier: "Europe/Oslo"))
        let inZone = try #require(DateInZoneConverter(zoneIdentifier: "Europe/Oslo"))
        // Every day of 2024 and 2025 (both DST changes, a leap day) round-trips as a date.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let start = calendar.date(from: DateComponents(year: 2024, month: 1, day: 1))!
        for offset in 0..<731 {
            let d = calendar.dateComponents([.year, .month, .day], from: calendar.date(byAdding: .day, value: offset, to: start)!)
            let text = String(format: "%04d-%02d-%02d", d.year!, d.month!, d.day!)
            let instant = try ofInstant.toNative(.string(text), context: ctx)
            #expect(instant == (try inZone.toCanonical(.string(text), context: ctx)))
            #expect(try ofInstant.toCanonical(instant, context: ctx) == .string(text))
        }
    }
}

@Suite struct PersonNameConverterTests {
    let c = PersonNameConverter()

    @Test func companyBothWays() throws {
        #expect(
            try c.toCanonical(["IsPerson": false, "Name": "Ford Motor Company AS"], context: ctx)
                == ["kind": "company", "name": "Ford Motor Company AS"])
        #expect(try c.toCanonical(["Name": "Acme AS"], context: ctx) == ["kind": "company", "name": "Acme AS"])
        #expect(try c.toCanonical(["IsPerson": nil, "Name": "Acme AS"], context: ctx) == ["kind": "company", "name": "Acme AS"])
        #expect(try c.toNative(["kind": "company", "name": "Acme AS"], context: ctx) == ["IsPerson": false, "Name": "Acme AS"])
    }

    @Test func personBothWays() throws {
        #expect(
            try c.toCanonical(["IsPerson": true, "FirstName": "Kari", "LastName": "Nordmann"], context: ctx)
                == ["kind": "person", "name": "Kari Nordmann", "firstName": "Kari", "lastName": "Nordmann"])
        #expect(
            try c.toNative(["kind": "person", "name": "Kari Nordmann", "firstName": "Kari", "lastName": "Nordmann"], context: ctx)
                == ["IsPerson": true, "FirstName": "Kari", "LastName": "Nordmann"])
    }

    @Test func splitsAFullNameOnTheLastWord() throws {
        #expect(
            try c.toNative(["kind": "person", "name": "Ola Johan  Nordmann"], context: ctx)
                == ["IsPerson": true, "FirstName": "Ola Johan", "LastName": "Nordmann"])
        #expect(
            try c.toCanonical(["IsPerson": true, "Name": "Ola Johan Nordmann"], context: ctx)
                == ["kind": "person", "name": "Ola Johan Nordmann", "firstName": "Ola Johan", "lastName": "Nordmann"])
        #expect(PersonNameConverter.split("Cher") == nil)
    }

    @Test func rejections() {
        #expect(
            failure { try c.toNative(["kind": "person", "name": "Cher"], context: ctx) }
                == "person name \"Cher\" has one word; PowerOffice needs a first and a last name")
        #expect(failure { try c.toCanonical(["IsPerson": false], context: ctx) } == "a company needs a Name")
        #expect(failure { try c.toCanonical(["IsPerson": true, "FirstName": "Kari"], context: ctx) } == "a person needs FirstName and LastName")
        #expect(failure { try c.toCanonical(["IsPerson": "yes", "Name": "X"], context: ctx) } == "IsPerson must be a boolean, got string")
        #expect(failure { try c.toNative(["kind": "robot", "name": "R2"], context: ctx) } == "kind must be \"person\" or \"company\", got \"robot\"")
        #expect(failure { try c.toCanonical("Kari Nordmann", context: ctx) } != nil)
    }
}

@Suite struct ConverterRegistryTests {
    @Test func resolvesEveryDocumentedName() {
        let names = [
            "decimal", "decimalString", "money", "moneyString", "minorUnits", "percent", "vatInclusivePrice",
            "vatInclusivePriceString", "countryName.no", "countryName.en", "countryCode", "enum:orderStatus.webshop",
            "enum:orderStatus.poweroffice", "enum:productType.poweroffice", "enum:unitOfMeasure.webshop",
            "enum:unitOfMeasure.poweroffice", "unitOfMeasure", "date", "dateTime", "dateInZone:Europe/Oslo", "personName",
            "integerString", "dateOfInstant:Europe/Oslo", "enum:customerKind.erp", "enum:productType.erp",
            "enum:orderStatus.erp", "enum:productType.webshop"
        ]
        #expect(ConverterRegistry.standard.unknownNames(in: names) == [])
        for name in names {
            #expect(ConverterRegistry.standard.converter(named: name)?.name == name)
        }
    }

    @Test func unknownNamesAreReported() {
        let registry = ConverterRegistry.standard
        #expect(
            registry.unknownNames(in: ["decimal", "decmial", "enum:nope", "enum:", "countryName.se", "decmial"])
                == ["countryName.se", "decmial", "enum:", "enum:nope"])
        #expect(registry.converter(named: "nope") == nil)
        #expect(!registry.contains("dateInZone:"))
    }

    @Test func customRegistration() throws {
        var registry = ConverterRegistry()
        #expect(!registry.contains("decimal"))
        registry.register(DecimalConverter())
        registry.register(DecimalConverter(), as: "amount")
        #expect(registry.contains("decimal"))
        #expect(registry.contains("amount"))
        #expect(registry.knownNames == ["amount", "decimal"])
    }
}

@Suite("Enum tables and the canonical model")
struct EnumTablesAgainstModelTests {
    @Test("Every canonical value an enum table reads into or writes from is one the model allows")
    func canonicalSidesAreCanonical() {
        let allowed: [String: Set<String>] = [
            "orderStatus": Set(OrderStatus.allCases.map(\.rawValue)),
            "productType": Set(ProductType.allCases.map(\.rawValue)),
            "customerKind": Set(CustomerKind.allCases.map(\.rawValue))
        ]
        for table in EnumTables.all {
            guard let family = table.name.split(separator: ".").first.map(String.init), let values = allowed[family] else { continue }
            for canonical in Set(table.read.values).union(table.write.keys) {
                #expect(values.contains(canonical), "\(table.name): \(canonical) is not a canonical \(family)")
            }
        }
    }
}
