import Foundation
import ParleyEnvelope
import ParleyJSON

/// `vatInclusivePrice` (native JSON number) / `vatInclusivePriceString` (native decimal text):
/// a native price INCLUDING VAT (webshops) ⇄ the canonical price EXCLUDING VAT, using the
/// line's or product's VAT rate from ``ConversionContext/vatRate`` (a fraction: `0.25`).
///
/// Rounding rule (see docs/converters.md for the worked example and the proof):
/// - to canonical: `excl = round(incl / (1 + rate), 6 decimals, half away from zero)`.
///   The canonical price is *not* rounded to øre: it keeps ``canonicalScale`` decimals.
/// - to native: `incl = round(excl × (1 + rate), 2 decimals, half away from zero)`, written with
///   exactly two decimals (`"125.00"`).
///
/// Round trip native incl → canonical excl → native incl gives back every price with at most
/// two decimals, for any rate 0 ≤ rate < 1: the 6-decimal rounding moves `excl` by at most
/// 0.0000005, so `excl × (1 + rate)` is within 0.000001 of `incl`, far inside the ±0.005 that
/// rounding to øre forgives. (Three decimals would already do; six leaves room and keeps
/// canonical prices from the ERP, which have two, exact.)
public struct VatInclusivePriceConverter: Converter {
    /// Decimals kept in the canonical (VAT-exclusive) price.
    public static let canonicalScale = 6

    public let name: String
    public let form: MoneyConverter.NativeForm

    public init(form: MoneyConverter.NativeForm) {
        self.form = form
        self.name = form == .number ? "vatInclusivePrice" : "vatInclusivePriceString"
    }

    public func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(native) { v throws(ConversionError) in
            let inclusive = try readNativeMoney(v, form)
            let rate = try Self.rate(context)
            return DecimalText.canonical(Self.exclusive(fromInclusive: inclusive, rate: rate))
        }
    }

    public func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue? {
        try passAbsentAndNull(canonical) { v throws(ConversionError) in
            let exclusive = try DecimalText.number(v)
            let rate = try Self.rate(context)
            return writeNativeMoney(Self.inclusive(fromExclusive: exclusive, rate: rate), form)
        }
    }

    /// `incl / (1 + rate)` rounded to ``canonicalScale`` decimals, halves away from zero.
    public static func exclusive(fromInclusive inclusive: Decimal, rate: Decimal) -> Decimal {
        (inclusive / (1 + rate)).roundedHalfAwayFromZero(scale: canonicalScale)
    }

    /// `excl × (1 + rate)` rounded to øre (two decimals), halves away from zero.
    public static func inclusive(fromExclusive exclusive: Decimal, rate: Decimal) -> Decimal {
        (exclusive * (1 + rate)).roundedHalfAwayFromZero(scale: 2)
    }

    static func rate(_ context: ConversionContext) throws(ConversionError) -> Decimal {
        guard let rate = context.vatRate else {
            throw ConversionError("no VAT rate for this price (the line's or product's VAT rate must be mapped first)")
        }
        guard rate >= 0 else { throw ConversionError("VAT rate \(rate) is negative") }
        guard rate < 1 else {
            throw ConversionError(
                "VAT rate \(rate) is not a fraction (canonical VAT rates are fractions like 0.25; map percents with the percent converter)")
        }
        return rate
    }
}
