/// An error the simulated API answers with: an HTTP status and a ProblemDetails body. The
/// body uses the lower-case member names of ASP.NET's ProblemDetails, as the spec's examples
/// do (`{"detail": …, "title": "Customer validation error(s)"}`); the schema's
/// `additionalProperties: {}` admits them.
public struct GoError: Error, Sendable, Equatable {
    public var status: Int
    public var title: String
    public var detail: String

    public init(status: Int, title: String, detail: String) {
        self.status = status
        self.title = title
        self.detail = detail
    }

    public static func validation(_ schemaName: String, _ detail: String) -> GoError {
        GoError(status: 400, title: "\(entityWord(schemaName)) validation error(s)", detail: detail)
    }

    public static func notFound(_ detail: String) -> GoError {
        GoError(status: 404, title: "Object(s) not found", detail: detail)
    }

    public static func badRequest(_ detail: String) -> GoError {
        GoError(status: 400, title: "Bad request", detail: detail)
    }

    public var problemDetails: JSONValue {
        .object([
            "type": .string("https://tools.ietf.org/html/rfc9110#section-15.\(status >= 500 ? "6.1" : "5.1")"),
            "title": .string(title),
            "status": .int(Int64(status)),
            "detail": .string(detail)
        ])
    }

    static func entityWord(_ schemaName: String) -> String {
        for (prefix, word) in [
            ("SalesOrderLine", "Sales order line"), ("SalesOrder", "Sales order"), ("Customer", "Customer"),
            ("ContactAddress", "Customer"), ("Product", "Product"), ("JsonPatch", "Patch")
        ]
        where schemaName.hasPrefix(prefix) { return word }
        return "Request"
    }
}
