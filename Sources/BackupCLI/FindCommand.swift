import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct FindCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "find",
        abstract: "Which good backups hold a key, object or file matching a pattern, newest first.",
        discussion: "PATTERN is a glob with SCAN MATCH rules, matched against whole paths: use *name* to find a part.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "A glob (SCAN MATCH rules) matched against keys, object keys, file paths, namespaces, collections.")
    var pattern: String

    @Option(help: "Only backups of this source.")
    var source: String?

    func run() async throws {
        let engine = try options.makeEngine()
        let found = try await engine.find(pattern, source: source)
        if options.json {
            try Output.json(found.map { f in
                FoundJSON(id: f.artifact.id, source: f.artifact.source, kind: f.artifact.kind.rawValue,
                          created_at: Timestamps.iso8601(f.artifact.createdAt), matches: f.matches,
                          sample: f.sample.map(DiffJSON.Entry.init))
            })
            return
        }
        if found.isEmpty { print("no good backup holds anything matching \(String(reflecting: pattern))") }
        for f in found {
            print("\(f.artifact.id)  \(f.artifact.source)  \(Timestamps.iso8601(f.artifact.createdAt))  \(f.matches) match(es): "
                  + f.sample.map { PeerText.escape($0.path) }.joined(separator: ", ") + (f.matches > f.sample.count ? ", …" : ""))
        }
    }
}

struct FoundJSON: Encodable {
    var id: String
    var source: String
    var kind: String
    var created_at: String
    var matches: Int
    var sample: [DiffJSON.Entry]
}
