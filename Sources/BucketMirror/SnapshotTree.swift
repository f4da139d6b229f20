// The bucket snapshot manifest, format 2: a tree of content-addressed chunks, so an unchanged night costs a
// small snapshot file and no new chunk, and nothing ever holds a whole bucket's listing in memory.
//
//   <id>.snapshot.json      format kaleem-backup/bucket-snapshot/2: per bucket its counts and the list of its
//                           index chunks (a few KB at a million objects)
//   index chunk (a blob)    gzip of {"kind":"index","chunks":[ref…]}: the object chunks, in key order
//   object chunk (a blob)   gzip of {"kind":"objects","entries":[entry…]}: objects in key order (the order of
//                           ListObjectsV2: UTF-8 bytes)
//
// Chunks are stored in the source's blob store like objects: under the sha256 of their (gzip) bytes, encrypted
// when the store encrypts, copied off-site with the snapshot, collected by GC when no kept snapshot names
// them. Boundaries are content-defined on the keys: an object chunk ends after a key whose hash is 0 modulo
// the average size (within a minimum and a maximum), an index chunk after a chunk whose last key's hash (other
// bits) is; so inserting or deleting a key changes only the chunk it falls in (and the index chunk above it),
// where cutting every N entries would shift every later chunk. Format 1 (one JSON document, `BucketSnapshot`)
// is still read: `SnapshotDocument` stands for either.
import ArtifactStore
import BackupCore
import Foundation

/// A chunk of a snapshot's manifest: its content address, and how many objects (and bytes of objects) are under it.
public struct ChunkRef: Codable, Sendable, Equatable {
    public var sha256: String
    public var objects: Int
    public var bytes: Int64

    public init(sha256: String, objects: Int, bytes: Int64) {
        self.sha256 = sha256
        self.objects = objects
        self.bytes = bytes
    }
}

/// The snapshot file of format 2.
public struct SnapshotTree: Codable, Sendable, Equatable {
    public static let formatName = "kaleem-backup/bucket-snapshot/2"

    public var format: String = formatName
    public var source: String
    public var artifact: String
    public var endpoint: String
    public var createdAt: String
    public var buckets: [Bucket]

    public struct Bucket: Codable, Sendable, Equatable {
        public var name: String
        public var prefix: String
        public var objects: Int
        public var bytes: Int64
        /// The index chunks, in key order.
        public var chunks: [ChunkRef]

        public init(name: String, prefix: String, objects: Int, bytes: Int64, chunks: [ChunkRef]) {
            self.name = name
            self.prefix = prefix
            self.objects = objects
            self.bytes = bytes
            self.chunks = chunks
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, source, artifact, endpoint, buckets
        case createdAt = "created_at"
    }

    public init(source: String, artifact: String, endpoint: String, createdAt: String, buckets: [Bucket]) {
        self.source = source
        self.artifact = artifact
        self.endpoint = endpoint
        self.createdAt = createdAt
        self.buckets = buckets
    }

    public func encoded() throws -> Data { try ManifestJSON.encode(self) }
}

/// Where the content-defined boundaries fall. The defaults aim at 64 objects a chunk (about 5 KB of gzip)
/// and 32 object chunks an index chunk; tests use smaller ones to make several levels from few objects.
public struct ChunkShape: Sendable {
    public var averageObjects: Int
    public var minObjects: Int
    public var maxObjects: Int
    public var averageChunks: Int
    public var minChunks: Int
    public var maxChunks: Int

    public init(averageObjects: Int = 64, minObjects: Int = 8, maxObjects: Int = 512,
                averageChunks: Int = 32, minChunks: Int = 4, maxChunks: Int = 256) {
        self.averageObjects = max(1, averageObjects)
        self.minObjects = max(1, minObjects)
        self.maxObjects = max(self.minObjects, maxObjects)
        self.averageChunks = max(1, averageChunks)
        self.minChunks = max(1, minChunks)
        self.maxChunks = max(self.minChunks, maxChunks)
    }

