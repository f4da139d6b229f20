// MongoDB restores through mongorestore: the archive is verified, the plan printed, the decompressed archive
// streamed into `mongorestore --archive` and its summary checked against the archive's counts.
import ArtifactStore
import BackupCore
import Foundation
import MongoBackup

/// A MongoDB restore, as planned and then as done.
public struct MongoRestorePlan: Sendable {
    public var source: String
    public var artifact: ArtifactInfo
    /// Where it goes, password hidden.
    public var target: String
    public var renames: [(from: String, to: String)]
    public var drop: Bool
    public var dryRun: Bool
    /// `--ns-include` / `--ns-exclude` patterns (mongorestore's `--nsInclude` / `--nsExclude`).
    public var include: [String] = []
    public var exclude: [String] = []
    /// The namespaces that will be restored, with their document counts (oplog never: it is not replayed).
    public var namespaces: [(name: String, documents: Int)] = []
    /// Oplog entries in the archive (`mongodump --oplog`).
    public var oplogEntries = 0
    /// `mongorestore --oplogReplay`: the oplog is replayed after the documents, so the data lands as of the end
    /// of the dump (one consistent instant), not a mix of each collection's moment.
    public var oplogReplay = false
    /// Why an archive's oplog is not replayed, when it is not.
    public var oplogNotReplayed: String?
    /// Documents mongorestore must report restored (those of `namespaces`).
    public var expectedDocuments: Int

    public var description: [String] {
        let oplog = oplogEntries == 0 ? ""
            : oplogReplay ? ", then \(oplogEntries) oplog entries replayed (--oplogReplay: the data as of the end of the dump)"
            : ", and \(oplogEntries) oplog entries that are not replayed (\(oplogNotReplayed ?? "--no-oplog-replay"))"
        var lines = ["restore \(source) backup \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt))): \(expectedDocuments) documents in \(namespaces.count) namespaces\(oplog)",
                     "into \(target)"]
        for ns in namespaces { lines.append("  \(ns.name): \(ns.documents) documents") }
        if !include.isEmpty { lines.append("only namespaces matching \(include.joined(separator: ", ")) (--ns-include)") }
        if !exclude.isEmpty { lines.append("leaving out namespaces matching \(exclude.joined(separator: ", ")) (--ns-exclude)") }
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
    /// mongorestore ran with an unacknowledged write concern (w=0): it counted nothing, nothing was compared.
    public var unverified = false
    /// Oplog entries mongorestore said it applied (`--oplogReplay`).
    public var oplogApplied: Int?
}

extension MongoAdapter {
    var restoreOptions: [RestoreOptionSpec] {
        [
            RestoreOptionSpec("to-uri", value: "URI", help: "restore into this MongoDB instead of the source's own (mongodb://…)"),
            RestoreOptionSpec("ns-from", value: "PATTERN", help: "rename namespaces from this pattern (e.g. 'app.*'); pairs with --ns-to", repeatable: true),
            RestoreOptionSpec("ns-to", value: "PATTERN", help: "…to this pattern (e.g. 'drill_app.*')", repeatable: true),
            RestoreOptionSpec("ns-include", value: "PATTERN", help: "restore only the namespaces matching (e.g. 'kaleem.users', 'kaleem.*'); mongorestore --nsInclude", repeatable: true),
            RestoreOptionSpec("ns-exclude", value: "PATTERN", help: "leave out the namespaces matching; mongorestore --nsExclude", repeatable: true),
            RestoreOptionSpec("drop", help: "drop each collection before restoring it"),
            RestoreOptionSpec("oplog-replay", help: "replay the archive's oplog after the documents (mongorestore --oplogReplay); the default for an archive taken with oplog: true and no namespace filter or rename"),
            RestoreOptionSpec("no-oplog-replay", help: "restore the documents only, leaving an archive's oplog unreplayed"),
        ]
    }

