// MinIO / S3 sources: snapshots into the blob store, their verification, restore into a bucket, drills, and
// the collection of blobs no snapshot references any more.
import ArtifactStore
import BackupCatalog
import BackupCore
import BucketMirror
import Foundation
import S3Client

struct BucketAdapter: SnapshotKind {
    typealias Settings = S3SourcePolicy
    let kind = SourceKind("s3")
    let summary = "point-in-time snapshots of buckets (content-addressed blobs), restored into a bucket"
    var restoresOnRollbackByDefault: Bool { false }

    func s3Client(_ s3: S3SourcePolicy, source: String, endpoint: String? = nil, context: SourceContext) throws -> S3Client {
        guard let secret = try context.secrets(for: source).resolve(s3.secretKey, key: "secret_key") else {
            throw BackupFailure("source \"\(source)\" has no secret key", exitStatus: .usage)
        }
        var options = context.s3Options(timeout: s3.timeoutSeconds)
        options.maxConnections = s3.concurrency
        return try S3Client(endpoint: endpoint ?? s3.endpoint, region: s3.region,
                            credentials: S3Credentials(accessKey: s3.accessKey, secretKey: secret), options: options)
    }

    /// The source's blob store; with `encryption:` new blobs are encrypted and encrypted ones readable.
    func blobStore(source: String, context: SourceContext) -> BlobStore {
        let root = context.absolute("\(source)/blobs")
        guard let encryption = context.policy.encryption else { return BlobStore(root: root) }
        let recipients = (try? encryption.recipients.map(AgeRecipient.init)) ?? []
        let file = encryption.identityFile
        let origin = context.policy.origin
        return BlobStore(root: root, encryption: BlobEncryption(recipients: recipients) {
            try EngineCore.loadIdentities(file: file, origin: origin, what: "blobs of source \(source)")
        })
    }

    /// Takes a snapshot of a bucket source: its chunks go into the blob store as they are made, then the
    /// snapshot file (`<id>.snapshot.json`, format 2) is written atomically.
    func backupSnapshot(_ policy: TypedSource<S3SourcePolicy>, artifact: ArtifactInfo, context: SourceContext) async throws -> (stats: [String: JSONValue], stored: StoredFile) {
        let s3 = policy.settings
        let source = policy.name
        _ = try context.encryptionRecipients() // a malformed recipient fails the backup here, not silently
        let previous = await previousSnapshot(source: source, context: context)
        let client = try s3Client(s3, source: source, context: context)
        defer { client.shutdown() }
        var configured = BucketSnapshotter(client: client, blobs: blobStore(source: source, context: context))
        configured.deadline = Date(timeIntervalSinceNow: policy.deadlineSeconds)
        configured.deadlineError = DeadlineExceeded(source: source, seconds: policy.deadlineSeconds)
        if let meter = context.progress {
            meter.begin("backup \(source)", totalItems: 0, itemUnit: "objects")
            // Each page of objects joins the total once listed; unchanged ones count as done at once, the ones
            // to fetch as they arrive.
            configured.onListed = { objects, toFetch in meter.add(items: objects - toFetch, totalItems: objects) }
            configured.onFetched = { meter.add(bytes: $0, items: 1) }
        }
        let snapshotter = configured
        let options = SnapshotOptions(buckets: s3.buckets, prefix: s3.prefix, concurrency: s3.concurrency)
        let created = Timestamps.iso8601(artifact.createdAt)
        let logger = context.logger
        let describe = context.describe
        let (snapshot, stats) = try await snapshotter.take(
            source: source, artifact: artifact.id, createdAt: created, options: options, previous: previous?.document,
            reader: chunkReader(source: source, context: context)) { error in
                logger.warning("previous snapshot unreadable from here on; downloading the rest", metadata: ["source": "\(source)", "error": "\(describe(error))"])
            }
        let data = try snapshot.encoded()
        let path = context.absolute(artifact.path)
        try FileIO.writeAtomically(data, to: path)
        var json = stats.json
        json["previous"] = previous.map { .string($0.artifact) } ?? .null
        json["manifest_format"] = .string(SnapshotTree.formatName)
        context.logger.info("bucket snapshot", metadata: ["source": "\(source)", "objects": "\(stats.objects)", "new": "\(stats.new)",
                                                  "changed": "\(stats.changed)", "deleted": "\(stats.deleted)", "requests": "\(stats.requests)",
                                                  "chunks_added": "\(stats.manifestChunksAdded)"])
        // Stored: what this snapshot added to the repository (its new blobs, its new manifest chunks and its
        // snapshot file); raw: the logical size of every object it lists. The sha256 is the snapshot file's (what
        // verify and off-site copies check).
        return (json, StoredFile(path: path, bytesRaw: stats.bytes, bytesStored: Int64(data.count) + stats.addedBytes + stats.manifestBytesAdded,
                                 sha256: sha256Hex(data)))
    }

