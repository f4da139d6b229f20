import ArtifactStore
import BackupCore
import BucketMirror
import Foundation
import NIOCore
import S3Client
import Testing
import TestSupport

/// Snapshots, restores and blob garbage collection against a real S3 server (moto) on 127.0.0.1.
@Suite(.blockingThreads) struct BucketMirrorTests {
    func put(_ client: S3Client, _ bucket: String, _ objects: [String: [UInt8]]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, (key, bytes)) in objects.enumerated() {
                group.addTask { try await client.putObject(bucket: bucket, key: key, bytes: ByteBuffer(bytes: bytes)) }
                if i % 8 == 7 { try await group.waitForAll() }
            }
            try await group.waitForAll()
        }
    }

    /// A snapshot (format 2) read back whole.
    func take(_ snapshotter: BucketSnapshotter, _ bucket: String, previous: SnapshotTree? = nil) async throws -> (SnapshotTree, BucketSnapshot, SnapshotStats) {
        let (tree, stats) = try await snapshotter.take(source: "s", artifact: "A", createdAt: "t", options: SnapshotOptions(buckets: [bucket], concurrency: 4),
                                                       previous: previous.map { .tree($0) })
        return (tree, try await SnapshotDocument.tree(tree).materialize(reader: ChunkReader(blobs: snapshotter.blobs)), stats)
    }

    /// Every blob a snapshot references: its objects' and its manifest chunks'.
    func referenced(_ tree: SnapshotTree, _ blobs: BlobStore) async throws -> Set<String> {
        var visited = Set<String>()
        var marker = BlobMarker()
        try await marker.mark(SnapshotDocument.tree(tree), reader: ChunkReader(blobs: blobs)) { visited.insert($0) }
        let marked = marker.marked
        #expect(marked.count == visited.count && visited.allSatisfy { marked.contains($0) })
        return visited
    }

    @Test func incrementalSnapshotsAndGarbageCollection() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        let dir = TemporaryDirectory()
        let blobs = BlobStore(root: dir.file("blobs"))
        try await client.createBucket("media")
        var objects: [String: [UInt8]] = [:]
        for i in 0..<30 { objects["img/\(i).bin"] = Array("object \(i)".utf8) }
        objects["same-a"] = Array("shared content".utf8)
        objects["same-b"] = Array("shared content".utf8)
        objects["empty"] = []
        try await put(client, "media", objects)

        let snapshotter = BucketSnapshotter(client: client, blobs: blobs)
        let (firstTree, first, s1) = try await take(snapshotter, "media")
        #expect(s1.objects == 33 && s1.new == 33 && s1.unchanged == 0)
        #expect(s1.requests == 1 + 33) // one list, one GET each
        #expect(first.blobDigests.count == 32) // the two equal objects share a blob
        #expect(s1.manifestChunks == 2 && s1.manifestChunksAdded == 2) // one object chunk, one index chunk

        // Change 2, add 1, delete 1.
        try await put(client, "media", ["img/1.bin": Array("changed 1".utf8), "img/2.bin": Array("changed 2".utf8),
                                        "img/new.bin": Array("new".utf8)])
        try await client.deleteObject(bucket: "media", key: "img/3.bin")
        let (secondTree, second, s2) = try await take(snapshotter, "media", previous: firstTree)
        #expect(s2.new == 1 && s2.changed == 2 && s2.deleted == 1 && s2.unchanged == 30 - 3 + 3)
        #expect(s2.requests == 1 + 3) // one list, one GET per new or changed object
        #expect(second.buckets[0].objects.count == 33)

        // Removing the first snapshot frees exactly the blobs only it referenced: 3 objects' and its chunks.
        let keep = try await referenced(secondTree, blobs)
        let onlyFirst = try await referenced(firstTree, blobs).subtracting(keep)
        #expect(first.blobDigests.subtracting(second.blobDigests).count == 3)
        #expect(onlyFirst.count == 3 + 2)
        let (removed, _) = try blobs.collectGarbage(keeping: DigestSet(keep))
        #expect(removed == onlyFirst.count)
        for digest in onlyFirst { #expect(!blobs.contains(digest)) }
        for digest in keep { #expect(try blobs.rehash(digest) == digest) }
        #expect(try await SnapshotDocument.tree(secondTree).materialize(reader: ChunkReader(blobs: blobs)) == second)
        // Nothing is left in the download area.
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: blobs.temporaryDirectory)) ?? []).isEmpty)
    }

    /// With encryption, blobs are age files named by the sha256 of their content; `age -d` gives the object
    /// back; snapshots, verification, restore and garbage collection work the same.
    @Test func encryptedBlobs() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        let dir = TemporaryDirectory()
        #expect(try runProcess("age-keygen", ["-o", dir.file("key.txt")]).status == 0)
        let keyText = try String(contentsOfFile: dir.file("key.txt"), encoding: .utf8)
        let identities = try AgeIdentity.parseFile(keyText)
        let blobs = BlobStore(root: dir.file("blobs"), encryption: BlobEncryption(recipients: [identities[0].recipient]) { identities })
        try await client.createBucket("secret")
        let objects: [String: [UInt8]] = ["a": Array("alpha".utf8), "big": (0..<200_000).map { UInt8(truncatingIfNeeded: $0 / 3) }, "empty": []]
        try await put(client, "secret", objects)
        let (_, snapshot, stats) = try await take(BucketSnapshotter(client: client, blobs: blobs), "secret")
        for entry in snapshot.buckets[0].objects {
            let path = blobs.path(for: entry.sha256)
            #expect(path.hasSuffix("/\(entry.sha256).age"))
            #expect(try blobs.rehash(entry.sha256) == entry.sha256)
            let plain = try runProcess("/bin/sh", ["-c", "age -d -i \"$0\" \"$1\" | sha256sum", dir.file("key.txt"), path])
            #expect(plain.stdout.hasPrefix(entry.sha256), "age -d of \(entry.key)")
        }
        let restorer = BucketRestorer(client: client, blobs: blobs)
        let plan = try await restorer.plan(snapshot.buckets[0], into: "secret-copy", deleteExtra: false)
        _ = try await restorer.execute(plan, snapshot.buckets[0], concurrency: 2)
        #expect(try await restorer.compare(snapshot.buckets[0], with: "secret-copy", concurrency: 2).isEmpty)
        // Nothing decrypted is left behind.
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: blobs.temporaryDirectory)) ?? []).isEmpty)
        // A plain store sees the same blobs (it just cannot read them), and GC knows the .age names.
        #expect(BlobStore(root: dir.file("blobs")).contains(snapshot.buckets[0].objects[0].sha256))
        // The manifest's chunks are blobs too, encrypted like the objects.
        #expect(stats.manifestChunks == 2)
        let files = (FileManager.default.enumerator(atPath: dir.file("blobs"))?.allObjects as? [String] ?? []).filter { $0.count > 64 && !$0.hasPrefix("tmp") }
        #expect(files.count == 3 + 2 && files.allSatisfy { $0.hasSuffix(".age") }, "\(files)")
        #expect(try blobs.collectGarbage(keeping: []).blobs == 3 + 2)
    }

    @Test func restoreWritesOnlyWhatDiffers() async throws {
        let server = try S3TestServer()
        var options = S3ClientOptions()
        options.multipartThreshold = (5 << 20) + 1
        options.partSize = 5 << 20
        let client = try server.client(options: options)
        defer { client.shutdown() }
        let dir = TemporaryDirectory()
        let blobs = BlobStore(root: dir.file("blobs"))
        try await client.createBucket("docs")
        var big = [UInt8](repeating: 0, count: 11 << 20)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: i / 7) }
        try await put(client, "docs", ["a": Array("alpha".utf8), "b/c": Array("gamma".utf8), "empty": []])
        _ = try await client.putObject(bucket: "docs", key: "big", bytes: ByteBuffer(bytes: big))
        let (_, snapshot, _) = try await take(BucketSnapshotter(client: client, blobs: blobs), "docs")
        let restorer = BucketRestorer(client: client, blobs: blobs)
        let bucket = snapshot.buckets[0]

        // Into a new bucket: everything, the big object as a multipart upload.
        let fresh = try await restorer.plan(bucket, into: "docs-copy", deleteExtra: false)
        #expect(!fresh.targetExists && fresh.uploads == 4)
        _ = try await restorer.execute(fresh, bucket, concurrency: 4)
        #expect(try await restorer.compare(bucket, with: "docs-copy", concurrency: 4).isEmpty)
        #expect(try await client.listObjects(bucket: "docs-copy").first { $0.key == "big" }?.etag.hasSuffix("-3") == true)

        // Again: nothing differs (single-part ETags are the MD5; the multipart one is recomputed from the blob).
        let again = try await restorer.plan(bucket, into: "docs-copy", deleteExtra: false)
        #expect(again.uploads == 0 && again.unchanged == 4)

        // One object changed and one added in the target: one upload, and the extra is deleted only when asked.
        try await put(client, "docs-copy", ["a": Array("ALPHA".utf8), "extra": Array("x".utf8)])
        let keep = try await restorer.plan(bucket, into: "docs-copy", deleteExtra: false)
        #expect(keep.uploadSample == ["a"] && keep.extraSample == ["extra"] && keep.extras == 1 && keep.overwrites == 1)
        let clean = try await restorer.plan(bucket, into: "docs-copy", deleteExtra: true)
        let result = try await restorer.execute(clean, bucket, concurrency: 2)
        #expect(result.uploaded == 1 && result.deleted == 1)
        #expect(try await restorer.compare(bucket, with: "docs-copy", concurrency: 4).isEmpty)

        // A blob altered on disk stops the restore before it is uploaded.
        let victim = bucket.objects.first { $0.key == "b/c" }!
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: blobs.path(for: victim.sha256)))
        let tampered = try await restorer.plan(bucket, into: "docs-other", deleteExtra: false)
        await #expect(throws: BlobMismatch.self) { _ = try await restorer.execute(tampered, bucket, concurrency: 1) }
        #expect(try await client.listObjects(bucket: "docs-other").contains { $0.key == "b/c" } == false)
    }

    /// A restore streams: the snapshot's entries (many chunks, read again for each pass) merged with a target
    /// listed over several pages; the plan only counts, and what it counted is what is written.
    @Test func restoreMergesChunksWithAPagedListing() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        let dir = TemporaryDirectory()
        let blobs = BlobStore(root: dir.file("blobs"))
        try await client.createBucket("many")
        let count = 1_050
        func key(_ i: Int) -> String { "k/\(String(format: "%05d", i))" }
        var objects: [String: [UInt8]] = [:]
        for i in 0..<count { objects[key(i)] = Array("value \(i)".utf8) }
        try await put(client, "many", objects)
        let shape = ChunkShape(averageObjects: 8, minObjects: 2, maxObjects: 32, averageChunks: 4, minChunks: 2, maxChunks: 16)
        let (tree, _) = try await BucketSnapshotter(client: client, blobs: blobs).take(
            source: "s", artifact: "A", createdAt: "t", options: SnapshotOptions(buckets: ["many"], concurrency: 8), previous: nil, shape: shape)
        #expect(tree.buckets[0].chunks.count > 4)
        let document = SnapshotDocument.tree(tree)
        let reader = ChunkReader(blobs: blobs)
        var opened = 0
        let selection = RestoreSelection(name: "many", prefix: "", objects: count, bytes: 0) {
            opened += 1
            return document.cursor(bucket: "many", reader: reader)!
        }
        let restorer = BucketRestorer(client: client, blobs: blobs)

        let fresh = try await restorer.plan(selection, into: "many-copy", deleteExtra: false)
        #expect(!fresh.targetExists && fresh.uploads == count && fresh.uploadSample == (0..<10).map(key))
        #expect(try await restorer.execute(fresh, selection, concurrency: 8).uploaded == count)
        #expect(try await restorer.compare(selection, with: "many-copy", concurrency: 8).isEmpty)

        // The target drifts: 20 objects changed, 10 gone, 30 extras between the snapshot's keys and after them.
        var drift: [String: [UInt8]] = [:]
        for i in stride(from: 0, to: 1_000, by: 50) { drift[key(i)] = Array("changed".utf8) }
        for i in 0..<15 { drift[key(i * 70) + "x"] = Array("extra".utf8) }
        for i in 0..<15 { drift["z/\(i)"] = Array("extra".utf8) }
        try await put(client, "many-copy", drift)
        let gone = (0..<10).map { key(1_000 + $0 * 5) }
        try await client.deleteObjects(bucket: "many-copy", keys: gone)
        let damaged = try await restorer.compare(selection, with: "many-copy", concurrency: 8)
        #expect(damaged.problems == 20 + 10 + 30 && damaged.sample.count == BucketComparison.sampleSize)
        #expect(damaged.sample.contains("\(key(0)): sha256 \(sha256Hex(Data("changed".utf8))), expected \(sha256Hex(Data("value 0".utf8)))"))

        let plan = try await restorer.plan(selection, into: "many-copy", deleteExtra: true)
        #expect(plan.targetObjects == count - 10 + 30 && plan.uploads == 30 && plan.overwrites == 20)
        #expect(plan.unchanged == count - 30 && plan.extras == 30 && plan.extraSample.first == key(0) + "x")
        #expect(plan.description.last?.hasPrefix("delete 30 objects the snapshot does not hold: \"k/00000x\"") == true)
        let result = try await restorer.execute(plan, selection, concurrency: 8)
        #expect(result.uploaded == 30 && result.deleted == 30)
        #expect(try await restorer.compare(selection, with: "many-copy", concurrency: 8).isEmpty)
        // Each pass opened the manifest again: plans (2), uploads (2), deletes (1), comparisons (3).
        #expect(opened == 8)

        try await restorer.removeBucket("many-copy")
        #expect(try await client.bucketExists("many-copy") == false)
    }

    /// A selection by prefix or keys stops reading the manifest once it is past what it wants.
    @Test func aFilteredSelectionStopsAtTheEndOfItsRange() async throws {
        final class Counting: EntryStream {
            var inner: ArrayEntryStream
            var read = 0
            init(_ entries: [BucketSnapshot.Entry]) { inner = ArrayEntryStream(entries) }
            func next() async throws -> BucketSnapshot.Entry? {
                let e = try await inner.next()
                if e != nil { read += 1 }
                return e
            }
        }
        let entries = ["a/1", "b/1", "b/2", "b/3", "c/1", "c/2", "d/1"].map {
            BucketSnapshot.Entry(key: $0, size: 1, etag: "e", lastModified: "", sha256: String(repeating: "0", count: 64), md5: nil)
        }
        func keys(_ stream: EntryStream) async throws -> [String] {
            var out: [String] = []
            while let e = try await stream.next() { out.append(e.key) }
            return out
        }
        let byPrefix = Counting(entries)
        #expect(try await keys(FilteredEntryStream(byPrefix, prefix: "b/", keys: [])) == ["b/1", "b/2", "b/3"])
        #expect(byPrefix.read == 5) // a/1, the three, and c/1 which ends it
        let byKeys = Counting(entries)
        #expect(try await keys(FilteredEntryStream(byKeys, prefix: nil, keys: ["b/2", "c/1", "nothing/0"])) == ["b/2", "c/1"])
        #expect(byKeys.read == 7) // "nothing/0" sorts after every key: all read
        let both = Counting(entries)
        #expect(try await keys(FilteredEntryStream(both, prefix: "b/", keys: ["b/2"])) == ["b/2"])
        #expect(both.read == 4) // up to b/3, past the last wanted key
    }
}
