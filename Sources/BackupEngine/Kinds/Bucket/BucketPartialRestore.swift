// Taking back only what was lost from a bucket snapshot: some objects (--key, --prefix) into a bucket, or
// objects written as files under a directory (--to-dir), each key mapped to a safe relative path.
import ArtifactStore
import BackupCore
import BucketMirror
import Foundation

struct BucketFilesRestoreJSON: Encodable {
    var source: String
    var artifact: String
    var bucket: String
    var directory: String
    var dry_run: Bool
    var written: Int
    var unchanged: Int
    var bytes: Int64
    var duration_seconds: Double
}

extension BucketAdapter {
    /// What a restore takes: the verified snapshot (missing blobs fetched from the off-site copy), its bucket
    /// (`--bucket`, or the only one), narrowed to `--key`s and `--prefix`. Shared by restores into a bucket and
    /// into a directory.
    func restoreSelection(_ request: BucketRestoreRequest, source: SourcePolicy,
                          context: SourceContext) async throws -> (ArtifactInfo, BucketSnapshot.Bucket) {
        let artifact = try await context.verifiedForRestore(source: source.name, request.backup)
        let snapshot = try await loadSnapshot(artifact, context: context)
        try await fetchMissingBlobs(snapshot.blobDigests, source: source.name, context: context)
        let whole: BucketSnapshot.Bucket
        if let name = request.bucket {
            guard let b = snapshot.bucket(named: name) else {
                throw BackupFailure("snapshot \(artifact.id) holds no bucket \"\(name)\"", exitStatus: .usage,
                                    hint: "its buckets are: \(snapshot.buckets.map(\.name).joined(separator: ", "))")
            }
            whole = b
        } else if snapshot.buckets.count == 1 {
            whole = snapshot.buckets[0]
        } else {
            throw BackupFailure("snapshot \(artifact.id) holds \(snapshot.buckets.count) buckets; name one with --bucket", exitStatus: .usage,
                                hint: "its buckets are: \(snapshot.buckets.map(\.name).joined(separator: ", "))")
        }
        return (artifact, try select(request, from: whole, artifact: artifact))
    }

    /// The bucket's objects narrowed to `--key`s and `--prefix` (every named key must be in the snapshot).
    func select(_ request: BucketRestoreRequest, from bucket: BucketSnapshot.Bucket, artifact: ArtifactInfo) throws -> BucketSnapshot.Bucket {
        guard request.isPartial else { return bucket }
        var objects = bucket.objects
        if let prefix = request.prefix { objects = objects.filter { $0.key.hasPrefix(prefix) } }
        if !request.keys.isEmpty {
            let wanted = Set(request.keys)
            let missing = wanted.subtracting(objects.map(\.key)).sorted()
            guard missing.isEmpty else {
                throw BackupFailure("snapshot \(artifact.id) holds no object \(missing.prefix(5).map { String(reflecting: $0) }.joined(separator: ", ")) in bucket \(bucket.name)\(request.prefix.map { " under \(String(reflecting: $0))" } ?? "")",
                                    exitStatus: .usage, hint: "find it with: kaleem-backup ls \(artifact.id) --match '*part-of-the-name*'")
            }
            objects = objects.filter { wanted.contains($0.key) }
        }
        guard !objects.isEmpty else {
            throw BackupFailure("no object of bucket \(bucket.name) in snapshot \(artifact.id) is under \(String(reflecting: request.prefix ?? ""))", exitStatus: .usage,
                                hint: "list what it holds with: kaleem-backup ls \(artifact.id)")
        }
        // Extras (for --delete-extra) are looked for under the longer of the two prefixes only.
        var prefix = bucket.prefix
        if let p = request.prefix, p.hasPrefix(bucket.prefix) { prefix = p }
        return BucketSnapshot.Bucket(name: bucket.name, prefix: prefix, objects: objects)
    }

