import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into its source or another target (MongoDB: through mongorestore).",
        discussion: """
        The backup is verified first (sha256, gzip, archive CRCs); a backup that does not verify is refused \
        (exit 4). The plan is printed; writing into a live database needs --yes; --dry-run changes nothing.
        """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The source to restore (a name from the policy).")
    var source: String

    @Option(help: "The backup to restore (an id or unique prefix).")
    var backup: String?

    @Flag(help: "Restore the newest good backup of the source.")
    var latest = false

    @Option(help: "Restore into this MongoDB instead of the source's own (mongodb://…).")
    var toURI: String?

    @Option(help: "Rename namespaces from this pattern (e.g. 'app.*'); pairs with --ns-to. Repeatable.")
    var nsFrom: [String] = []

    @Option(help: "…to this pattern (e.g. 'drill_app.*').")
    var nsTo: [String] = []

    @Flag(help: "Drop each collection before restoring it.")
    var drop = false

    @Flag(help: "Show what would happen; write nothing.")
    var dryRun = false

    @Flag(help: "Confirm writing into the target.")
    var yes = false

    func validate() throws {
        if (backup == nil) == !latest { throw ValidationError("name the backup with --backup ID, or give --latest") }
        if nsFrom.count != nsTo.count { throw ValidationError("--ns-from and --ns-to come in pairs") }
        if let toURI, !(toURI.hasPrefix("mongodb://") || toURI.hasPrefix("mongodb+srv://")) {
            throw ValidationError("--to-uri must be a mongodb:// connection string")
        }
    }

    func run() throws {
        let engine = try options.makeEngine()
        let plan = try engine.planMongoRestore(source: source, backup: backup.map { .id($0) } ?? .latest, toURI: toURI,
                                               renames: Array(zip(nsFrom, nsTo)), drop: drop, dryRun: dryRun)
        if !options.json { for line in plan.description { print(line) } }
        if !dryRun && !yes {
            throw BackupFailure("restoring writes into \(plan.target); refusing without --yes", exitStatus: .usage,
                                hint: "read the plan above, then run the same command with --yes (or --dry-run to rehearse)")
        }
        let result = try engine.executeMongoRestore(plan, toURI: toURI)
        if options.json {
            try Output.json(RestoreJSON(result))
        } else if dryRun {
            print("dry run completed: nothing was written")
        } else {
            print("restored \(result.restored) documents in \(String(format: "%.1f", result.durationSeconds)) s")
        }
    }
}

struct RestoreJSON: Encodable {
    var source: String
    var artifact: String
    var target: String
    var dry_run: Bool
    var restored: Int
    var failed: Int
    var expected: Int
    var duration_seconds: Double

    init(_ r: MongoRestoreResult) {
        source = r.plan.source
        artifact = r.plan.artifact.id
        target = r.plan.target
        dry_run = r.plan.dryRun
        restored = r.restored
        failed = r.failed
        expected = r.plan.expectedDocuments
        duration_seconds = (r.durationSeconds * 1000).rounded() / 1000
    }
}
