// restore of one bucket of a snapshot into a target bucket, in memory bounded by one manifest chunk, one page
// of the target's listing and the uploads in flight (never by the bucket):
//   the snapshot's entries (a `RestoreSelection`: a stream in key order that can be opened again) are merged
//   with the target's listing (also in key order), once to plan (counts only, and a few keys to show), once to
//   upload, and, when asked, once more to delete the extras, after every upload succeeded
//   an object whose key, size and content already match (its ETag is the recorded ETag, the content's MD5,
//     or the multipart ETag our upload would give) is left alone
//   every other object of the snapshot is uploaded from its blob, checked against its sha256 first
//     (a mismatch stops the restore: `BlobMismatch`)
//   objects the snapshot does not hold are deleted only when asked (`deleteExtra`)
import ArtifactStore
import BackupCore
import Crypto
import Foundation
import S3Client

/// Entries of a snapshot's bucket in key order, read one at a time.
public protocol EntryStream: AnyObject {
    func next() async throws -> BucketSnapshot.Entry?
}

extension EntryCursor: EntryStream {}

/// Entries held in memory (a format-1 snapshot's bucket, tests), sorted into key order.
public final class ArrayEntryStream: EntryStream {
    private var iterator: IndexingIterator<[BucketSnapshot.Entry]>
    public init(_ entries: [BucketSnapshot.Entry]) { iterator = entries.sorted { KeyOrder.less($0.key, $1.key) }.makeIterator() }
    public func next() async throws -> BucketSnapshot.Entry? { iterator.next() }
}

/// The entries of `base` under `prefix` and/or among `keys`, in order. Keys are in byte order, so the stream
/// ends as soon as it has passed the prefix (or the last wanted key) without reading the rest of the bucket.
public final class FilteredEntryStream: EntryStream {
    let base: EntryStream
    let prefix: String?
    let keys: Set<String>
    let lastKey: String?
    private var done = false

    public init(_ base: EntryStream, prefix: String?, keys: Set<String>) {
        self.base = base
        self.prefix = prefix
        self.keys = keys
        self.lastKey = keys.max { KeyOrder.less($0, $1) }
    }

    public func next() async throws -> BucketSnapshot.Entry? {
        while !done, let entry = try await base.next() {
            if let prefix, !entry.key.hasPrefix(prefix) {
                if KeyOrder.less(prefix, entry.key) { done = true }
                continue
            }
            if let lastKey {
                if KeyOrder.less(lastKey, entry.key) { done = true; continue }
                if !keys.contains(entry.key) { continue }
            }
            return entry
        }
        return nil
    }
}

/// What a restore takes from a snapshot: one bucket's entries (all, or those selected), which can be read again
/// from the start for each pass, and how many there are.
public struct RestoreSelection {
    /// The snapshot's bucket.
    public var name: String
    /// The target is listed under this prefix (extras are looked for there only).
    public var prefix: String
    public var objects: Int
    public var bytes: Int64
    /// A fresh stream over the entries, in key order.
    public var open: () -> EntryStream

    public init(name: String, prefix: String, objects: Int, bytes: Int64, open: @escaping () -> EntryStream) {
        self.name = name
        self.prefix = prefix
        self.objects = objects
        self.bytes = bytes
        self.open = open
    }

    /// A bucket held in memory.
    public init(_ bucket: BucketSnapshot.Bucket) {
        let objects = bucket.objects
        self.init(name: bucket.name, prefix: bucket.prefix, objects: objects.count, bytes: objects.reduce(0) { $0 + $1.size }) {
            ArrayEntryStream(objects)
        }
    }
}

public struct BucketRestorePlan: Sendable {
    /// How many keys of each kind a plan keeps to show.
    public static let sampleSize = 10

    public var sourceBucket: String
    public var targetBucket: String
    public var targetExists: Bool
    /// Objects in the target before the restore (under the prefix).
    public var targetObjects = 0
    public var uploads = 0
    public var uploadBytes: Int64 = 0
    public var unchanged = 0
    /// Keys in the target that the snapshot does not hold.
    public var extras = 0
    public var deleteExtra: Bool
    /// Uploads that replace an object of the target holding something else.
    public var overwrites = 0
    /// The first keys to upload and the first extras (in key order), to show.
    public var uploadSample: [String] = []
    public var extraSample: [String] = []
    /// An object whose blob is not in the store: the restore stops before writing anything.
    public var missingBlob: (key: String, sha256: String)?