    /// The newest good snapshot of the source, if its file reads back intact; otherwise nil (every object is
    /// then downloaded again, which costs time but loses nothing).
    func previousSnapshot(source: String, context: SourceContext) async -> (artifact: String, document: SnapshotDocument)? {
        guard let last = try? context.catalog().artifacts(source: source, status: .ok, limit: 1).first else { return nil }
        do {
            return (last.id, try await loadDocument(last, context: context))
        } catch {
            context.logger.warning("previous snapshot unreadable; downloading every object", metadata: ["artifact": "\(last.id)", "error": "\(context.describe(error))"])
            return nil
        }
    }

    /// Reads a snapshot file (format 1 or 2), checking it against the sha256 the catalog recorded.
    func loadDocument(_ artifact: ArtifactInfo, context: SourceContext) async throws -> SnapshotDocument {
        let path = try await context.localPath(artifact)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IntegrityError(object: path, problem: "the snapshot manifest is missing")
        }
        guard sha256Hex(data) == artifact.sha256 else {
            throw IntegrityError(object: path, problem: "sha256 is \(sha256Hex(data)), the catalog recorded \(artifact.sha256)")
        }
        return try SnapshotDocument.decode(data, file: path)
    }

    /// Reads manifest chunks from the blob store; a chunk that is not here is fetched from the off-site copy
    /// first (after a disaster the repository may hold only snapshot files).
    func chunkReader(source: String, context: SourceContext) -> ChunkReader {
        let blobs = blobStore(source: source, context: context)
        return ChunkReader { digest in
            if !blobs.contains(digest) { try await fetchMissingBlobs([digest], source: source, context: context, quiet: true) }
            return try ChunkReader.read(digest, from: blobs)
        }
    }

    /// sha256 of the snapshot file, then every chunk (checked by its address as it is read) and every blob it
    /// references, re-hashed; a chunk or a bucket at a time, so a million objects verify in bounded memory.
    func verifySnapshot(_ artifact: ArtifactInfo, context: SourceContext) async throws -> String {
        let document = try await loadDocument(artifact, context: context)
        let reader = chunkReader(source: artifact.source, context: context)
        let blobs = blobStore(source: artifact.source, context: context)
        var checked = 0
        var objects = 0
        var chunks = 0
        var lastDigest = ""
        for bucket in document.buckets {
            guard let cursor = document.cursor(bucket: bucket.name, reader: reader) else { continue }
            var pending: [String] = []
            // Blobs are checked a batch at a time, so the missing ones of a batch are fetched off-site together.
            func check(_ batch: [String]) async throws {
                try await fetchMissingBlobs(batch, source: artifact.source, context: context)
                for digest in batch {
                    guard let actual = try blobs.rehash(digest) else {
                        throw IntegrityError(object: blobs.path(for: digest), problem: "blob is missing")
                    }
                    guard actual == digest else {
                        throw IntegrityError(object: blobs.path(for: digest), problem: "blob content hashes to \(actual)")
                    }
                    checked += 1
                }
            }
            var inBucket = 0
            while let entry = try await cursor.next() {
                inBucket += 1
                guard entry.sha256 != lastDigest else { continue } // the same content as the object before it
                lastDigest = entry.sha256
                pending.append(entry.sha256)
                if pending.count == 1000 {
                    try await check(pending)
                    pending.removeAll(keepingCapacity: true)
                }
            }
            try await check(pending)
            guard inBucket == bucket.objects else {
                throw IntegrityError(object: context.absolute(artifact.path), problem: "bucket \(bucket.name) holds \(inBucket) objects, the snapshot file says \(bucket.objects)")
            }
            objects += inBucket
            chunks += cursor.chunksRead
        }
        if let recorded = artifact.stats["objects"]?.intValue, recorded != objects {
            throw IntegrityError(object: context.absolute(artifact.path), problem: "snapshot lists \(objects) objects, the catalog recorded \(recorded)")
        }
        return "sha256 ok, \(document.buckets.count) bucket(s), \(objects) objects, \(checked) blobs re-hashed" + (chunks > 0 ? ", \(chunks) manifest chunks checked" : "")
    }

    /// After rotation removed snapshots of a bucket source: deletes the blobs no remaining snapshot references,
    /// one share of the address space at a time (see `gcPartitions`). Skipped (never guessed) when a remaining
    /// manifest cannot be read.
    func collectGarbage(source: String, context: SourceContext) async {
        do {
            let store = blobStore(source: source, context: context)
            var blobs = 0
            var bytes: Int64 = 0
            let passes = try await forEachGCShare(source: source, context: context) { partition, keep in
                let removed = try store.collectGarbage(keeping: keep, partition: partition)
                blobs += removed.blobs
                bytes += removed.bytes
            }
            context.logger.info("blob garbage collected", metadata: ["source": "\(source)", "blobs": "\(blobs)", "bytes": "\(bytes)", "passes": "\(passes)"])
        } catch {
            context.logger.warning("blob garbage collection skipped", metadata: ["source": "\(source)", "error": "\(context.describe(error))"])
        }
    }

    /// Garbage collection's passes: for each share of the address space (`gcPartitions`), what the remaining
    /// snapshots reference in it, handed to `sweep`. Returns the number of passes.
    @discardableResult
    func forEachGCShare(source: String, context: SourceContext,
                        _ sweep: (BlobPartition, DigestSet) async throws -> Void) async throws -> Int {
        let count = try gcPartitions(source: source, context: context)
        for index in 0..<count {
            let partition = BlobPartition(index: index, count: count)
            try await sweep(partition, try await referencedBlobs(source: source, partition: partition, context: context))
        }
        return count
    }

    /// How many shares of the address space garbage collection marks one at a time: enough that each mark holds
    /// at most ~250,000 addresses (~17 MB), for the blobs the remaining snapshots may reference (the largest
    /// snapshot's objects, plus every other one's new and changed objects, plus a chunk for every 50 objects).
    /// Each share reads every distinct manifest chunk again: 1 pass up to ~250,000 objects, 5 at a million.
    func gcPartitions(source: String, context: SourceContext) throws -> Int {
        let kept = try context.catalog().artifacts(source: source, status: .ok).filter { $0.deletedAt == nil }
        let sizes = kept.map { $0.stats["objects"]?.intValue ?? 0 }
        let largest = sizes.max() ?? 0
        let added = kept.reduce(0) { $0 + ($1.stats["new"]?.intValue ?? 0) + ($1.stats["changed"]?.intValue ?? 0) }
        let estimate = largest + added + (largest + added) / 50
        return BlobPartition.count(forBlobs: estimate)
    }

    /// The blobs of `partition` a remaining good snapshot of the source references (throws, never guesses, when
    /// one cannot be read).
    func referencedBlobs(source: String, partition: BlobPartition = .all, context: SourceContext) async throws -> DigestSet {
        var marker = BlobMarker(partition: partition)
        let reader = chunkReader(source: source, context: context)
        for artifact in try context.catalog().artifacts(source: source, status: .ok) where artifact.deletedAt == nil {
            try await marker.mark(loadDocument(artifact, context: context), reader: reader)
        }
        return marker.marked
    }
}

