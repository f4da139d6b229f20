import ArgumentParser
import BackupCore
import BackupEngine

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Restore backups into scratch targets, check them against what was recorded, and record the time it took.",
        discussion: """
        Redis: a scratch redis-server on 127.0.0.1 loads the backup and its keys are compared with the backup's. \
        MongoDB: the archive is verified (every CRC and count): archive-only. Exit 0 when every drill passed (or \
        is archive-only), 4 when a check failed, 1 when a drill could not run.
        """
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .customLong("source"), help: "Drill this source (repeatable; default: all).")
    var sources: [String] = []

    @Option(help: "Drill this backup (an id or unique prefix).")
    var backup: String?

    @Flag(help: "Drill the newest good backup (the default).")
    var latest = false

    @Flag(help: "Drill a good backup picked at random.")
    var random = false

    @Option(help: "Drill a backup of another host (its name in the shared off-site bucket), read from its off-site copy (never written to); recorded in this host's catalog as a drill of that host's backup, apart from its own.")
    var fromHost: String?

    func validate() throws {
        if [backup != nil, latest, random].filter({ $0 }).count > 1 {
            throw ValidationError("give one of --backup ID, --latest, --random")
        }
    }

    func run() async throws {
        let selector: DrillSelector = backup.map { .id($0) } ?? (random ? .random : .latest)
        let engine = try options.makeEngine()
        let drills: [DrillRecord]
        if let fromHost {
            drills = try await engine.drill(fromHost: fromHost, sources: sources, selector: selector)
        } else {
            drills = try await engine.drill(sources: sources, selector: selector)
        }
        if options.json {
            try Output.json(drills.map(DrillJSON.init))
        } else {
            if drills.isEmpty { print("nothing to drill") }
            for d in drills {
                print("\(d.result.rawValue.uppercased()) \(d.source) \(d.artifactID) in \(String(format: "%.2f", d.durationSeconds)) s: \(d.detail)")
            }
        }
        if drills.contains(where: { $0.result == .failed }) { throw CommandExit(status: .integrity) }
        if drills.contains(where: { $0.result == .error }) { throw CommandExit(status: .failed) }
    }
}

/// `{"artifact", "source", "result", "duration_seconds", "detail"}` (+ `id`, `started_at`).
struct DrillJSON: Encodable {
    var id: String
    var artifact: String
    var source: String
    var result: String
    var duration_seconds: Double
    var detail: String
    var started_at: String

    init(_ d: DrillRecord) {
        id = d.id
        artifact = d.artifactID
        source = d.source
        result = d.result.rawValue
        duration_seconds = (d.durationSeconds * 1000).rounded() / 1000
        detail = d.detail
        started_at = Timestamps.iso8601(d.startedAt)
    }
}
