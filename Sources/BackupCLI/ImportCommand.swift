import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Adopt backups made before kaleem-backup (the operations document's redis-*.rdb, mongo-*.archive.gz, mongodb-*/).",
        discussion: """
        Each path is streamed through the backup pipeline (compressed, checksummed, verified in its own format) \
        and recorded as a backup of the policy's source of its kind (--source when there are several), dated from \
        its name (YYYYMMDD[-HHMMSS], in the retention time zone) or --taken, so it lists, restores, drills and \
        rotates like the rest. The originals are never changed or removed. Already imported files are skipped. \
        An RDB file (REDIS…) goes to a redis source; a mongodump archive (plain or gzipped) or a mongodump --out \
        directory to a mongodb source.
        """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "The source the backups belong to (needed when the policy has several of that kind).")
    var source: String?

    @Option(help: "When the backups were taken (one time for every path): \(TimeExpression.help).")
    var taken: String?

    @Flag(help: "Say what would be imported; write nothing.")
    var dryRun = false

    @Argument(help: "Files and directories to import.")
    var paths: [String]

    func validate() throws {
        if paths.isEmpty { throw ValidationError("name at least one file or directory to import") }
        if let taken, TimeExpression.parse(taken, now: Date(), timeZone: .current) == nil {
            throw ValidationError("--taken \(taken) is not a time: give \(TimeExpression.help)")
        }
    }

    func run() async throws {
        let engine = try options.makeEngine()
        let zone = TimeZone(identifier: engine.policy.retention.timeZone) ?? .current
        let items = try await engine.importBackups(paths, source: source, takenAt: taken.flatMap { TimeExpression.parse($0, now: Date(), timeZone: zone) },
                                                   dryRun: dryRun)
        if options.json {
            try Output.json(items.map(ImportJSON.init))
        } else {
            for item in items {
                if let skipped = item.skipped {
                    print("\(item.path): \(skipped)")
                } else if let a = item.artifact, a.status == .ok {
                    print("\(item.path): imported as \(a.id) (\(a.source), taken \(Timestamps.iso8601(a.createdAt)), \(Output.bytes(a.bytesStored)))")
                } else {
                    print("\(item.path): FAILED: \(item.error ?? "unknown")")
                }
            }
            if items.contains(where: { $0.artifact?.status == .ok }) {
                print("\nretention applies to imported backups at the next rotation (`kaleem-backup rotate --dry-run` shows what it would keep; `pin` keeps one)")
            }
        }
        let failed = items.filter { $0.artifact != nil && $0.artifact?.status != .ok }
        guard !failed.isEmpty else { return }
        let written = items.filter { $0.artifact != nil }
        if failed.count < written.count { throw CommandExit(status: .partial) }
        throw CommandExit(status: failed.allSatisfy { $0.failure == .integrity } ? .integrity : .failed)
    }
}

struct ImportJSON: Encodable {
    var path: String
    var source: String?
    var taken_at: String?
    var id: String?
    var status: String
    var detail: String?

    init(_ item: ImportItem) {
        path = item.path
        source = item.source
        taken_at = item.takenAt.map(Timestamps.iso8601)
        id = item.artifact?.id
        if let skipped = item.skipped {
            status = "skipped"
            detail = skipped
        } else if let a = item.artifact, a.status == .ok {
            status = "ok"
        } else {
            status = "failed"
            detail = item.error
        }
    }
}
