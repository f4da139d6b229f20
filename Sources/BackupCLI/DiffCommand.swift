import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What changed between two backups of one source: entries added, changed and removed.",
        discussion: """
            Redis keys by type and value digest (per database), bucket objects and files by sha256, MongoDB \
            namespaces by document count, Qdrant collections by point count. --prefix, --match and --db narrow \
            both sides as for ls.
            """)

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The older backup (id or unique prefix).")
    var from: String

    @Argument(help: "The newer backup (id or unique prefix).")
    var to: String

    @OptionGroup var narrow: ContentFilterOptions

    func run() async throws {
        let engine = try options.makeEngine()
        let d = try await engine.diff(from, to, filter: try narrow.filter())
        if options.json {
            try Output.json(DiffJSON(d))
            return
        }
        print("\(d.from.source): \(d.from.id) (\(Timestamps.iso8601(d.from.createdAt))) -> \(d.to.id) (\(Timestamps.iso8601(d.to.createdAt)))")
        // A key is one line however it is named (a newline in it shows as \x0a): one entry, one line.
        for e in d.added { print("+ \(e.type) \(PeerText.escape(e.path))") }
        for c in d.changed { print("~ \(c.to.type) \(PeerText.escape(c.to.path))" + (c.from.type != c.to.type ? " (was \(c.from.type))" : "")) }
        for e in d.removed { print("- \(e.type) \(PeerText.escape(e.path))") }
        print("\(d.added.count) added, \(d.changed.count) changed, \(d.removed.count) removed, \(d.unchanged) unchanged")
    }
}

struct DiffJSON: Encodable {
    struct Entry: Encodable {
        var path: String
        var type: String
        var size: Int64?
        var detail: [String: JSONValue]
        init(_ e: ContentEntry) { path = e.path; type = e.type; size = e.size; detail = e.detail }
    }
    var source: String
    var from: String
    var to: String
    var added: [Entry]
    var changed: [Entry]
    var removed: [Entry]
    var unchanged: Int

    init(_ d: ContentDiff) {
        source = d.from.source
        from = d.from.id
        to = d.to.id
        added = d.added.map(Entry.init)
        changed = d.changed.map { Entry($0.to) }
        removed = d.removed.map(Entry.init)
        unchanged = d.unchanged
    }

    func encode(to encoder: Encoder) throws {
        enum K: String, CodingKey { case source, from, to, added, changed, removed, unchanged }
        var c = encoder.container(keyedBy: K.self)
        try c.encode(source, forKey: .source)
        try c.encode(from, forKey: .from)
        try c.encode(to, forKey: .to)
        try c.encode(added, forKey: .added)
        try c.encode(changed, forKey: .changed)
        try c.encode(removed, forKey: .removed)
        try c.encode(unchanged, forKey: .unchanged)
    }
}