    /// FNV-1a over the key's UTF-8 bytes, then a 64-bit finalizer (so the low bits are as good as the high ones).
    public static func hash(_ key: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }
}

/// Object keys in the order S3 lists them: by UTF-8 bytes (not Swift's `<`, which compares canonically
/// equivalent strings as equal).
public enum KeyOrder {
    public static func less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
    public static func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
}

/// What a chunk holds (the JSON inside its gzip).
struct ChunkContent: Codable {
    static let objects = "objects"
    static let index = "index"
    var kind: String
    var entries: [BucketSnapshot.Entry]?
    var chunks: [ChunkRef]?
}

/// A listing that is not in key order (the merge with the previous snapshot and the chunk boundaries need it).
public struct ListingOrderError: UserFacingError {
    public var bucket: String
    public var previous: String
    public var key: String
    public var exitStatus: ExitStatus { .failed }
    public var description: String {
        "the server listed bucket \(bucket) out of key order (\"\(key)\" after \"\(previous)\"); nothing was recorded"
    }
    public var hint: String? { "S3 lists keys in UTF-8 byte order; check the endpoint is an S3 server (MinIO, AWS) and not a proxy that reorders" }
}

/// Writes one bucket's entries (in key order) as object and index chunks into the blob store.
public final class TreeBuilder {
    let store: BlobStore
    let shape: ChunkShape
    let bucket: String
    private var entries: [BucketSnapshot.Entry] = []
    private var entryBytes: Int64 = 0
    private var refs: [ChunkRef] = []
    private var lastKey: String?
    public private(set) var index: [ChunkRef] = []
    public private(set) var objects = 0
    public private(set) var bytes: Int64 = 0
    /// Chunks this bucket's manifest is made of, how many were new to the store, and the bytes those added.
    public private(set) var chunks = 0
    public private(set) var chunksAdded = 0
    public private(set) var chunkBytesAdded: Int64 = 0

    public init(store: BlobStore, shape: ChunkShape = ChunkShape(), bucket: String) {
        self.store = store
        self.shape = shape
        self.bucket = bucket
    }

    public func append(_ entry: BucketSnapshot.Entry) throws {
        if let lastKey, !KeyOrder.less(lastKey, entry.key) {
            throw ListingOrderError(bucket: bucket, previous: lastKey, key: entry.key)
        }
        lastKey = entry.key
        entries.append(entry)
        entryBytes += entry.size
        objects += 1
        bytes += entry.size
        let h = ChunkShape.hash(entry.key)
        if entries.count >= shape.maxObjects || (entries.count >= shape.minObjects && h % UInt64(shape.averageObjects) == 0) {
            try closeObjectChunk(lastHash: h)
        }
    }

    /// Writes what is pending; returns the bucket's index chunks.
    public func finish() throws -> [ChunkRef] {
        if let lastKey, !entries.isEmpty { try closeObjectChunk(lastHash: ChunkShape.hash(lastKey)) }
        try closeIndexChunk()
        return index
    }

    private func closeObjectChunk(lastHash h: UInt64) throws {
        guard !entries.isEmpty else { return }
        let ref = try write(ChunkContent(kind: ChunkContent.objects, entries: entries, chunks: nil), objects: entries.count, bytes: entryBytes)
        entries.removeAll(keepingCapacity: true)
        entryBytes = 0
        refs.append(ref)
        if refs.count >= shape.maxChunks || (refs.count >= shape.minChunks && (h >> 32) % UInt64(shape.averageChunks) == 0) {
            try closeIndexChunk()
        }
    }

    private func closeIndexChunk() throws {
        guard !refs.isEmpty else { return }
        let ref = try write(ChunkContent(kind: ChunkContent.index, entries: nil, chunks: refs),
                            objects: refs.reduce(0) { $0 + $1.objects }, bytes: refs.reduce(0) { $0 + $1.bytes })
        refs.removeAll(keepingCapacity: true)
        index.append(ref)
    }

