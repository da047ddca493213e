import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON
import PropertyBased
import Testing

func num(_ text: String) -> JSONValue { .number(JSONNumber(text)!) }

/// The reason a conversion fails, or nil when it succeeds.
func failure(_ body: () throws -> JSONValue?) -> String? {
    do {
        _ = try body()
        return nil
    } catch let error as ConversionError {
        return error.reason
    } catch {
        return "not a ConversionError: \(error)"
    }
}

let ctx = ConversionContext.empty

@Suite struct DecimalConverterTests {
    let c = DecimalConverter()

    @Test func numbersBothWays() throws {
        #expect(try c.toCanonical(num("12.50"), context: ctx) == num("12.5"))
        #expect(try c.toCanonical(num("1e3"), context: ctx) == num("1000"))
        #expect(try c.toCanonical(num("-0.001"), context: ctx) == num("-0.001"))
        #expect(try c.toNative(num("12.5"), context: ctx) == num("12.5"))
    }

    @Test func absentAndNullPassThrough() throws {
        #expect(try c.toCanonical(nil, context: ctx) == nil)
        #expect(try c.toCanonical(.null, context: ctx) == .null)
        #expect(try c.toNative(nil, context: ctx) == nil)
        #expect(try c.toNative(.null, context: ctx) == .null)
    }

    @Test func rejections() {
        #expect(failure { try c.toCanonical(num("1e400"), context: ctx) }?.contains("cannot be held exactly") == true)
        #expect(failure { try c.toCanonical("12.5", context: ctx) }?.contains("decimalString") == true)
        #expect(failure { try c.toCanonical(true, context: ctx) }?.contains("boolean") == true)
    }
}

@Suite struct DecimalStringConverterTests {
    let c = DecimalStringConverter()

    @Test(arguments: [
        ("12.50", "12.5"), (" 12.5 ", "12.5"), ("0", "0"), ("-3.25", "-3.25"), ("007.50", "7.5"),
        ("1234567890123456789.12", "1234567890123456789.12"), ("-0.0", "0")
    ])
    func accepted(_ input: String, _ canonical: String) throws {
        #expect(try c.toCanonical(.string(input), context: ctx) == num(canonical))
    }

    @Test(arguments: [
        ("12,5", "\"12,5\" is not a decimal number (use a dot)"),
        ("abc", "\"abc\" is not a decimal number"),
        ("1e400", "\"1e400\" is not a decimal number (write it without an exponent)"),
        ("1e3", "\"1e3\" is not a decimal number (write it without an exponent)"),
        ("", "\"\" is not a decimal number (it is empty)"),
        ("   ", "\"   \" is not a decimal number (it is empty)"),
        (".5", "\".5\" is not a decimal number"),
        ("5.", "\"5.\" is not a decimal number"),
        ("+5", "\"+5\" is not a decimal number"),
        ("1 000", "\"1 000\" is not a decimal number"),
        ("1,000.50", "\"1,000.50\" is not a decimal number"),
        ("NaN", "\"NaN\" is not a decimal number")
    ])
    func rejected(_ input: String, _ reason: String) {
        #expect(failure { try c.toCanonical(.string(input), context: ctx) } == reason)
    }

    @Test func tooManyDigits() {
        let text = "1" + String(repeating: "2", count: 40)
        #expect(failure { try c.toCanonical(.string(text), context: ctx) }?.contains("38 significant digits") == true)
    }

    @Test func numberIsNotAString() {
        #expect(failure { try c.toCanonical(num("12.5"), context: ctx) } == "expected a decimal number as a string, got number 12.5")
    }

    @Test func toNativeWritesShortestText() throws {
        #expect(try c.toNative(num("12.50"), context: ctx) == "12.5")
        #expect(try c.toNative(num("-7"), context: ctx) == "-7")
        #expect(failure { try c.toNative("12.5", context: ctx) } != nil)
    }

