import Foundation
import struct ParleySimulator.NorwegianData
import struct ParleySimulator.SeedCustomer
import struct ParleySimulator.SeedProduct
import struct ParleySimulator.SeedOrder

/// `--seed N` for the PowerOffice Go simulator: the shared Norwegian data generator
/// (`Shared/ParleySimulator/NorwegianData.swift`, the same customers, products and orders the
/// ERP and webshop simulators seed) mapped onto Go's post DTOs.
public enum NorwegianSampleData {
    static let goUnits: Set<String> = ["BX", "MTR", "KGM", "EA", "LTR", "HUR", "DAY", "PR", "SET", "GRM", "MLT"]

    /// A `CustomerPostDto`.
    static func customer(_ c: SeedCustomer) -> JSONValue {
        var dto: [String: JSONValue] = [
            "IsPerson": .bool(c.kind == .person), "EmailAddress": .string(c.email), "PhoneNumber": .string(c.phone),
            "MailAddress": .object([
                "AddressLine1": .string(c.addressLine1), "ZipCode": .string(c.postalCode), "City": .string(c.city),
                "CountryCode": .string(c.countryCode)
            ]),
            "CurrencyCode": .string("NOK")
        ]
        if c.kind == .person {
            dto["FirstName"] = .string(c.firstName)
            dto["LastName"] = .string(c.lastName)
            dto["Name"] = .string("\(c.firstName) \(c.lastName)")
        } else {
            dto["Name"] = .string(c.name)
            if let org = c.organizationNumber { dto["OrganizationNumber"] = .string(org) }
        }
        return .object(dto)
    }

    /// A `ProductPostDto` (Go keeps prices excluding VAT; a product's VAT code is its group's).
    static func product(_ p: SeedProduct) -> JSONValue {
        var dto: [String: JSONValue] = [
            "Code": .string(p.sku), "Name": .string(p.name), "Description": .string(p.description),
            "UnitPrice": .double(NSDecimalNumber(decimal: p.priceExclVat).doubleValue),
            "UnitCost": .double(NSDecimalNumber(decimal: p.costPriceExclVat).doubleValue),
            "ProductType": .string(p.kind == .service ? "Service" : "Product"),
            "UnitOfMeasureCode": .string(goUnits.contains(p.unitCode) ? p.unitCode : "EA")
        ]
        if let gtin = p.gtin { dto["Gtin"] = .string(gtin) }
        if let stock = p.stock { dto["StockOnHand"] = .double(Double(stock)) }
        return .object(dto)
    }

    /// A `SalesOrderCompletePostDto` (Go has only Draft and Confirmed).
    static func salesOrder(_ o: SeedOrder, customerIds: [Int64], productIds: [Int64]) -> JSONValue {
        let lines: [JSONValue] = o.lines.map { line in
            var dto: [String: JSONValue] = [
                "ProductId": .int(productIds[line.productIndex % productIds.count]), "Quantity": .double(Double(line.quantity))
            ]
            if line.discountPercent > 0 { dto["Allowance"] = .double(Double(line.discountPercent)) }
            return .object(dto)
        }
        var dto: [String: JSONValue] = [
            "CustomerId": .int(customerIds[o.customerIndex % customerIds.count]), "SalesOrderDate": .string(o.orderDate),
            "SalesOrderStatus": .string(o.status == .new ? "Draft" : "Confirmed"), "SalesOrderLines": .array(lines)
        ]
        if let reference = o.customerReference { dto["CustomerReference"] = .string(reference) }
        return .object(dto)
    }

    /// Fills `store` with `count` customers, products and sales orders through its public
    /// create operations (so seeded data obeys the same rules as data posted by clients).
    public static func seed(_ store: inout GoStore, count: Int, seed: UInt64) throws(GoError) {
        guard count > 0 else { return }
        let data = NorwegianData.dataset(seed: seed, count: count)
        var customerIds: [Int64] = [], productIds: [Int64] = []
        for c in data.customers { customerIds.append(try store.createCustomer(customer(c))["Id"]!.int64Value!) }
        for p in data.products { productIds.append(try store.createProduct(product(p))["Id"]!.int64Value!) }
        for o in data.orders { _ = try store.createSalesOrder(salesOrder(o, customerIds: customerIds, productIds: productIds)) }
    }
}
