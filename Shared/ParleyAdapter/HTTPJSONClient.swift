import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ParleyMessaging
import ParleyJSON

/// JSON over HTTP for the connectors, on AsyncHTTPClient: sends a request, reads the answer,
/// and turns every failure into a ``SystemError`` once — transport errors and timeouts are
/// transient, statuses classified by ``SystemError/http(status:message:retryAfter:)``, the
/// message taken from an RFC 7807 problem (`detail`, else `title`) or the body's text.
public struct HTTPJSONClient: Sendable {
    public typealias Headers = @Sendable () async throws(SystemError) -> [(String, String)]

    let client: HTTPClient
    let baseURL: String
    let headers: Headers
    let timeout: Duration
    let onUnauthorized: @Sendable () async -> Void

    /// `onUnauthorized` runs when a call answers 401 (e.g. to drop a cached token); the call is
    /// then made once more with fresh headers.
    public init(
        client: HTTPClient = .shared, baseURL: String, timeout: Duration = .seconds(30), headers: @escaping Headers,
        onUnauthorized: @escaping @Sendable () async -> Void = {}
    ) {
        self.client = client
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.timeout = timeout
        self.headers = headers
        self.onUnauthorized = onUnauthorized
    }

    public struct Response: Sendable {
        public var status: Int
        public var body: JSONValue?
        public var headers: [(String, String)]
        /// For a status the caller asked to read itself (`reading:`): the error ``send`` would
        /// otherwise have thrown, classified and with the system's message.
        public var refusal: SystemError? = nil
    }

    /// Sends `body` (JSON) and returns the JSON answer; a status of 400 or more throws, except
    /// those in `reading`: they are returned (with ``Response/refusal``) for the caller to read
    /// the system's answer itself (a connector recognising a particular refusal).
    public func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSONValue? = nil,
        contentType: String = "application/json", extraHeaders: [(String, String)] = [], reading: Set<Int> = []
    ) async throws(SystemError) -> Response {
        do {
            return try await sendOnce(method, path, query: query, body: body, contentType: contentType, extraHeaders: extraHeaders, reading: reading)
        } catch {
            guard case .permanent(401, _) = error else { throw error }
            await onUnauthorized()
            return try await sendOnce(method, path, query: query, body: body, contentType: contentType, extraHeaders: extraHeaders, reading: reading)
        }
    }

    func sendOnce(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], body: JSONValue?,
        contentType: String, extraHeaders: [(String, String)], reading: Set<Int>
    ) async throws(SystemError) -> Response {
        var url = baseURL + path
        if !query.isEmpty {
            var components = URLComponents()
            components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
            // "+" in an RFC 3339 offset must not read as a space.
            url += "?" + (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json, application/problem+json")
        for (name, value) in try await headers() { request.headers.add(name: name, value: value) }
        for (name, value) in extraHeaders { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: Array(body.serializedString().utf8)))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
            bytes = try await response.body.collect(upTo: 32 << 20)
        } catch {
            throw .transient("\(method) \(path): \(error)", retryAfter: nil)
        }
        let text = String(buffer: bytes)
        let json = text.isEmpty ? nil : try? JSONValue.parse(text)
        let status = Int(response.status.code)
        let headers = response.headers.map { ($0.name, $0.value) }
        if status >= 400 {
            let message =
                json?["detail"]?.string ?? json?["title"]?.string ?? json?["message"]?.string
                ?? (text.isEmpty ? response.status.reasonPhrase : String(text.prefix(500)))
            let error = SystemError.http(
                status: status, message: "\(method) \(path): \(message)",
                retryAfter: Self.retryAfter(response.headers.first(name: "Retry-After")))
            guard reading.contains(status) else { throw error }
            return Response(status: status, body: json, headers: headers, refusal: error)
        }
        if !text.isEmpty, json == nil { throw .permanent(status: status, "\(method) \(path): the answer is not JSON") }
        return Response(status: status, body: json, headers: headers)
    }

    /// `Retry-After` as seconds or an HTTP date.
    public static func retryAfter(_ value: String?, now: Date = Date()) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value) { return .seconds(max(0, seconds)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSince(now) * 1000)))
    }
}
