import Testing

@testable import ParleyCanonical

@Suite struct NaturalKeyTests {
    @Test(arguments: [
        ("923609016", "923609016"),
        ("974760673", "974760673"),
        ("NO 923 609 016 MVA", "923609016"),
        ("923 609 016", "923609016"),
        (" 974-760-673 ", "974760673")
    ])
    func validOrganizationNumbers(raw: String, normalized: String) {
        #expect(NaturalKeys.organizationNumber(raw) == normalized)
    }

    @Test(arguments: [
        "923609017",  // wrong check digit
        "974760672",  // wrong check digit
        "92360901",  // 8 digits
        "9236090160",  // 10 digits
        "",
        "   ",
        "MVA"
    ])
    func invalidOrganizationNumbers(raw: String) {
        #expect(NaturalKeys.organizationNumber(raw) == nil)
    }

    @Test func checkDigitTenIsNeverValid() {
        // 00000001x: sum = 2 → 11 - 2 = 9; find a prefix whose remainder gives 10 (sum % 11 == 1).
        // 10000000x: sum = 3 → 8. 00000100x: sum = 4 → 7. 100000010x-prefix: 3 + 2 = 5...
        // Search exhaustively over a small range instead of hand-picking.
        var found = 0
        for n in 0..<10_000_000 where found < 3 {
            var prefix = String(n)
            prefix = String(repeating: "0", count: 8 - prefix.count) + prefix
            let d = prefix.utf8.map { Int($0) - 48 }
            let sum = zip(d, [3, 2, 7, 6, 5, 4, 3, 2]).reduce(0) { $0 + $1.0 * $1.1 }
            guard sum % 11 == 1 else { continue }
            found += 1
            for last in 0...9 {
                #expect(!NaturalKeys.isValidNorwegianOrganizationNumber(prefix + String(last)))
            }
        }
        #expect(found == 3)
        #expect(NaturalKeys.isValidNorwegianOrganizationNumber("000000000"))  // sum 0 → 11 → 0
    }

    @Test func emails() {
        #expect(NaturalKeys.email("  Kari.Nordmann@Example.NO \n") == "kari.nordmann@example.no")
        #expect(NaturalKeys.email("a@b") == "a@b")
        #expect(NaturalKeys.email("") == nil)
        #expect(NaturalKeys.email("   ") == nil)
        #expect(NaturalKeys.email(nil) == nil)
        #expect(NaturalKeys.email("no-at-sign") == nil)
        #expect(NaturalKeys.email("@example.no") == nil)
        #expect(NaturalKeys.email("kari@") == nil)
        #expect(NaturalKeys.email("a@b@c") == nil)
        #expect(NaturalKeys.email("kari nordmann@example.no") == nil)
    }

    @Test func skus() {
        #expect(NaturalKeys.sku("  NL-100\t") == "NL-100")
        #expect(NaturalKeys.sku("nl-100") == "nl-100")
        #expect(NaturalKeys.sku("") == nil)
        #expect(NaturalKeys.sku(" ") == nil)
        #expect(NaturalKeys.sku(nil) == nil)
    }

    @Test func customerKeysInOrder() {
        let both = Customer(email: " Post@Nordlys.no", organizationNumber: "NO 923 609 016 MVA")
        #expect(both.naturalKeys == [.organizationNumber("923609016"), .email("post@nordlys.no")])
        let badOrg = Customer(email: "post@nordlys.no", organizationNumber: "923609017")
        #expect(badOrg.naturalKeys == [.email("post@nordlys.no")])
        #expect(Customer(email: "", organizationNumber: "").naturalKeys.isEmpty)
        #expect(Customer().naturalKeys.isEmpty)
    }

    @Test func productKey() {
        #expect(Product(sku: " NL-100 ").naturalKey == .sku("NL-100"))
        #expect(Product(sku: "").naturalKey == nil)
        #expect(Product().naturalKey == nil)
    }
}
