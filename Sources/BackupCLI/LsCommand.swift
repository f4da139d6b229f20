import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct LsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List what a backup holds: Redis keys, bucket objects, files, MongoDB namespaces, Qdrant collections.",
        discussion: """
            Streams, in bounded memory (a 10-million-key RDB lists one key at a time). --match takes a glob with the \
            rules of Redis's SCAN MATCH (*, ?, [a-z], [^x], \\x) and applies to the key, object key, file path, \
            namespace or collection; --prefix is a plain prefix; --db picks one Redis database.
            """)

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Artifact id, a unique prefix, or latest (with --source: of that source).")
    var id: String

    @Option(help: "With latest: the newest good backup of this source.")
    var source: String?

    @OptionGroup var narrow: ContentFilterOptions

    func run() async throws {
        let engine = try options.makeEngine()
        let filter = try narrow.filter()
        var out = JSONStream()
        var count = 0
        var bytes: Int64 = 0
        if options.json { out.append("[") }
        try await engine.contents(of: id, source: source, filter: filter) { entry in
            if options.json {
                var fields = ["\"path\" : " + JSONText.quote(entry.path), "\"type\" : " + JSONText.quote(entry.type),
                              "\"size\" : " + (entry.size.map(String.init) ?? "null")]
                for (key, value) in entry.detail.sorted(by: { $0.key < $1.key }) { fields.append(JSONText.quote(key) + " : " + JSONText.value(value)) }
                out.append((count == 0 ? "\n  {" : ",\n  {") + fields.joined(separator: ", ") + "}")
            } else {
                // `ls -l`-like: type, size in bytes, path, then the details; plain string work (a million lines).
                var line = entry.type
                if line.utf8.count < 9 { line += String(repeating: " ", count: 9 - line.utf8.count) }
                let size = entry.size.map(String.init) ?? "-"
                // A key or a file name is shown with its control characters visible: a newline in a Redis key is
                // not another entry, an ESC in it does nothing to the terminal (TerminalText).
                line += " " + (size.utf8.count < 10 ? String(repeating: " ", count: 10 - size.utf8.count) : "") + size + "  "
                    + TerminalText.safe(entry.path, keepNewlines: false)
                for key in entry.detail.keys.sorted() {
                    line += "  " + key + "=" + TerminalText.safe(Self.plain(entry.detail[key]!), keepNewlines: false)
                }
                out.append(line + "\n")
            }
            count += 1
            bytes += entry.size ?? 0
        }
        if options.json { out.append(count == 0 ? "]\n" : "\n]\n") }
        out.flush()
        if !options.json && !options.quiet { options.say(.info, "", "\(count) \(count == 1 ? "entry" : "entries"), \(Output.bytes(bytes))", ["entries": "\(count)", "bytes": "\(bytes)"]) }
    }

    /// A detail value as text: strings bare, the rest as JSON.
    static func plain(_ v: JSONValue) -> String {
        if case .string(let s) = v { return s }
        return JSONText.value(v)
    }
}

/// `--prefix`, `--match` and the kinds' own filters (`--db`, `--deep`): which entries `ls` and `diff` look at.
struct ContentFilterOptions: ParsableArguments {
    @Option(help: "Only entries whose path starts with this.")
    var prefix: String?

    @Option(help: "Only entries whose path matches this glob (SCAN MATCH rules).")
    var match: String?

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The filters of the backup's kind (see below).", valueName: "kind-filters"))
    var kindFilters: [String] = []

    /// The kinds' own filters (`SourceKinds.contentFilters`) go by name in `options`; each kind reads its own.
    func filter() throws -> ContentFilter {
        ContentFilter(prefix: prefix, match: match, options: try SourceKinds.contentFilterOptions(kindFilters))
    }

    /// `KIND FILTERS:` laid out as argument-parser lays out OPTIONS (as `restore --help` lists the kinds'
    /// options): appended after OPTIONS in `ls --help` and `diff --help` (ExitCodeMapping).
    static func kindFiltersHelp(width: Int = 80) -> String {
        var out = "\nKIND FILTERS:\n"
        for (_, filters) in SourceKinds.contentFilters {
            for filter in filters {
                out += TableLayout.optionLines("  --\(filter.name)" + (filter.valueName.map { " \($0)" } ?? ""), help: filter.help, width: width)
            }
        }
        return out
    }
}