    /// Any decimal with up to 15 digits and 0...8 decimals survives text → canonical → text,
    /// also when padded with whitespace and trailing zeros.
    @Test func propertyRoundTrip() async {
        await propertyCheck(count: 500, input: Gen.int64(in: -999_999_999_999_999...999_999_999_999_999), Gen.int(in: 0...8)) {
            significand, scale in
            let value = Decimal(significand) / pow(Decimal(10), scale)
            let text = value.description
            let canonical = try! c.toCanonical(.string(text), context: ctx)
            #expect(canonical == .number(JSONNumber(value)!))
            #expect(try! c.toNative(canonical, context: ctx) == .string(text))
            let padded = " " + (text.contains(".") ? text + "00" : text) + "\t"
            #expect(try! c.toCanonical(.string(padded), context: ctx) == canonical)
            // The same digits with a decimal comma are rejected, never misread.
            if text.contains(".") {
                let comma = text.replacingOccurrences(of: ".", with: ",")
                #expect(failure { try c.toCanonical(.string(comma), context: ctx) }?.hasSuffix("(use a dot)") == true)
            }
        }
    }
}

@Suite struct MoneyConverterTests {
    @Test func readsExactWritesTwoDecimals() throws {
        let n = MoneyConverter(form: .number)
        let s = MoneyConverter(form: .string)
        #expect(try n.toCanonical(num("12.345"), context: ctx) == num("12.345"))
        #expect(try n.toNative(num("12.345"), context: ctx) == num("12.35"))
        #expect(try n.toNative(num("12.5"), context: ctx) == num("12.50"))
        #expect(try n.toNative(num("-12.345"), context: ctx) == num("-12.35"))
        #expect(try n.toNative(num("-0.001"), context: ctx) == num("0.00"))
        #expect(try s.toCanonical(" 99.90 ", context: ctx) == num("99.9"))
        #expect(try s.toNative(num("99.9"), context: ctx) == "99.90")
        #expect(try s.toNative(num("100"), context: ctx) == "100.00")
        #expect(failure { try s.toCanonical("99,90", context: ctx) } == "\"99,90\" is not a decimal number (use a dot)")
        #expect(failure { try n.toCanonical("99.90", context: ctx) } != nil)
    }

    @Test func halfAwayFromZero() {
        #expect(Decimal(string: "0.125")!.roundedHalfAwayFromZero(scale: 2) == Decimal(string: "0.13")!)
        #expect(Decimal(string: "-0.125")!.roundedHalfAwayFromZero(scale: 2) == Decimal(string: "-0.13")!)
        #expect(Decimal(string: "0.124999")!.roundedHalfAwayFromZero(scale: 2) == Decimal(string: "0.12")!)
        #expect(Decimal(string: "2.5")!.roundedHalfAwayFromZero(scale: 0) == 3)
        #expect(Decimal(string: "-2.5")!.roundedHalfAwayFromZero(scale: 0) == -3)
    }
}

@Suite struct MinorUnitsConverterTests {
    let c = MinorUnitsConverter()

    @Test func bothWays() throws {
        #expect(try c.toCanonical(1250, context: ctx) == num("12.5"))
        #expect(try c.toCanonical(-5, context: ctx) == num("-0.05"))
        #expect(try c.toCanonical(num("1250.0"), context: ctx) == num("12.5"))
        #expect(try c.toNative(num("12.5"), context: ctx) == 1250)
        #expect(try c.toNative(num("12.345"), context: ctx) == 1235)
        #expect(try c.toNative(num("-12.345"), context: ctx) == -1235)
        #expect(try c.toNative(num("0"), context: ctx) == 0)
    }

    @Test func rejections() {
        #expect(failure { try c.toCanonical(num("12.5"), context: ctx) } == "12.5 is not a whole number of minor units")
        #expect(failure { try c.toCanonical("1250", context: ctx) } != nil)
        #expect(failure { try c.toCanonical(num("1e400"), context: ctx) } != nil)
    }

    /// Every integer amount of minor units survives native → canonical → native, and the
    /// canonical value is exactly a hundredth of it.
    @Test func propertyRoundTrip() async {
        await propertyCheck(count: 500, input: Gen.int64(in: -1_000_000_000_000_000...1_000_000_000_000_000)) { units in
            let canonical = try! c.toCanonical(.number(JSONNumber(units)), context: ctx)
            #expect(canonical?.decimal == Decimal(units) / 100)
            #expect(try! c.toNative(canonical, context: ctx) == .number(JSONNumber(units)))
        }
    }
}