    public init(sourceBucket: String, targetBucket: String, targetExists: Bool, deleteExtra: Bool) {
        self.sourceBucket = sourceBucket
        self.targetBucket = targetBucket
        self.targetExists = targetExists
        self.deleteExtra = deleteExtra
    }

    public var description: [String] {
        var lines = ["bucket \(sourceBucket) -> \(targetBucket)\(targetExists ? " (holds \(targetObjects) objects)" : " (will be created)")",
                     "upload \(uploads) objects (\(uploadBytes) bytes), \(unchanged) already identical"
                        + (overwrites > 0 ? "; \(overwrites) of the uploads replace a different object there" : "")]
        if deleteExtra {
            if extras > 0 { lines.append("delete \(extras) objects the snapshot does not hold: \(Self.show(extraSample, of: extras))") }
        } else if extras > 0 {
            lines.append("keep \(extras) objects the snapshot does not hold (--delete-extra removes them)")
        }
        return lines
    }

    static func show(_ sample: [String], of total: Int) -> String {
        sample.map { String(reflecting: $0) }.joined(separator: ", ") + (total > sample.count ? " and \(total - sample.count) more" : "")
    }
}

public struct BucketRestoreResult: Sendable {
    public var plan: BucketRestorePlan
    public var uploaded: Int
    public var deleted: Int
    public var requests: Int
}

/// What reading a restored bucket back found: the number of differences and the first of them (in key order).
public struct BucketComparison: Sendable {
    public static let sampleSize = 20
    public var problems = 0
    public var sample: [String] = []
    public var isEmpty: Bool { problems == 0 }

    mutating func add(_ problem: String) {
        problems += 1
        sample.append(problem)
        if sample.count > Self.sampleSize * 4 { trim() }
    }

    mutating func trim() {
        sample.sort()
        if sample.count > Self.sampleSize { sample.removeLast(sample.count - Self.sampleSize) }
    }
}

/// A blob that is missing or whose content no longer hashes to its name.
public struct BlobMismatch: UserFacingError {
    public var key: String
    public var sha256: String
    public var problem: String
    public var exitStatus: ExitStatus { .integrity }
    public var description: String { "blob \(sha256) of object \(key) \(problem); the restore stopped" }
    public var hint: String? { "verify the snapshot (kaleem-backup verify) and restore an older one" }
}

/// One key of the merge of a snapshot's entries with a bucket's listing.
enum Merged {
    case both(BucketSnapshot.Entry, S3Object)
    case onlySnapshot(BucketSnapshot.Entry)
    case onlyTarget(S3Object)
}

public struct BucketRestorer: Sendable {
    public let client: S3Client
    public let blobs: BlobStore
    /// Told each object uploaded with its size (progress on a terminal).
    public var onUploaded: (@Sendable (_ bytes: Int64) -> Void)?

    public init(client: S3Client, blobs: BlobStore) {
        self.client = client
        self.blobs = blobs
    }

    /// Walks the selection beside the target's listing (both in key order), handing `body` each key of either.
    /// A listing out of key order is an error (the merge would pair the wrong objects).
    func merge(_ selection: RestoreSelection, with target: String, listed: Bool,
               _ body: (Merged) async throws -> Void) async throws {
        let stream = selection.open()
        var pending = try await stream.next()
        if listed {
            var lastListed: String?
            try await client.listObjects(bucket: target, prefix: selection.prefix) { page in
                for object in page {
                    if let lastListed, !KeyOrder.less(lastListed, object.key) {
                        throw ListingOrderError(bucket: target, previous: lastListed, key: object.key)
                    }
                    lastListed = object.key
                    while let entry = pending, KeyOrder.less(entry.key, object.key) {
                        try await body(.onlySnapshot(entry))
                        pending = try await stream.next()
                    }
                    if let entry = pending, KeyOrder.same(entry.key, object.key) {
                        try await body(.both(entry, object))
                        pending = try await stream.next()
                    } else {
                        try await body(.onlyTarget(object))
                    }
                }
            }
        }
        while let entry = pending {
            try await body(.onlySnapshot(entry))
            pending = try await stream.next()
        }
    }

