import ArtifactStore
import BackupCore
import BucketMirror
import Foundation
import NIOCore
import S3Client
import Testing
import TestSupport

/// Snapshots, restores and blob garbage collection against a real S3 server (moto) on 127.0.0.1.
@Suite struct BucketMirrorTests {
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
        var all = Set<String>()
        try await SnapshotDocument.tree(tree).mark(into: &all, reader: ChunkReader(blobs: blobs))
        return all
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
        let (removed, _) = try blobs.collectGarbage(keeping: keep)
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
        _ = try await restorer.execute(plan, concurrency: 2)
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
        #expect(!fresh.targetExists && fresh.upload.count == 4)
        _ = try await restorer.execute(fresh, concurrency: 4)
        #expect(try await restorer.compare(bucket, with: "docs-copy", concurrency: 4).isEmpty)
        #expect(try await client.listObjects(bucket: "docs-copy").first { $0.key == "big" }?.etag.hasSuffix("-3") == true)

        // Again: nothing differs (single-part ETags are the MD5; the multipart one is recomputed from the blob).
        let again = try await restorer.plan(bucket, into: "docs-copy", deleteExtra: false)
        #expect(again.upload.isEmpty && again.unchanged == 4)

        // One object changed and one added in the target: one upload, and the extra is deleted only when asked.
        try await put(client, "docs-copy", ["a": Array("ALPHA".utf8), "extra": Array("x".utf8)])
        let keep = try await restorer.plan(bucket, into: "docs-copy", deleteExtra: false)
        #expect(keep.upload.map(\.key) == ["a"] && keep.extra == ["extra"])
        let clean = try await restorer.plan(bucket, into: "docs-copy", deleteExtra: true)
        let result = try await restorer.execute(clean, concurrency: 2)
        #expect(result.uploaded == 1 && result.deleted == 1)
        #expect(try await restorer.compare(bucket, with: "docs-copy", concurrency: 4).isEmpty)

        // A blob altered on disk stops the restore before it is uploaded.
        let victim = bucket.objects.first { $0.key == "b/c" }!
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: blobs.path(for: victim.sha256)))
        let tampered = try await restorer.plan(bucket, into: "docs-other", deleteExtra: false)
        await #expect(throws: BlobMismatch.self) { _ = try await restorer.execute(tampered, concurrency: 1) }
        #expect(try await client.listObjects(bucket: "docs-other").contains { $0.key == "b/c" } == false)
    }
}
