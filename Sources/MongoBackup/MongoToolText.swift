// What kaleem-backup writes to the MongoDB tools and reads back from them, held to the real tools' rules (not to
// what a lenient parser accepts): the `--config` YAML as mongo-tools reads it, mongorestore's count lines as the
// Database Tools print them, and mongosh's REPL, which never fails a script fed on stdin by its exit code.

/// The one-line `--config` document.
///
/// mongo-tools reads `--config` with `gopkg.in/yaml.v2`'s `UnmarshalStrict` (common/options/options.go,
/// `ParseConfigFile`: keys `uri`, `password`, `sslPEMKeyPassword`, `destinationPassword`; any other key is an
/// error). yaml.v2's scanner (scannerc.go, `yaml_parser_scan_flow_scalar`) takes in a double-quoted scalar only
/// YAML 1.1's escapes: `\0 \a \b \t \n \v \f \r \e \<space> \" \' \\ \N \_ \L \P \xXX \uXXXX \UXXXXXXXX`. JSON's
/// `\/` (which Foundation's JSONSerialization writes for every `/`) is "found unknown escape character", and raw
/// control characters are refused by its reader ("control characters are not allowed").
public enum MongoConfigYAML {
    /// `uri: "<value>"\n`.
    public static func line(uri: String) -> String { "uri: \(doubleQuoted(uri))\n" }

