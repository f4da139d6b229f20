/// Glob patterns as Redis's `SCAN MATCH` / `KEYS` read them (`stringmatchlen`), on bytes: `*` any run (also
/// across `/`), `?` one byte, `[abc]`, `[^abc]`, `[a-z]`, and `\x` for a literal x. Used by `ls --match` and
/// partial restores of every kind, so a pattern means the same for Redis keys, object keys and file paths.
/// Linear in practice: one backtrack point (the last `*`), never recursion.
public struct Glob: Sendable, Equatable {
    public let pattern: [UInt8]

    public init(_ pattern: String) { self.pattern = Array(pattern.utf8) }

    public func matches(_ text: String) -> Bool { matches(Array(text.utf8)) }

    public func matches(_ s: [UInt8]) -> Bool {
        let p = pattern
        var pi = 0, si = 0
        var starP = -1, starS = 0
        while si < s.count {
            if pi < p.count {
                switch p[pi] {
                case UInt8(ascii: "*"):
                    while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
                    if pi == p.count { return true }
                    starP = pi
                    starS = si
                    continue
                case UInt8(ascii: "?"):
                    pi += 1; si += 1
                    continue
                case UInt8(ascii: "["):
                    if let (matched, next) = Self.matchClass(p, from: pi, byte: s[si]), matched {
                        pi = next; si += 1
                        continue
                    }
                case UInt8(ascii: "\\") where pi + 1 < p.count:
                    if p[pi + 1] == s[si] { pi += 2; si += 1; continue }
                default:
                    if p[pi] == s[si] { pi += 1; si += 1; continue }
                }
            }
            // Mismatch: let the last `*` take one more byte, or fail.
            guard starP >= 0 else { return false }
            starS += 1
            si = starS
            pi = starP
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }

    /// `[...]` at `from`: whether `byte` is in the class, and the index after the `]` (an unclosed class runs to
    /// the end of the pattern, as in Redis).
    static func matchClass(_ p: [UInt8], from: Int, byte: UInt8) -> (Bool, Int)? {
        var i = from + 1
        let negate = i < p.count && p[i] == UInt8(ascii: "^")
        if negate { i += 1 }
        var matched = false
        while i < p.count && p[i] != UInt8(ascii: "]") {
            if p[i] == UInt8(ascii: "\\") && i + 1 < p.count {
                if p[i + 1] == byte { matched = true }
                i += 2
            } else if i + 2 < p.count && p[i + 1] == UInt8(ascii: "-") && p[i + 2] != UInt8(ascii: "]") {
                let lo = min(p[i], p[i + 2]), hi = max(p[i], p[i + 2])
                if (lo...hi).contains(byte) { matched = true }
                i += 3
            } else {
                if p[i] == byte { matched = true }
                i += 1
            }
        }
        let next = i < p.count ? i + 1 : i
        return (negate ? !matched : matched, next)
    }
}
