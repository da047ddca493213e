import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON
import Testing

/// The ERP's and the webshop's own enums (values read from docs/contracts/*.openapi.yaml).
@Suite struct SystemEnumTableTests {
    func conv(_ name: String) throws -> any Converter { try #require(ConverterRegistry.standard.converter(named: name)) }

    @Test func erpCustomerKind() throws {
        let c = try conv("enum:customerKind.erp")
        #expect(try c.toCanonical("PERSON", context: ctx) == "person")
        #expect(try c.toCanonical("COMPANY", context: ctx) == "company")
        #expect(try c.toCanonical(" company ", context: ctx) == "company")
        #expect(try c.toNative("person", context: ctx) == "PERSON")
        #expect(try c.toNative("company", context: ctx) == "COMPANY")
        for kind in CustomerKind.allCases {
            let native = try c.toNative(.string(kind.rawValue), context: ctx)
            #expect(try c.toCanonical(native, context: ctx) == .string(kind.rawValue))
        }
        #expect(
            failure { try c.toCanonical("SOLE_TRADER", context: ctx) }
                == "unknown customerKind.erp value \"SOLE_TRADER\" (known: COMPANY, PERSON)")
        #expect(failure { try c.toNative("robot", context: ctx) } == "canonical value \"robot\" has no customerKind.erp equivalent")
        #expect(try c.toCanonical(nil, context: ctx) == nil)
        #expect(try c.toNative(.null, context: ctx) == .null)
    }

    @Test func erpProductType() throws {
        let c = try conv("enum:productType.erp")
        #expect(try c.toCanonical("STOCK", context: ctx) == "product")
        #expect(try c.toCanonical("NONSTOCK", context: ctx) == "product")
        #expect(try c.toCanonical("SERVICE", context: ctx) == "service")
        // Lossy: goods are written as STOCK, so NONSTOCK comes back as STOCK.
        #expect(try c.toNative("product", context: ctx) == "STOCK")
        #expect(try c.toNative("service", context: ctx) == "SERVICE")
        #expect(try c.toNative(c.toCanonical("NONSTOCK", context: ctx), context: ctx) == "STOCK")
        #expect(failure { try c.toCanonical("BUNDLE", context: ctx) }?.hasPrefix("unknown productType.erp value \"BUNDLE\"") == true)
    }

    @Test func erpOrderStatusIsOneToOne() throws {
        let c = try conv("enum:orderStatus.erp")
        let pairs: [(String, String)] = [
            ("ENTERED", "draft"), ("CONFIRMED", "confirmed"), ("PICKING", "processing"), ("DELIVERED", "completed"),
            ("CANCELLED", "cancelled")
        ]
        for (native, canonical) in pairs {
            #expect(try c.toCanonical(.string(native), context: ctx) == .string(canonical))
            #expect(try c.toNative(.string(canonical), context: ctx) == .string(native))
        }
        #expect(try c.toCanonical("picking", context: ctx) == "processing")
        #expect(failure { try c.toCanonical("INVOICED", context: ctx) }?.hasPrefix("unknown orderStatus.erp value \"INVOICED\"") == true)
    }

    @Test func everyCanonicalOrderStatusIsWrittenToTheErp() throws {
        let c = try conv("enum:orderStatus.erp")
        for status in OrderStatus.allCases {
            let native = try c.toNative(.string(status.rawValue), context: ctx)
            #expect(try c.toCanonical(native, context: ctx) == .string(status.rawValue))
        }
    }

    @Test func webshopProductType() throws {
        let c = try conv("enum:productType.webshop")
        #expect(try c.toCanonical("simple", context: ctx) == "product")
        #expect(try c.toCanonical("virtual", context: ctx) == "service")
        #expect(try c.toNative("product", context: ctx) == "simple")
        #expect(try c.toNative("service", context: ctx) == "virtual")
        for type in ProductType.allCases {
            let native = try c.toNative(.string(type.rawValue), context: ctx)
            #expect(try c.toCanonical(native, context: ctx) == .string(type.rawValue))
        }
        // Other WooCommerce types are not in the contract: an error naming the value, not a guess.
        #expect(
            failure { try c.toCanonical("variable", context: ctx) }
                == "unknown productType.webshop value \"variable\" (known: simple, virtual)")
    }
}