    func restore(_ source: SourcePolicy, _ request: RestoreRequest, context: SourceContext, plan printPlan: ([String]) -> Void) async throws -> RestoreOutcome {
        let o = request.options
        let from = o.values("ns-from"), to = o.values("ns-to")
        if from.count != to.count { throw BackupFailure("--ns-from and --ns-to come in pairs", exitStatus: .usage) }
        let toURI = o.value("to-uri")
        if let toURI, !(toURI.hasPrefix("mongodb://") || toURI.hasPrefix("mongodb+srv://")) {
            throw BackupFailure("--to-uri must be a mongodb:// connection string", exitStatus: .usage)
        }
        var plan = try await planRestore(source, backup: request.backup, toURI: toURI, renames: Array(zip(from, to)), drop: o.flag("drop"),
                                   dryRun: request.dryRun, context: context, include: o.values("ns-include"), exclude: o.values("ns-exclude"))
        if plan.namespaces.isEmpty {
            throw BackupFailure("no namespace of backup \(plan.artifact.id) matches the --ns-include/--ns-exclude patterns", exitStatus: .usage,
                                hint: "its namespaces are: \(Self.namespaces(of: plan.artifact).map(\.name).joined(separator: ", "))")
        }
        plan.dryRun = request.dryRun
        try Self.chooseOplogReplay(&plan, asked: o.flag("oplog-replay"), refused: o.flag("no-oplog-replay"))
        printPlan(plan.description)
        if !request.dryRun && !request.confirmed {
            throw BackupFailure("restoring writes into \(plan.target); refusing without --yes", exitStatus: .usage,
                                hint: "read the plan above, then run the same command with --yes (or --dry-run to rehearse)")
        }
        let result = try await executeRestore(plan, source: source, toURI: toURI, context: context)
        let seconds = String(format: "%.1f", result.durationSeconds)
        let line = request.dryRun ? "dry run completed: nothing was written"
            : result.unverified ? "sent \(plan.expectedDocuments) documents in \(seconds) s, NOT verified: the target's write concern is unacknowledged (w=0), so mongorestore counted nothing; check the target, or restore again with w=1 or majority in the connection string"
            : "restored \(result.restored) documents in \(seconds) s" + (result.oplogApplied.map { ", then replayed the oplog (\($0) entries applied)" } ?? "")
        return RestoreOutcome(lines: [line], json: RestoreJSON(result))
    }

    /// Chooses and verifies the artifact (sha256, gzip, archive CRCs) and says what a restore would do.
    /// Refuses an artifact that does not verify (exit 4).
    ///
    /// restore (MongoDB):
    ///   artifact = the named or latest good backup of the source
    ///   verify it fully; refuse on any mismatch
    ///   stream the decompressed archive into `mongorestore --archive` (stdin), credentials via --config
    ///   parse "N document(s) restored successfully. M document(s) failed to restore."
    ///   fail when M > 0 or N differs from the archive's count
    func planRestore(_ source: SourcePolicy, backup: BackupSelector, toURI: String?, renames: [(String, String)],
                     drop: Bool, dryRun: Bool, context: SourceContext, include: [String] = [], exclude: [String] = []) async throws -> MongoRestorePlan {
        let name = source.name
        let artifact = try await context.verifiedForRestore(source: name, backup)
        let selected = Self.namespaces(of: artifact).filter { ns in
            (include.isEmpty || include.contains { Self.matches($0, ns.name) }) && !exclude.contains { Self.matches($0, ns.name) }
        }
        let target: String
        if let toURI { target = Redaction.url(toURI) } else { target = source.location + " (the source itself)" }
        var plan = MongoRestorePlan(source: name, artifact: artifact, target: target, renames: renames, drop: drop, dryRun: dryRun,
                                    expectedDocuments: selected.map(\.documents).reduce(0, +))
        plan.include = include
        plan.exclude = exclude
        plan.namespaces = selected
        plan.oplogEntries = artifact.stats["per_namespace"]?[MongoArchiveVerifier.oplogNamespace]?.intValue ?? 0
        return plan
    }

