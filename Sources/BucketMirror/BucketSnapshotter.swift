// snapshot, for each bucket (the policy's list, or every bucket the credentials see):
//   list it (ListObjectsV2, 1,000 keys a request)
//   an object whose size, ETag and last-modified equal the previous good snapshot's, and whose blob is
//     here, reuses that entry: no GET
//   any other object is downloaded once, hashed on the way, and stored under its sha256
//   objects of the previous snapshot that are gone are counted as deleted
// Downloads run `concurrency` at a time. Nothing here touches the catalog: the engine records the result.
import ArtifactStore
import BackupCore
import Foundation
import NIOCore
import S3Client

public struct SnapshotOptions: Sendable {
    /// Buckets to take; empty means every bucket the credentials can list.
    public var buckets: [String]
    public var prefix: String
    public var concurrency: Int

    public init(buckets: [String] = [], prefix: String = "", concurrency: Int = 8) {
        self.buckets = buckets
        self.prefix = prefix
        self.concurrency = max(1, concurrency)
    }
}

/// What changed since the previous snapshot, and what it cost.
public struct SnapshotStats: Sendable, Equatable {
    public var buckets = 0
    public var objects = 0
    public var bytes: Int64 = 0
    public var new = 0
    public var changed = 0
    public var unchanged = 0
    public var deleted = 0
    public var requests = 0
    public var downloadedBytes: Int64 = 0
    /// Bytes the new blobs added to the repository (unchanged objects, and content already stored, add none).
    public var addedBytes: Int64 = 0

    public init() {}

    public var json: [String: JSONValue] {
        ["buckets": .int(buckets), "objects": .int(objects), "bytes": .int(Int(bytes)), "new": .int(new),
         "changed": .int(changed), "unchanged": .int(unchanged), "deleted": .int(deleted), "requests": .int(requests),
         "downloaded_bytes": .int(Int(downloadedBytes)), "added_bytes": .int(Int(addedBytes))]
    }
}

public struct BucketSnapshotter: Sendable {
    public let client: S3Client
    public let blobs: BlobStore
    /// When set, the snapshot stops with `deadlineError` once it has passed (checked before each object and as
    /// its bytes arrive).
    public var deadline: Date?
    public var deadlineError: (any Error & Sendable) = CancellationError()

    func checkDeadline() throws {
        if let deadline, Date() > deadline { throw deadlineError }
    }

    /// Told each bucket's object count once listed (`listed`) and each object fetched with its size (`fetched`):
    /// progress on a terminal.
    public var onListed: (@Sendable (_ objects: Int, _ toFetch: Int) -> Void)?
    public var onFetched: (@Sendable (_ bytes: Int64) -> Void)?

    public init(client: S3Client, blobs: BlobStore) {
        self.client = client
        self.blobs = blobs
    }

    public func take(source: String, artifact: String, createdAt: String, options: SnapshotOptions,
                     previous: BucketSnapshot?) async throws -> (BucketSnapshot, SnapshotStats) {
        let requestsBefore = client.requestCount
        var stats = SnapshotStats()
        let names = options.buckets.isEmpty ? try await client.listBuckets().sorted() : options.buckets
        var buckets: [BucketSnapshot.Bucket] = []
        for name in names {
            let listed = try await client.listObjects(bucket: name, prefix: options.prefix)
            var before: [String: BucketSnapshot.Entry] = [:]
            if let old = previous?.bucket(named: name), old.prefix == options.prefix {
                for entry in old.objects { before[entry.key] = entry }
            }
            var entries = [BucketSnapshot.Entry?](repeating: nil, count: listed.count)
            var toFetch: [Int] = []
            for (i, object) in listed.enumerated() {
                if let old = before[object.key] {
                    if old.size == object.size, old.etag == object.etag, old.lastModified == object.lastModified,
                       blobs.contains(old.sha256) {
                        entries[i] = old
                        stats.unchanged += 1
                    } else {
                        toFetch.append(i)
                        stats.changed += 1
                    }
                } else {
                    toFetch.append(i)
                    stats.new += 1
                }
            }
            onListed?(listed.count, toFetch.count)
            let present = Set(listed.map(\.key))
            stats.deleted += before.keys.filter { !present.contains($0) }.count
            for (i, entry, added) in try await download(bucket: name, objects: listed, indices: toFetch, concurrency: options.concurrency) {
                entries[i] = entry
                stats.downloadedBytes += entry.size
                stats.addedBytes += added
            }
            let objects = entries.map { $0! }
            stats.objects += objects.count
            stats.bytes += objects.reduce(0) { $0 + $1.size }
            buckets.append(BucketSnapshot.Bucket(name: name, prefix: options.prefix, objects: objects))
        }
        stats.buckets = buckets.count
        stats.requests = client.requestCount - requestsBefore
        let snapshot = BucketSnapshot(source: source, artifact: artifact, endpoint: client.endpoint, createdAt: createdAt,
                                      buckets: buckets)
        return (snapshot, stats)
    }

    /// Downloads the objects at `indices`, `concurrency` at a time; the first failure stops the rest.
    private func download(bucket: String, objects: [S3Object], indices: [Int],
                          concurrency: Int) async throws -> [(Int, BucketSnapshot.Entry, Int64)] {
        try await concurrentMap(indices, limit: concurrency) { i in
            try checkDeadline()
            let (entry, added) = try await fetch(bucket: bucket, object: objects[i])
            onFetched?(entry.size)
            return (i, entry, added)
        }
    }

    /// GETs one object into the blob store. The entry takes the size and ETag the GET returned (the object
    /// may have changed since it was listed). Also returns the bytes its blob added to the store.
    func fetch(bucket: String, object: S3Object) async throws -> (BucketSnapshot.Entry, Int64) {
        let writer = try blobs.writer()
        do {
            let head = try await client.getObject(bucket: bucket, key: object.key, restart: { try writer.reset() }) { chunk in
                try checkDeadline()
                try chunk.withUnsafeReadableBytes { try writer.write($0) }
            }
            let digests = try writer.commit()
            let etag = head.etag.isEmpty ? object.etag : head.etag
            let lastModified = etag == object.etag ? object.lastModified : ""
            return (BucketSnapshot.Entry(key: object.key, size: writer.size, etag: etag, lastModified: lastModified,
                                         sha256: digests.sha256, md5: digests.md5), digests.added)
        } catch let error as S3Error {
            writer.abort()
            throw error
        } catch {
            writer.abort()
            throw ObjectDownloadError(bucket: bucket, key: object.key, underlying: error)
        }
    }
}

/// A download that failed on our side (writing the blob), with the object it was for.
public struct ObjectDownloadError: UserFacingError {
    public var bucket: String
    public var key: String
    public var underlying: Error

    public var exitStatus: ExitStatus { (underlying as? UserFacingError)?.exitStatus ?? .failed }
    public var description: String { "downloading \(bucket)/\(key): \(underlying)" }
    public var hint: String? { (underlying as? UserFacingError)?.hint }
}
