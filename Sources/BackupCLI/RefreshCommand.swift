import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct RefreshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh",
        abstract: "Replace this host's live stores with another host's newest good backups (staging from production), as a drill of them.",
        discussion: """
        Reads the other host's catalog copy and backups from the shared off-site bucket (never writing there), \
        restores the newest good backup of each source into THIS host's source of the same name (its live store, \
        all its data replaced), checks the counts against the backup's, records a drill of the other host's backup \
        (with its duration, the RTO) in this host's catalog, leaves a receipt under this host's off-site directory \
        (refreshes/HOST/ID.json, which fleet status reads) and notifies. Only sources a refresh: entry of the \
        policy's schedules names for that host (the policy's consent), and only with --yes. A source's scrub: command runs on the restored data before the live \
        store takes it (Redis: against the scratch server; MongoDB: after the restore). Exit 0 when every source \
        passed, 4 when a backup did not check out, 1 when a source could not be refreshed (no good backup, a \
        server down, a restored count the target disagrees with, a scrub that failed), 2 when refused (nothing \
        touched).
        """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "The host whose backups are restored here (its name in the shared off-site bucket).")
    var fromHost: String

    @Option(name: .customLong("source"), help: "Refresh this source (repeatable; default: every source the policy's refresh: entries name for --from-host).")
    var sources: [String] = []

    @Flag(help: "Replace the live data (required).")
    var yes = false

    func run() async throws {
        let engine = try options.makeEngine()
        let result = try await engine.refresh(fromHost: fromHost, sources: sources, confirmed: yes)
        if options.json {
            try Output.json(result)
        } else {
            for s in result.sources {
                print("\(s.result.uppercased()) \(s.source) \(s.artifact.isEmpty ? "-" : s.artifact) of \(result.from_host) in \(String(format: "%.2f", s.duration_seconds)) s: \(s.detail)")
            }
            if let receipt = result.receipt { print("receipt: \(receipt)") }
            if let problem = result.receipt_error { print("receipt not written: \(problem)") }
        }
        if result.sources.contains(where: { $0.result == DrillResult.failed.rawValue }) { throw CommandExit(status: .integrity) }
        if result.sources.contains(where: { $0.result == DrillResult.error.rawValue }) { throw CommandExit(status: .failed) }
    }
}
