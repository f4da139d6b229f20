import BackupCore
import Foundation

/// A small JSON writer for outputs that can hold a million entries (a rotation plan of a large catalog),
/// where Foundation's JSONEncoder would take seconds. Writes the same JSON an encoder would, one entry per line.
struct JSONText {
    private(set) var text = ""

    static func quote(_ s: String) -> String {
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + s + "\""
        }
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func quote(_ s: String?) -> String { s.map { quote($0) } ?? "null" }

    static func array(_ items: [String]) -> String { "[" + items.joined(separator: ", ") + "]" }

    /// A JSON value on one line.
    static func value(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return d.isFinite ? "\(d)" : "null"
        case .string(let s): return quote(s)
        case .array(let a): return array(a.map(value))
        case .object(let o): return "{" + o.sorted(by: { $0.key < $1.key }).map { quote($0.key) + " : " + value($0.value) }.joined(separator: ", ") + "}"
        }
    }
}

/// Buffered writes to stdout, for large outputs.
struct JSONStream {
    private(set) var buffer: [UInt8] = []
    /// When false, the text is kept whole (`buffer`) instead of going to stdout a megabyte at a time.
    private let toStandardOutput: Bool

    init(toStandardOutput: Bool = true) {
        self.toStandardOutput = toStandardOutput
        buffer.reserveCapacity(1 << 20)
    }

    mutating func append(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        flushIfFull()
    }

    /// Text known at compile time, copied as bytes (the hot loops of a million-entry document).
    mutating func appendLiteral(_ text: StaticString) {
        text.withUTF8Buffer { buffer.append(contentsOf: $0) }
        flushIfFull()
    }

    /// `JSONText.quote(s)`, without making a string unless `s` needs escaping.
    mutating func appendQuoted(_ s: String) {
        if s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            append(JSONText.quote(s))
        } else {
            buffer.append(UInt8(ascii: "\""))
            buffer.append(contentsOf: s.utf8)
            buffer.append(UInt8(ascii: "\""))
            flushIfFull()
        }
    }

    private mutating func flushIfFull() {
        if toStandardOutput && buffer.count >= 1 << 20 { flush() }
    }

    mutating func flush() {
        guard toStandardOutput, !buffer.isEmpty else { return }
        StandardStream.output(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
