import Foundation

/// An RFC 7807 problem detail, with the contracts' `errors` extension naming fields.
public struct Problem: Error, Sendable, Equatable, Codable {
    public struct FieldError: Sendable, Equatable, Codable {
        public var field: String
        public var message: String
        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }
    }

    public var type: String
    public var title: String
    public var status: Int
    public var detail: String?
    public var instance: String?
    public var errors: [FieldError]?
    /// Response headers that go with the problem (`Retry-After`, `WWW-Authenticate`); not in the body.
    public var headers: [String: String]

    enum CodingKeys: String, CodingKey { case type, title, status, detail, instance, errors }

    public init(
        status: Int, title: String, detail: String? = nil, type: String = "about:blank",
        errors: [FieldError]? = nil, headers: [String: String] = [:]
    ) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? "about:blank"
        title = try c.decode(String.self, forKey: .title)
        status = try c.decode(Int.self, forKey: .status)
        detail = try c.decodeIfPresent(String.self, forKey: .detail)
        instance = try c.decodeIfPresent(String.self, forKey: .instance)
        errors = try c.decodeIfPresent([FieldError].self, forKey: .errors)
        headers = [:]
    }

    public static let contentType = "application/problem+json"

    /// 422 naming the fields that fail validation.
    public static func validation(_ errors: [FieldError]) -> Problem {
        Problem(
            status: 422, title: "Unprocessable Entity",
            detail: errors.map { "\($0.field): \($0.message)" }.joined(separator: "; "),
            errors: errors)
    }

    /// 400 for a malformed request (bad JSON, a bad query parameter), naming the field.
    public static func badRequest(_ detail: String, field: String? = nil) -> Problem {
        Problem(
            status: 400, title: "Bad Request", detail: detail,
            errors: field.map { [FieldError(field: $0, message: detail)] })
    }

    public static func unauthorized(_ challenge: String) -> Problem {
        Problem(
            status: 401, title: "Unauthorized", detail: "Missing or wrong credentials.",
            headers: ["WWW-Authenticate": challenge])
    }
}
