import ArtifactStore
import BackupCore
import BucketMirror
import Foundation
import Testing
import TestSupport

/// The chunked manifest (format 2): deterministic chunks, changes that stay local, damage that is caught, and
/// the old format still read.
@Suite(.blockingThreads) struct SnapshotTreeTests {
    static func entry(_ key: String, _ content: String = "") -> BucketSnapshot.Entry {
        let digest = sha256Hex(Data((content.isEmpty ? key : content).utf8))
        return BucketSnapshot.Entry(key: key, size: Int64(key.utf8.count), etag: String(digest.prefix(32)),
                                    lastModified: "2026-12-01T00:00:00.000Z", sha256: digest, md5: String(digest.prefix(32)))
    }

    /// Keys as an uploads bucket has them: many prefixes, sorted as S3 lists them.
    static func keys(_ count: Int) -> [String] {
        (0..<count).map { "users/\($0 % 97)/uploads/\(String(format: "%08d", $0 &* 7919 % 1_000_003)).jpg" }
            .sorted { KeyOrder.less($0, $1) }
    }

    func build(_ entries: [BucketSnapshot.Entry], in store: BlobStore, shape: ChunkShape = ChunkShape()) throws -> (index: [ChunkRef], builder: TreeBuilder) {
        let builder = TreeBuilder(store: store, shape: shape, bucket: "media")
        for entry in entries { try builder.append(entry) }
        return (try builder.finish(), builder)
    }

    func tree(_ index: [ChunkRef], objects: Int) -> SnapshotDocument {
        .tree(SnapshotTree(source: "s", artifact: "A", endpoint: "http://x", createdAt: "t",
                           buckets: [SnapshotTree.Bucket(name: "media", prefix: "", objects: objects, bytes: index.reduce(0) { $0 + $1.bytes }, chunks: index)]))
    }

    func objectChunks(_ index: [ChunkRef], _ store: BlobStore) async throws -> Set<String> {
        var all = Set<String>()
        for ref in index { for leaf in try await ChunkReader(blobs: store).objectChunks(of: ref) { all.insert(leaf.sha256) } }
        return all
    }

    @Test func sameListingSameChunksAndEverythingReadsBack() async throws {
        let dir = TemporaryDirectory()
        let entries = Self.keys(5000).map { Self.entry($0) }
        let a = BlobStore(root: dir.file("a"))
        let b = BlobStore(root: dir.file("b"))
        let (indexA, builderA) = try build(entries, in: a)
        let (indexB, _) = try build(entries, in: b)
        #expect(indexA == indexB)
        #expect(builderA.objects == 5000 && builderA.chunks > 5000 / 512 && builderA.chunksAdded == builderA.chunks)
        // Written again into the same store: nothing new.
        let (again, builderAgain) = try build(entries, in: a)
        #expect(again == indexA && builderAgain.chunksAdded == 0 && builderAgain.chunkBytesAdded == 0)
        // Read back in order, whole.
        let document = tree(indexA, objects: entries.count)
        let read = try await document.materialize(reader: ChunkReader(blobs: a))
        #expect(read.buckets[0].objects == entries)
        // A chunk is a gzip member zcat reads: JSON an operator can look at.
        let first = try #require(indexA.first)
        let zcat = try runProcess("/bin/sh", ["-c", "zcat \"$0\" | head -c 20", a.path(for: first.sha256)])
        #expect(zcat.stdout.hasPrefix("{\"chunks\":["), "\(zcat.stdout)")
    }

