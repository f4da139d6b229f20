import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct RestoreCommand: AsyncParsableCommand {
    /// `KIND OPTIONS:` laid out as argument-parser lays out OPTIONS (the name in 2–24, the help from column 26,
    /// wrapped to `width`), one block per kind: appended after OPTIONS in `restore --help` (ExitCodeMapping).
    static func kindOptionsHelp(width: Int = 80) -> String {
        var out = ""
        for section in SourceKinds.restoreSections {
            out += "\n\(section.kind.uppercased()) SOURCE OPTIONS:\n"
            for line in TableLayout.wrapText(section.summary, width: width - 2) { out += "  \(line)\n" }
            if section.options.isEmpty { out += "  (none)\n" }
            for spec in section.options {
                let help = spec.help + (spec.defaultValue.map { " (default: \($0))" } ?? "")
                let name = "  " + (help.contains("repeatable") ? spec.usage.replacingOccurrences(of: " (repeatable)", with: "") : spec.usage)
                out += TableLayout.optionLines(name, help: help, width: width)
            }
        }
        return out
    }

    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "restore",
            abstract: "Restore a backup of a source; each kind of source takes options of its own (below).",
            discussion: """
            The backup is verified first (sha256, gzip, format); a backup that does not verify is refused (exit 4). \
            The plan is printed; writing over a live target needs --yes; --dry-run changes nothing. Every restore \
            is recorded in the catalog. The options of each kind of source are listed after OPTIONS.
            Exit codes: 0 restored (or planned, with --dry-run), 1 failed, 2 usage or policy error (a target that \
            needs --yes), 4 the backup does not verify, 11 another run holds the repository lock.
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
        let outcome: RestoreOutcome
        if let fromHost {
            outcome = try await engine.restore(fromHost: fromHost, request, kindArguments: kindOptions, plan: show)
        } else {
            outcome = try await engine.restore(request, kindArguments: kindOptions, plan: show)
        }
        if json {
            try Output.json(outcome)
        } else {
            for line in outcome.lines { print(line) }
        }
    }
}
