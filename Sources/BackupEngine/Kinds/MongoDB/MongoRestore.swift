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
    /// Every namespace's count line compared with the archive's, under its renamed name (a refresh's scratch
    /// restore), not only the total.
    public var checkEachNamespace = false

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

    func restoreTarget(_ source: TypedSource<MongoSourcePolicy>, _ o: RestoreOptions) throws -> MongoRestoreTarget {
        let from = o.values("ns-from"), to = o.values("ns-to")
        if from.count != to.count { throw BackupFailure("--ns-from and --ns-to come in pairs", exitStatus: .usage) }
        let toURI = o.value("to-uri")
        if let toURI, !(toURI.hasPrefix("mongodb://") || toURI.hasPrefix("mongodb+srv://")) {
            throw BackupFailure("--to-uri must be a mongodb:// connection string", exitStatus: .usage)
        }
        return MongoRestoreTarget(toURI: toURI, renames: zip(from, to).map { (from: $0, to: $1) }, drop: o.flag("drop"), include: o.values("ns-include"),
                                  exclude: o.values("ns-exclude"), oplogReplay: o.flag("oplog-replay"), noOplogReplay: o.flag("no-oplog-replay"))
    }

    /// restore (MongoDB):
    ///   the backup verified by the restorer (sha256, gzip, archive CRCs)
    ///   stream the decompressed archive into `mongorestore --archive` (stdin), credentials via --config
    ///   parse "N document(s) restored successfully. M document(s) failed to restore."
    ///   fail when M > 0 or N differs from the archive's count
    /// A dry run is mongorestore's own (`--dryRun`): the apply step rehearses.
    func planRestore(_ artifact: ArtifactInfo, into target: MongoRestoreTarget, source: TypedSource<MongoSourcePolicy>, request: RestoreRequest,
                     context: SourceContext) async throws -> RestorePlan {
        var plan = mongoPlan(artifact, source: source, target: target, dryRun: request.dryRun)
        if plan.namespaces.isEmpty {
            throw BackupFailure("no namespace of backup \(plan.artifact.id) matches the --ns-include/--ns-exclude patterns", exitStatus: .usage,
                                hint: "its namespaces are: \(Self.namespaces(of: plan.artifact).map(\.name).joined(separator: ", "))")
        }
        try Self.chooseOplogReplay(&plan, asked: target.oplogReplay, refused: target.noOplogReplay)
        let planned = plan
        return RestorePlan(
            mode: "mongorestore", target: plan.target, lines: plan.description,
            needsConfirmation: BackupFailure("restoring writes into \(plan.target); refusing without --yes", exitStatus: .usage,
                                             hint: "read the plan above, then run the same command with --yes (or --dry-run to rehearse)"),
            apply: { rehearse in
                var plan = planned
                plan.dryRun = rehearse
                let result = try await runRestore(plan, source: source, toURI: target.toURI, context: context)
                let seconds = String(format: "%.1f", result.durationSeconds)
                let line = rehearse ? "dry run completed: nothing was written"
                    : result.unverified ? "sent \(plan.expectedDocuments) documents in \(seconds) s, NOT verified: the target's write concern is unacknowledged (w=0), so mongorestore counted nothing; check the target, or restore again with w=1 or majority in the connection string"
                    : "restored \(result.restored) documents in \(seconds) s" + (result.oplogApplied.map { ", then replayed the oplog (\($0) entries applied)" } ?? "")
                let detail = rehearse ? "mongorestore --dryRun"
                    : result.unverified ? "mongorestore wrote with an unacknowledged write concern (w=0) and counted nothing: the restore is not verified"
                    : "\(result.restored) documents restored"
                var details: [String: JSONValue] = [
                    "target": .string(plan.target), "restored": .int(result.restored), "failed": .int(result.failed), "expected": .int(plan.expectedDocuments),
                    "namespaces": .object(Dictionary(plan.namespaces.map { ($0.name, JSONValue.int($0.documents)) }, uniquingKeysWith: { a, _ in a })),
                    "oplog_entries": .int(plan.oplogEntries), "oplog_replayed": .bool(plan.oplogReplay && !rehearse),
                    "verified": .bool(!result.unverified && !rehearse),
                ]
                if let applied = result.oplogApplied { details["oplog_applied"] = .int(applied) }
                return RestoreResult(status: result.unverified ? .unverified : .ok, lines: [line], detail: detail, details: details)
            })
    }

    /// What a restore of the (verified) artifact would do: the namespaces selected, with their counts.
    func mongoPlan(_ artifact: ArtifactInfo, source: TypedSource<MongoSourcePolicy>, target: MongoRestoreTarget, dryRun: Bool) -> MongoRestorePlan {
        let selected = Self.namespaces(of: artifact).filter { ns in
            (target.include.isEmpty || target.include.contains { Self.matches($0, ns.name) }) && !target.exclude.contains { Self.matches($0, ns.name) }
        }
        let shown = target.toURI.map { Redaction.url($0) } ?? source.location + " (the source itself)"
        var plan = MongoRestorePlan(source: source.name, artifact: artifact, target: shown, renames: target.renames, drop: target.drop, dryRun: dryRun,
                                    expectedDocuments: selected.map(\.documents).reduce(0, +))
        plan.include = target.include
        plan.exclude = target.exclude
        plan.namespaces = selected
        plan.checkEachNamespace = target.checkEachNamespace
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

    /// The archive's application databases: those of its namespaces, admin, config and local left out (users,
    /// roles and the server's own data are never restored into a scratch or a refresh).
    static func applicationDatabases(of artifact: ArtifactInfo) -> Set<String> {
        let system: Set<String> = ["admin", "config", "local"]
        var databases = Set<String>()
        for (ns, _) in namespaces(of: artifact) {
            if let dot = ns.firstIndex(of: "."), !system.contains(String(ns[..<dot])) { databases.insert(String(ns[..<dot])) }
        }
        return databases
    }

    /// The mongosh statements that drop `databases` (each a string literal, never script text), one a line.
    static func dropDatabasesScript(_ databases: [String]) -> String {
        databases.map { "kb.getSiblingDB(\(MongoshScript.jsString($0))).dropDatabase();" }.joined(separator: "\n")
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

    private func runRestore(_ plan: MongoRestorePlan, source: TypedSource<MongoSourcePolicy>, toURI: String?, context: SourceContext) async throws -> MongoRestoreResult {
        let mongo = source.settings
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
        if plan.dryRun { return result }
        let report = outcome.report
        guard let summary = report.summary else {
            if report.unacknowledged {
                // w=0: mongorestore counts nothing and prints `done` (mongorestore/main/mongorestore.go). The data
                // was sent; nothing can say how much of it landed.
                result.unverified = true
                context.logger.warning("restore unverified", metadata: ["source": "\(plan.source)", "artifact": "\(plan.artifact.id)"])
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
        if plan.checkEachNamespace {
            // Each namespace under the name it was restored as (`--nsFrom=app.*` → `--nsTo=kbrefresh_app.*`).
            let restored = report.perNamespace
            var differ: [String] = []
            for ns in plan.namespaces {
                var renamed = ns.name
                for r in plan.renames where r.from.hasSuffix("*") && r.to.hasSuffix("*") && ns.name.hasPrefix(String(r.from.dropLast())) {
                    renamed = String(r.to.dropLast()) + ns.name.dropFirst(r.from.count - 1)
                    break
                }
                if restored[renamed] != ns.documents { differ.append("\(renamed): \(restored[renamed].map(String.init) ?? "none") of \(ns.documents)") }
            }
            if !differ.isEmpty {
                throw MongoToolError(tool: "mongorestore", problem: "restored counts differ from the archive's: " + differ.sorted().prefix(5).joined(separator: "; "),
                                     stderrTail: outcome.stderrTail, hintText: "the scratch copy is incomplete; nothing was swapped into place")
            }
        }
        context.logger.info("restore ok", metadata: ["source": "\(plan.source)", "artifact": "\(plan.artifact.id)", "documents": "\(summary.restored)"])
        return result
    }
}

/// How a MongoDB restore goes, from its options: the target (`--to-uri`, else the source), namespace renames
/// and filters, `--drop`, and the oplog asked for or refused.
struct MongoRestoreTarget {
    var toURI: String? = nil
    var renames: [(from: String, to: String)] = []
    var drop = false
    var include: [String] = []
    var exclude: [String] = []
    var oplogReplay = false
    var noOplogReplay = false
    /// Compare every namespace's count, not only the total (`MongoRestorePlan.checkEachNamespace`).
    var checkEachNamespace = false
}
