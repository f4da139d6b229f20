import ArtifactStore
import BackupCore
import Foundation
import MongoBackup

/// Which backup to restore.
public enum BackupSelector: Sendable, Equatable {
    case id(String)
    case latest
    /// The newest good backup taken before this moment.
    case before(Date)
}

/// A MongoDB restore, as planned and then as done.
public struct MongoRestorePlan: Sendable {
    public var source: String
    public var artifact: ArtifactInfo
    /// Where it goes, password hidden.
    public var target: String
    public var renames: [(from: String, to: String)]
    public var drop: Bool
    public var dryRun: Bool
    /// Documents mongorestore must report restored (the archive's, without the oplog).
    public var expectedDocuments: Int

    public var description: [String] {
        var lines = ["restore \(source) backup \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt)), \(expectedDocuments) documents)",
                     "into \(target)"]
        for r in renames { lines.append("renaming namespaces \(r.from) -> \(r.to)") }
        if drop { lines.append("dropping each collection before restoring it (--drop)") }
        if dryRun { lines.append("dry run: mongorestore --dryRun reads the archive's prelude and writes nothing") }
        return lines
    }
}

public struct MongoRestoreResult: Sendable {
    public var plan: MongoRestorePlan
    public var restored: Int
    public var failed: Int
    public var durationSeconds: Double
}

extension BackupEngine {
    /// Chooses and verifies the artifact (sha256, gzip, archive CRCs) and says what a restore would do.
    /// Refuses an artifact that does not verify (exit 4).
    ///
    /// restore (MongoDB):
    ///   artifact = the named or latest good backup of the source
    ///   verify it fully; refuse on any mismatch
    ///   stream the decompressed archive into `mongorestore --archive` (stdin), credentials via --config
    ///   parse "N document(s) restored successfully. M document(s) failed to restore."
    ///   fail when M > 0 or N differs from the archive's count
    public func planMongoRestore(source name: String, backup: BackupSelector, toURI: String?, renames: [(String, String)],
                                 drop: Bool, dryRun: Bool) throws -> MongoRestorePlan {
        let source = try selectSources([name])[0]
        guard case .mongodb(let mongo) = source.settings else {
            throw BackupFailure("restore of \(source.kind.rawValue) sources is not available yet (source \"\(name)\")", exitStatus: .usage,
                                hint: "for Redis, decompress the artifact (gzip -dc) and follow REFERENCE §3a; a restore command comes with the restore issue")
        }
        let artifact = try selectArtifact(source: name, backup)
        let check = verifyOne(artifact)
        guard check.ok else {
            throw IntegrityError(object: "backup \(artifact.id) of \(name)", problem: "refusing to restore: \(check.detail)")
        }
        var expected = 0
        if case .object(let perNamespace)? = artifact.stats["per_namespace"] {
            expected = perNamespace.filter { $0.key != MongoArchiveVerifier.oplogNamespace }.values.compactMap(\.intValue).reduce(0, +)
        }
        let target: String
        if let toURI { target = Redaction.url(toURI) } else { target = source.location + " (the source itself)" }
        _ = mongo
        return MongoRestorePlan(source: name, artifact: artifact, target: target, renames: renames, drop: drop, dryRun: dryRun,
                                expectedDocuments: expected)
    }

    public func executeMongoRestore(_ plan: MongoRestorePlan, toURI: String?) throws -> MongoRestoreResult {
        let started = environment.clock()
        let clock = DispatchTime.now()
        do {
            return try runMongoRestore(plan, toURI: toURI)
        } catch {
            try? recordRestore(plan.artifact, mode: "mongorestore", target: plan.target, outcome: "failed", started: started,
                               seconds: Self.seconds(since: clock), detail: describe(error))
            throw error
        }
    }

