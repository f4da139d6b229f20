import BackupCore

/// The few BSON values kaleem-backup reads (archive headers and namespace blocks); nested documents and
/// arrays are skipped, not decoded.
enum BSONValue: Equatable {
    case double(Double)
    case string(String)
    case bool(Bool)
    case int32(Int32)
    case int64(Int64)
    case other(UInt8)

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var int64: Int64? {
        switch self {
        case .int64(let v): return v
        case .int32(let v): return Int64(v)
        default: return nil
        }
    }
}

enum BSON {
    struct Malformed: Error { var problem: String }

    /// Top-level fields of one document (`bytes` includes its int32 length and trailing 0).
    static func fields(_ bytes: [UInt8]) throws -> [String: BSONValue] {
        guard bytes.count >= 5, bytes.last == 0 else { throw Malformed(problem: "document is not terminated") }
        var i = 4
        var out: [String: BSONValue] = [:]
        func need(_ n: Int) throws {
            guard i + n <= bytes.count - 1 else { throw Malformed(problem: "field runs past the end of its document") }
        }
        func int32(_ at: Int) -> Int32 {
            Int32(bitPattern: UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24)
        }
        func int64(_ at: Int) -> Int64 {
            var v: UInt64 = 0
            for k in (0..<8).reversed() { v = v << 8 | UInt64(bytes[at + k]) }
            return Int64(bitPattern: v)
        }
        while i < bytes.count - 1 {
            let type = bytes[i]
            i += 1
            guard let nameEnd = bytes[i...].firstIndex(of: 0) else { throw Malformed(problem: "field name is not terminated") }
            let name = String(decoding: bytes[i..<nameEnd], as: UTF8.self)
            i = nameEnd + 1
            switch type {
            case 0x01: try need(8); out[name] = .double(Double(bitPattern: UInt64(bitPattern: int64(i)))); i += 8
            case 0x02, 0x0D, 0x0E:
                try need(4)
                let n = Int(int32(i))
                guard n >= 1 else { throw Malformed(problem: "string field \(name) has length \(n)") }
                try need(4 + n)
                guard bytes[i + 4 + n - 1] == 0 else { throw Malformed(problem: "string field \(name) does not end with a 0 byte") }
                if type == 0x02 { out[name] = .string(String(decoding: bytes[(i + 4)..<(i + 4 + n - 1)], as: UTF8.self)) }
                else { out[name] = .other(type) }
                i += 4 + n
            case 0x03, 0x04:
                try need(4)
                let n = Int(int32(i))
                guard n >= 5 else { throw Malformed(problem: "embedded document \(name) has length \(n)") }
                try need(n)
                out[name] = .other(type)
                i += n
            case 0x05:
                try need(5)
                let n = Int(int32(i))
                guard n >= 0 else { throw Malformed(problem: "binary field \(name) has length \(n)") }
                try need(5 + n)
                out[name] = .other(type)
                i += 5 + n
            case 0x06, 0x0A, 0x7F, 0xFF: out[name] = .other(type)
            case 0x07: try need(12); out[name] = .other(type); i += 12
            case 0x08: try need(1); out[name] = .bool(bytes[i] != 0); i += 1
            case 0x09, 0x11: try need(8); out[name] = .other(type); i += 8
            case 0x10: try need(4); out[name] = .int32(int32(i)); i += 4
            case 0x12: try need(8); out[name] = .int64(int64(i)); i += 8
            case 0x13: try need(16); out[name] = .other(type); i += 16
            default: throw Malformed(problem: String(format: "unknown BSON type 0x%02x in field %@", type, name))
            }
        }
        return out
    }
}
