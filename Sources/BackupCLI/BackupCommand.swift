import ArgumentParser
import BackupCore
import BackupEngine

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up every source of the policy (or the named ones) as one run.",
        discussion: """
        Exit codes: 0 every source backed up; 1 every source failed (or the run could not start); 2 usage or \
        policy error; 3 some sources failed (partial); 4 a backup did not verify (integrity); 11 another run \
        holds the repository lock. A failed source is said with a Try: line on stderr.
        """
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .customLong("source"), help: "Back up only this source (repeatable).")
    var sources: [String] = []

    @Option(help: "Why this run happens: any label ([a-z0-9][a-z0-9._-]*); nightly, manual and pre-deploy have a meaning.")
    var tag: RunTag = .manual

    @Option(help: "The release this backup belongs to (e.g. an image tag).")
    var release: String?

    func validate() throws {
        try validateRelease(release)
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
        Self.sayHints(result, options: options)
        if result.exitStatus != .ok { throw CommandExit(status: result.exitStatus) }
    }
}

extension BackupCommand {
    /// `Try (redis): …` on stderr for each source that failed (the error itself is already logged and in the
    /// table): what to do next, from the error (a refused connection, a full disk) or where to look.
    static func sayHints(_ result: BackupResult, options: GlobalOptions) {
        for a in result.artifacts where a.status != .ok {
            guard let hint = result.hints[a.id] else { continue }
            if options.logFormat == .json {
                options.say(.error, "", "what to try for source \(a.source)", ["source": "\(a.source)", "artifact": "\(a.id)", "try": "\(hint)"])
            } else {
                options.say(.error, "Try (\(a.source)): ", hint)
            }
        }
    }
}

extension RunTag: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
}
