import Foundation

/// Looks converters up by the names the mapping tables use.
///
/// Two kinds of names:
/// - fixed names (`"decimal"`, `"countryName.no"`, `"unitOfMeasure"` ...), registered as values;
/// - parameterised names `"<prefix>:<argument>"` (`"enum:orderStatus.webshop"`,
///   `"dateInZone:Europe/Oslo"`), resolved by a factory for the prefix that returns `nil` for an
///   unknown argument.
///
/// The mapping service calls ``unknownNames(in:)`` (or ``converter(named:)`` for each row) when
/// it loads its tables, so a table naming a converter that does not exist fails at startup rather
/// than at the first message. ``standard`` holds every built-in converter.
public struct ConverterRegistry: Sendable {
    public typealias Factory = @Sendable (String) -> (any Converter)?

    private var fixed: [String: any Converter] = [:]
    private var factories: [String: Factory] = [:]

    public init() {}

    /// Registers a converter under its ``Converter/name`` (replacing one of the same name).
    public mutating func register(_ converter: any Converter) {
        fixed[converter.name] = converter
    }

    /// Registers a converter under another name too (e.g. `unitOfMeasure`).
    public mutating func register(_ converter: any Converter, as alias: String) {
        fixed[alias] = converter
    }

    /// Registers a factory for names `"<prefix>:<argument>"`.
    public mutating func register(prefix: String, factory: @escaping Factory) {
        factories[prefix] = factory
    }

    /// The converter for `name`, or `nil` when there is none.
    public func converter(named name: String) -> (any Converter)? {
        if let converter = fixed[name] { return converter }
        guard let colon = name.firstIndex(of: ":") else { return nil }
        let prefix = String(name[..<colon])
        let argument = String(name[name.index(after: colon)...])
        guard !argument.isEmpty, let factory = factories[prefix] else { return nil }
        return factory(argument)
    }

    /// Whether `name` resolves.
    public func contains(_ name: String) -> Bool { converter(named: name) != nil }

    /// The names in `names` that do not resolve, sorted and without duplicates: empty means the
    /// table can be loaded.
    public func unknownNames(in names: some Sequence<String>) -> [String] {
        Set(names.filter { !contains($0) }).sorted()
    }

    /// The fixed names and the prefixes (as `"<prefix>:…"`), for documentation and error messages.
    public var knownNames: [String] {
        (fixed.keys.sorted()) + factories.keys.sorted().map { "\($0):…" }
    }

    /// Every built-in converter (see docs/converters.md).
    public static let standard: ConverterRegistry = {
        var registry = ConverterRegistry()
        registry.register(DecimalConverter())
        registry.register(DecimalStringConverter())
        registry.register(MoneyConverter(form: .number))
        registry.register(MoneyConverter(form: .string))
        registry.register(MinorUnitsConverter())
        registry.register(PercentConverter())
        registry.register(IntegerStringConverter())
        registry.register(VatInclusivePriceConverter(form: .number))
        registry.register(VatInclusivePriceConverter(form: .string))
        registry.register(CountryNameConverter(language: .english))
        registry.register(CountryNameConverter(language: .norwegian))
        registry.register(CountryCodeConverter())
        registry.register(DateConverter())
        registry.register(DateTimeConverter())
        registry.register(PersonNameConverter())
        let tables = Dictionary(uniqueKeysWithValues: EnumTables.all.map { ($0.name, $0) })
        registry.register(prefix: "enum") { name in tables[name].map { EnumConverter(table: $0) } }
        registry.register(EnumConverter(table: EnumTables.unitOfMeasureWebshop, name: "unitOfMeasure"))
        registry.register(prefix: "dateInZone") { zone in DateInZoneConverter(zoneIdentifier: zone) }
        registry.register(prefix: "dateOfInstant") { zone in DateOfInstantConverter(zoneIdentifier: zone) }
        return registry
    }()
}
