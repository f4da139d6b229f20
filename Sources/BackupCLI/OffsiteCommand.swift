import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct OffsiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "offsite",
        abstract: "Work with the off-site copy's layout.",
        subcommands: [OffsiteMigrateCommand.self]
    )
}

struct OffsiteMigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move an off-site copy made before hosts had their own directory under <prefix>/<host>/.",
        discussion: """
        Since #38 every host writes its off-site copy under <prefix>/<host>/ (the policy's host:, default the \
        machine's host name), so several hosts can share one bucket. A copy written before (<prefix>/catalog/, \
        <prefix>/<source>/…, <prefix>/packages/) is found by every run (a warning) and by policy check --connect. \
        This command copies the files of this policy's sources, its catalog copy and packages to \
        <prefix>/<host>/ (each checked: size and sha256), and only when all are there removes the old ones. \
        It takes the repository's lock; interrupted, run it again (copied files are skipped, nothing was removed). \
        Exit 0 when done (or nothing to do).
        """
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Count the files of the old layout; copy and remove nothing.")
    var dryRun = false

    @Flag(help: "Required to move anything (or use --dry-run first).")
    var yes = false

    func validate() throws {
        if !dryRun && !yes { throw ValidationError("offsite migrate moves the off-site copy: add --yes (or --dry-run to see what it would do)") }
    }

    func run() async throws {
        let result = try await options.makeEngine().migrateOffsite(dryRun: dryRun)
        if options.json {
            try Output.json(result)
        } else if result.files == 0 {
            print("nothing to migrate: \(result.from) holds no off-site copy of the old layout for this policy's sources; this host writes to \(result.to)")
        } else if result.dryRun {
            print("\(result.files) file(s) of the old layout at \(result.from) would move to \(result.to) (run again with --yes)")
        } else {
            print("\(result.files) file(s) moved from \(result.from) to \(result.to) (\(result.copied) copied, the others were there already; \(result.removed) removed from the old layout)")
        }
    }
}