    private func write(_ content: ChunkContent, objects: Int, bytes: Int64) throws -> ChunkRef {
        let gz = try MemoryGzip.compress(try ManifestJSON.encode(content))
        let writer = try store.writer()
        do {
            try gz.withUnsafeBytes { try writer.write($0) }
            let (digest, _, added) = try writer.commit()
            chunks += 1
            if added > 0 {
                chunksAdded += 1
                chunkBytesAdded += added
            }
            return ChunkRef(sha256: digest, objects: objects, bytes: bytes)
        } catch {
            writer.abort()
            throw error
        }
    }
}

/// Reads chunks: the bytes come from `fetch` (the blob store, or the off-site copy when a blob is not here),
/// and are checked against the chunk's address, inflated within a limit and decoded before anything is used.
public struct ChunkReader {
    public typealias Fetch = (_ sha256: String) async throws -> Data
    let fetch: Fetch
    /// A chunk never inflates to more than this (512 entries of 1 KiB keys are well under 1 MiB).
    public static let inflateLimit = 64 << 20

    public init(fetch: @escaping Fetch) { self.fetch = fetch }

    /// Chunks read from the blob store; a missing one is an integrity error naming it.
    public init(blobs: BlobStore) {
        self.fetch = { digest in try ChunkReader.read(digest, from: blobs) }
    }

    public static func read(_ digest: String, from blobs: BlobStore) throws -> Data {
        guard blobs.contains(digest) else {
            throw IntegrityError(object: blobs.path(for: digest), problem: "manifest chunk is missing")
        }
        var data = Data()
        try blobs.read(digest) { chunk in
            guard chunk.count <= inflateLimit - data.count else {
                throw IntegrityError(object: blobs.path(for: digest), problem: "manifest chunk is larger than \(inflateLimit) bytes")
            }
            data.append(contentsOf: chunk)
        }
        return data
    }

    func content(_ ref: ChunkRef, kind: String) async throws -> ChunkContent {
        let object = "manifest chunk \(ref.sha256)"
        guard BlobStore.isDigest(ref.sha256) else { throw IntegrityError(object: object, problem: "not a sha256 address") }
        let data = try await fetch(ref.sha256)
        let actual = sha256Hex(data)
        guard actual == ref.sha256 else { throw IntegrityError(object: object, problem: "content hashes to \(actual)") }
        guard let plain = MemoryGzip.decompress(data, limit: Self.inflateLimit) else {
            throw IntegrityError(object: object, problem: "not a complete gzip member")
        }
        guard let content = try? JSONDecoder().decode(ChunkContent.self, from: plain), content.kind == kind else {
            throw IntegrityError(object: object, problem: "not a \(kind) chunk")
        }
        if kind == ChunkContent.objects {
            let entries = content.entries ?? []
            guard entries.count == ref.objects, entries.reduce(Int64(0), { $0 &+ $1.size }) == ref.bytes else {
                throw IntegrityError(object: object, problem: "holds \(entries.count) objects, its reference says \(ref.objects)")
            }
        } else {
            let chunks = content.chunks ?? []
            guard !chunks.isEmpty, chunks.reduce(0, { $0 &+ $1.objects }) == ref.objects else {
                throw IntegrityError(object: object, problem: "its chunks hold another number of objects than its reference says (\(ref.objects))")
            }
        }
        return content
    }

    /// The object chunks an index chunk lists.
    public func objectChunks(of ref: ChunkRef) async throws -> [ChunkRef] {
        try await content(ref, kind: ChunkContent.index).chunks ?? []
    }

    /// The entries of an object chunk.
    public func entries(of ref: ChunkRef) async throws -> [BucketSnapshot.Entry] {
        try await content(ref, kind: ChunkContent.objects).entries ?? []
    }
}

/// A snapshot file of either format.
public enum SnapshotDocument: Sendable {
    case flat(BucketSnapshot)
    case tree(SnapshotTree)

    /// A bucket's name and totals, whatever the format.
    public struct BucketSummary: Sendable, Equatable {
        public var name: String
        public var prefix: String
        public var objects: Int
        public var bytes: Int64
    }

