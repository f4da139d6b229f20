import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct RestoreCommand: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "restore",
            abstract: "Restore a backup of a source; each kind of source takes options of its own (below).",
            discussion: """
            The backup is verified first (sha256, gzip, format); a backup that does not verify is refused (exit 4). \
            The plan is printed; writing over a live target needs --yes; --dry-run changes nothing. Every restore \
            is recorded in the catalog.

            OPTIONS OF EACH KIND OF SOURCE

            \(SourceKinds.restoreHelp)
            """
        )
    }

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The source to restore (a name from the policy).")
    var source: String

    @Option(help: "The backup to restore (an id or unique prefix).")
    var backup: String?

    @Flag(help: "Restore the newest good backup of the source.")
    var latest = false

    @Option(help: "Restore the newest good backup taken before this time: \(TimeExpression.help).")
    var before: String?

    @Flag(help: "Show what would happen; write nothing.")
    var dryRun = false

    @Flag(help: "Confirm writing into the target.")
    var yes = false

    @Option(help: "Restore a backup of another host (its name in the shared off-site bucket, see fleet status): read from its off-site copy, never written to; restored into the targets named here.")
    var fromHost: String?

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The options of the source's kind (see below).", valueName: "kind-options"))
    var kindOptions: [String] = []

    func validate() throws {
        if [backup != nil, latest, before != nil].filter({ $0 }).count != 1 {
            throw ValidationError("name the backup with one of --backup ID, --latest, --before TIME")
        }
        if let before, TimeExpression.parse(before, now: Date(), timeZone: .current) == nil {
            throw ValidationError("--before \(before) is not a time: give \(TimeExpression.help)")
        }
    }

    func selector(_ policy: Policy) -> BackupSelector {
        if let backup { return .id(backup) }
        let zone = TimeZone(identifier: policy.retention.timeZone) ?? .current
        if let before, let date = TimeExpression.parse(before, now: Date(), timeZone: zone) { return .before(date) }
        return .latest
    }

    func run() async throws {
        let engine = try options.makeEngine()
        let json = options.json
        let request = RestoreRequest(source: source, backup: selector(engine.policy), dryRun: dryRun, confirmed: yes)
        let show: ([String]) -> Void = { lines in if !json { for line in lines { print(line) } } }
        let outcome: (lines: [String], json: any Encodable)
        if let fromHost {
            outcome = try await engine.restore(fromHost: fromHost, request, kindArguments: kindOptions, plan: show)
        } else {
            outcome = try await engine.restore(request, kindArguments: kindOptions, plan: show)
        }
        if json {
            try Output.json(outcome.json)
        } else {
            for line in outcome.lines { print(line) }
        }
    }
}
