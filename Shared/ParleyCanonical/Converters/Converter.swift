import Foundation
import ParleyEnvelope
import ParleyJSON

/// A named, two-way conversion between one native value and one canonical value.
///
/// The mapping tables name a converter per row (`"decimalString"`, `"vatInclusivePrice"`,
/// `"enum:orderStatus.webshop"` ...). The mapping service looks the name up in a
/// ``ConverterRegistry`` when it loads the tables (so a misspelt name fails at startup) and then
/// calls ``toCanonical(_:context:)`` when reading a native record and ``toNative(_:context:)``
/// when writing one.
///
/// Both sides are `JSONValue?`:
/// - `nil` means *absent* (the field is not there). Every converter maps absent to absent.
/// - `.null` means *explicitly empty*. Every converter maps `.null` to `.null`.
///
/// So converters only ever see a present, non-null value in their own logic (see
/// ``passAbsentAndNull(_:_:)``). A converter throws ``ConversionError`` with the reason only;
/// the caller knows, and adds, the field path.
public protocol Converter: Sendable {
    /// The name the mapping tables use, e.g. `"decimalString"` or `"enum:orderStatus.webshop"`.
    var name: String { get }
    /// Native (system) value to canonical value.
    func toCanonical(_ native: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue?
    /// Canonical value to native (system) value.
    func toNative(_ canonical: JSONValue?, context: ConversionContext) throws(ConversionError) -> JSONValue?
}

/// Why a value could not be converted, e.g. `"12,5" is not a decimal number (use a dot)`.
/// Only the reason: the mapping service prefixes the field path.
public struct ConversionError: Error, Sendable, Hashable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// What a converter may know besides the value itself.
///
/// - ``siblings``: the other fields of the record being converted, on the side being read
///   (the native record for `toCanonical`, the canonical record for `toNative`).
/// - ``vatRate``: the VAT rate that applies to this value (the line's or the product's), as a
///   canonical fraction (`0.25`, not `25`). The mapping service resolves it (converting the
///   sibling rate field with its own converter, e.g. `percent`) before it converts prices;
///   ``VatInclusivePriceConverter`` requires it.
public struct ConversionContext: Sendable {
    public var siblings: JSONObject
    public var vatRate: Decimal?

    public init(siblings: JSONObject = JSONObject(), vatRate: Decimal? = nil) {
        self.siblings = siblings
        self.vatRate = vatRate
    }

    /// A sibling field of the record being converted.
    public subscript(sibling key: String) -> JSONValue? { siblings[key] }

    /// No siblings, no VAT rate.
    public static let empty = ConversionContext()
}

/// Absent stays absent and `null` stays `null`; anything else goes through `convert`.
@inline(__always)
func passAbsentAndNull(
    _ value: JSONValue?, _ convert: (JSONValue) throws(ConversionError) -> JSONValue?
) throws(ConversionError) -> JSONValue? {
    guard let value else { return nil }
    if case .null = value { return .null }
    return try convert(value)
}

/// Quotes a value for an error message: strings in quotes, the rest as compact JSON.
func quoted(_ value: JSONValue) -> String {
    if case .string(let s) = value { return "\"\(s)\"" }
    return value.description
}

func expectString(_ value: JSONValue, _ what: String) throws(ConversionError) -> String {
    guard case .string(let s) = value else {
        throw ConversionError("expected \(what) as a string, got \(value.typeName) \(quoted(value))")
    }
    return s
}