    /// Reads a snapshot file of format 1 or 2; another format, or a damaged file, is an error naming the file.
    public static func decode(_ data: Data, file: String) throws -> SnapshotDocument {
        struct Probe: Decodable { var format: String? }
        let format = (try? JSONDecoder().decode(Probe.self, from: data))?.format
        if format == SnapshotTree.formatName {
            do {
                return .tree(try JSONDecoder().decode(SnapshotTree.self, from: data))
            } catch {
                throw BackupFailure("\(file) is not a readable bucket snapshot manifest: \(error)", exitStatus: .integrity,
                                    hint: "the file is damaged; verify it (kaleem-backup verify) and use another backup")
            }
        }
        return .flat(try BucketSnapshot.decode(data, file: file))
    }

    public var format: String {
        switch self {
        case .flat: BucketSnapshot.formatName
        case .tree: SnapshotTree.formatName
        }
    }

    public var buckets: [BucketSummary] {
        switch self {
        case .flat(let s): s.buckets.map { BucketSummary(name: $0.name, prefix: $0.prefix, objects: $0.objects.count, bytes: $0.objects.reduce(0) { $0 + $1.size }) }
        case .tree(let t): t.buckets.map { BucketSummary(name: $0.name, prefix: $0.prefix, objects: $0.objects, bytes: $0.bytes) }
        }
    }

    public var objectCount: Int { buckets.reduce(0) { $0 + $1.objects } }

    /// The entries of one bucket, in key order, read a chunk at a time.
    public func cursor(bucket name: String, reader: ChunkReader) -> EntryCursor? {
        switch self {
        case .flat(let s):
            guard let bucket = s.bucket(named: name) else { return nil }
            return EntryCursor(bucket: name, flat: bucket.objects.sorted { KeyOrder.less($0.key, $1.key) }, reader: reader)
        case .tree(let t):
            guard let bucket = t.buckets.first(where: { $0.name == name }) else { return nil }
            return EntryCursor(bucket: name, index: bucket.chunks, reader: reader)
        }
    }

    /// Every entry of every bucket, in order, one chunk in memory at a time.
    public func forEachEntry(reader: ChunkReader, _ body: (_ bucket: String, BucketSnapshot.Entry) async throws -> Void) async throws {
        for bucket in buckets {
            guard let cursor = cursor(bucket: bucket.name, reader: reader) else { continue }
            while let entry = try await cursor.next() { try await body(bucket.name, entry) }
        }
    }

    /// The whole snapshot in memory, as format 1 holds it (restores and drills plan from it).
    public func materialize(reader: ChunkReader) async throws -> BucketSnapshot {
        switch self {
        case .flat(let s): return s
        case .tree(let t):
            var buckets: [BucketSnapshot.Bucket] = []
            for bucket in t.buckets {
                var objects: [BucketSnapshot.Entry] = []
                objects.reserveCapacity(bucket.objects)
                let cursor = EntryCursor(bucket: bucket.name, index: bucket.chunks, reader: reader)
                while let entry = try await cursor.next() { objects.append(entry) }
                buckets.append(BucketSnapshot.Bucket(name: bucket.name, prefix: bucket.prefix, objects: objects))
            }
            return BucketSnapshot(source: t.source, artifact: t.artifact, endpoint: t.endpoint, createdAt: t.createdAt, buckets: buckets)
        }
    }

