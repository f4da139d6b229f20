import Foundation

/// Text that came from a peer or from data (an S3 error body, a Redis error reply, a tool's stderr, a key name),
/// made fit for a one-line message, a catalog row and a log: control characters (newlines included: a peer's
/// newline must not forge an `error:` or `Try:` line) and bidirectional overrides shown as escapes (`\x0a`,
/// `\u{202E}`), and cut to `limit` UTF-8 bytes with the number of bytes cut said (a 2 MB error body is not a
/// message). Our own texts never need it.
public enum PeerText {
    public static let defaultLimit = 4096

    public static func clean(_ s: String, limit: Int = defaultLimit) -> String {
        var text = s
        var cut = 0
        if text.utf8.count > limit {
            var kept = Substring(text)
            // Cut on a character boundary at most `limit` bytes in.
            var end = text.utf8.index(text.utf8.startIndex, offsetBy: limit)
            while end > text.startIndex, !text.unicodeScalars.indices.contains(end) { end = text.utf8.index(before: end) }
            kept = text[..<end]
            cut = text.utf8.count - kept.utf8.count
            text = String(kept)
        }
        let escaped = escape(text)
        return cut > 0 ? escaped + "… (\(cut) bytes cut)" : escaped
    }

    /// Control characters, C1 controls and bidi overrides/isolates as visible escapes; everything else as is.
    public static func escape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0xC2 || $0 == 0xE2 }) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || v == 0x7F {
                out += String(format: "\\x%02x", v)
            } else if (0x80...0x9F).contains(v) || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) {
                out += String(format: "\\u{%X}", v)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Columns a terminal gives the text: East Asian wide and fullwidth characters take two, combining marks and
    /// zero-width characters none, the rest one.
    public static func displayWidth(_ s: String) -> Int {
        var width = 0
        for scalar in s.unicodeScalars { width += columns(scalar) }
        return width
    }

    public static func columns(_ scalar: Unicode.Scalar) -> Int {
        let v = scalar.value
        switch scalar.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: break
        }
        if (0x1100...0x115F).contains(v) || (0x2E80...0xA4CF).contains(v) || (0xAC00...0xD7A3).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0xFE30...0xFE4F).contains(v) || (0xFF00...0xFF60).contains(v)
            || (0xFFE0...0xFFE6).contains(v) || (0x1F300...0x1F64F).contains(v) || (0x1F900...0x1F9FF).contains(v)
            || (0x20000...0x3FFFD).contains(v) {
            return 2
        }
        return 1
    }
}