/// What a restore of a bucket source takes and where it goes, from its options.
struct BucketRestoreTarget: Sendable {
    /// The snapshot's bucket to restore; required when it holds several.
    var bucket: String?
    /// Default: the same name.
    var toBucket: String?
    /// Default: the source's endpoint.
    var endpoint: String?
    var deleteExtra = false
    /// Only these object keys (`--key`, repeatable) and/or those under `prefix` (`--prefix`): a partial restore.
    var keys: [String] = []
    var prefix: String?
    /// `--to-dir`: the objects written as files under this directory instead of into a bucket.
    var directory: String?

    var isPartial: Bool { !keys.isEmpty || prefix != nil }
}

extension BucketAdapter {
    var restoreOptions: [RestoreOptionSpec] {
        [
            RestoreOptionSpec("bucket", value: "NAME", help: "the bucket of the snapshot to restore (required when it holds several)"),
            RestoreOptionSpec("to-bucket", value: "NAME", help: "restore into this bucket (default: the same name; created if missing)"),
            RestoreOptionSpec("endpoint", value: "URL", help: "restore to this S3 endpoint instead of the source's (http://host:port)"),
            RestoreOptionSpec("delete-extra", help: "delete objects of the target that the snapshot does not hold"),
            RestoreOptionSpec("key", value: "KEY", help: "only this object (repeatable): a partial restore; an object that differs there is replaced only with --yes", repeatable: true),
            RestoreOptionSpec("prefix", value: "P", help: "only the objects whose key starts with P (with --delete-extra: extras under P only)"),
            RestoreOptionSpec("to-dir", value: "DIR", help: "write the objects as files under DIR instead of into a bucket (keys that cannot be safe paths are refused)"),
        ]
    }

