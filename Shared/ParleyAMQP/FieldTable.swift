import CRabbitMQ
import Foundation

/// An AMQP field value, as carried in message headers and declaration arguments.
public enum AMQPValue: Sendable, Hashable {
    case bool(Bool)
    case int32(Int32)
    case int64(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case timestamp(UInt64)
    case table(AMQPTable)
    case array([AMQPValue])
    case void

    public var stringValue: String? {
        switch self {
        case .string(let s): return s
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }

    public var intValue: Int64? {
        switch self {
        case .int32(let v): return Int64(v)
        case .int64(let v): return v
        case .timestamp(let v): return Int64(v)
        default: return nil
        }
    }
}

extension AMQPValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int64(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// An AMQP field table. Key order is kept as given.
public struct AMQPTable: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public var entries: [(key: String, value: AMQPValue)]

    public init(_ entries: [(key: String, value: AMQPValue)] = []) { self.entries = entries }
    public init(dictionaryLiteral elements: (String, AMQPValue)...) {
        entries = elements.map { (key: $0.0, value: $0.1) }
    }

    public subscript(key: String) -> AMQPValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key: key, value: newValue))
            }
        }
    }

    public var isEmpty: Bool { entries.isEmpty }

    public static func == (a: AMQPTable, b: AMQPTable) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for e in entries { hasher.combine(e.key); hasher.combine(e.value) }
    }
}

// MARK: - C conversion

/// C memory for one call into rabbitmq-c (tables, strings): a bump allocator over reusable
/// chunks. `reset()` makes everything allocated before reusable, so a thread-confined owner
/// (one per connection) pays no malloc per publish.
final class CArena {
    private var chunks: [(base: UnsafeMutableRawPointer, size: Int)] = []
    private var chunk = 0
    private var offset = 0
    private let chunkSize: Int

    init(chunkSize: Int = 16 * 1024) { self.chunkSize = chunkSize }

    deinit { for c in chunks { free(c.base) } }

    func reset() {
        chunk = 0
        offset = 0
    }

    func allocate(_ n: Int) -> UnsafeMutableRawPointer {
        let size = (max(n, 1) + 15) & ~15
        while chunk < chunks.count {
            if offset + size <= chunks[chunk].size {
                defer { offset += size }
                return chunks[chunk].base + offset
            }
            chunk += 1
            offset = 0
        }
        let newSize = max(chunkSize, size)
        chunks.append((malloc(newSize)!, newSize))
        chunk = chunks.count - 1
        offset = size
        return chunks[chunk].base
    }

    func bytes(_ data: some Collection<UInt8>) -> amqp_bytes_t {
        let n = data.count
        guard n > 0 else { return amqp_bytes_t(len: 0, bytes: nil) }
        let p = allocate(n)
        let buf = UnsafeMutableRawBufferPointer(start: p, count: n)
        buf.copyBytes(from: data)
        return amqp_bytes_t(len: n, bytes: p)
    }

    func bytes(_ s: String) -> amqp_bytes_t {
        var s = s
        return s.withUTF8 { utf8 in
            guard utf8.count > 0 else { return amqp_bytes_t(len: 0, bytes: nil) }
            let p = allocate(utf8.count)
            p.copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
            return amqp_bytes_t(len: utf8.count, bytes: p)
        }
    }

    func table(_ t: AMQPTable) -> amqp_table_t {
        guard !t.entries.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let raw = allocate(MemoryLayout<amqp_table_entry_t>.stride * t.entries.count)
        let entries = raw.bindMemory(to: amqp_table_entry_t.self, capacity: t.entries.count)
        for (i, e) in t.entries.enumerated() {
            entries[i] = amqp_table_entry_t(key: bytes(e.key), value: value(e.value))
        }
        return amqp_table_t(num_entries: Int32(t.entries.count), entries: entries)
    }

