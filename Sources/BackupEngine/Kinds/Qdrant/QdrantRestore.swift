// Qdrant restores and drills: the snapshot of a collection is taken out of the archive (its sha256 checked)
// into a private temporary file and uploaded with Qdrant's snapshot upload (priority=snapshot, checksum),
// then the points count is compared with the one recorded.
import ArtifactStore
import BackupCore
import Crypto
import Foundation
import QdrantClient
import TarFormat

extension QdrantAdapter {
    var restoreOptions: [RestoreOptionSpec] {
        [
            RestoreOptionSpec("collection", value: "NAME", help: "the collection of the backup to restore (required when it holds several)"),
            RestoreOptionSpec("to-collection", value: "NAME", help: "restore under this name (default: the same; an existing non-empty collection needs --yes)"),
            RestoreOptionSpec("with-aliases", help: "re-create the aliases that pointed at the collection (snapshots do not carry them)"),
        ]
    }

    func restore(_ source: SourcePolicy, _ request: RestoreRequest, context: SourceContext, plan: ([String]) -> Void) async throws -> RestoreOutcome {
        let artifact = try await context.verifiedForRestore(source: source.name, request.backup)
        guard case .object(let recorded)? = artifact.stats["collections"], !recorded.isEmpty else {
            throw BackupFailure("backup \(artifact.id) recorded no collection", exitStatus: .usage)
        }
        let name: String
        if let asked = request.options.value("collection") {
            guard recorded[asked] != nil else {
                throw BackupFailure("backup \(artifact.id) holds no collection \"\(asked)\"", exitStatus: .usage,
                                    hint: "its collections are: \(recorded.keys.sorted().joined(separator: ", "))")
            }
            name = asked
        } else if recorded.count == 1 {
            name = recorded.keys.first!
        } else {
            throw BackupFailure("backup \(artifact.id) holds \(recorded.count) collections; name one with --collection", exitStatus: .usage,
                                hint: "its collections are: \(recorded.keys.sorted().joined(separator: ", "))")
        }
        let target = request.options.value("to-collection") ?? name
        let withAliases = request.options.flag("with-aliases")
        let (client, _) = try client(source, context: context)
        defer { client.shutdown() }
        let expected = recorded[name]?["points"]?.intValue ?? 0
        let existing = (try await client.collection(target))
        var lines = ["restore \(source.name) backup \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt))): collection \(name), \(expected) points",
                     "into collection \(target) at \(client.url)" + (existing.map { " (it exists and holds \($0.pointsCount) points: they are replaced)" } ?? " (created)")]
        let aliases: [String] = {
            guard case .array(let a)? = recorded[name]?["aliases"] else { return [] }
            return a.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
        }()
        if withAliases && !aliases.isEmpty { lines.append("aliases re-created: \(aliases.joined(separator: ", ")) -> \(target)") }
        plan(lines)
        let started = context.now()
        let clock = DispatchTime.now()
        if request.dryRun {
            try context.recordRestore(artifact, mode: "qdrant", target: "\(client.url)/\(target)", outcome: "dry-run", started: started,
                                      seconds: 0, detail: "plan only")
            return RestoreOutcome(lines: ["dry run: nothing was written"],
                                  json: QdrantRestoreJSON(source: source.name, artifact: artifact.id, collection: name, target: target, dry_run: true,
                                                          points: 0, expected: expected, aliases: [], duration_seconds: 0))
        }
        if let existing, existing.pointsCount > 0, !request.confirmed {
            throw BackupFailure("collection \(target) holds \(existing.pointsCount) points; refusing to replace it without --yes", exitStatus: .usage,
                                hint: "restore under another name first (--to-collection), or run the same command with --yes")
        }
        do {
            let points = try await upload(artifact, collection: name, into: target, client: client, context: context)
            guard points == expected else {
                throw BackupFailure("collection \(target) holds \(points) points after the restore, the backup recorded \(expected)")
            }
            var created: [String] = []
            if withAliases {
                for alias in aliases {
                    (try await client.createAlias(alias, collection: target))
                    created.append(alias)
                }
            }
            let seconds = SourceContext.seconds(since: clock)
            try context.recordRestore(artifact, mode: "qdrant", target: "\(client.url)/\(target)", outcome: "ok", started: started, seconds: seconds,
                                      detail: "\(points) points restored into \(target)")
            return RestoreOutcome(lines: ["restored \(points) points into collection \(target) in \(String(format: "%.1f", seconds)) s"],
                                  json: QdrantRestoreJSON(source: source.name, artifact: artifact.id, collection: name, target: target, dry_run: false,
                                                          points: points, expected: expected, aliases: created,
                                                          duration_seconds: (seconds * 1000).rounded() / 1000))
        } catch {
            try? context.recordRestore(artifact, mode: "qdrant", target: "\(client.url)/\(target)", outcome: "failed", started: started,
                                       seconds: SourceContext.seconds(since: clock), detail: context.describe(error))
            throw error
        }
    }

