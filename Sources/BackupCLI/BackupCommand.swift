import ArgumentParser
import BackupCore
import BackupEngine

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up every source of the policy (or the named ones) as one run.",
        discussion: "Exit 0 when every source succeeded, 3 when some failed, 1 when all failed, 11 when another run holds the lock."
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .customLong("source"), help: "Back up only this source (repeatable).")
    var sources: [String] = []

    @Option(help: "Why this run happens: any label ([a-z0-9][a-z0-9._-]*); nightly, manual and pre-deploy have a meaning.")
    var tag: RunTag = .manual

    @Option(help: "The release this backup belongs to (e.g. an image tag).")
    var release: String?

    func validate() throws {
        if tag == .preDeploy && release == nil {
            throw ValidationError("--tag pre-deploy needs --release (the release this restore point belongs to)")
        }
    }

    func run() async throws {
        let result = try await options.makeEngine().backup(sources: sources, tag: tag, release: release)
        // --quiet (cron): nothing at all on success, so that cron mails only when something is wrong.
        let silent = options.quiet && result.exitStatus == .ok && result.offsiteFailures.isEmpty && result.rotationSkipped == nil
        if options.json {
            try Output.json(BackupResultJSON(result))
        } else if !silent {
            print("run \(result.run.id): \(result.run.status.rawValue) (tag \(result.run.tag.rawValue)\(result.run.release.map { ", release \($0)" } ?? ""))")
            Output.artifactTable(result.artifacts)
            for r in result.rotations {
                print("rotation \(r.source): kept \(r.plan.keep.count), removed \(r.removed.count)"
                      + (r.plan.heldBack.map { " (held back: \($0))" } ?? ""))
            }
            if let skipped = result.rotationSkipped { print("rotation skipped: \(skipped)") }
        }
        if result.exitStatus != .ok { throw CommandExit(status: result.exitStatus) }
    }
}

extension RunTag: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
}