    /// Every blob the snapshot references (its objects' and its chunks') that `base` does not, each handed to
    /// `body` once, a chunk's blobs before the chunk and an index chunk's object chunks before it. Both trees
    /// are content-addressed, so a chunk of this snapshot that `base` also has is skipped whole, unread: a
    /// snapshot equal to its base costs the reading of nothing. The objects of a chunk that changed are merged by
    /// key with `base`'s entries (read a chunk at a time, forward only), so an object whose content did not
    /// change is not handed on. Without a base of format 2 (or when this one is format 1), every blob it
    /// references is handed on (held in a set first, to hand each once). Memory: the base's chunk addresses
    /// (one for every 64 objects), a chunk of each, never the bucket.
    public func forEachBlob(notIn base: SnapshotDocument?, reader: ChunkReader, _ body: (_ sha256: String) async throws -> Void) async throws {
        guard case .tree(let tree) = self, case .tree(let baseTree)? = base else {
            // Handed on as met (each once): the marker only remembers what was handed.
            var marker = BlobMarker()
            try await marker.mark(self, reader: reader, visit: body)
            return
        }
        var baseChunks = Set<String>()
        for bucket in baseTree.buckets {
            for indexRef in bucket.chunks where !baseChunks.contains(indexRef.sha256) {
                for objectRef in try await reader.objectChunks(of: indexRef) { baseChunks.insert(objectRef.sha256) }
                baseChunks.insert(indexRef.sha256)
            }
        }
        var handed = Set<String>() // chunks handed on (a chunk may repeat within a snapshot)
        for bucket in tree.buckets {
            let old = baseTree.buckets.first { $0.name == bucket.name && $0.prefix == bucket.prefix }
            let merge = old.map { MergeCursor(EntryCursor(bucket: $0.name, index: $0.chunks, reader: reader)) }
            var lastDigest = ""
            for indexRef in bucket.chunks where !baseChunks.contains(indexRef.sha256) && !handed.contains(indexRef.sha256) {
                for objectRef in try await reader.objectChunks(of: indexRef) where !baseChunks.contains(objectRef.sha256) && !handed.contains(objectRef.sha256) {
                    for entry in try await reader.entries(of: objectRef) {
                        if let previous = try await merge?.match(entry.key), previous.sha256 == entry.sha256 { continue }
                        guard entry.sha256 != lastDigest else { continue }
                        lastDigest = entry.sha256
                        try await body(entry.sha256)
                    }
                    handed.insert(objectRef.sha256)
                    try await body(objectRef.sha256)
                }
                handed.insert(indexRef.sha256)
                try await body(indexRef.sha256)
            }
        }
    }

    /// The chunks of a format-2 snapshot (index and object chunks), in order.
    public func chunkDigests(reader: ChunkReader) async throws -> [String] {
        guard case .tree(let t) = self else { return [] }
        var all: [String] = []
        for bucket in t.buckets {
            for indexRef in bucket.chunks {
                all.append(indexRef.sha256)
                all.append(contentsOf: try await reader.objectChunks(of: indexRef).map(\.sha256))
            }
        }
        return all
    }
}

/// The entries of one bucket of a snapshot in key order, read one chunk at a time; a chunk that is damaged,
/// or entries out of order, are integrity errors.
public final class EntryCursor {
    let bucket: String
    let reader: ChunkReader
    private var indexRefs: [ChunkRef]
    private var indexPosition = 0
    private var objectRefs: [ChunkRef] = []
    private var objectPosition = 0
    private var entries: [BucketSnapshot.Entry]
    private var entryPosition = 0
    private var lastKey: String?
    /// Objects read so far, and the chunks (index and object) they were read from.
    public private(set) var count = 0
    public private(set) var chunksRead = 0

    init(bucket: String, flat: [BucketSnapshot.Entry], reader: ChunkReader) {
        self.bucket = bucket
        self.reader = reader
        self.indexRefs = []
        self.entries = flat
    }

    init(bucket: String, index: [ChunkRef], reader: ChunkReader) {
        self.bucket = bucket
        self.reader = reader
        self.indexRefs = index
        self.entries = []
    }

    public func next() async throws -> BucketSnapshot.Entry? {
        while entryPosition == entries.count {
            if objectPosition < objectRefs.count {
                entries = try await reader.entries(of: objectRefs[objectPosition])
                objectPosition += 1
                chunksRead += 1
                entryPosition = 0
            } else if indexPosition < indexRefs.count {
                objectRefs = try await reader.objectChunks(of: indexRefs[indexPosition])
                indexPosition += 1
                chunksRead += 1
                objectPosition = 0
            } else {
                return nil
            }
        }
        let entry = entries[entryPosition]
        entryPosition += 1
        if let lastKey, !KeyOrder.less(lastKey, entry.key) {
            throw IntegrityError(object: "the manifest of bucket \(bucket)", problem: "key \"\(entry.key)\" comes after \"\(lastKey)\" (out of order or repeated)")
        }
        lastKey = entry.key
        count += 1
        return entry
    }
}

/// Walks a previous snapshot's bucket beside a listing (both in key order): `match(key)` returns the previous
/// entry of that key, if any, skipping the keys that are gone (counted in `skipped`).
public final class MergeCursor {
    let cursor: EntryCursor
    private var pending: BucketSnapshot.Entry?
    public private(set) var matched = 0

