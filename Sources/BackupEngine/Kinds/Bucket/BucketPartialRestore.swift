// Taking back only what was lost from a bucket snapshot: some objects (--key, --prefix) into a bucket, or
// objects written as files under a directory (--to-dir), each key mapped to a safe relative path.
import ArtifactStore
import BackupCore
import BucketMirror
import Foundation

extension BucketAdapter {
    /// What a restore takes: the verified snapshot's bucket (`--bucket`, or the only one), narrowed to
    /// `--key`s and `--prefix`. Shared by restores into a bucket and into a directory.
    func restoreSelection(_ request: BucketRestoreTarget, artifact: ArtifactInfo, context: SourceContext) async throws -> RestoreSelection {
        let document = try await loadDocument(artifact, context: context)
        let buckets = document.buckets
        let whole: SnapshotDocument.BucketSummary
        if let name = request.bucket {
            guard let b = buckets.first(where: { $0.name == name }) else {
                throw BackupFailure("snapshot \(artifact.id) holds no bucket \"\(name)\"", exitStatus: .usage,
                                    hint: "its buckets are: \(buckets.map(\.name).joined(separator: ", "))")
            }
            whole = b
        } else if buckets.count == 1 {
            whole = buckets[0]
        } else {
            throw BackupFailure("snapshot \(artifact.id) holds \(buckets.count) buckets; name one with --bucket", exitStatus: .usage,
                                hint: "its buckets are: \(buckets.map(\.name).joined(separator: ", "))")
        }
        return try await select(request, from: whole, of: document, artifact: artifact, context: context)
    }

    /// A bucket of the snapshot narrowed to `--key`s and `--prefix` (every named key must be in the snapshot).
    /// Called after the snapshot verified, which fetched every blob missing here from the off-site copy. The
    /// whole bucket takes its counts from the snapshot file; a selection is counted in one pass over its entries
    /// (a manifest chunk at a time), which also finds the named keys. The restore's own passes read them again.
    func select(_ request: BucketRestoreTarget, from bucket: SnapshotDocument.BucketSummary, of document: SnapshotDocument,
                artifact: ArtifactInfo, context: SourceContext) async throws -> RestoreSelection {
        let reader = chunkReader(source: artifact.source, context: context)
        let name = bucket.name
        let keys = Set(request.keys)
        let partial = request.isPartial
        let prefixFilter = request.prefix
        let open: () -> EntryStream = {
            let cursor: EntryStream = document.cursor(bucket: name, reader: reader) ?? ArrayEntryStream([])
            return partial ? FilteredEntryStream(cursor, prefix: prefixFilter, keys: keys) : cursor
        }
        guard partial else { return RestoreSelection(name: name, prefix: bucket.prefix, objects: bucket.objects, bytes: bucket.bytes, open: open) }
        var objects = 0
        var bytes: Int64 = 0
        var found = Set<String>()
        let stream = open()
        while let entry = try await stream.next() {
            objects += 1
            bytes += entry.size
            if keys.contains(entry.key) { found.insert(entry.key) }
        }
        let missing = keys.subtracting(found).sorted()
        guard missing.isEmpty else {
            throw BackupFailure("snapshot \(artifact.id) holds no object \(missing.prefix(5).map { String(reflecting: $0) }.joined(separator: ", ")) in bucket \(bucket.name)\(request.prefix.map { " under \(String(reflecting: $0))" } ?? "")",
                                exitStatus: .usage, hint: "find it with: kaleem-backup ls \(artifact.id) --match '*part-of-the-name*'")
        }
        guard objects > 0 else {
            throw BackupFailure("no object of bucket \(bucket.name) in snapshot \(artifact.id) is under \(String(reflecting: request.prefix ?? ""))", exitStatus: .usage,
                                hint: "list what it holds with: kaleem-backup ls \(artifact.id)")
        }
        // Extras (for --delete-extra) are looked for under the longer of the two prefixes only.
        var prefix = bucket.prefix
        if let p = request.prefix, p.hasPrefix(bucket.prefix) { prefix = p }
        return RestoreSelection(name: name, prefix: prefix, objects: objects, bytes: bytes, open: open)
    }

    /// A zero-byte key ending in `/`: what S3 and MinIO consoles create for a "folder".
    static func isFolderMarker(_ entry: BucketSnapshot.Entry) -> Bool { entry.size == 0 && entry.key.hasSuffix("/") }

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

