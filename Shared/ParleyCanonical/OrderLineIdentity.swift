import Foundation
import ParleyEnvelope
import ParleyJSON

/// Which line of an order a line is, across systems and across versions of one system, so the
/// link service can merge order lines member by member (docs/canonical-model.md, "Order lines").
///
/// No system's own line ids are shared (PowerOffice Go assigns its own, the webshop renumbers
/// its line items, the ERP numbers lines by position), so the identity is made of what every
/// system that carries lines reports and Parley translates: the line's **product** (a global
/// ref, the same in every system), else its **SKU** (a line with an item number but no product,
/// a freight line), else nothing; plus its **occurrence** among the lines with that same key,
/// in order. So
///
/// - lines that are reordered, renumbered, or that move because a line before them was added or
///   removed keep their identity;
/// - a second line of the same product is `#1` of that product, the first `#0`;
/// - lines with neither product nor SKU are told apart only by their order among themselves.
///
/// A line whose product changes is another line: the old one is removed and the new one added.
public struct OrderLineIdentity: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// `product/<uuid>` (lower-cased), `sku:<sku>` (trimmed, case kept as product SKUs are),
    /// or empty for a line with neither.
    public let key: String
    /// The line's place among the lines with the same key, from 0.
    public let occurrence: Int

    public init(key: String, occurrence: Int) {
        self.key = key
        self.occurrence = occurrence
    }

    /// `product/<uuid>#0`, `sku:FRAKT#0`, `#2`: also the identity's spelling in the link
    /// service's per-line provenance (`lines[product/…#0].quantity`).
    public var description: String { "\(key)#\(occurrence)" }

    public static func < (a: OrderLineIdentity, b: OrderLineIdentity) -> Bool {
        (a.key, a.occurrence) < (b.key, b.occurrence)
    }

    /// The key of one line object (canonical JSON; `product` a global ref).
    public static func key(of line: JSONValue) -> String {
        if case .string(let product)? = line["product"] {
            let ref = product.trimmingWhitespace().lowercased()
            if !ref.isEmpty { return ref }
        }
        if case .string(let sku)? = line["sku"] {
            let trimmed = sku.trimmingWhitespace()
            if !trimmed.isEmpty { return "sku:" + trimmed }
        }
        return ""
    }

    /// The identities of an order's lines, in their order.
    public static func identities(of lines: [JSONValue]) -> [OrderLineIdentity] {
        var seen: [String: Int] = [:]
        return lines.map { line in
            let key = key(of: line)
            let occurrence = seen[key, default: 0]
            seen[key] = occurrence + 1
            return OrderLineIdentity(key: key, occurrence: occurrence)
        }
    }
}