    /// The entry to upload for a merged key (nil: nothing to upload).
    func toUpload(_ item: Merged) throws -> BucketSnapshot.Entry? {
        switch item {
        case .both(let entry, let there): try (there.size == entry.size && matches(there.etag, entry)) ? nil : entry
        case .onlySnapshot(let entry): entry
        case .onlyTarget: nil
        }
    }

    /// Counts what a restore would do (one pass; nothing is written).
    public func plan(_ selection: RestoreSelection, into target: String, deleteExtra: Bool) async throws -> BucketRestorePlan {
        let exists = try await client.bucketExists(target)
        var plan = BucketRestorePlan(sourceBucket: selection.name, targetBucket: target, targetExists: exists, deleteExtra: deleteExtra)
        let blobs = self.blobs
        try await merge(selection, with: target, listed: exists) { item in
            if case .onlyTarget(let object) = item {
                plan.targetObjects += 1
                plan.extras += 1
                if plan.extraSample.count < BucketRestorePlan.sampleSize { plan.extraSample.append(object.key) }
                return
            }
            if case .both = item { plan.targetObjects += 1 }
            guard let entry = try toUpload(item) else { plan.unchanged += 1; return }
            plan.uploads += 1
            plan.uploadBytes += entry.size
            if case .both = item { plan.overwrites += 1 }
            if plan.uploadSample.count < BucketRestorePlan.sampleSize { plan.uploadSample.append(entry.key) }
            if plan.missingBlob == nil, !blobs.contains(entry.sha256) { plan.missingBlob = (entry.key, entry.sha256) }
        }
        return plan
    }

    public func plan(_ bucket: BucketSnapshot.Bucket, into target: String, deleteExtra: Bool) async throws -> BucketRestorePlan {
        try await plan(RestoreSelection(bucket), into: target, deleteExtra: deleteExtra)
    }

    /// True when an object with this ETag holds the entry's content.
    func matches(_ etag: String, _ entry: BucketSnapshot.Entry) throws -> Bool {
        if etag == entry.etag || etag == entry.md5 { return true }
        // A multipart ETag: the one our own upload of this blob would produce.
        if etag.contains("-"), entry.size > client.options.multipartThreshold, blobs.contains(entry.sha256), !blobs.isEncrypted(entry.sha256) {
            return try multipartETag(of: blobs.path(for: entry.sha256), partSize: client.options.partSize) == etag
        }
        return false
    }