    /// One key inserted, one deleted or one changed: only the chunk it falls in (and the index chunk above) is
    /// new. Cutting every N entries instead would shift every chunk after an insertion: measured here too.
    @Test func aChangeStaysInItsChunk() async throws {
        let dir = TemporaryDirectory()
        let store = BlobStore(root: dir.file("blobs"))
        let shape = ChunkShape(averageObjects: 16, minObjects: 4, maxObjects: 128, averageChunks: 8, minChunks: 2, maxChunks: 64)
        let keys = Self.keys(4000)
        let base = keys.map { Self.entry($0) }
        let (baseIndex, baseBuilder) = try build(base, in: store, shape: shape)
        let baseChunks = try await objectChunks(baseIndex, store)
        #expect(baseChunks.count > 100)

        var inserted = base
        inserted.insert(Self.entry(keys[2000] + "-new"), at: 2001)
        var deleted = base
        deleted.remove(at: 1234)
        var changed = base
        changed[3000] = Self.entry(keys[3000], "other content")
        for (what, entries) in [("inserted", inserted), ("deleted", deleted), ("changed", changed)] {
            let (index, builder) = try build(entries, in: store, shape: shape)
            let new = try await objectChunks(index, store).subtracting(baseChunks)
            #expect(new.count <= 2, "\(what): \(new.count) new object chunks")
            // Object chunks and index chunks written: a few, not a fraction of the manifest.
            #expect(builder.chunksAdded <= 4, "\(what): \(builder.chunksAdded) chunks added of \(builder.chunks)")
            #expect(builder.chunkBytesAdded * 20 < baseBuilder.chunkBytesAdded, "\(what)")
        }
        // The alternative: a cut every 16 entries. An insertion near the start changes nearly every chunk.
        func fixed(_ entries: [BucketSnapshot.Entry]) -> Set<[String]> {
            Set(stride(from: 0, to: entries.count, by: 16).map { Array(entries[$0..<min($0 + 16, entries.count)].map(\.key)) })
        }
        var early = base
        early.insert(Self.entry(keys[10] + "-new"), at: 11)
        let shifted = fixed(early).subtracting(fixed(base)).count
        let (earlyIndex, _) = try build(early, in: store, shape: shape)
        let contentDefined = try await objectChunks(earlyIndex, store).subtracting(baseChunks).count
        print("one key inserted near the start of 4,000: \(shifted) of \(fixed(base).count) fixed-size chunks change, \(contentDefined) content-defined")
        #expect(shifted > 200 && contentDefined <= 2)
    }

    @Test func damageIsCaughtAndOrderIsChecked() async throws {
        let dir = TemporaryDirectory()
        let store = BlobStore(root: dir.file("blobs"))
        let entries = Self.keys(2000).map { Self.entry($0) }
        let (index, _) = try build(entries, in: store)
        let document = tree(index, objects: entries.count)

        // Out of order, or a key twice: the builder refuses (a lying listing never becomes a snapshot).
        let builder = TreeBuilder(store: store, bucket: "media")
        try builder.append(Self.entry("b"))
        #expect(throws: ListingOrderError.self) { try builder.append(Self.entry("a")) }
        #expect(throws: ListingOrderError.self) { try builder.append(Self.entry("b")) }
        // "é" precomposed and decomposed are different keys in S3: both kept, in byte order.
        let unicode = TreeBuilder(store: store, bucket: "media")
        try unicode.append(Self.entry("caf\u{65}\u{301}"))
        try unicode.append(Self.entry("caf\u{e9}"))

        // A chunk changed on disk: reading it is an integrity error naming it (exit 4).
        let leaf = try #require(try await ChunkReader(blobs: store).objectChunks(of: index[0]).first)
        let path = store.path(for: leaf.sha256)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x55
        try bytes.write(to: URL(fileURLWithPath: path))
        do {
            _ = try await document.materialize(reader: ChunkReader(blobs: store))
            Issue.record("a damaged chunk was read")
        } catch let error as IntegrityError {
            #expect(error.description.contains(leaf.sha256))
            #expect(error.exitStatus == .integrity)
        }
        // Missing: the same.
        try FileManager.default.removeItem(atPath: path)
        await #expect(throws: IntegrityError.self) { _ = try await document.materialize(reader: ChunkReader(blobs: store)) }

        // A chunk that is valid gzip but lies about its count, or inflates without end, is refused.
        let liar = TreeBuilder(store: store, bucket: "media")
        try liar.append(Self.entry("x"))
        var lying = try liar.finish()
        lying[0].objects = 2
        await #expect(throws: IntegrityError.self) { _ = try await tree(lying, objects: 2).materialize(reader: ChunkReader(blobs: store)) }
        let bomb = try MemoryGzip.compress(Data(count: ChunkReader.inflateLimit + 1), level: 9)
        let writer = try store.writer()
        try bomb.withUnsafeBytes { try writer.write($0) }
        let bombDigest = try writer.commit().sha256
        let bombRef = ChunkRef(sha256: bombDigest, objects: 1, bytes: 0)
        await #expect(throws: IntegrityError.self) { _ = try await tree([bombRef], objects: 1).materialize(reader: ChunkReader(blobs: store)) }
        #expect(MemoryGzip.decompress(Data("not gzip".utf8), limit: 100) == nil)
    }

