import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List what a backup holds: Redis keys, bucket objects, files, MongoDB namespaces, Qdrant collections.",
        discussion: """
            Streams, in bounded memory (a 10-million-key RDB lists one key at a time). --match takes a glob with the \
            rules of Redis's SCAN MATCH (*, ?, [a-z], [^x], \\x) and applies to the key, object key, file path, \
            namespace or collection; --prefix is a plain prefix; --db picks one Redis database.
            """)

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Artifact id, or a unique prefix.")
    var id: String

    @Option(help: "Only entries whose path starts with this.")
    var prefix: String?

    @Option(help: "Only entries whose path matches this glob (SCAN MATCH rules).")
    var match: String?

    @Option(help: "Redis: only this database.")
    var db: Int?

    func run() throws {
        let engine = try options.makeEngine()
        let filter = ContentFilter(prefix: prefix, match: match, database: db)
        var out = JSONStream()
        var count = 0
        var bytes: Int64 = 0
        if options.json { out.append("[") }
        try engine.contents(of: id, filter: filter) { entry in
            if options.json {
                var fields = ["\"path\" : " + JSONText.quote(entry.path), "\"type\" : " + JSONText.quote(entry.type),
                              "\"size\" : " + (entry.size.map(String.init) ?? "null")]
                for (key, value) in entry.detail.sorted(by: { $0.key < $1.key }) { fields.append(JSONText.quote(key) + " : " + JSONText.value(value)) }
                out.append((count == 0 ? "\n  {" : ",\n  {") + fields.joined(separator: ", ") + "}")
            } else {
                let size = entry.size.map { Output.bytes($0) } ?? "-"
                let detail = entry.detail.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                out.append("\(entry.type.padding(toLength: 9, withPad: " ", startingAt: 0)) \(size.padding(toLength: 10, withPad: " ", startingAt: 0)) \(entry.path)\(detail.isEmpty ? "" : "  " + detail)\n")
            }
            count += 1
            bytes += entry.size ?? 0
        }
        if options.json { out.append(count == 0 ? "]\n" : "\n]\n") }
        out.flush()
        if !options.json { FileHandle.standardError.write(Data("\(count) entries, \(Output.bytes(bytes))\n".utf8)) }
    }
}
