import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup: MongoDB through mongorestore; Redis as a file (--to-dir) or into a live server (--to-url); a bucket snapshot into a bucket.",
        discussion: """
        The backup is verified first (sha256, gzip, format); a backup that does not verify is refused (exit 4). \
        The plan is printed; writing over a live target needs --yes; --dry-run changes nothing. Every restore \
        is recorded in the catalog.
        """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The source to restore (a name from the policy).")
    var source: String

    @Option(help: "The backup to restore (an id or unique prefix).")
    var backup: String?

    @Flag(help: "Restore the newest good backup of the source.")
    var latest = false

    @Option(help: "Restore the newest good backup taken before this time (ISO 8601).")
    var before: String?

    @Option(help: "Redis, file mode: install the RDB into this directory (the server's `dir`).")
    var toDir: String?

    @Option(help: "Redis, file mode: the file name (the server's `dbfilename`).")
    var dbfilename = "dump.rdb"

    @Option(help: "Redis, file mode: check this server's dir, dbfilename and appendonly first (redis://…).")
    var serverURL: String?

    @Option(help: "Redis, online mode: replace all the data of this live server (redis://…).")
    var toURL: String?

    @Option(help: "Redis, online mode: the address the target uses to reach the scratch server.")
    var listen = "127.0.0.1"

    @Option(help: "Restore into this MongoDB instead of the source's own (mongodb://…).")
    var toURI: String?

    @Option(help: "Rename namespaces from this pattern (e.g. 'app.*'); pairs with --ns-to. Repeatable.")
    var nsFrom: [String] = []

    @Option(help: "…to this pattern (e.g. 'drill_app.*').")
    var nsTo: [String] = []

    @Flag(help: "Drop each collection before restoring it.")
    var drop = false

    @Option(help: "Bucket snapshot: the bucket of the snapshot to restore (required when it holds several).")
    var bucket: String?

    @Option(help: "Bucket snapshot: restore into this bucket (default: the same name; created if missing).")
    var toBucket: String?

    @Option(help: "Bucket snapshot: restore to this S3 endpoint instead of the source's (http://host:port).")
    var endpoint: String?

    @Flag(help: "Bucket snapshot: delete objects of the target that the snapshot does not hold.")
    var deleteExtra = false

    @Flag(help: "Show what would happen; write nothing.")
    var dryRun = false

    @Flag(help: "Confirm writing into the target.")
    var yes = false

    func validate() throws {
        if [backup != nil, latest, before != nil].filter({ $0 }).count != 1 {
            throw ValidationError("name the backup with one of --backup ID, --latest, --before TIME")
        }
        if let before, Timestamps.parseISO8601(before) == nil { throw ValidationError("--before \(before) is not an ISO 8601 time") }
        if toDir != nil && toURL != nil { throw ValidationError("--to-dir (file mode) and --to-url (online mode) exclude each other") }
        if nsFrom.count != nsTo.count { throw ValidationError("--ns-from and --ns-to come in pairs") }
        if let toURI, !(toURI.hasPrefix("mongodb://") || toURI.hasPrefix("mongodb+srv://")) {
            throw ValidationError("--to-uri must be a mongodb:// connection string")
        }
    }

    var selector: BackupSelector {
        if let backup { return .id(backup) }
        if let before, let date = Timestamps.parseISO8601(before) { return .before(date) }
        return .latest
    }

    func run() throws {
        let engine = try options.makeEngine()
        switch engine.policy.source(named: source)?.kind {
        case .redis?:
            try runRedis(engine)
            return
        case .s3?:
            try runBucket(engine)
            return
        default:
            break
        }
        let plan = try engine.planMongoRestore(source: source, backup: selector, toURI: toURI,
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

extension RestoreCommand {
    func runRedis(_ engine: BackupEngine) throws {
        let target: RedisRestoreTarget
        if let toDir {
            target = .directory(path: toDir, dbfilename: dbfilename, serverURL: serverURL)
        } else if let toURL {
            target = .online(url: toURL)
        } else {
            throw BackupFailure("a Redis restore needs --to-dir DIR (file mode) or --to-url redis://… (online mode)", exitStatus: .usage,
                                hint: "file mode for a server whose data directory you can reach; online mode for one in a container")
        }
        let json = options.json
        let result = try engine.restoreRedis(source: source, backup: selector, target: target, dryRun: dryRun, confirmed: yes,
                                             listen: listen) { lines in if !json { for l in lines { print(l) } } }
        if json {
            try Output.json(RedisRestoreJSON(source: source, artifact: result.artifact.id, target: result.target, dry_run: dryRun,
                                             steps: result.steps, warnings: result.warnings,
                                             duration_seconds: (result.durationSeconds * 1000).rounded() / 1000))
        } else {
            for (i, step) in result.steps.enumerated() { print("\(i + 1). \(step)") }
        }
    }
}

extension RestoreCommand {
    func runBucket(_ engine: BackupEngine) throws {
        let json = options.json
        let request = BucketRestoreRequest(source: source, backup: selector, bucket: bucket, toBucket: toBucket, endpoint: endpoint,
                                           deleteExtra: deleteExtra, dryRun: dryRun, confirmed: yes)
        let outcome = try engine.restoreBucket(request) { lines in if !json { for l in lines { print(l) } } }
        if json {
            try Output.json(BucketRestoreJSON(source: source, artifact: outcome.artifact.id, bucket: outcome.plan.sourceBucket,
                                              target: outcome.plan.targetBucket, endpoint: outcome.endpoint, dry_run: dryRun,
                                              uploaded: outcome.result?.uploaded ?? 0, unchanged: outcome.plan.unchanged,
                                              deleted: outcome.result?.deleted ?? 0, planned_uploads: outcome.plan.upload.count,
                                              planned_deletes: deleteExtra ? outcome.plan.extra.count : 0,
                                              requests: outcome.result?.requests ?? 0,
                                              duration_seconds: (outcome.durationSeconds * 1000).rounded() / 1000))
        } else if dryRun {
            print("dry run completed: nothing was written")
        } else if let r = outcome.result {
            print("restored bucket \(outcome.plan.targetBucket): \(r.uploaded) uploaded, \(outcome.plan.unchanged) unchanged, \(r.deleted) deleted in \(String(format: "%.1f", outcome.durationSeconds)) s")
        }
    }
}

struct BucketRestoreJSON: Encodable {
    var source: String
    var artifact: String
    var bucket: String
    var target: String
    var endpoint: String
    var dry_run: Bool
    var uploaded: Int
    var unchanged: Int
    var deleted: Int
    var planned_uploads: Int
    var planned_deletes: Int
    var requests: Int
    var duration_seconds: Double
}

struct RedisRestoreJSON: Encodable {
    var source: String
    var artifact: String
    var target: String
    var dry_run: Bool
    var steps: [String]
    var warnings: [String]
    var duration_seconds: Double
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