    func restoreTarget(_ source: TypedSource<S3SourcePolicy>, _ o: RestoreOptions) throws -> BucketRestoreTarget {
        var target = BucketRestoreTarget(bucket: o.value("bucket"), toBucket: o.value("to-bucket"), endpoint: o.value("endpoint"),
                                         deleteExtra: o.flag("delete-extra"), keys: o.values("key"), prefix: o.value("prefix"))
        if let dir = o.value("to-dir") {
            if o.given("to-bucket") || o.given("endpoint") || o.flag("delete-extra") {
                throw BackupFailure("--to-dir writes files; it does not go with --to-bucket, --endpoint or --delete-extra", exitStatus: .usage)
            }
            guard !dir.isEmpty else {
                throw BackupFailure("--to-dir is empty: it would write under /", exitStatus: .usage, hint: "give the directory to write the objects under")
            }
            target.directory = dir
        } else if !target.keys.isEmpty && target.deleteExtra {
            throw BackupFailure("--delete-extra with --key would delete every other object of the bucket; refusing", exitStatus: .usage,
                                hint: "use --prefix P --delete-extra to make a prefix match the snapshot")
        }
        return target
    }

    /// restore (bucket):
    ///   the snapshot verified by the restorer (manifest sha256, every blob)
    ///   pick the bucket; plan against the target bucket (created if missing)
    ///   the plan printed; --dry-run stops there; a non-empty target needs --yes
    ///   upload what differs (each blob checked against its sha256 first), delete extras only if asked
    func planRestore(_ artifact: ArtifactInfo, into request: BucketRestoreTarget, source: TypedSource<S3SourcePolicy>, request restore: RestoreRequest,
                     context: SourceContext) async throws -> RestorePlan {
        if let directory = request.directory {
            return try await planDirectory(artifact, request, directory: directory, source: source, confirmed: restore.confirmed, context: context)
        }
        let s3 = source.settings
        let selection = try await restoreSelection(request, artifact: artifact, context: context)
        let target = request.toBucket ?? selection.name
        guard BucketName.isValid(target) else {
            throw BackupFailure("\"\(target)\" is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)", exitStatus: .usage)
        }
        let client = try s3Client(s3, source: source.name, endpoint: request.endpoint, context: context)
        let restorer = BucketRestorer(client: client, blobs: blobStore(source: source.name, context: context))
        let deleteExtra = request.deleteExtra
        let plan: BucketRestorePlan
        do {
            plan = (try await restorer.plan(selection, into: target, deleteExtra: deleteExtra))
        } catch {
            client.shutdown()
            throw error
        }
        let targetText = "\(client.endpoint)/\(target)"
        let lines = ["restore \(source.name) snapshot \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt)), \(selection.objects) objects in bucket \(selection.name))",
                     "into \(targetText)"] + plan.description
        var needsConfirmation: BackupFailure?
        if request.isPartial {
            // Only what was asked for: it adds what is missing without asking; replacing what differs needs --yes.
            if plan.overwrites > 0 || (plan.deleteExtra && plan.extras > 0) {
                needsConfirmation = BackupFailure("\(plan.overwrites) of the selected objects differ in bucket \(target) at \(client.endpoint)\(plan.deleteExtra ? " and \(plan.extras) would be deleted" : ""); refusing to replace them without --yes",
                                                  exitStatus: .usage, hint: "read the plan above, then run the same command with --yes (or --dry-run to rehearse)")
            }
        } else if plan.targetObjects > 0 {
            needsConfirmation = BackupFailure("bucket \(target) at \(client.endpoint) holds \(plan.targetObjects) objects; refusing to write into it without --yes",
                                              exitStatus: .usage, hint: "read the plan above, then run the same command with --yes (or --dry-run to rehearse)")
        }
        func details(_ result: BucketRestoreResult?) -> [String: JSONValue] {
            ["bucket": .string(plan.sourceBucket), "target": .string(plan.targetBucket), "endpoint": .string(client.endpoint),
             "uploaded": .int(result?.uploaded ?? 0), "unchanged": .int(plan.unchanged), "deleted": .int(result?.deleted ?? 0),
             "planned_uploads": .int(plan.uploads), "planned_deletes": .int(deleteExtra ? plan.extras : 0), "requests": .int(result?.requests ?? 0)]
        }
        return RestorePlan(
            mode: "bucket", target: targetText, lines: lines, needsConfirmation: needsConfirmation,
            dryRun: RestoreResult(lines: ["dry run completed: nothing was written"], detail: "\(plan.uploads) objects would be uploaded", details: details(nil)),
            apply: { _ in
                let clock = DispatchTime.now()
                var uploading = restorer
                if let meter = context.progress {
                    meter.begin("restore \(artifact.id) into \(target)", totalItems: plan.uploads, itemUnit: "objects")
                    uploading.onUploaded = { meter.add(bytes: $0, items: 1) }
                }
                let result = (try await uploading.execute(plan, selection, concurrency: s3.concurrency))
                context.logger.info("restore ok", metadata: ["source": "\(source.name)", "artifact": "\(artifact.id)", "uploaded": "\(result.uploaded)"])
                let seconds = SourceContext.seconds(since: clock)
                return RestoreResult(
                    lines: ["restored bucket \(plan.targetBucket): \(result.uploaded) uploaded, \(plan.unchanged) unchanged, \(result.deleted) deleted in \(String(format: "%.1f", seconds)) s"],
                    detail: "\(result.uploaded) uploaded, \(plan.unchanged) unchanged, \(result.deleted) deleted", details: details(result))
            },
            close: { client.shutdown() })
    }