    /// Whether the oplog is replayed: by default whenever the archive holds one and mongorestore can replay it.
    /// mongorestore refuses `--oplogReplay` beside `--nsInclude`, `--nsExclude` or `--nsFrom` (restore.go's
    /// ParseAndValidateOptions: "cannot use --oplogReplay with includes/excludes/namespace renames specified"):
    /// asked for explicitly there, it is refused up front; by default it is left out and the plan says why.
    static func chooseOplogReplay(_ plan: inout MongoRestorePlan, asked: Bool, refused: Bool) throws {
        if asked && refused { throw BackupFailure("--oplog-replay and --no-oplog-replay contradict each other", exitStatus: .usage) }
        if asked && plan.oplogEntries == 0 {
            throw BackupFailure("backup \(plan.artifact.id) holds no oplog to replay (it was not taken with oplog: true)", exitStatus: .usage,
                                hint: "restore it without --oplog-replay; set oplog: true on the source for point-in-time dumps")
        }
        let filtered = !plan.include.isEmpty || !plan.exclude.isEmpty || !plan.renames.isEmpty
        if asked && filtered {
            throw BackupFailure("mongorestore cannot replay an oplog into a filtered or renamed restore (--ns-include, --ns-exclude, --ns-from)", exitStatus: .usage,
                                hint: "restore the whole archive to replay its oplog, or leave out --oplog-replay")
        }
        guard plan.oplogEntries > 0 else { return }
        if refused {
            plan.oplogNotReplayed = "--no-oplog-replay"
        } else if filtered {
            plan.oplogNotReplayed = "mongorestore replays an oplog only into a whole, unrenamed restore"
        } else {
            plan.oplogReplay = true
        }
    }

    /// The archive's namespaces (the oplog left out) with their document counts, as recorded at backup time.
    static func namespaces(of artifact: ArtifactInfo) -> [(name: String, documents: Int)] {
        guard case .object(let perNamespace)? = artifact.stats["per_namespace"] else { return [] }
        return perNamespace.filter { $0.key != MongoArchiveVerifier.oplogNamespace }
            .map { ($0.key, $0.value.intValue ?? 0) }.sorted { $0.0 < $1.0 }
    }

    /// mongorestore's namespace patterns: `*` matches any run of characters, `\*` a literal `*`.
    static func matches(_ pattern: String, _ namespace: String) -> Bool {
        var parts: [String] = [""]
        var escaped = false
        for ch in pattern {
            if escaped { parts[parts.count - 1].append(ch); escaped = false; continue }
            if ch == "\\" { escaped = true; continue }
            if ch == "*" { parts.append("") } else { parts[parts.count - 1].append(ch) }
        }
        if parts.count == 1 { return namespace == parts[0] }
        guard namespace.hasPrefix(parts[0]), namespace.hasSuffix(parts.last!),
              namespace.count >= parts[0].count + parts.last!.count else { return false }
        var rest = Substring(namespace.dropFirst(parts[0].count).dropLast(parts.last!.count))
        for middle in parts.dropFirst().dropLast() where !middle.isEmpty {
            guard let r = rest.range(of: middle) else { return false }
            rest = rest[r.upperBound...]
        }
        return true
    }

    func executeRestore(_ plan: MongoRestorePlan, source: SourcePolicy, toURI: String?, context: SourceContext) async throws -> MongoRestoreResult {
        let started = context.now()
        let clock = DispatchTime.now()
        do {
            return try await runRestore(plan, source: source, toURI: toURI, context: context)
        } catch {
            try? context.recordRestore(plan.artifact, mode: "mongorestore", target: plan.target, outcome: "failed", started: started,
                                       seconds: SourceContext.seconds(since: clock), detail: context.describe(error))
            throw error
        }
    }