    /// The relative path an object key becomes under --to-dir, or why it cannot be one: `/`-separated parts,
    /// none empty, `.` or `..`, none over 255 bytes, no NUL; never absolute, never ending with `/`.
    static func safePath(forKey key: String) -> Result<String, BackupFailure> {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        if key.isEmpty || key.utf8.contains(0) || key.utf8.count > 4000
            || parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." || $0.utf8.count > 255 }) {
            return .failure(BackupFailure("object key \(String(reflecting: String(key.prefix(300)))) cannot be a file path under the directory (empty, '.' or '..' parts, a trailing '/', or a part over 255 bytes)", exitStatus: .usage))
        }
        return .success(key)
    }

    func restoreObjectsToDirectory(_ request: BucketRestoreRequest, directory: String, source: SourcePolicy, context: SourceContext,
                                   plan printPlan: ([String]) -> Void) async throws -> RestoreOutcome {
        let (artifact, bucket) = try await restoreSelection(request, source: source, context: context)
        // Every key must make a safe path before anything is written.
        let refused = bucket.objects.compactMap { entry -> String? in
            if case .failure(let why) = Self.safePath(forKey: entry.key) { return why.description }
            return nil
        }
        guard refused.isEmpty else {
            throw BackupFailure("\(refused.count) object key(s) cannot be written as files under \(directory); nothing was written: \(refused.prefix(3).joined(separator: "; "))",
                                exitStatus: .usage, hint: "narrow the restore with --key/--prefix to the objects you need, or restore into a bucket (--to-bucket)")
        }
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        let blobs = blobStore(source: source.name, context: context)
        var writes: [BucketSnapshot.Entry] = []
        var unchanged = 0
        var replaces = 0
        for entry in bucket.objects {
            let path = root + "/" + entry.key
            if let size = FileIO.fileSize(path) {
                if size == entry.size, (try? sha256OfFile(path)) == entry.sha256 { unchanged += 1; continue }
                replaces += 1
            }
            writes.append(entry)
        }
        let bytes = writes.reduce(Int64(0)) { $0 + $1.size }
        printPlan(["restore \(bucket.objects.count) object(s) of bucket \(bucket.name) from \(source.name) snapshot \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt)))",
                   "as files under \(root): write \(writes.count) (\(bytes) bytes), \(unchanged) already identical"
                    + (replaces > 0 ? ", \(replaces) of them replace a different file" : "")])
        let started = context.now()
        let clock = DispatchTime.now()
        if request.dryRun {
            try context.recordRestore(artifact, mode: "files", target: root, outcome: "dry-run", started: started, seconds: 0,
                                      detail: "\(writes.count) objects would be written")
            let json = BucketFilesRestoreJSON(source: source.name, artifact: artifact.id, bucket: bucket.name, directory: root, dry_run: true,
                                              written: 0, unchanged: unchanged, bytes: bytes, duration_seconds: 0)
            return RestoreOutcome(lines: ["dry run completed: nothing was written"], json: json)
        }
        if replaces > 0 && !request.confirmed {
            throw BackupFailure("\(replaces) file(s) under \(root) differ from the snapshot; refusing to replace them without --yes", exitStatus: .usage,
                                hint: "read the plan above, then run the same command with --yes")
        }
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for entry in writes {
                try Self.makeParents(of: entry.key, under: root)
                let file = try AtomicFileWriter(path: root + "/" + entry.key)
                do {
                    var hasher = StreamingSHA256()
                    try blobs.read(entry.sha256) { chunk in
                        hasher.update(chunk)
                        try file.write(chunk)
                    }
                    guard hasher.finalize() == entry.sha256 else {
                        throw IntegrityError(object: blobs.path(for: entry.sha256), problem: "the blob's content does not hash to its name")
                    }
                    try file.commit()
                } catch {
                    file.abort()
                    throw error
                }
            }
        } catch {
            try? context.recordRestore(artifact, mode: "files", target: root, outcome: "failed", started: started,
                                       seconds: SourceContext.seconds(since: clock), detail: context.describe(error))
            throw error
        }
        let seconds = SourceContext.seconds(since: clock)
        try context.recordRestore(artifact, mode: "files", target: root, outcome: "ok", started: started, seconds: seconds,
                                  detail: "\(writes.count) objects written, \(unchanged) unchanged")
        let json = BucketFilesRestoreJSON(source: source.name, artifact: artifact.id, bucket: bucket.name, directory: root, dry_run: false,
                                          written: writes.count, unchanged: unchanged, bytes: bytes,
                                          duration_seconds: (seconds * 1000).rounded() / 1000)
        return RestoreOutcome(lines: ["wrote \(writes.count) file(s) under \(root), \(unchanged) unchanged"], json: json)
    }

    /// Creates the directories of `relative` under `root` (0700), refusing to go through anything that is not a
    /// real directory (a symlink planted there must not send a file elsewhere).
    static func makeParents(of relative: String, under root: String) throws {
        var path = root
        for part in relative.split(separator: "/").dropLast() {
            path += "/" + part
            var info = stat()
            if lstat(path, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw BackupFailure("\(path) exists and is not a directory (a symlink or a file); refusing to write through it", exitStatus: .usage)
                }
            } else if mkdir(path, 0o700) != 0 {
                throw FileSystemError("create the directory", path: path)
            }
        }
    }
}
