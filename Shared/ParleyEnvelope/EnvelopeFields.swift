import Foundation
import ParleyJSON

/// A name from an open set (message kinds, systems, entity types): a validated string whose
/// known values are static members of the conforming type. Conformers supply the rule; the
/// initialisers, `description` and `Codable` come from here.
public protocol ValidatedName: RawRepresentable<String>, Hashable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    /// The rule in words, for error messages.
    static var rule: String { get }
    static func isValid(_ name: String) -> Bool
    /// Stores a name already checked against `isValid`.
    init(validated: String)
}

extension ValidatedName {
    public init?(rawValue: String) {
        guard Self.isValid(rawValue) else { return nil }
        self.init(validated: rawValue)
    }

    /// For known names written in code; an invalid literal is a programming error.
    public init(stringLiteral value: String) {
        precondition(Self.isValid(value), "\(Self.self) must be \(Self.rule): \(value)")
        self.init(validated: value)
    }

    public var description: String { rawValue }
}

/// What a message means. Known kinds are static members; new kinds are added the same way
/// (`extension MessageKind { static let replay: MessageKind = "replay" }`).
///
/// Valid kinds are lowerCamel identifiers: `[a-z][a-zA-Z0-9]*`, at most 64 characters.
public struct MessageKind: ValidatedName {
    public let rawValue: String
    public init(validated: String) { rawValue = validated }
    public static func isValid(_ name: String) -> Bool { Identifier.isLowerCamel(name) }

    public static let rule = "a lowerCamel identifier ([a-z][a-zA-Z0-9]*, at most 64 characters)"

    /// A native change captured from a system (adapter → mapping service).
    public static let change: MessageKind = "change"
    /// A change normalised to the canonical model (mapping service → link service).
    public static let canonical: MessageKind = "canonical"
    /// A request to bring a target system in line with a global entity (link service → mapping service).
    public static let syncRequest: MessageKind = "syncRequest"
    /// A native create/update/archive for one system (mapping service → adapter).
    public static let command: MessageKind = "command"
    /// A command's write was confirmed by the target system (adapter → link service).
    public static let written: MessageKind = "written"
    /// A command's write failed for good (adapter → link service).
    public static let failed: MessageKind = "failed"
}

/// A connected system. Known systems are static members; add new ones the same way.
///
/// Valid names are lower-case letters and digits starting with a letter (`[a-z][a-z0-9]*`, at
/// most 64 characters), so they are safe in queue names, routing keys and headers as they are.
public struct SystemName: ValidatedName {
    public let rawValue: String
    public init(validated: String) { rawValue = validated }
    public static func isValid(_ name: String) -> Bool { Identifier.isLowerAlphanumeric(name) }

    public static let rule = "lower-case letters and digits starting with a letter ([a-z][a-z0-9]*, at most 64 characters)"

    /// The company's own ERP.
    public static let customerp: SystemName = "customerp"
    /// The company's own webshop.
    public static let customwebshop: SystemName = "customwebshop"
    /// PowerOffice Go.
    public static let powerofficego: SystemName = "powerofficego"
}

/// The type of entity a message is about. Known types are static members; add new ones the
/// same way. Valid types are lowerCamel identifiers like ``MessageKind``.
public struct EntityType: ValidatedName {
    public let rawValue: String
    public init(validated: String) { rawValue = validated }
    public static func isValid(_ name: String) -> Bool { Identifier.isLowerCamel(name) }

    public static let rule = MessageKind.rule

    public static let customer: EntityType = "customer"
    public static let order: EntityType = "order"
    public static let product: EntityType = "product"
}

/// W3C Trace Context (https://www.w3.org/TR/trace-context/) carried with a message, so a trace
/// follows a change through every service.
public struct TraceContext: Hashable, Sendable {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower-case hex, ids not all zero.
    public let traceparent: String
    /// Vendor-specific trace state; `nil` when absent (an empty string counts as absent).
    public let tracestate: String?

    public init(traceparent: String, tracestate: String? = nil) throws(EnvelopeError) {
        guard TraceContext.isValidTraceparent(traceparent) else {
            throw .invalidValue(
                field: "trace.traceparent",
                reason: "must match 00-<32 hex>-<16 hex>-<2 hex> (lower-case, ids not all zero), got \(EnvelopeError.quote(traceparent))")
        }
        if let tracestate, !tracestate.isEmpty {
            guard tracestate.utf8.count <= 512, tracestate.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else {
                throw .invalidValue(field: "trace.tracestate", reason: "must be at most 512 printable ASCII characters")
            }
            self.tracestate = tracestate
        } else {
            self.tracestate = nil
        }
        self.traceparent = traceparent
    }

    /// The 32-hex-digit trace id.
    public var traceId: String { String(traceparent.dropFirst(3).prefix(32)) }
    /// The 16-hex-digit id of the span that sent the message.
    public var parentId: String { String(traceparent.dropFirst(36).prefix(16)) }
    /// The 2-hex-digit trace flags (`01` = sampled).
    public var flags: String { String(traceparent.suffix(2)) }

    static func isValidTraceparent(_ value: String) -> Bool {
        let b = Array(value.utf8)
        guard b.count == 55, b[0] == 0x30, b[1] == 0x30, b[2] == 0x2D, b[35] == 0x2D, b[52] == 0x2D else { return false }
        func hex(_ range: Range<Int>) -> Bool { b[range].allSatisfy(Identifier.isLowerHex) }
        func zero(_ range: Range<Int>) -> Bool { b[range].allSatisfy { $0 == 0x30 } }
        return hex(3..<35) && hex(36..<52) && hex(53..<55) && !zero(3..<35) && !zero(36..<52)
    }
}

enum Identifier {
    static func isLowerCamel(_ s: String) -> Bool {
        check(s) { $0.isLowerLetter || $0.isUpperLetter || $0.isDigit }
    }

    static func isLowerAlphanumeric(_ s: String) -> Bool {
        check(s) { $0.isLowerLetter || $0.isDigit }
    }

    private static func check(_ s: String, rest: (UInt8) -> Bool) -> Bool {
        let u = s.utf8
        guard let first = u.first, first.isLowerLetter, u.count <= 64 else { return false }
        return u.dropFirst().allSatisfy(rest)
    }

    static func isLowerHex(_ b: UInt8) -> Bool { b.isDigit || (b >= 0x61 && b <= 0x66) }

    /// Canonical lower-case UUID text: 8-4-4-4-12 lower-case hex digits.
    static func isLowerUUID(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 36 else { return false }
        for (i, byte) in b.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard byte == 0x2D else { return false }
            } else {
                guard isLowerHex(byte) else { return false }
            }
        }
        return true
    }
}

extension UInt8 {
    fileprivate var isLowerLetter: Bool { self >= 0x61 && self <= 0x7A }
    fileprivate var isUpperLetter: Bool { self >= 0x41 && self <= 0x5A }
    fileprivate var isDigit: Bool { self >= 0x30 && self <= 0x39 }
}