    /// A YAML 1.1 double-quoted scalar that yaml.v2 reads back as exactly `value`.
    public static func doubleQuoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                let v = scalar.value
                // C0 and C1 controls, DEL, and the line/paragraph separators and BOM that YAML treats specially:
                // escaped, never written raw.
                if v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || v == 0xFEFF {
                    out += v <= 0xFF ? "\\x" + hexDigits(v, width: 2) : "\\u" + hexDigits(v, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

}

/// `v` in hexadecimal, zero-padded to `width` digits.
private func hexDigits(_ v: UInt32, width: Int) -> String {
    let digits = String(v, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// What mongorestore said about the documents it restored, gathered line by line from its whole stderr (not
/// from a tail: on a long restore the progress lines push the early count lines out of any tail).
///
/// mongorestore/restore.go (`Result.log`) prints, per namespace, `finished restoring NS (N document(s), M
/// failure(s))`; Database Tools 100.16 and later quote NS with Go's `%#q` (a backquoted string, or a
/// double-quoted one with Go escapes when NS cannot be backquoted); earlier versions print it bare.
/// mongorestore/main/mongorestore.go prints `N document(s) restored successfully. M document(s) failed to
/// restore.` only when the write concern is acknowledged, and `done` otherwise.
public struct MongoRestoreReport: Sendable, Equatable {
    /// Documents restored per namespace (as the tool names them: after `--nsFrom/--nsTo` renames).
    public var perNamespace: [String: Int] = [:]
    /// Failures per namespace, where the tool reported any.
    public var failuresPerNamespace: [String: Int] = [:]
    /// The summary line's numbers, when it was printed.
    public var summary: (restored: Int, failed: Int)?
    /// The tool ended with `done` and no summary: an unacknowledged write concern (w=0), which counts nothing.
    public var unacknowledged = false
    /// Count lines beyond `limit` (a tool printing more namespaces than the archive holds is not believed).
    public var ignoredLines = 0
    /// `applied N oplog entries` (mongorestore/oplog.go, after `replaying oplog`): the replay ran, N entries
    /// applied (no-op entries are skipped, so N may be below the archive's count).
    public var oplogApplied: Int?

    /// At most this many namespaces are kept; a report never grows without bound.
    public let limit: Int

    public init(limit: Int = 100_000) { self.limit = limit }

    public static func == (a: MongoRestoreReport, b: MongoRestoreReport) -> Bool {
        a.perNamespace == b.perNamespace && a.failuresPerNamespace == b.failuresPerNamespace
            && a.summary?.restored == b.summary?.restored && a.summary?.failed == b.summary?.failed
            && a.unacknowledged == b.unacknowledged && a.ignoredLines == b.ignoredLines && a.oplogApplied == b.oplogApplied
    }

    /// Reads one line of stderr (timestamp prefix and all).
    public mutating func consume(_ line: Substring) {
        if let (ns, restored, failed) = Self.countLine(line) {
            if perNamespace[ns] == nil, perNamespace.count >= limit { ignoredLines += 1; return }
            // A namespace restored in pieces (the tool's own retries, a time-series' buckets) adds up.
            perNamespace[ns, default: 0] = Self.add(perNamespace[ns] ?? 0, restored)
            if failed > 0 { failuresPerNamespace[ns, default: 0] = Self.add(failuresPerNamespace[ns] ?? 0, failed) }
            return
        }
        if let s = Self.summaryLine(line) {
            summary = s
            unacknowledged = false
            return
        }
        if let applied = Self.oplogLine(line) {
            oplogApplied = applied
            return
        }
        if summary == nil, Self.message(of: line) == "done" { unacknowledged = true }
    }

    /// `applied N oplog entries`.
    static func oplogLine(_ line: Substring) -> Int? {
        let text = message(of: line)
        let prefix = "applied ", suffix = " oplog entries"
        guard text.hasPrefix(prefix), text.hasSuffix(suffix), text.count > prefix.count + suffix.count else { return nil }
        return decimal(text.dropFirst(prefix.count).dropLast(suffix.count))
    }

    public mutating func consume(_ line: String) { consume(Substring(line)) }

    private static func add(_ a: Int, _ b: Int) -> Int { a.addingReportingOverflow(b).overflow ? Int.max : a + b }

    /// The message of a log line: mongo-tools prefixes `2024-05-01T10:00:00.000+0000\t`.
    static func message(of line: Substring) -> Substring {
        var text = line
        if let tab = text.firstIndex(of: "\t"), text[..<tab].contains("T"), text[..<tab].first?.isNumber == true {
            text = text[text.index(after: tab)...]
        }
        while let last = text.last, last == "\r" || last == " " { text = text.dropLast() }
        return text
    }

    /// `finished restoring NS (N document(s), M failure(s))`, NS bare, backquoted or Go-double-quoted.
    static func countLine(_ line: Substring) -> (String, Int, Int)? {
        let text = message(of: line)
        let prefix = "finished restoring "
        guard text.hasPrefix(prefix) else { return nil }
        var rest = text.dropFirst(prefix.count)
        let ns: String
        switch rest.first {
        case "`":
            rest = rest.dropFirst()
            guard let close = rest.firstIndex(of: "`") else { return nil }
            ns = String(rest[..<close])
            rest = rest[rest.index(after: close)...]
        case "\"":
            guard let (decoded, after) = goQuoted(rest) else { return nil }
            ns = decoded
            rest = after
        default:
            guard let space = rest.firstIndex(of: " ") else { return nil }
            ns = String(rest[..<space])
            rest = rest[space...]
        }
        guard !ns.isEmpty else { return nil }
        // ` (N document[s], M failure[s])`
        guard rest.hasPrefix(" ("), rest.hasSuffix(")") else { return nil }
        let inner = rest.dropFirst(2).dropLast()
        let parts = inner.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingLeadingSpaces() }
        guard parts.count == 2,
              let restored = count(parts[0], unit: "document"), let failed = count(parts[1], unit: "failure") else { return nil }
        return (ns, restored, failed)
    }

    /// `N document` / `N documents` (a number that fits in Int, no sign).
    private static func count(_ text: Substring, unit: String) -> Int? {
        let words = text.split(separator: " ")
        guard words.count == 2, words[1] == unit || words[1] == unit + "s" else { return nil }
        return decimal(words[0])
    }

    static func decimal(_ digits: Substring) -> Int? {
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// `N document(s) restored successfully. M document(s) failed to restore.`
    static func summaryLine(_ line: Substring) -> (restored: Int, failed: Int)? {
        let text = message(of: line)
        let middle = " document(s) restored successfully. "
        let end = " document(s) failed to restore."
        guard text.hasSuffix(end), let m = text.range(of: middle) else { return nil }
        guard let restored = decimal(text[..<m.lowerBound]),
              let failed = decimal(text[m.upperBound..<text.index(text.endIndex, offsetBy: -end.count)]) else { return nil }
        return (restored, failed)
    }

    /// A Go `%q` string at the start of `text` (`"…"` with `\" \\ \n \t \xXX \uXXXX` escapes): the decoded
    /// string and what follows the closing quote.
    static func goQuoted(_ text: Substring) -> (String, Substring)? {
        guard text.first == "\"" else { return nil }
        var out = String.UnicodeScalarView()
        var i = text.unicodeScalars.index(after: text.unicodeScalars.startIndex)
        let scalars = text.unicodeScalars
        while i < scalars.endIndex {
            let c = scalars[i]
            if c == "\"" { return (String(out), Substring(scalars[scalars.index(after: i)...])) }
            if c != "\\" { out.append(c); i = scalars.index(after: i); continue }
            i = scalars.index(after: i)
            guard i < scalars.endIndex else { return nil }
            let e = scalars[i]
            i = scalars.index(after: i)
            let width: Int
            switch e {
            case "\"", "\\", "'": out.append(e); continue
            case "n": out.append("\n"); continue
            case "t": out.append("\t"); continue
            case "r": out.append("\r"); continue
            case "x": width = 2
            case "u": width = 4
            case "U": width = 8
            default: return nil
            }
            var value: UInt32 = 0
            for _ in 0..<width {
                guard i < scalars.endIndex, let d = hexDigit(scalars[i]) else { return nil }
                value = value << 4 | d
                i = scalars.index(after: i)
            }
            guard let scalar = Unicode.Scalar(value) else { return nil }
            out.append(scalar)
        }
        return nil
    }

    private static func hexDigit(_ c: Unicode.Scalar) -> UInt32? {
        switch c.value {
        case 0x30...0x39: return c.value - 0x30
        case 0x41...0x46: return c.value - 0x41 + 10
        case 0x61...0x66: return c.value - 0x61 + 10
        default: return nil
        }
    }
}

extension Substring {
    func trimmingLeadingSpaces() -> Substring { drop { $0 == " " } }
}

/// A mongosh script that reports its own outcome.
///
/// mongosh runs a script piped on stdin as its REPL does (cli-repl: the exit code is set from a failure only for
/// `--eval` and `--file`): a thrown error is printed and the next line runs, and the process exits 0. So the
/// script is one statement, a `try` around the work, that prints a per-run marker only when every step
/// succeeded; its absence on stdout is a failure, whatever the exit code.
public struct MongoshScript: Sendable {
    public let text: String
    public let okMarker: String
    public let failMarker: String

    /// `connect` and `body` run in one `try`; `body` may use `kb` (the connection).
    public init(connect uri: String, body: String, nonce: String) {
        okMarker = "kaleem-backup-ok-\(nonce)"
        failMarker = "kaleem-backup-failed-\(nonce)"
        let flat = Self.lines(body).joined(separator: " ")
        text = "try { const kb = connect(\(Self.jsString(uri))); \(flat) print(\"\(okMarker)\"); } catch (kb_e) { print(\"\(failMarker): \" + kb_e); }\n"
    }

    /// Which of the markers the output holds: true (ok), false (failed, with the message), nil (neither).
    public func outcome(_ stdout: String) -> (ok: Bool, message: String)? {
        for line in Self.lines(stdout).reversed() {
            if let r = line.range(of: failMarker + ": ") { return (false, String(line[r.upperBound...])) }
            if line.contains(okMarker) { return (true, "") }
        }
        return nil
    }

    /// The lines of a script or of what mongosh printed, split at "\n" (or "\r\n", one Character in Swift) only:
    /// Swift's isNewline also breaks at U+0085, U+2028 and U+2029, which a name inside a string literal may hold
    /// and `JSON.stringify` prints raw, so a name would split a statement or a printed row in two (the attack on
    /// #38: U+0085 became a space, and U+2028's fragments passed for listing rows of their own).
    public static func lines(_ text: String) -> [Substring] {
        text.split { $0 == "\n" || $0 == "\r\n" }
    }

    /// A JavaScript string literal: `"` and `\` escaped, controls as `\uXXXX` (no `\/` needed, none written).
    public static func jsString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                // C0 and C1 controls (U+0085 among them), DEL, and the two JavaScript line terminators.
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += "\\u" + hexDigits(scalar.value, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Facts read from a connection string (never logged: it may hold a password).
public enum MongoURIOptions {
    /// The connection string asks for an unacknowledged write concern (`w=0`, any case of the key), with which
    /// mongorestore counts nothing (see `MongoRestoreReport`).
    public static func unacknowledged(_ uri: String) -> Bool {
        guard let q = uri.firstIndex(of: "?") else { return false }
        let query = uri[uri.index(after: q)...].prefix { $0 != "#" }
        return query.split(whereSeparator: { $0 == "&" || $0 == ";" }).contains { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return kv.count == 2 && kv[0].lowercased() == "w" && kv[1] == "0"
        }
    }
}