    /// Format 1 (one JSON document) reads as before, and serves as the previous snapshot of a format-2 one.
    @Test func formatOneStillReads() async throws {
        let dir = TemporaryDirectory()
        let store = BlobStore(root: dir.file("blobs"))
        let v1 = BucketSnapshot(source: "s", artifact: "OLD", endpoint: "http://x", createdAt: "t",
                                buckets: [BucketSnapshot.Bucket(name: "media", prefix: "", objects: [Self.entry("b"), Self.entry("a")])])
        let document = try SnapshotDocument.decode(try v1.encoded(), file: "old.snapshot.json")
        #expect(document.format == BucketSnapshot.formatName && document.objectCount == 2)
        #expect(try await document.materialize(reader: ChunkReader(blobs: store)) == v1)
        let cursor = try #require(document.cursor(bucket: "media", reader: ChunkReader(blobs: store)))
        let merge = MergeCursor(cursor)
        #expect(try await merge.match("a")?.key == "a")
        #expect(try await merge.match("aa") == nil)
        #expect(try await merge.match("b")?.key == "b")
        #expect(merge.matched == 2)
        var visited = Set<String>()
        var marker = BlobMarker()
        try await marker.mark(document, reader: ChunkReader(blobs: store)) { visited.insert($0) }
        let marked = marker.marked
        #expect(visited == v1.blobDigests && marked.count == visited.count)
        // The compact set holds what it was given, and nothing that is not a digest.
        #expect(v1.blobDigests.allSatisfy { marked.contains($0) } && !marked.contains(String(repeating: "0", count: 64)) && !marked.contains("a"))
        #expect(Digest256(hex: String(repeating: "A", count: 64)) == nil && Digest256(hex: String(repeating: "f", count: 64)) != nil)
        // Neither format: an integrity error naming the file.
        #expect(throws: BackupFailure.self) { _ = try SnapshotDocument.decode(Data("{\"format\":\"x\"}".utf8), file: "f") }
    }

    /// Garbage collection one share of the address space at a time removes exactly what one pass removes, and
    /// each share's mark holds only its own addresses.
    @Test func garbageCollectionByPartsRemovesWhatOnePassDoes() async throws {
        let dir = TemporaryDirectory()
        let store = BlobStore(root: dir.file("blobs"))
        var digests: [String] = []
        for i in 0..<300 {
            let writer = try store.writer()
            try Data("blob \(i)".utf8).withUnsafeBytes { try writer.write($0) }
            digests.append(try writer.commit().sha256)
        }
        let entries = (0..<200).map {
            BucketSnapshot.Entry(key: String(format: "k%04d", $0), size: 1, etag: "e", lastModified: "", sha256: digests[$0], md5: nil)
        }
        let (index, _) = try build(entries, in: store, shape: ChunkShape(averageObjects: 8, minObjects: 2, maxObjects: 32, averageChunks: 4, minChunks: 2, maxChunks: 16))
        let document = tree(index, objects: 200)
        let reader = ChunkReader(blobs: store)
        var whole = BlobMarker()
        var visited = Set<String>()
        try await whole.mark(document, reader: reader) { visited.insert($0) }
        #expect(visited.count > 200 && whole.marked.count == visited.count)

        let parts = 7
        var union = Set<String>()
        for i in 0..<parts {
            let partition = BlobPartition(index: i, count: parts)
            var marker = BlobMarker(partition: partition)
            var mine = Set<String>()
            try await marker.mark(document, reader: reader) { mine.insert($0) }
            #expect(mine.allSatisfy { partition.contains($0) } && marker.marked.count == mine.count)
            #expect(union.isDisjoint(with: mine))
            union.formUnion(mine)
            try store.collectGarbage(keeping: marker.marked, partition: partition)
        }
        #expect(union == visited)
        for digest in visited { #expect(store.contains(digest)) }
        for digest in digests[200...] { #expect(!store.contains(digest)) }
        #expect(Set((0..<parts).flatMap { BlobPartition(index: $0, count: parts).shards }).count == 256)
        #expect(BlobPartition.count(forBlobs: 1_000_000) == 4 && BlobPartition.count(forBlobs: 10) == 1 && BlobPartition.count(forBlobs: 1 << 40) == 256)
    }
}
