import Foundation
import ParleyCanonical
import ParleyEnvelope
import ParleyJSON

/// Every compiled mapping table, by system and entity: the whole of what the mapping service
/// knows about the systems' schemas.
public struct Mappings: Sendable {
    public struct Key: Sendable, Hashable {
        public var system: SystemName
        public var entity: CanonicalEntityType
    }

    private var mappers: [Key: Mapper]

    public init(tables: [MappingTable], registry: ConverterRegistry = .standard) {
        mappers = Dictionary(
            tables.map { (Key(system: $0.system, entity: $0.entity), Mapper(table: $0, registry: registry)) },
            uniquingKeysWith: { first, _ in first })
    }

    /// Loads and checks `<repositoryRoot>/mappings/*/*.yaml`; throws ``MappingTableErrors``
    /// listing every problem as `file:line: reason`.
    public static func load(repositoryRoot: URL, registry: ConverterRegistry = .standard) throws -> Mappings {
        let loader = MappingTableLoader(repositoryRoot: repositoryRoot, registry: registry)
        let directory = repositoryRoot.appendingPathComponent("mappings")
        let tables = try loader.loadAll(directory: directory)
        if tables.isEmpty {
            throw MappingTableErrors(errors: [
                MappingTableError(file: directory.path, line: 0, "no mapping tables (<system>/<entity>.yaml) here; is --repository right?")
            ])
        }
        return Mappings(tables: tables, registry: registry)
    }

    /// The environment key naming the repository root (mappings/, docs/contracts/, specs/).
    public static let repositoryEnvironmentKey = "PARLEY_REPOSITORY"

    /// The repository a service reads its tables from: the command-line option, else
    /// `PARLEY_REPOSITORY`, else the working directory.
    public static func repositoryRoot(option: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        URL(fileURLWithPath: option ?? environment[repositoryEnvironmentKey] ?? FileManager.default.currentDirectoryPath)
    }

    /// The mapper for a system's entity, `nil` when no table maps it.
    public func mapper(system: SystemName, entity: CanonicalEntityType) -> Mapper? {
        mappers[Key(system: system, entity: entity)]
    }

    /// The canonical merge fields each system is written, per entity: what the link service
    /// needs to know which members a change concerns.
    public var writtenFields: [SystemName: [CanonicalEntityType: Set<String>]] {
        var result: [SystemName: [CanonicalEntityType: Set<String>]] = [:]
        for mapper in mappers.values { result[mapper.table.system, default: [:]][mapper.table.entity] = mapper.table.writtenFields }
        return result
    }

    /// The entity types each system can archive: those whose table carries `archived`, written
    /// in the record (PowerOffice Go's `IsArchived`) or through an archive operation (the ERP's and
    /// the webshop's `/archive`). Deletes and archives reach exactly these (DESIGN rule 9).
    public var archivable: [SystemName: Set<CanonicalEntityType>] {
        var result: [SystemName: Set<CanonicalEntityType>] = [:]
        for mapper in mappers.values where mapper.table.carriedFields.contains("archived") {
            result[mapper.table.system, default: []].insert(mapper.table.entity)
        }
        return result
    }

    public var tables: [MappingTable] {
        mappers.values.map(\.table).sorted { ($0.system.rawValue, $0.entity.rawValue) < ($1.system.rawValue, $1.entity.rawValue) }
    }
}