    /// `hex(md5(md5(p1) ‖ … ‖ md5(pN)))-N` (the multipart ETag S3 and MinIO compute).
    func multipartETag(of path: String, partSize: Int) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError("open", path: path) }
        defer { close(fd) }
        var digests = Data()
        var parts = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var part = Insecure.MD5()
        var inPart = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw FileSystemError("read", path: path) }
            if n == 0 { break }
            var offset = 0
            while offset < n {
                let take = min(n - offset, partSize - inPart)
                buffer.withUnsafeBytes { part.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + take])) }
                inPart += take
                offset += take
                if inPart == partSize {
                    digests.append(contentsOf: part.finalize())
                    parts += 1
                    part = Insecure.MD5()
                    inPart = 0
                }
            }
        }
        if inPart > 0 {
            digests.append(contentsOf: part.finalize())
            parts += 1
        }
        return Insecure.MD5.hash(data: digests).hexString + "-\(parts)"
    }

    /// Restores what the plan counted: uploads what differs (`concurrency` at a time, the merge going on beside
    /// them), then, when asked and only after every upload succeeded, deletes the extras a page at a time. The
    /// target is listed again for each pass, so what changed there since the plan is taken as it is now.
    public func execute(_ plan: BucketRestorePlan, _ selection: RestoreSelection, concurrency: Int) async throws -> BucketRestoreResult {
        let before = client.requestCount
        // Every blob is there before anything is written.
        if let missing = plan.missingBlob {
            throw BlobMismatch(key: missing.key, sha256: missing.sha256, problem: "is missing from the blob store")
        }
        let exists = try await client.bucketExists(plan.targetBucket)
        if !exists { try await client.createBucket(plan.targetBucket) }
        let target = plan.targetBucket
        let uploaded = onUploaded
        let restorer = self
        var uploads = 0
        _ = try await withBoundedTasks(limit: concurrency, of: Void.self) { submit in
            try await merge(selection, with: target, listed: exists) { item in
                guard let entry = try toUpload(item) else { return }
                guard blobs.contains(entry.sha256) else {
                    throw BlobMismatch(key: entry.key, sha256: entry.sha256, problem: "is missing from the blob store")
                }
                uploads += 1
                _ = try await submit {
                    try await restorer.upload(entry, to: target)
                    uploaded?(entry.size)
                }
            }
        }
        var deleted = 0
        if plan.deleteExtra {
            var batch: [String] = []
            try await merge(selection, with: target, listed: true) { item in
                guard case .onlyTarget(let object) = item else { return }
                batch.append(object.key)
                if batch.count == 1000 {
                    // Keys already listed: deleting them does not move the listing's continuation.
                    try await client.deleteObjects(bucket: target, keys: batch)
                    deleted += batch.count
                    batch.removeAll(keepingCapacity: true)
                }
            }
            try await client.deleteObjects(bucket: target, keys: batch)
            deleted += batch.count
        }
        return BucketRestoreResult(plan: plan, uploaded: uploads, deleted: deleted, requests: client.requestCount - before)
    }

    public func execute(_ plan: BucketRestorePlan, _ bucket: BucketSnapshot.Bucket, concurrency: Int) async throws -> BucketRestoreResult {
        try await execute(plan, RestoreSelection(bucket), concurrency: concurrency)
    }

    private func upload(_ entry: BucketSnapshot.Entry, to bucket: String) async throws {
        do {
            let (path, release) = try blobs.plaintextFile(entry.sha256)
            defer { release() }
            try await client.putFile(bucket: bucket, key: entry.key, path: path, expectedSHA256: entry.sha256)
        } catch let mismatch as S3ContentMismatch {
            throw BlobMismatch(key: entry.key, sha256: entry.sha256, problem: "hashes to \(mismatch.actual): it changed on disk")
        }
    }
}

extension BucketRestorer {
    /// Reads every object of `target` back and compares it with the selection's entries: the same keys, and
    /// for each its size and the sha256 of its bytes (`concurrency` reads at a time, beside the merge).
    public func compare(_ selection: RestoreSelection, with target: String, concurrency: Int) async throws -> BucketComparison {
        var result = BucketComparison()
        let client = self.client
        let rest = try await withBoundedTasks(limit: concurrency, of: String?.self) { submit in
            try await merge(selection, with: target, listed: true) { item in
                switch item {
                case .onlySnapshot(let entry): result.add("\(entry.key): missing")
                case .onlyTarget(let object): result.add("\(object.key): not in the snapshot")
                case .both(let entry, let object):
                    if object.size != entry.size { result.add("\(entry.key): \(object.size) bytes, expected \(entry.size)"); return }
                    let finished = try await submit {
                        var hasher = SHA256()
                        _ = try await client.getObject(bucket: target, key: entry.key, restart: { hasher = SHA256() }) { chunk in
                            chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                        }
                        let digest = hasher.finalize().hexString
                        return digest == entry.sha256 ? nil : "\(entry.key): sha256 \(digest), expected \(entry.sha256)"
                    }
                    if case let problem?? = finished { result.add(problem) }
                }
            }
        }
        for case let problem? in rest { result.add(problem) }
        result.trim()
        return result
    }

    public func compare(_ bucket: BucketSnapshot.Bucket, with target: String, concurrency: Int) async throws -> BucketComparison {
        try await compare(RestoreSelection(bucket), with: target, concurrency: concurrency)
    }

    /// Deletes every object of a bucket, then the bucket (a drill's scratch bucket): the first page of the
    /// listing is deleted until there is none, so memory holds one page.
    public func removeBucket(_ bucket: String) async throws {
        while true {
            var keys: [String] = []
            try await client.listObjects(bucket: bucket, maxPages: 1) { keys = $0.map(\.key) }
            if keys.isEmpty { break }
            try await client.deleteObjects(bucket: bucket, keys: keys)
        }
        try await client.deleteBucket(bucket)
    }
}
