// snapshot, for each bucket (the policy's list, or every bucket the credentials see):
//   list it a page at a time (ListObjectsV2, 1,000 keys a request), beside the previous snapshot's entries
//   (merge-join in key order, a chunk at a time)
//   an object whose size, ETag and last-modified equal the previous good snapshot's, and whose blob is
//     here, reuses that entry: no GET
//   any other object is downloaded once, hashed on the way, and stored under its sha256
//   objects of the previous snapshot that are gone are counted as deleted
//   the entries are written as content-addressed chunks as they come (SnapshotTree): unchanged parts of the
//   listing give the chunks that are already stored
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
    /// The chunks of the manifest, those new to the store, and the bytes they added (an unchanged night: none).
    public var manifestChunks = 0
    public var manifestChunksAdded = 0
    public var manifestBytesAdded: Int64 = 0

    public init() {}

    public var json: [String: JSONValue] {
        ["buckets": .int(buckets), "objects": .int(objects), "bytes": .int(Int(bytes)), "new": .int(new),
         "changed": .int(changed), "unchanged": .int(unchanged), "deleted": .int(deleted), "requests": .int(requests),
         "downloaded_bytes": .int(Int(downloadedBytes)), "added_bytes": .int(Int(addedBytes)),
         "manifest_chunks": .int(manifestChunks), "manifest_chunks_added": .int(manifestChunksAdded),
         "manifest_bytes_added": .int(Int(manifestBytesAdded))]
    }
}

public struct BucketSnapshotter: Sendable {
    public let client: S3Client
    public let blobs: BlobStore
    /// When set, the snapshot stops with `deadlineError` once it has passed (checked before each object and as
    /// its bytes arrive).
    public var deadline: Date? { didSet { monotonicDeadline = deadline.map { MonotonicDeadline($0) } } }
    private var monotonicDeadline: MonotonicDeadline?
    public var deadlineError: (any Error & Sendable) = CancellationError()

    func checkDeadline() throws {
        if monotonicDeadline?.passed == true { throw deadlineError }
    }

    /// Told each bucket's object count once listed (`listed`) and each object fetched with its size (`fetched`):
    /// progress on a terminal.
    public var onListed: (@Sendable (_ objects: Int, _ toFetch: Int) -> Void)?
    public var onFetched: (@Sendable (_ bytes: Int64) -> Void)?

    public init(client: S3Client, blobs: BlobStore) {
        self.client = client
        self.blobs = blobs
    }

    /// Takes a snapshot (manifest format 2, `SnapshotTree`): each bucket is listed a page at a time and merged
    /// with the previous snapshot's entries (read a chunk at a time through `reader`), the objects that changed
    /// are downloaded, and the entries are written as chunks into the blob store as they come. Memory is
    /// bounded by a page of the listing, the downloads in flight and one chunk, not by the bucket.
    /// A previous snapshot that cannot be read (a chunk missing or damaged) is abandoned where it fails: the
    /// objects after that point are downloaded again, which costs time and loses nothing.
    public func take(source: String, artifact: String, createdAt: String, options: SnapshotOptions,
                     previous: SnapshotDocument?, reader: ChunkReader? = nil, shape: ChunkShape = ChunkShape(),
                     onPreviousUnreadable: ((any Error) -> Void)? = nil) async throws -> (SnapshotTree, SnapshotStats) {
        let requestsBefore = client.requestCount
        let reader = reader ?? ChunkReader(blobs: blobs)
        var stats = SnapshotStats()
        let names = options.buckets.isEmpty ? try await client.listBuckets().sorted() : options.buckets
        var buckets: [SnapshotTree.Bucket] = []
        for name in names {
            var merge: MergeCursor?
            var previousObjects = 0
            if let old = previous?.buckets.first(where: { $0.name == name }), old.prefix == options.prefix,
               let cursor = previous?.cursor(bucket: name, reader: reader) {
                merge = MergeCursor(cursor)
                previousObjects = old.objects
            }
            let builder = TreeBuilder(store: blobs, shape: shape, bucket: name)
            var lastListed: String?
            try await client.listObjects(bucket: name, prefix: options.prefix) { listed in
                try checkDeadline()
                var entries = [BucketSnapshot.Entry?](repeating: nil, count: listed.count)
                var toFetch: [Int] = []
                for (i, object) in listed.enumerated() {
                    // The merge needs key order; so do the chunk boundaries (checked again by the builder).
                    if let lastListed, !KeyOrder.less(lastListed, object.key) {
                        throw ListingOrderError(bucket: name, previous: lastListed, key: object.key)
                    }
                    lastListed = object.key
                    var old: BucketSnapshot.Entry?
                    if let cursor = merge {
                        do {
                            old = try await cursor.match(object.key)
                        } catch {
                            onPreviousUnreadable?(error)
                            merge = nil
                        }
                    }
                    if let old {
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
                for (i, entry, added) in try await download(bucket: name, objects: listed, indices: toFetch, concurrency: options.concurrency) {
                    entries[i] = entry
                    stats.downloadedBytes += entry.size
                    stats.addedBytes += added
                }
                for entry in entries { try builder.append(entry!) }
            }
            let chunks = try builder.finish()
            if let merge { stats.deleted += previousObjects - merge.matched }
            stats.objects += builder.objects
            stats.bytes += builder.bytes
            stats.manifestChunks += builder.chunks
            stats.manifestChunksAdded += builder.chunksAdded
            stats.manifestBytesAdded += builder.chunkBytesAdded
            buckets.append(SnapshotTree.Bucket(name: name, prefix: options.prefix, objects: builder.objects, bytes: builder.bytes, chunks: chunks))
        }
        stats.buckets = buckets.count
        stats.requests = client.requestCount - requestsBefore
        let snapshot = SnapshotTree(source: source, artifact: artifact, endpoint: client.endpoint, createdAt: createdAt, buckets: buckets)
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