    /// A bucket drill: each bucket of the snapshot is restored into a scratch bucket `kb-drill-<id>` (on
    /// `drill.endpoint`, else the source's endpoint), read back and compared object by object (size and
    /// sha256) with the snapshot, then the scratch bucket is deleted.
    func drill(_ artifact: ArtifactInfo, source: TypedSource<S3SourcePolicy>, context: SourceContext) async -> (DrillResult, String) {
        let check = await context.verify(artifact, copy: nil)
        guard check.ok else { return (.failed, "the backup does not verify: \(check.detail)") }
        do {
            return try await drillBuckets(artifact, source.settings, context: context)
        } catch {
            return (.error, "the drill could not run: \(context.describe(error))")
        }
    }

    func drillBuckets(_ artifact: ArtifactInfo, _ s3: S3SourcePolicy, context: SourceContext) async throws -> (DrillResult, String) {
        let document = try await loadDocument(artifact, context: context)
        let buckets = document.buckets
        let client = try s3Client(s3, source: artifact.source, endpoint: context.policy.drill.s3Endpoint, context: context)
        defer { client.shutdown() }
        let restorer = BucketRestorer(client: client, blobs: blobStore(source: artifact.source, context: context))
        let concurrency = s3.concurrency
        var details: [String] = []
        var failed = false
        for (index, bucket) in buckets.enumerated() {
            let scratch = "kb-drill-\(artifact.id.lowercased())" + (buckets.count > 1 ? "-\(index)" : "")
            // Never a bucket of the source: only a fresh scratch bucket.
            if buckets.contains(where: { $0.name == scratch }) || s3.buckets.contains(scratch) {
                return (.error, "scratch bucket \(scratch) is a bucket of the source; refusing to drill into it")
            }
            if (try await client.bucketExists(scratch)) {
                return (.error, "scratch bucket \(scratch) already exists at \(client.endpoint) (a drill that was interrupted?); delete it and run the drill again")
            }
            // The whole bucket (its blobs fetched by the verification above), read a manifest chunk at a time.
            let selection = try await select(BucketRestoreTarget(), from: bucket, of: document,
                                             artifact: artifact, context: context)
            let comparison: BucketComparison
            do {
                let plan = try await restorer.plan(selection, into: scratch, deleteExtra: false)
                _ = try await restorer.execute(plan, selection, concurrency: concurrency)
                comparison = try await restorer.compare(selection, with: scratch, concurrency: concurrency)
            } catch {
                await removeScratchBucket(scratch, restorer, context: context)
                if error is BlobMismatch { return (.failed, context.describe(error)) }
                throw error
            }
            await removeScratchBucket(scratch, restorer, context: context)
            if comparison.isEmpty {
                details.append("\(bucket.name): \(selection.objects) objects restored into \(scratch), sizes and sha256 equal")
            } else {
                failed = true
                details.append("\(bucket.name): \(comparison.problems) object(s) differ: " + comparison.sample.prefix(5).joined(separator: "; "))
            }
        }
        return (failed ? .failed : .passed, details.joined(separator: "; ") + "; scratch buckets deleted")
    }

    private func removeScratchBucket(_ name: String, _ restorer: BucketRestorer, context: SourceContext) async {
        do {
            (try await restorer.removeBucket(name))
        } catch {
            context.logger.warning("scratch bucket not removed", metadata: ["bucket": "\(name)", "error": "\(context.describe(error))"])
        }
    }
}
