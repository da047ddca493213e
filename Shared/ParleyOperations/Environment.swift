import Foundation
import ParleyAMQP
import ParleyLink
import ParleyMessaging
import ParleyPostgres
import ParleyEnvelope

extension OperationsError {
    /// A database error as the operator should read it: "cannot reach PostgreSQL at ..." for a
    /// connection that could not be opened, the error itself otherwise.
    public static func database(_ error: any Error, _ configuration: PostgresConfiguration, variable: String = "PARLEY_DATABASE_URL")
        -> OperationsError
    {
        if let e = error as? OperationsError { return e }
        let url = String(configuration.redactedURL.split(separator: "?").first ?? "")
        if let e = error as? PostgresError, e.kind == .connectionFailed || e.kind == .connectionLost {
            let hint =
                e.message.lowercased().contains("password") || e.message.lowercased().contains("role")
                ? "check the user and password in \(variable)" : "is PostgreSQL running? set \(variable)"
            return .unreachable(
                "PostgreSQL", at: url, reason: Redact.reason(text: e.message.split(separator: "\n").first.map(String.init) ?? e.message), hint: hint)
        }
        return OperationsError("database \(url): \(error)")
    }
}

/// The database settings of the link service (`PARLEY_DATABASE_URL`) or of an adapter: the
/// system's own (`PARLEY_<SYSTEM>_ADAPTER_DATABASE_URL`, e.g. `PARLEY_CUSTOMERP_ADAPTER_DATABASE_URL`:
/// the compose deployment gives each adapter a database), else the adapters' shared one
/// (`PARLEY_ADAPTER_DATABASE_URL`), else the link service's (the local setup shares one database).
/// Each also as `…_FILE`.
public enum OperationsDatabase {
    public static func configuration(
        adapters: Bool = false, system: SystemName? = nil,
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (PostgresConfiguration, variable: String) {
        var env = environment
        var variable = "PARLEY_DATABASE_URL"
        let candidates =
            adapters ? (system.map { ["PARLEY_\($0.rawValue.uppercased())_ADAPTER_DATABASE_URL"] } ?? []) + ["PARLEY_ADAPTER_DATABASE_URL"] : []
        if let chosen = candidates.first(where: { key in (env[key] ?? env[key + "_FILE"]).map { !$0.isEmpty } == true }) {
            env["PARLEY_DATABASE_URL"] = env[chosen]
            env["PARLEY_DATABASE_URL_FILE"] = env[chosen + "_FILE"]
            variable = chosen
        }
        do {
            return (try PostgresConfiguration.fromEnvironment(env, applicationName: "parley"), variable)
        } catch let e as PostgresError {
            throw OperationsError(adapters ? e.message + " (or \(candidates.joined(separator: " or ")) for the adapters' database)" : e.message)
        }
    }
}

/// Reads what `status` and `top` show, from the management API and the link service's database,
/// keeping one database pool across refreshes.
public final class StatusCollector: Sendable {
    let management: Result<ManagementAPI, OperationsError>
    let database: Result<(PostgresConfiguration, PostgresPool), OperationsError>

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        management = Result { try ManagementAPI.fromEnvironment(environment) }.mapError(Self.operations)
        database = Result {
            let (configuration, _) = try OperationsDatabase.configuration(environment)
            return (configuration, PostgresPool(configuration: configuration, maxConnections: 1))
        }.mapError(Self.operations)
    }

    static func operations(_ error: any Error) -> OperationsError {
        error as? OperationsError ?? OperationsError("\(error)")
    }

    public var vhost: String { (try? management.get().vhost) ?? "?" }

    public func collect(now: Date = Date()) async -> StatusReport {
        async let queues = readQueues()
        let link: Result<LinkSummary, OperationsError>
        switch database {
        case .success(let (configuration, pool)):
            do { link = .success(LinkSummary(try await LinkQueries(pool: pool).counts())) } catch {
                link = .failure(.database(error, configuration))
            }
        case .failure(let e): link = .failure(e)
        }
        return StatusReport(vhost: vhost, takenAt: now, queues: await queues, link: link)
    }

    func readQueues() async -> Result<[QueueStats], OperationsError> {
        switch management {
        case .success(let api):
            do { return .success(try await api.queues()) } catch { return .failure(Self.operations(error)) }
        case .failure(let e): return .failure(e)
        }
    }

    public func close() async {
        if case .success(let (_, pool)) = database { await pool.close() }
    }
}