@Suite struct PercentConverterTests {
    @Test func bothWays() throws {
        let c = PercentConverter()
        #expect(try c.toCanonical(25, context: ctx) == num("0.25"))
        #expect(try c.toCanonical(num("12.5"), context: ctx) == num("0.125"))
        #expect(try c.toCanonical(0, context: ctx) == 0)
        #expect(try c.toNative(num("0.15"), context: ctx) == 15)
        #expect(failure { try c.toCanonical("25%", context: ctx) } != nil)
    }
}

@Suite struct IntegerStringConverterTests {
    let c = IntegerStringConverter()

    @Test func integersBothWays() throws {
        #expect(try c.toCanonical(6065, context: ctx) == "6065")
        #expect(try c.toCanonical(0, context: ctx) == "0")
        #expect(try c.toCanonical(-12, context: ctx) == "-12")
        #expect(try c.toCanonical(num("6065.0"), context: ctx) == "6065")
        #expect(try c.toCanonical(num("6.065e3"), context: ctx) == "6065")
        #expect(try c.toCanonical(num("-0"), context: ctx) == "0")
        #expect(try c.toCanonical(num("9223372036854775807"), context: ctx) == "9223372036854775807")
        #expect(try c.toNative("6065", context: ctx) == num("6065"))
        #expect(try c.toNative("0", context: ctx) == num("0"))
        #expect(try c.toNative("-12", context: ctx) == num("-12"))
        #expect(try c.toNative("-9223372036854775808", context: ctx) == num("-9223372036854775808"))
    }

    @Test func absentAndNullPassThrough() throws {
        #expect(try c.toCanonical(nil, context: ctx) == nil)
        #expect(try c.toCanonical(.null, context: ctx) == .null)
        #expect(try c.toNative(nil, context: ctx) == nil)
        #expect(try c.toNative(.null, context: ctx) == .null)
    }

    @Test func readRejections() {
        #expect(failure { try c.toCanonical(num("12.5"), context: ctx) } == "12.5 is not a whole number")
        #expect(failure { try c.toCanonical(num("9223372036854775808"), context: ctx) } == "9223372036854775808 does not fit a 64-bit integer")
        #expect(failure { try c.toCanonical(num("1e20"), context: ctx) } == "1e20 does not fit a 64-bit integer")
        #expect(failure { try c.toCanonical("6065", context: ctx) }?.contains("got the string \"6065\"") == true)
        #expect(failure { try c.toCanonical(true, context: ctx) } != nil)
    }

    @Test func writeRejectsTextThatWouldNotReadBackTheSame() {
        let notInteger = "is not an integer (only the digits 0-9, with - for a negative number, can be written as a number)"
        for text in ["WEB-1001", "12.5", "", "-", "+5", " 42", "42 ", "1 000", "1e3", "٣", "１２"] {
            #expect(failure { try c.toNative(.string(text), context: ctx) } == "\"\(text)\" \(notInteger)", "\(text)")
        }
        #expect(failure { try c.toNative("007", context: ctx) } == "\"007\" has a leading zero, which a number cannot keep")
        #expect(failure { try c.toNative("-0", context: ctx) } == "\"-0\" would be written as 0 and read back as \"0\"")
        #expect(failure { try c.toNative("-012", context: ctx) } == "\"-012\" has a leading zero, which a number cannot keep")
        #expect(failure { try c.toNative("9223372036854775808", context: ctx) } == "\"9223372036854775808\" does not fit a 64-bit integer")
        #expect(failure { try c.toNative(6065, context: ctx) }?.hasPrefix("expected integer text as a string") == true)
    }

    @Test func roundTripsEveryInt64Property() async {
        await propertyCheck(count: 500, input: Gen.int64(in: Int64.min...Int64.max)) { n in
            let canonical = try! c.toCanonical(.number(JSONNumber(n)), context: ctx)
            #expect(canonical == .string(String(n)))
            #expect(try! c.toNative(canonical, context: ctx) == .number(JSONNumber(n)))
        }
    }
}
