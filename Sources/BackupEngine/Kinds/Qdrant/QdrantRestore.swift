// Qdrant restores and drills: the snapshot of a collection is taken out of the archive (its sha256 checked)
// into a private temporary file and uploaded as it is (sparse entries and all) with Qdrant's snapshot upload
// (priority=snapshot, checksum), under a file name of ours that is deleted on the server afterwards (Qdrant
// keeps every uploaded snapshot in snapshots/<collection>/). Then the EXACT points count is compared with the
// exact counts the backup took around its snapshot.
//
// Qdrant refuses (HTTP 400) to recover a snapshot into an existing collection with another vectors config or
// shard number: the plan compares them first and refuses with exit 2 (nothing written), and a 400 the server
// still gives is reported the same way: the collection is unchanged.
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

    func restoreTarget(_ source: TypedSource<QdrantSourcePolicy>, _ o: RestoreOptions) throws -> QdrantRestoreTarget {
        QdrantRestoreTarget(collection: o.value("collection"), toCollection: o.value("to-collection"), withAliases: o.flag("with-aliases"))
    }

    /// The collection chosen from the backup, the target collection looked at (it exists? how many points?
    /// another shape, which Qdrant refuses?); the apply step uploads the snapshot and counts exactly.
    func planRestore(_ artifact: ArtifactInfo, into asked: QdrantRestoreTarget, source: TypedSource<QdrantSourcePolicy>, request: RestoreRequest,
                     context: SourceContext) async throws -> RestorePlan {
        guard case .object(let recorded)? = artifact.stats["collections"], !recorded.isEmpty else {
            throw BackupFailure("backup \(artifact.id) recorded no collection", exitStatus: .usage)
        }
        let name: String
        if let collection = asked.collection {
            guard recorded[collection] != nil else {
                throw BackupFailure("backup \(artifact.id) holds no collection \"\(collection)\"", exitStatus: .usage,
                                    hint: "its collections are: \(recorded.keys.sorted().joined(separator: ", "))")
            }
            name = collection
        } else if recorded.count == 1 {
            name = recorded.keys.first!
        } else {
            throw BackupFailure("backup \(artifact.id) holds \(recorded.count) collections; name one with --collection", exitStatus: .usage,
                                hint: "its collections are: \(recorded.keys.sorted().joined(separator: ", "))")
        }
        let target = asked.toCollection ?? name
        let (client, _) = try client(source, context: context)
        do {
            let counted = PointsRecord(recorded[name])
            let expected = counted.points
            let existing = (try await client.collection(target))
            let existingPoints = existing == nil ? 0 : (try await client.countPoints(target))
            var lines = ["restore \(source.name) backup \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt))): collection \(name), \(counted.describe)",
                         "into collection \(target) at \(client.url)" + (existing == nil ? " (created)" : " (it exists and holds \(existingPoints) points: they are replaced)")]
            let shapeProblem = existing.flatMap { Self.shapeDifference(existing: $0, recorded: recorded[name]) }
            if let shapeProblem {
                lines.append("collection \(target) exists with another shape (\(shapeProblem)): Qdrant refuses to recover this snapshot into it")
            }
            let aliases: [String] = {
                guard case .array(let a)? = recorded[name]?["aliases"] else { return [] }
                return a.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
            }()
            if asked.withAliases && !aliases.isEmpty { lines.append("aliases re-created: \(aliases.joined(separator: ", ")) -> \(target)") }
            func details(points: Int, aliases: [String]) -> [String: JSONValue] {
                ["collection": .string(name), "target": .string(target), "points": .int(points), "expected": .int(expected), "aliases": .strings(aliases)]
            }
            return RestorePlan(
                mode: "qdrant", target: "\(client.url)/\(target)", lines: lines,
                refused: shapeProblem.map { Self.incompatible(target, detail: $0, backup: artifact.id, collection: name) },
                needsConfirmation: existing != nil && existingPoints > 0
                    ? BackupFailure("collection \(target) holds \(existingPoints) points; refusing to replace it without --yes", exitStatus: .usage,
                                    hint: "restore under another name first (--to-collection), or run the same command with --yes")
                    : nil,
                dryRun: RestoreResult(lines: ["dry run: nothing was written"], detail: "plan only", details: details(points: 0, aliases: [])),
                apply: { _ in
                    let clock = DispatchTime.now()
                    let points = try await upload(artifact, collection: name, into: target, client: client, context: context)
                    if let problem = counted.mismatch(points) {
                        // The collection WAS replaced: say so, with the exact counts.
                        throw BackupFailure("collection \(target) was replaced from the snapshot but holds \(points) points (exact count); \(problem)",
                                            exitStatus: .integrity,
                                            hint: "compare the restored collection with the live one (POST /collections/\(target)/points/count); the backup's own check: kaleem-backup verify")
                    }
                    var created: [String] = []
                    if asked.withAliases {
                        for alias in aliases {
                            (try await client.createAlias(alias, collection: target))
                            created.append(alias)
                        }
                    }
                    var done = ["restored \(points) points into collection \(target) in \(String(format: "%.1f", SourceContext.seconds(since: clock))) s"]
                    if !counted.exact {
                        done.append("(the backup recorded about \(expected) points, an approximate count: not compared)")
                    }
                    return RestoreResult(lines: done, detail: "\(points) points restored into \(target)", details: details(points: points, aliases: created))
                },
                close: { client.shutdown() })
        } catch {
            client.shutdown()
            throw error
        }
    }

    /// Takes the collection's snapshot out of the archive into a private file (sha256 checked), uploads it
    /// into `target`, deletes the uploaded file Qdrant keeps, and returns the EXACT points count of `target`.
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
        // Qdrant moves the upload into snapshots/<target>/<file name> and keeps it (recovered or not): a name of
        // ours, deleted right after, so that restores and drills do not fill Qdrant's disk.
        let fileName = "kaleem-backup-restore-\(UUID().uuidString.lowercased()).snapshot"
        let uploaded: Result<Void, Error>
        do {
            try await client.uploadSnapshot(target, file: file, checksum: sha, fileName: fileName)
            uploaded = .success(())
        } catch {
            uploaded = .failure(error)
        }
        await removeUploaded(fileName, from: target, client: client, context: context)
        do { try uploaded.get() } catch let error as QdrantError where error.status == 400 && error.message.contains("not compatible") {
            throw Self.incompatible(target, detail: "Qdrant: \(error.message)", backup: artifact.id, collection: collection)
        }
        return try await client.countPoints(target)
    }

    /// Deletes the uploaded snapshot file Qdrant keeps. Where the collection does not exist (a recovery that
    /// failed before creating it) the API cannot reach the file: it is named in a warning.
    func removeUploaded(_ fileName: String, from target: String, client: QdrantClient, context: SourceContext) async {
        do {
            try await client.deleteSnapshot(target, name: fileName)
        } catch let error as QdrantError where error.status == 404 {
            if (try? await client.collection(target)) == nil {
                context.logger.warning("Qdrant keeps the uploaded snapshot in its snapshots folder and the API cannot delete it (no collection): delete it by hand",
                                       metadata: ["file": "<snapshots_path>/\(target)/\(fileName)"])
            }
        } catch {
            context.logger.warning("the uploaded snapshot could not be deleted on the Qdrant server: delete it by hand",
                                   metadata: ["collection": "\(target)", "snapshot": "\(fileName)", "error": "\(context.describe(error))"])
        }
    }

    /// How an existing collection's shape differs from the backup's (vectors config, shard number), or nil.
    static func shapeDifference(existing: QdrantCollectionInfo, recorded: JSONValue?) -> String? {
        var problems: [String] = []
        if let vectors = recorded?["vectors"], vectors != .null, existing.vectors != vectors {
            problems.append("vectors \(existing.vectors), the backup's \(vectors)")
        }
        if let shards = recorded?["shard_number"]?.intValue, let now = existing.shardNumber, now != shards {
            problems.append("shard_number \(now), the backup's \(shards)")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    static func incompatible(_ target: String, detail: String, backup: String, collection: String) -> BackupFailure {
        BackupFailure("collection \(target) exists with another shape than the snapshot (\(detail)); nothing was written, the collection is unchanged",
                      exitStatus: .usage,
                      hint: "restore under another name (--to-collection NEW_NAME), or, if its points may go, delete the collection first "
                          + "(DELETE /collections/\(target)) and run: kaleem-backup restore <source> --backup \(backup) --collection \(collection) --to-collection \(target) --yes")
    }

    // MARK: drill, rollback

    /// Each collection recovered into `kb_drill_<id>_<collection>` (refused if it exists), its points count
    /// and vectors config compared with what was recorded, then deleted whatever happened.
    func drill(_ artifact: ArtifactInfo, source: TypedSource<QdrantSourcePolicy>, context: SourceContext) async -> (DrillResult, String) {
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
                // Qdrant keeps a deleted collection's snapshot folder: its snapshots go first (the scratch
                // collection is ours entirely), then the collection.
                if let left = try? await client.listSnapshots(scratch) {
                    for snapshot in left { await removeUploaded(snapshot.name, from: scratch, client: client, context: context) }
                }
                do { try await client.deleteCollection(scratch) } catch {
                    context.logger.warning("scratch collection not deleted", metadata: ["collection": "\(scratch)", "error": "\(context.describe(error))"])
                }
                let (points, info) = try uploaded.get()
                let counted = PointsRecord(recorded[name])
                var problems: [String] = []
                if let problem = counted.mismatch(points) { problems.append("\(points) points (exact); \(problem)") }
                if let info, let vectors = recorded[name]?["vectors"], info.vectors != vectors { problems.append("vectors config differs") }
                if problems.isEmpty {
                    details.append("\(name): \(points) points recovered into \(scratch)" + (counted.exact ? "" : " (the backup's count was approximate: not compared)")
                                   + ", vectors config equal")
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

    func rollback(_ artifact: ArtifactInfo, source: TypedSource<QdrantSourcePolicy>, restoreData: Bool, context: SourceContext) async throws -> [String] {
        guard case .object(let recorded)? = artifact.stats["collections"] else { return [] }
        var lines: [String] = []
        for name in recorded.keys.sorted() {
            if restoreData {
                let request = RestoreRequest(source: source.name, backup: .id(artifact.id), confirmed: true)
                let target = QdrantRestoreTarget(collection: name, toCollection: nil, withAliases: true)
                lines += try await context.restore(self, source, into: target, request).lines.map { "\(artifact.source): \($0)" }
            } else {
                lines.append("kaleem-backup restore \(artifact.source) --backup \(artifact.id) --collection \(name) --with-aliases --yes")
            }
        }
        return lines
    }
}

/// What a Qdrant restore takes (`--collection`, else the backup's only one) and where it goes
/// (`--to-collection`, else the same name), and whether the aliases are re-created.
struct QdrantRestoreTarget {
    var collection: String?
    var toCollection: String?
    var withAliases: Bool
}

/// The points a backup counted for a collection. Backups since issue 39 count exactly (POST …/points/count,
/// exact) just before and just after the snapshot, so the snapshot's own count lies between the two (equal
/// when nothing was written meanwhile). Older backups recorded collection info's approximate `points_count`:
/// it is shown, never compared.
struct PointsRecord {
    var points: Int
    var after: Int
    var exact: Bool

    init(_ record: JSONValue?) {
        points = record?["points"]?.intValue ?? 0
        after = record?["points_after"]?.intValue ?? points
        exact = record?["points_exact"] == .bool(true)
    }

    var range: ClosedRange<Int> { min(points, after)...max(points, after) }

    var describe: String {
        guard exact else { return "about \(points) points (an approximate count)" }
        return range.count == 1 ? "\(points) points" : "\(range.lowerBound) to \(range.upperBound) points (written to during the backup)"
    }

    /// Why an exact count after a restore does not match, or nil (also nil when the backup's count was approximate).
    func mismatch(_ count: Int) -> String? {
        guard exact, !range.contains(count) else { return nil }
        return range.count == 1 ? "the backup counted \(points) exactly" : "the backup counted between \(range.lowerBound) and \(range.upperBound) exactly"
    }
}
