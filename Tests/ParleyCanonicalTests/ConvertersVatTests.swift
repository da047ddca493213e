import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON
import PropertyBased
import Testing

/// The Norwegian VAT rates, as canonical fractions.
let norwegianRates: [Decimal] = [0, Decimal(string: "0.12")!, Decimal(string: "0.15")!, Decimal(string: "0.25")!]

func vat(_ rate: String) -> ConversionContext { ConversionContext(vatRate: Decimal(string: rate)!) }

@Suite struct VatInclusivePriceTests {
    let n = VatInclusivePriceConverter(form: .number)
    let s = VatInclusivePriceConverter(form: .string)

    @Test func workedExamples() throws {
        // 25 %: 125.00 incl is exactly 100 excl.
        #expect(try n.toCanonical(num("125.00"), context: vat("0.25")) == num("100"))
        #expect(try n.toNative(num("100"), context: vat("0.25")) == num("125.00"))
        // 15 %: 99.90 / 1.15 = 86.869565217... → 86.869565 (6 decimals) → × 1.15 = 99.89999975 → 99.90.
        #expect(try n.toCanonical(num("99.90"), context: vat("0.15")) == num("86.869565"))
        #expect(try n.toNative(num("86.869565"), context: vat("0.15")) == num("99.90"))
        // 12 %: 0.01 / 1.12 = 0.00892857142... → 0.008929 → × 1.12 = 0.01000048 → 0.01.
        #expect(try s.toCanonical("0.01", context: vat("0.12")) == num("0.008929"))
        #expect(try s.toNative(num("0.008929"), context: vat("0.12")) == "0.01")
        // 0 %: unchanged.
        #expect(try s.toCanonical("49.90", context: vat("0")) == num("49.9"))
        #expect(try s.toNative(num("49.9"), context: vat("0")) == "49.90")
        // Rounding to øre at the native boundary, halves away from zero: 10.004 × 1.25 = 12.505.
        #expect(try n.toNative(num("10.004"), context: vat("0.25")) == num("12.51"))
        #expect(try n.toNative(num("-10.004"), context: vat("0.25")) == num("-12.51"))
    }

    @Test func absentAndNullNeedNoRate() throws {
        #expect(try n.toCanonical(nil, context: .empty) == nil)
        #expect(try n.toNative(.null, context: .empty) == .null)
    }

    @Test func rejections() {
        #expect(failure { try n.toCanonical(num("125"), context: .empty) }?.hasPrefix("no VAT rate") == true)
        #expect(failure { try n.toNative(num("100"), context: vat("25")) }?.contains("is not a fraction") == true)
        #expect(failure { try n.toNative(num("100"), context: vat("-0.25")) } == "VAT rate -0.25 is negative")
        #expect(failure { try s.toCanonical("125,00", context: vat("0.25")) } == "\"125,00\" is not a decimal number (use a dot)")
        #expect(failure { try n.toCanonical("125.00", context: vat("0.25")) } != nil)
    }

    /// Exhaustive: every price 0.00 ... 100.00 and its negative, at every Norwegian rate, comes
    /// back to the same øre after native incl → canonical excl → native incl.
    @Test func noCentLostExhaustiveSmallPrices() throws {
        var lost: [String] = []
        for rate in norwegianRates {
            let context = ConversionContext(vatRate: rate)
            for cents in -10_000...10_000 {
                let text = DecimalTwo.text(Decimal(cents) / 100)
                let back = try s.toNative(try s.toCanonical(.string(text), context: context), context: context)
                if back != .string(text) { lost.append("\(text) at \(rate) came back as \(back?.description ?? "nothing")") }
            }
        }
        #expect(lost.isEmpty, "\(lost.prefix(10))")
    }

    /// Property: for any two-decimal price up to 10^16 (either sign) and each Norwegian rate,
    /// no cent is lost over the round trip, and the canonical price has at most 6 decimals.
    @Test func noCentLostProperty() async {
        await propertyCheck(
            count: 2000, input: Gen.int64(in: -1_000_000_000_000_000...1_000_000_000_000_000), Gen.element(of: norwegianRates)
        ) { cents, rate in
            let context = ConversionContext(vatRate: rate!)
            let incl = Decimal(cents) / 100
            let native = JSONValue.number(JSONNumber(DecimalTwo.text(incl))!)
            let canonical = try! n.toCanonical(native, context: context)
            let excl = canonical!.decimal!
            #expect(excl.exponent >= -VatInclusivePriceConverter.canonicalScale)
            #expect(try! n.toNative(canonical, context: context) == native, "\(incl) at \(rate!)")
        }
    }

    /// Why 6 decimals: rounding the canonical price to øre instead would lose cents.
    @Test func twoDecimalCanonicalWouldLoseCents() {
        // 0.02 / 1.25 = 0.016 → 0.02 at two decimals → × 1.25 = 0.025 → 0.03: a cent gained.
        let excl2 = (Decimal(string: "0.02")! / Decimal(string: "1.25")!).roundedHalfAwayFromZero(scale: 2)
        #expect(VatInclusivePriceConverter.inclusive(fromExclusive: excl2, rate: Decimal(string: "0.25")!) != Decimal(string: "0.02")!)
        let excl6 = VatInclusivePriceConverter.exclusive(fromInclusive: Decimal(string: "0.02")!, rate: Decimal(string: "0.25")!)
        #expect(VatInclusivePriceConverter.inclusive(fromExclusive: excl6, rate: Decimal(string: "0.25")!) == Decimal(string: "0.02")!)
    }
}

/// Two-decimal text for a two-decimal value, as the native side writes it.
enum DecimalTwo {
    static func text(_ value: Decimal) -> String {
        let negative = value < 0
        let cents = ((negative ? -value : value) * 100).description
        let padded = String(repeating: "0", count: max(0, 3 - cents.count)) + cents
        let body = "\(padded.dropLast(2)).\(padded.suffix(2))"
        return negative ? "-" + body : body
    }
}
