import BackupCore
import BackupEngine
import Foundation

/// The JSON contract read by the deploy script and other tools. Field names are snake_case and stable: the
/// artifact's own are its manifest's (`ArtifactInfo.encode(to:)`, with null for a nil field), then what the
/// catalog alone knows.
struct ArtifactJSON: Encodable {
    var artifact: ArtifactInfo
    /// Set by `show`: the artifact's newest drill (left out otherwise).
    var last_drill: DrillJSON?

    /// The newest verify of this artifact: {"at", "ok", "detail"}, or null (never verified).
    struct VerifyJSON: Encodable { var at: String; var ok: Bool; var detail: String }

    init(_ a: ArtifactInfo) { artifact = a }

    enum CatalogKeys: String, CodingKey { case last_drill, offsite, offsite_detail, last_verify }

    func encode(to encoder: Encoder) throws {
        try artifact.encode(to: encoder)
        var c = encoder.container(keyedBy: CatalogKeys.self)
        try c.encodeIfPresent(last_drill, forKey: .last_drill)
        // The off-site copy: null (none configured or not tried), "ok" or "failed".
        try c.encode(artifact.offsite?.rawValue, forKey: .offsite)
        try c.encode(artifact.offsiteDetail, forKey: .offsite_detail)
        try c.encode(artifact.lastVerify.map { VerifyJSON(at: Timestamps.iso8601($0.at), ok: $0.ok, detail: $0.detail) }, forKey: .last_verify)
    }
}

/// A run: its manifest's fields (`RunInfo.encode(to:)`), with null for a nil field.
struct RunJSON: Encodable {
    var run: RunInfo

    init(_ r: RunInfo) { run = r }

    func encode(to encoder: Encoder) throws { try run.encode(to: encoder) }
}

struct BackupResultJSON: Encodable {
    var run: RunJSON
    var artifacts: [ArtifactJSON]
    /// Rotation after the backup: `{"keep", "remove", "held_back", ...}` as `rotate --json` prints it.
    var rotation: JSONValue
    var rotation_skipped: String?
    /// Each failed source: `{"artifact", "source", "error", "try"}` (what the `Try:` line says).
    var failures: [FailureJSON]

    struct FailureJSON: Encodable { var artifact: String; var source: String; var error: String; var `try`: String? }

    init(_ r: BackupResult) {
        run = RunJSON(r.run)
        artifacts = r.artifacts.map(ArtifactJSON.init)
        failures = r.artifacts.filter { $0.status != .ok }.map {
            FailureJSON(artifact: $0.id, source: $0.source, error: $0.detail ?? "", try: r.hints[$0.id])
        }
        rotation = RotationJSON.value(r.rotations)
        rotation_skipped = r.rotationSkipped
    }
}

enum Output {
    /// Set once a JSON document went to stdout: a command that printed its result and then fails (`policy check
    /// --json` with a failing check) must not add a second document (`ExitCodeMapping.errorAsJSON`).
    nonisolated(unsafe) static var printedJSON = false

    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.userInfo[.writesNulls] = true // every key, null when nil (ArtifactInfo, RunInfo)
        ProgressRenderer.shared.clearLine()
        Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self)) // JSON: escaped already, byte for byte
        printedJSON = true
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }

    /// Short human summary of an artifact's stats.
    static func summary(_ a: ArtifactInfo) -> String {
        if a.status != .ok { return a.detail ?? "" }
        return SourceKinds.detailSummary(a)
    }

    /// The width tables fit: the terminal's when stdout is one (80 when it does not say), else `$COLUMNS`; a
    /// pipe or a file without `$COLUMNS` gets one line per row, whole (what `grep` and cron's mail want).
    static let width: Int = {
        var size = winsize()
        if isatty(1) == 1 { return ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? max(20, Int(size.ws_col)) : 80 }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 { return max(20, columns) }
        return Int.max / 4
    }()

    /// Prints `rows` (the first is the header) as a table that fits `width` columns.
    static func table(_ rows: [[String]], wrap: Set<Int>? = nil, drop: [Int] = [], width: Int = Output.width) {
        for line in TableLayout.lines(rows, wrap: wrap, drop: drop, width: width) { print(line) }
    }

    static func artifactTable(_ artifacts: [ArtifactInfo]) {
        var rows = [["ID", "SOURCE", "STATUS", "CREATED (UTC)", "STORED", "TAG", "DETAIL"]]
        for a in artifacts {
            let created = Timestamps.iso8601(a.createdAt).prefix(19).replacingOccurrences(of: "T", with: " ")
            // A snapshot: what it added, with the logical size beside it.
            let stored = SourceKinds.storesSnapshots(a.kind) ? "\(bytes(a.bytesStored)) of \(bytes(a.bytesRaw))" : bytes(a.bytesStored)
            rows.append([a.id, a.source, a.status.rawValue, created, a.status == .ok ? stored : "-",
                         a.tag.rawValue + (a.release.map { " \($0)" } ?? "") + (a.pinned ? " (pinned)" : ""), summary(a)])
        }
        // CREATED goes first when the table is too wide: the id already says when (20261205T021701Z-…, UTC).
        table(rows, wrap: [5, 6], drop: [3])
    }
}

/// Tables that fit a width (the terminal's, or $COLUMNS), losing nothing: too wide, a table
/// leaves out the columns it may (`drop`, whose content is said elsewhere), then wraps the columns that may
/// wrap (`wrap`, default the last) onto continuation lines, each down to 12 characters; when that is still too
/// wide, each row becomes a block (its first cell, then one `HEADER  value` line per other column).
enum TableLayout {
    static let minimumWrapWidth = 12