    private func runMongoRestore(_ plan: MongoRestorePlan, toURI: String?) throws -> MongoRestoreResult {
        guard case .mongodb(let mongo)? = policy.source(named: plan.source)?.settings else {
            throw BackupFailure("source \(plan.source) is not a MongoDB source", exitStatus: .usage)
        }
        let base = MongoSourceBackup(policy: mongo, secrets: secretResolver(for: plan.source))
        var tools = try base.tools()
        if let toURI { tools = MongoTools(uri: Secret(toURI), timeoutSeconds: mongo.timeoutSeconds, source: plan.source) }
        var args: [String] = []
        for r in plan.renames { args += ["--nsFrom=\(r.from)", "--nsTo=\(r.to)"] }
        if plan.drop { args.append("--drop") }
        if plan.dryRun { args.append("--dryRun") }
        if plan.artifact.stats["gzip_inside"] == .bool(true) { args.append("--gzip") }
        let reader = try artifactReader(plan.artifact)
        let started = DispatchTime.now()
        let outcome = try tools.restore(command: mongo.mongorestore, arguments: args) {
            var chunk: [UInt8]?
            _ = try reader.read { chunk = Array($0) }
            return chunk
        }
        // What was streamed must be exactly what was verified.
        if reader.storedSHA256 != plan.artifact.sha256 {
            throw IntegrityError(object: repository.absolute(plan.artifact.path), problem: "the file changed while it was being restored")
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        var result = MongoRestoreResult(plan: plan, restored: 0, failed: 0, durationSeconds: seconds)
        if plan.dryRun {
            try recordRestore(plan.artifact, mode: "mongorestore", target: plan.target, outcome: "dry-run", started: Date(timeIntervalSinceNow: -seconds),
                              seconds: seconds, detail: "mongorestore --dryRun")
            return result
        }
        guard let summary = Self.restoreSummary(outcome.stderrTail) else {
            throw MongoToolError(tool: "mongorestore", problem: "exited 0 but printed no summary line", stderrTail: outcome.stderrTail,
                                 hintText: "check the mongorestore version; the data may be partly restored")
        }
        result.restored = summary.restored
        result.failed = summary.failed
        if summary.failed > 0 {
            throw MongoToolError(tool: "mongorestore", problem: "\(summary.failed) document(s) failed to restore (\(summary.restored) restored)",
                                 stderrTail: outcome.stderrTail, hintText: "duplicate keys or validation rules: restore with --drop into an empty target, or read the log above")
        }
        if summary.restored != plan.expectedDocuments {
            throw MongoToolError(tool: "mongorestore", problem: "restored \(summary.restored) documents, the archive holds \(plan.expectedDocuments)",
                                 stderrTail: outcome.stderrTail, hintText: "check the namespace filters and the target; the restore is incomplete")
        }
        logger.info("restore ok", metadata: ["source": "\(plan.source)", "artifact": "\(plan.artifact.id)", "documents": "\(summary.restored)"])
        try recordRestore(plan.artifact, mode: "mongorestore", target: plan.target, outcome: "ok", started: Date(timeIntervalSinceNow: -seconds),
                          seconds: seconds, detail: "\(summary.restored) documents restored")
        return result
    }

    /// `N document(s) restored successfully. M document(s) failed to restore.` (the last such line).
    static func restoreSummary(_ lines: [String]) -> (restored: Int, failed: Int)? {
        for line in lines.reversed() {
            guard let range = line.range(of: #"(\d+) document\(s\) restored successfully\. (\d+) document\(s\) failed to restore\."#,
                                         options: .regularExpression) else { continue }
            let numbers = line[range].split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            if numbers.count == 2 { return (numbers[0], numbers[1]) }
        }
        return nil
    }

    func selectArtifact(source: String, _ backup: BackupSelector) throws -> ArtifactInfo {
        switch backup {
        case .id(let id):
            let a = try show(id: id)
            guard a.source == source else {
                throw BackupFailure("backup \(a.id) belongs to source \"\(a.source)\", not \"\(source)\"", exitStatus: .usage)
            }
            guard a.deletedAt == nil else {
                throw BackupFailure("backup \(a.id) was removed by rotation on \(Timestamps.iso8601(a.deletedAt!))", exitStatus: .usage,
                                    hint: "pick another one: kaleem-backup list --source \(source)")
            }
            return a
        case .before(let date):
            guard let a = try catalog().artifacts(source: source, status: .ok).first(where: { $0.createdAt < date }) else {
                throw BackupFailure("source \"\(source)\" has no good backup taken before \(Timestamps.iso8601(date))", exitStatus: .failed,
                                    hint: "see what exists: kaleem-backup list --source \(source)")
            }
            return a
        case .latest:
            guard let a = try catalog().artifacts(source: source, status: .ok, limit: 1).first else {
                throw BackupFailure("source \"\(source)\" has no good backup to restore", exitStatus: .failed,
                                    hint: "take one: kaleem-backup backup --source \(source)")
            }
            return a
        }
    }
}