    /// `--to-dir`: every key must make a safe path before anything is written; a file there that differs is
    /// replaced only with --yes (also one that appeared since the plan).
    func planDirectory(_ artifact: ArtifactInfo, _ request: BucketRestoreTarget, directory: String, source: TypedSource<S3SourcePolicy>, confirmed: Bool,
                       context: SourceContext) async throws -> RestorePlan {
        let selection = try await restoreSelection(request, artifact: artifact, context: context)
        // Every key must make a safe path before anything is written.
        var refused: [String] = []
        var refusedCount = 0
        var stream = selection.open()
        while let entry = try await stream.next() {
            if Self.isFolderMarker(entry), case .success = Self.safePath(forKey: String(entry.key.dropLast())) { continue }
            if case .failure(let why) = Self.safePath(forKey: entry.key) {
                refusedCount += 1
                if refused.count < 3 { refused.append(why.description) }
            }
        }
        guard refusedCount == 0 else {
            throw BackupFailure("\(refusedCount) object key(s) cannot be written as files under \(directory); nothing was written: \(refused.joined(separator: "; "))",
                                exitStatus: .usage, hint: "narrow the restore with --key/--prefix to the objects you need, or restore into a bucket (--to-bucket)")
        }
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        let blobs = blobStore(source: source.name, context: context)
        /// Whether the file for `entry` is already there with its content (nil: no file).
        func identical(_ entry: BucketSnapshot.Entry) -> Bool? {
            if Self.isFolderMarker(entry) {
                var isDirectory: ObjCBool = false
                return FileManager.default.fileExists(atPath: root + "/" + entry.key, isDirectory: &isDirectory) && isDirectory.boolValue ? true : nil
            }
            let path = root + "/" + entry.key
            guard let size = FileIO.fileSize(path) else { return nil }
            return size == entry.size && (try? sha256OfFile(path)) == entry.sha256
        }
        var writes = 0
        var unchanged = 0
        var replaces = 0
        var bytes: Int64 = 0
        stream = selection.open()
        while let entry = try await stream.next() {
            switch identical(entry) {
            case true?: unchanged += 1; continue
            case false?: replaces += 1
            case nil: break
            }
            writes += 1
            bytes += entry.size
        }
        let lines = ["restore \(selection.objects) object(s) of bucket \(selection.name) from \(source.name) snapshot \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt)))",
                     "as files under \(root): write \(writes) (\(bytes) bytes), \(unchanged) already identical"
                      + (replaces > 0 ? ", \(replaces) of them replace a different file" : "")]
        func details(written: Int) -> [String: JSONValue] {
            ["bucket": .string(selection.name), "directory": .string(root), "written": .int(written), "unchanged": .int(unchanged), "bytes": .int(Int(bytes))]
        }
        let planned = unchanged
        return RestorePlan(
            mode: "files", target: root, lines: lines,
            needsConfirmation: replaces == 0 ? nil
                : BackupFailure("\(replaces) file(s) under \(root) differ from the snapshot; refusing to replace them without --yes", exitStatus: .usage,
                                hint: "read the plan above, then run the same command with --yes"),
            dryRun: RestoreResult(lines: ["dry run completed: nothing was written"], detail: "\(writes) objects would be written", details: details(written: 0)),
            apply: { _ in
                var written = 0
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                Self.removeLeftovers(under: root)
                let stream = selection.open()
                while let entry = try await stream.next() {
                    // Taken again as it is now: a file that became identical since the plan is left alone, one that
                    // appeared and differs is not replaced without --yes.
                    switch identical(entry) {
                    case true?: continue
                    case false? where !confirmed:
                        throw BackupFailure("\(root)/\(entry.key) appeared since the plan and differs from the snapshot; refusing to replace it without --yes",
                                            exitStatus: .usage, hint: "run the same command again and read the new plan")
                    default: break
                    }
                    written += 1
                    // Every parent opened relative to the one before, O_NOFOLLOW: a directory swapped for a symlink at
                    // any moment cannot send the file elsewhere.
                    let parts = entry.key.split(separator: "/").map(String.init)
                    if Self.isFolderMarker(entry) {
                        // A console's "folder" (a zero-byte key ending in /): the directory, nothing in it.
                        close(try TargetFileWriter.openDirectory(parts, under: root))
                        continue
                    }
                    let parent = try TargetFileWriter.openDirectory(Array(parts.dropLast()), under: root)
                    let file = try TargetFileWriter(directoryDescriptor: parent, shownAs: ([root] + parts.dropLast()).joined(separator: "/"),
                                                    name: parts.last ?? "")
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
                return RestoreResult(lines: ["wrote \(written) file(s) under \(root), \(planned) unchanged"],
                                     detail: "\(written) objects written, \(planned) unchanged", details: details(written: written))
            })
    }

    /// Removes what a killed restore left under `root` (`.kb-restore-*.partial` files), never following a symlink.
    static func removeLeftovers(under root: String) {
        TargetFileWriter.removeLeftovers(in: root)
        guard let walker = FileManager.default.enumerator(at: URL(fileURLWithPath: root), includingPropertiesForKeys: [.isDirectoryKey, .isSymbolicLinkKey],
                                                          options: []) else { return }
        for case let url as URL in walker {
            let values = try? url.resourceValues(forKeys: [.isDirectoryKey, .isSymbolicLinkKey])
            if values?.isSymbolicLink == true { walker.skipDescendants(); continue }
            if values?.isDirectory == true { TargetFileWriter.removeLeftovers(in: url.path) }
        }
    }
}