    private func runRestore(_ plan: MongoRestorePlan, source: SourcePolicy, toURI: String?, context: SourceContext) async throws -> MongoRestoreResult {
        let mongo = try settings(source, as: MongoSourcePolicy.self)
        var tools = try tools(mongo, source: plan.source, context: context)
        if let toURI { tools = MongoTools(uri: Secret(toURI), timeoutSeconds: mongo.timeoutSeconds, source: plan.source) }
        var args: [String] = []
        args += plan.include.map { "--nsInclude=\($0)" }
        args += plan.exclude.map { "--nsExclude=\($0)" }
        for r in plan.renames { args += ["--nsFrom=\(r.from)", "--nsTo=\(r.to)"] }
        if plan.drop { args.append("--drop") }
        if plan.dryRun { args.append("--dryRun") }
        if plan.oplogReplay { args.append("--oplogReplay") }
        if plan.artifact.stats["gzip_inside"] == .bool(true) { args.append("--gzip") }
        let reader = try await context.reader(plan.artifact, progress: "restore")
        let started = DispatchTime.now()
        let outcome = try await tools.restore(command: mongo.mongorestore, arguments: args) {
            var chunk: [UInt8]?
            _ = try reader.read { chunk = Array($0) }
            return chunk
        }
        // What was streamed must be exactly what was verified.
        if reader.storedSHA256 != plan.artifact.sha256 {
            throw IntegrityError(object: context.absolute(plan.artifact.path), problem: "the file changed while it was being restored")
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        var result = MongoRestoreResult(plan: plan, restored: 0, failed: 0, durationSeconds: seconds)
        if plan.dryRun {
            try context.recordRestore(plan.artifact, mode: "mongorestore", target: plan.target, outcome: "dry-run", started: Date(timeIntervalSinceNow: -seconds),
                              seconds: seconds, detail: "mongorestore --dryRun")
            return result
        }
        let report = outcome.report
        guard let summary = report.summary else {
            if report.unacknowledged {
                // w=0: mongorestore counts nothing and prints `done` (mongorestore/main/mongorestore.go). The data
                // was sent; nothing can say how much of it landed.
                result.unverified = true
                let detail = "mongorestore wrote with an unacknowledged write concern (w=0) and counted nothing: the restore is not verified"
                context.logger.warning("restore unverified", metadata: ["source": "\(plan.source)", "artifact": "\(plan.artifact.id)"])
                try context.recordRestore(plan.artifact, mode: "mongorestore", target: plan.target, outcome: "unverified",
                                          started: Date(timeIntervalSinceNow: -seconds), seconds: seconds, detail: detail)
                return result
            }
            throw MongoToolError(tool: "mongorestore", problem: "exited 0 but printed no summary line", stderrTail: outcome.stderrTail,
                                 hintText: "check the mongorestore version; the data may be partly restored")
        }
        result.restored = summary.restored
        result.failed = summary.failed
        result.oplogApplied = report.oplogApplied
        if plan.oplogReplay {
            guard let applied = report.oplogApplied else {
                throw MongoToolError(tool: "mongorestore", problem: "was asked to replay the oplog (--oplogReplay) but never said it applied it", stderrTail: outcome.stderrTail,
                                     hintText: "the documents are restored but not brought to one instant; check the mongorestore version, or restore with --no-oplog-replay")
            }
            if applied > plan.oplogEntries {
                throw MongoToolError(tool: "mongorestore", problem: "applied \(applied) oplog entries, the archive holds \(plan.oplogEntries)", stderrTail: outcome.stderrTail,
                                     hintText: "the tool's account does not match the archive; check the target before using it")
            }
        }
        if summary.failed > 0 {
            throw MongoToolError(tool: "mongorestore", problem: "\(summary.failed) document(s) failed to restore (\(summary.restored) restored)",
                                 stderrTail: outcome.stderrTail, hintText: "duplicate keys or validation rules: restore with --drop into an empty target, or read the log above")
        }
        if summary.restored != plan.expectedDocuments {
            throw MongoToolError(tool: "mongorestore", problem: "restored \(summary.restored) documents, the archive holds \(plan.expectedDocuments)",
                                 stderrTail: outcome.stderrTail, hintText: "check the namespace filters and the target; the restore is incomplete")
        }
        context.logger.info("restore ok", metadata: ["source": "\(plan.source)", "artifact": "\(plan.artifact.id)", "documents": "\(summary.restored)"])
        try context.recordRestore(plan.artifact, mode: "mongorestore", target: plan.target, outcome: "ok", started: Date(timeIntervalSinceNow: -seconds),
                          seconds: seconds, detail: "\(summary.restored) documents restored")
        return result
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
    /// The namespaces restored, with the documents the archive holds for each.
    var namespaces: [String: Int]
    var oplog_entries: Int
    /// `--oplogReplay` was used, and how many entries mongorestore said it applied.
    var oplog_replayed: Bool
    var oplog_applied: Int?
    var duration_seconds: Double
    /// mongorestore counted nothing (w=0): `restored` is 0 and means nothing.
    var verified: Bool

    init(_ r: MongoRestoreResult) {
        source = r.plan.source
        artifact = r.plan.artifact.id
        target = r.plan.target
        dry_run = r.plan.dryRun
        restored = r.restored
        failed = r.failed
        expected = r.plan.expectedDocuments
        namespaces = Dictionary(r.plan.namespaces.map { ($0.name, $0.documents) }, uniquingKeysWith: { a, _ in a })
        oplog_entries = r.plan.oplogEntries
        oplog_replayed = r.plan.oplogReplay && !r.plan.dryRun
        oplog_applied = r.oplogApplied
        duration_seconds = (r.durationSeconds * 1000).rounded() / 1000
        verified = !r.unverified && !r.plan.dryRun
    }
}