    static func lines(_ rows: [[String]], wrap: Set<Int>? = nil, drop: [Int] = [], width: Int) -> [String] {
        // Cells are one line with their control characters visible (a peer's text in a DETAIL), measured in the
        // columns a terminal gives them (a CJK character takes two), before anything is laid out.
        let rows = rows.map { $0.map(cellText) }
        guard let header = rows.first, !header.isEmpty else { return [] }
        let wrapping = wrap ?? [header.count - 1]
        func cell(_ row: [String], _ c: Int) -> String { c < row.count ? row[c] : "" }
        var columns = Array(header.indices)
        var widths = header.indices.map { c in rows.map { PeerText.displayWidth(cell($0, c)) }.max() ?? 0 }
        func total() -> Int { columns.map { widths[$0] }.reduce(0, +) + 2 * (columns.count - 1) }
        for c in drop where total() > width { columns.removeAll { $0 == c } }
        while total() > width {
            guard let widest = columns.filter({ wrapping.contains($0) && widths[$0] > minimumWrapWidth })
                .max(by: { widths[$0] < widths[$1] }) else { break }
            widths[widest] -= 1 // one at a time, the widest first: the wrapping columns end up balanced
        }
        if total() > width { return blocks(rows, width: width) }
        var out: [String] = []
        for row in rows {
            let wrapped = columns.map { wrapText(cell(row, $0), width: widths[$0]) }
            let height = wrapped.map(\.count).max() ?? 1
            for i in 0..<height {
                var line = ""
                for (n, c) in columns.enumerated() {
                    let text = i < wrapped[n].count ? wrapped[n][i] : ""
                    line += n == columns.count - 1 ? text : pad(text, to: widths[c]) + "  "
                }
                out.append(trimmingTrailingSpaces(line))
            }
        }
        return out
    }

    /// A cell as shown: tabs and newlines as spaces, other control characters as escapes (`\x1b`).
    static func cellText(_ s: String) -> String {
        PeerText.escape(s.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " "))
    }

    static func pad(_ s: String, to width: Int) -> String {
        let w = PeerText.displayWidth(s)
        return w >= width ? s : s + String(repeating: " ", count: width - w)
    }

    /// Each row as a block: `redis` then `  NEWEST GOOD  20261205T…` lines, the values wrapped under themselves.
    static func blocks(_ rows: [[String]], width: Int) -> [String] {
        guard let header = rows.first else { return [] }
        let keyWidth = header.dropFirst().map(PeerText.displayWidth).max() ?? 0
        let valueWidth = max(minimumWrapWidth, width - 2 - keyWidth - 2)
        var out: [String] = []
        for (r, row) in rows.dropFirst().enumerated() {
            if r > 0 { out.append("") }
            out.append(contentsOf: wrapText(row.first ?? "", width: width))
            for c in header.indices.dropFirst() {
                let value = c < row.count ? row[c] : ""
                for (i, piece) in wrapText(value, width: valueWidth).enumerated() {
                    let key = i == 0 ? header[c] : ""
                    out.append(trimmingTrailingSpaces("  " + pad(key, to: keyWidth) + "  " + piece))
                }
            }
        }
        return out
    }

    /// One option of a help section, as the argument parser lays its own out: the name in a 26-column gutter
    /// (on a line of its own when longer than 24), the help wrapped beside it.
    static func optionLines(_ name: String, help: String, width: Int) -> String {
        let lines = wrapText(help, width: max(20, width - 26))
        var out = name.count <= 24 ? name.padding(toLength: 26, withPad: " ", startingAt: 0) + lines[0] + "\n"
            : name + "\n" + String(repeating: " ", count: 26) + lines[0] + "\n"
        for line in lines.dropFirst() { out += String(repeating: " ", count: 26) + line + "\n" }
        return out
    }

    /// Words onto lines of at most `width` terminal columns; a word longer than a line is cut.
    static func wrapText(_ text: String, width: Int) -> [String] {
        let text = text.replacingOccurrences(of: "\n", with: " ")
        guard PeerText.displayWidth(text) > width else { return [text] }
        var lines: [String] = []
        var current = ""
        var currentWidth = 0
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            var word = String(word)
            var wordWidth = PeerText.displayWidth(word)
            if !current.isEmpty && currentWidth + 1 + wordWidth <= width {
                current += " " + word
                currentWidth += 1 + wordWidth
                continue
            }
            if !current.isEmpty { lines.append(current); current = ""; currentWidth = 0 }
            while wordWidth > width {
                // Cut at the last character that fits.
                var piece = ""
                var pieceWidth = 0
                var rest = Substring(word)
                while let c = rest.first {
                    let cw = c.unicodeScalars.reduce(0) { $0 + PeerText.columns($1) }
                    if pieceWidth + cw > width && !piece.isEmpty { break }
                    piece.append(c)
                    pieceWidth += cw
                    rest = rest.dropFirst()
                }
                lines.append(piece)
                word = String(rest)
                wordWidth = PeerText.displayWidth(word)
            }
            current = word
            currentWidth = wordWidth
        }
        if !current.isEmpty || lines.isEmpty { lines.append(current) }
        return lines
    }

    private static func trimmingTrailingSpaces(_ line: String) -> String {
        var line = line
        while line.last == " " { line.removeLast() }
        return line
    }
}
