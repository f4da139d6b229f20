// The blobs of bucket snapshots in the repository: which files an artifact owns (for the off-site copy),
// fetching missing ones from the off-site copy, and the remote blobs no snapshot references any more.
import ArtifactStore
import BackupCore
import BucketMirror
import Foundation

extension BucketAdapter {
    func sharedDirectory(source: String) -> String? { "\(source)/blobs/" }

    func forEachExtraFile(of artifact: ArtifactInfo, since base: ArtifactInfo?, context: SourceContext,
                          _ emit: (_ relative: String, _ sha256: String?) async throws -> Void) async throws {
        let blobs = blobStore(source: artifact.source, context: context)
        let reader = chunkReader(source: artifact.source, context: context)
        // A base that cannot be read is no base: everything is handed on (and the copy checks what is there).
        let baseDocument: SnapshotDocument? = if let base { try? await loadDocument(base, context: context) } else { nil }
        try await loadDocument(artifact, context: context).forEachBlob(notIn: baseDocument, reader: reader) { digest in
            // An encrypted blob's stored bytes do not hash to its name: its sha256 is computed on upload.
            try await emit("\(artifact.source)/blobs/" + blobs.relativePath(for: digest), blobs.isEncrypted(digest) ? nil : digest)
        }
    }

    func removeUnusedRemoteFiles(source: String, remote: any Repository, context: SourceContext) async throws -> Int {
        var removed = 0
        try await forEachGCShare(source: source, context: context) { partition, keep in
            // One listing of the blob directory when one share covers it, else one per shard of the share; a page
            // at a time, each page's unused blobs deleted with it.
            let prefixes = partition.count == 1 ? ["\(source)/blobs/"] : partition.shards.map { "\(source)/blobs/\($0)/" }
            for prefix in prefixes {
                try await remote.list(under: prefix) { page in
                    let unused = page.map(\.relative).filter { relative in
                        guard let digest = BlobStore.digest(ofFileName: (relative as NSString).lastPathComponent), partition.contains(digest) else { return false }
                        return !keep.contains(digest)
                    }
                    if !unused.isEmpty { try await remote.delete(unused) }
                    removed += unused.count
                }
            }
        }
        return removed
    }

    /// Fetches the blobs (objects' or manifest chunks') missing here from the off-site copy.
    func fetchMissingBlobs(_ digests: some Sequence<String>, source: String, context: SourceContext, quiet: Bool = false) async throws {
        let blobs = blobStore(source: source, context: context)
        let missing = digests.filter { !blobs.contains($0) }.sorted()
        guard !missing.isEmpty, let remote = try context.offsite() else { return }
        defer { remote.close() }
        if !quiet {
            context.logger.warning("blobs missing here; fetching the off-site copies", metadata: ["source": "\(source)", "blobs": "\(missing.count)"])
        }
        let meter = quiet ? nil : context.progress
        meter?.begin("fetch blobs of \(source) from \(remote.location)", totalItems: missing.count, itemUnit: "blobs")
        defer { meter?.end() }
        // Plain or encrypted (`.age`): the name this store would write is tried first, then the other; one
        // request per blob, never a listing of the whole remote directory (a million blobs, batch after batch).
        let suffixes = blobs.encryption?.recipients.isEmpty == false ? [BlobStore.encryptedSuffix, ""] : ["", BlobStore.encryptedSuffix]
        for digest in missing {
            guard BlobStore.isDigest(digest) else {
                throw IntegrityError(object: "the manifest of \(source)", problem: "\(String(reflecting: String(digest.prefix(80)))) is not a sha256 address")
            }
            var found: String?
            for suffix in suffixes {
                let candidate = "\(source)/blobs/\(digest.prefix(2))/\(digest)\(suffix)"
                if try await remote.stat(candidate) != nil { found = candidate; break }
            }
            guard let relative = found else {
                throw IntegrityError(object: "\(remote.location)\(source)/blobs/", problem: "blob \(digest) is neither here nor off-site")
            }
            // A plain blob is checked by its name; an encrypted one when it is decrypted (its content hashes to its name).
            let expected = relative.hasSuffix(BlobStore.encryptedSuffix) ? nil : digest
            let local = context.repository
            _ = (try await local.fetchIfMissing(relative, sha256: expected, from: remote))
            meter?.add(bytes: FileIO.fileSize(local.absolute(relative)) ?? 0, items: 1)
        }
    }

    // MARK: rollback

    /// Buckets only when asked: uploads written after the deploy are user data, not the release's.
    func rollback(_ artifact: ArtifactInfo, source: TypedSource<S3SourcePolicy>, restoreData: Bool, context: SourceContext) async throws -> [String] {
        var lines: [String] = []
        for bucket in try await loadDocument(artifact, context: context).buckets {
            if restoreData {
                let done = try await context.restore(self, source, into: BucketRestoreTarget(bucket: bucket.name, deleteExtra: true),
                                                     RestoreRequest(source: source.name, backup: .id(artifact.id), confirmed: true))
                lines.append("restored \(artifact.source) bucket \(bucket.name) from \(artifact.id): \(done.details["uploaded"]?.intValue ?? 0) uploaded, \(done.details["deleted"]?.intValue ?? 0) deleted")
            } else {
                lines.append("kaleem-backup restore \(artifact.source) --backup \(artifact.id) --bucket \(bucket.name) --delete-extra --yes")
            }
        }
        return lines
    }

}