    func value(_ v: AMQPValue) -> amqp_field_value_t {
        var f = amqp_field_value_t()
        switch v {
        case .bool(let b): f.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue); f.value.boolean = b ? 1 : 0
        case .int32(let i): f.kind = UInt8(AMQP_FIELD_KIND_I32.rawValue); f.value.i32 = i
        case .int64(let i): f.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue); f.value.i64 = i
        case .double(let d): f.kind = UInt8(AMQP_FIELD_KIND_F64.rawValue); f.value.f64 = d
        case .string(let s): f.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue); f.value.bytes = bytes(s)
        case .bytes(let b): f.kind = UInt8(AMQP_FIELD_KIND_BYTES.rawValue); f.value.bytes = bytes(b)
        case .timestamp(let t): f.kind = UInt8(AMQP_FIELD_KIND_TIMESTAMP.rawValue); f.value.u64 = t
        case .table(let t): f.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue); f.value.table = table(t)
        case .array(let a):
            f.kind = UInt8(AMQP_FIELD_KIND_ARRAY.rawValue)
            if a.isEmpty {
                f.value.array = amqp_array_t(num_entries: 0, entries: nil)
            } else {
                let raw = allocate(MemoryLayout<amqp_field_value_t>.stride * a.count)
                let p = raw.bindMemory(to: amqp_field_value_t.self, capacity: a.count)
                for (i, e) in a.enumerated() { p[i] = value(e) }
                f.value.array = amqp_array_t(num_entries: Int32(a.count), entries: p)
            }
        case .void: f.kind = UInt8(AMQP_FIELD_KIND_VOID.rawValue)
        }
        return f
    }
}

extension amqp_bytes_t {
    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }

    var string: String { String(decoding: array, as: UTF8.self) }
}

extension AMQPTable {
    /// Copies a C table (owned by rabbitmq-c's pool) into Swift values.
    init(_ c: amqp_table_t) {
        var out: [(key: String, value: AMQPValue)] = []
        out.reserveCapacity(Int(c.num_entries))
        for i in 0..<Int(c.num_entries) {
            let e = c.entries[i]
            out.append((key: e.key.string, value: AMQPValue(e.value)))
        }
        self.init(out)
    }
}

extension AMQPValue {
    init(_ f: amqp_field_value_t) {
        switch UInt32(f.kind) {
        case AMQP_FIELD_KIND_BOOLEAN.rawValue: self = .bool(f.value.boolean != 0)
        case AMQP_FIELD_KIND_I8.rawValue: self = .int32(Int32(f.value.i8))
        case AMQP_FIELD_KIND_U8.rawValue: self = .int32(Int32(f.value.u8))
        case AMQP_FIELD_KIND_I16.rawValue: self = .int32(Int32(f.value.i16))
        case AMQP_FIELD_KIND_U16.rawValue: self = .int32(Int32(f.value.u16))
        case AMQP_FIELD_KIND_I32.rawValue: self = .int32(f.value.i32)
        case AMQP_FIELD_KIND_U32.rawValue: self = .int64(Int64(f.value.u32))
        case AMQP_FIELD_KIND_I64.rawValue: self = .int64(f.value.i64)
        case AMQP_FIELD_KIND_U64.rawValue: self = .int64(Int64(bitPattern: f.value.u64))
        case AMQP_FIELD_KIND_F32.rawValue: self = .double(Double(f.value.f32))
        case AMQP_FIELD_KIND_F64.rawValue: self = .double(f.value.f64)
        case AMQP_FIELD_KIND_UTF8.rawValue: self = .string(f.value.bytes.string)
        case AMQP_FIELD_KIND_BYTES.rawValue: self = .bytes(f.value.bytes.array)
        case AMQP_FIELD_KIND_TIMESTAMP.rawValue: self = .timestamp(f.value.u64)
        case AMQP_FIELD_KIND_TABLE.rawValue: self = .table(AMQPTable(f.value.table))
        case AMQP_FIELD_KIND_ARRAY.rawValue:
            let a = f.value.array
            self = .array((0..<Int(a.num_entries)).map { AMQPValue(a.entries[$0]) })
        case AMQP_FIELD_KIND_DECIMAL.rawValue:
            let d = f.value.decimal
            self = .double(Double(d.value) / pow(10, Double(d.decimals)))
        default: self = .void
        }
    }
}