    public init(_ cursor: EntryCursor) { self.cursor = cursor }

    public func match(_ key: String) async throws -> BucketSnapshot.Entry? {
        while true {
            if pending == nil {
                pending = try await cursor.next()
                if pending == nil { return nil }
            }
            let candidate = pending!
            if KeyOrder.same(candidate.key, key) {
                pending = nil
                matched += 1
                return candidate
            }
            if KeyOrder.less(candidate.key, key) {
                pending = nil
                continue
            }
            return nil
        }
    }
}

/// A share of the sha256 address space: the addresses whose first byte `b` has `b * count / 256 == index`, which
/// is a run of whole blob-store shards (`<aa>/`). Garbage collection marks and sweeps one share at a time, so its
/// memory is bounded by the share, not by the bucket.
public struct BlobPartition: Sendable, Equatable {
    public let index: Int
    public let count: Int
    public static let all = BlobPartition(index: 0, count: 1)

    public init(index: Int, count: Int) {
        self.count = min(256, max(1, count))
        self.index = min(self.count - 1, max(0, index))
    }

    /// How many shares keep each one's mark under `budget` addresses, for about `blobs` distinct blobs.
    public static func count(forBlobs blobs: Int, budget: Int = 250_000) -> Int {
        min(256, max(1, (blobs + budget - 1) / max(1, budget)))
    }

    /// The shard directory names (`00` … `ff`) of this share, in order.
    public var shards: [String] {
        (0..<256).filter { $0 * count / 256 == index }.map { String(format: "%02x", $0) }
    }

    public func contains(_ digest: String) -> Bool {
        guard count > 1 else { return true }
        let utf8 = Array(digest.utf8.prefix(2))
        guard utf8.count == 2, let byte = UInt8(String(decoding: utf8, as: UTF8.self), radix: 16) else { return false }
        return Int(byte) * count / 256 == index
    }
}

/// Marks the blobs snapshots reference (their objects' and, for format 2, their chunks'), those of one
/// `partition`, handing each newly marked one to `visit` (a chunk after the blobs under it). A chunk whose
/// subtree was walked is not read again (chunks are content-addressed), so snapshots that share most of their
/// chunks cost one read of each distinct chunk.
public struct BlobMarker {
    public let partition: BlobPartition
    public private(set) var marked = DigestSet()
    /// Chunks whose subtree was walked (of every share: a chunk's blobs fall in all of them).
    private var walked = DigestSet()

    public init(partition: BlobPartition = .all) { self.partition = partition }

    public mutating func mark(_ document: SnapshotDocument, reader: ChunkReader,
                              visit: (_ sha256: String) async throws -> Void = { _ in }) async throws {
        let partition = self.partition
        func add(_ digest: String, to marked: inout DigestSet) async throws {
            if partition.contains(digest), marked.insert(digest) { try await visit(digest) }
        }
        switch document {
        case .flat(let s):
            for bucket in s.buckets { for entry in bucket.objects { try await add(entry.sha256, to: &marked) } }
        case .tree(let t):
            for bucket in t.buckets {
                for indexRef in bucket.chunks where !walked.contains(indexRef.sha256) {
                    for objectRef in try await reader.objectChunks(of: indexRef) where !walked.contains(objectRef.sha256) {
                        for entry in try await reader.entries(of: objectRef) { try await add(entry.sha256, to: &marked) }
                        walked.insert(objectRef.sha256)
                        try await add(objectRef.sha256, to: &marked)
                    }
                    walked.insert(indexRef.sha256) // after its subtree: an interrupted mark never skips a part it did not read
                    try await add(indexRef.sha256, to: &marked)
                }
            }
        }
    }
}