    /// Takes the collection's snapshot out of the archive into a private file (sha256 checked), uploads it
    /// into `target`, and returns the points count Qdrant then reports.
    func upload(_ artifact: ArtifactInfo, collection: String, into target: String, client: QdrantClient, context: SourceContext) async throws -> Int {
        let dir = try context.temporaryDirectory(prefix: "kaleem-restore")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/\(QdrantClient.segment(collection)).snapshot"
        let writer = try AtomicFileWriter(path: file)
        var hasher = SHA256()
        var reader = await TarReader(GzipChunkSource(reader: try context.reader(artifact, progress: "restore")))
        var found = false
        do {
            while let entry = try reader.next() {
                guard entry.path == Self.entryName(collection) else { continue }
                try reader.content { slice in
                    hasher.update(data: slice)
                    try slice.withUnsafeBytes { try writer.write($0) }
                }
                found = true
                break
            }
            guard found else { throw IntegrityError(object: context.absolute(artifact.path), problem: "no snapshot of \(collection) in the archive") }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
        let sha = hasher.finalize().hexString
        guard case .object(let recorded)? = artifact.stats["collections"], recorded[collection]?["sha256"] == .string(sha) else {
            throw IntegrityError(object: context.absolute(artifact.path), problem: "the snapshot of \(collection) hashes to \(sha), not what the backup recorded")
        }
        (try await client.uploadSnapshot(target, file: file, checksum: sha))
        return (try await client.collection(target))?.pointsCount ?? 0
    }

    // MARK: drill, rollback

    /// Each collection recovered into `kb_drill_<id>_<collection>` (refused if it exists), its points count
    /// and vectors config compared with what was recorded, then deleted whatever happened.
    func drill(_ artifact: ArtifactInfo, source: SourcePolicy, context: SourceContext) async -> (DrillResult, String) {
        let check = await context.verify(artifact, copy: nil)
        guard check.ok else { return (.failed, "the backup does not verify: \(check.detail)") }
        guard case .object(let recorded)? = artifact.stats["collections"] else { return (.error, "the backup recorded no collection") }
        do {
            let (client, _) = try client(source, context: context)
            defer { client.shutdown() }
            var details: [String] = []
            var failed = false
            for name in recorded.keys.sorted() {
                let scratch = "kb_drill_\(artifact.id.suffix(6).lowercased())_\(name)"
                if (try await client.collection(scratch)) != nil {
                    return (.error, "scratch collection \(scratch) already exists (an interrupted drill?); delete it and run the drill again")
                }
                // Deleted whatever happened (an async call cannot sit in a defer: the outcome is held, the
                // scratch collection deleted, then the outcome looked at).
                let uploaded: Result<(points: Int, info: QdrantCollectionInfo?), Error>
                do {
                    let points = try await upload(artifact, collection: name, into: scratch, client: client, context: context)
                    uploaded = .success((points, try await client.collection(scratch)))
                } catch {
                    uploaded = .failure(error)
                }
                do { try await client.deleteCollection(scratch) } catch {
                    context.logger.warning("scratch collection not deleted", metadata: ["collection": "\(scratch)", "error": "\(context.describe(error))"])
                }
                let (points, info) = try uploaded.get()
                let expected = recorded[name]?["points"]?.intValue ?? 0
                var problems: [String] = []
                if points != expected { problems.append("\(points) points, \(expected) recorded") }
                if let info, let vectors = recorded[name]?["vectors"], info.vectors != vectors { problems.append("vectors config differs") }
                if problems.isEmpty {
                    details.append("\(name): \(points) points recovered into \(scratch), vectors config equal")
                } else {
                    failed = true
                    details.append("\(name): " + problems.joined(separator: ", "))
                }
            }
            return (failed ? .failed : .passed, details.joined(separator: "; ") + "; scratch collections deleted")
        } catch let error as IntegrityFailure {
            return (.failed, context.describe(error))
        } catch {
            return (.error, "the drill could not run: \(context.describe(error))")
        }
    }

    func rollback(_ artifact: ArtifactInfo, source: SourcePolicy, restoreData: Bool, context: SourceContext) async throws -> [String] {
        guard case .object(let recorded)? = artifact.stats["collections"] else { return [] }
        var lines: [String] = []
        for name in recorded.keys.sorted() {
            if restoreData {
                let request = RestoreRequest(source: source.name, backup: .id(artifact.id), confirmed: true,
                                             options: .with(["collection": name], flags: ["with-aliases"]))
                await lines += try restore(source, request, context: context) { _ in }.lines.map { "\(artifact.source): \($0)" }
            } else {
                lines.append("kaleem-backup restore \(artifact.source) --backup \(artifact.id) --collection \(name) --with-aliases --yes")
            }
        }
        return lines
    }
}

struct QdrantRestoreJSON: Encodable {
    var source: String
    var artifact: String
    var collection: String
    var target: String
    var dry_run: Bool
    var points: Int
    var expected: Int
    var aliases: [String]
    var duration_seconds: Double
}
