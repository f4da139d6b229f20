import ArtifactStore
import BackupCore
import BucketMirror
import Foundation
import S3Client
import TestSupport
import Testing

/// The chunked snapshot manifest through the CLI (issue #23): an unchanged night adds a small snapshot file and
/// no chunk, a damaged chunk fails verify with exit 4, and garbage collection keeps every chunk a kept snapshot
/// references while it removes what a crashed run left.
@Suite(.blockingThreads) struct BucketManifestTests {
    func backup(_ policy: String) throws -> [String: Any] {
        let run = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        return try #require((try object(run.stdout)["artifacts"] as? [[String: Any]])?.first)
    }

    func snapshotFile(_ dir: TemporaryDirectory, _ artifact: [String: Any]) throws -> SnapshotTree {
        let data = try #require(FileManager.default.contents(atPath: dir.file("repo/" + (artifact["path"] as! String))))
        guard case .tree(let tree) = try SnapshotDocument.decode(data, file: "s") else {
            Issue.record("a new snapshot is not format 2")
            throw CancellationError()
        }
        return tree
    }

    @Test func anUnchangedNightAddsNoChunk() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("media")
        var objects: [String: [UInt8]] = [:]
        for i in 0..<1500 { objects["users/\(i % 13)/\(i).jpg"] = Array("object \(i)".utf8) }
        try await putAll(client, ["media": objects])
        let dir = TemporaryDirectory()
        let policy = writeS3Policy(in: dir, server: server, buckets: ["media"], extra: "retention: { daily: 0, keep_last: 10 }")

        let first = try backup(policy)
        let s1 = try #require(first["stats"] as? [String: Any])
        #expect(s1["manifest_chunks"] as? Int ?? 0 > 10)
        #expect(s1["manifest_chunks_added"] as? Int == s1["manifest_chunks"] as? Int)
        let tree1 = try snapshotFile(dir, first)
        #expect(tree1.format == SnapshotTree.formatName && tree1.buckets[0].objects == 1500)

        // Nothing changed: no object fetched, no chunk written; the snapshot file is small and names the same chunks.
        let second = try backup(policy)
        let s2 = try #require(second["stats"] as? [String: Any])
        #expect(s2["manifest_chunks_added"] as? Int == 0 && s2["manifest_bytes_added"] as? Int == 0 && s2["added_bytes"] as? Int == 0)
        #expect(s2["unchanged"] as? Int == 1500 && s2["deleted"] as? Int == 0)
        let tree2 = try snapshotFile(dir, second)
        #expect(tree2.buckets[0].chunks == tree1.buckets[0].chunks)
        let fileSize = FileIO.fileSize(dir.file("repo/" + (second["path"] as! String))) ?? 0
        #expect(fileSize < 2048, "\(fileSize) bytes")

        // One new object and one changed: a couple of chunks, not the manifest again.
        try await putAll(client, ["media": ["users/5/new.jpg": Array("new".utf8), "users/7/7.jpg": Array("changed".utf8)]])
        let third = try backup(policy)
        let s3 = try #require(third["stats"] as? [String: Any])
        #expect(s3["new"] as? Int == 1 && s3["changed"] as? Int == 1)
        let added = s3["manifest_chunks_added"] as? Int ?? 99
        #expect(added >= 1 && added <= 4, "\(added) of \(s3["manifest_chunks"] ?? 0)")

        // ls streams the chunks: every object, in key order.
        let ls = try runCLI(["ls", third["id"] as! String, "--policy", policy, "--json"])
        #expect(ls.status == 0, "\(ls.stderr)")
        let keys = try array(ls.stdout).compactMap { $0["path"] as? String }
        #expect(keys.count == 1501 && keys == keys.sorted { KeyOrder.less($0, $1) })
        let verify = try runCLI(["verify", "--all", "--policy", policy])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        #expect(verify.stdout.contains("manifest chunks checked"), "\(verify.stdout)")
    }

    @Test func aDamagedChunkFailsVerifyAndGarbageCollectionKeepsWhatIsReferenced() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("media")
        var objects: [String: [UInt8]] = [:]
        for i in 0..<400 { objects["o/\(i)"] = Array("object \(i)".utf8) }
        try await putAll(client, ["media": objects])
        let dir = TemporaryDirectory()
        let policy = writeS3Policy(in: dir, server: server, buckets: ["media"], extra: "retention: { daily: 0, keep_last: 1 }")
        let blobs = BlobStore(root: dir.file("repo/minio/blobs"))
        let first = try backup(policy)
        let firstChunks = try await SnapshotDocument.tree(try snapshotFile(dir, first)).chunkDigests(reader: ChunkReader(blobs: blobs))

        // A crashed run: chunks written, no snapshot file, nothing recorded.
        let orphan = TreeBuilder(store: blobs, bucket: "media")
        try orphan.append(BucketSnapshot.Entry(key: "crashed", size: 1, etag: "e", lastModified: "", sha256: String(repeating: "a", count: 64), md5: nil))
        let orphanIndex = try orphan.finish()
        let orphanChunks = try await SnapshotDocument.tree(SnapshotTree(source: "minio", artifact: "X", endpoint: "", createdAt: "",
            buckets: [SnapshotTree.Bucket(name: "media", prefix: "", objects: 1, bytes: 1, chunks: orphanIndex)])).chunkDigests(reader: ChunkReader(blobs: blobs))
        #expect(orphanChunks.count == 2 && orphanChunks.allSatisfy { blobs.contains($0) })

        // The next backup (one object changed) rotates the first away; GC keeps every chunk the second
        // references, most of them shared with the first, and removes the orphans.
        try await putAll(client, ["media": ["o/1": Array("changed".utf8)]])
        let second = try backup(policy)
        let listed = try runCLI(["list", "--policy", policy, "--json"])
        #expect(try array(listed.stdout).map { $0["id"] as? String } == [second["id"] as? String])
        let tree = try snapshotFile(dir, second)
        var referenced = Set<String>()
        var marker = BlobMarker()
        try await marker.mark(SnapshotDocument.tree(tree), reader: ChunkReader(blobs: blobs)) { referenced.insert($0) }
        let marked = marker.marked
        let chunks = try await SnapshotDocument.tree(tree).chunkDigests(reader: ChunkReader(blobs: blobs))
        #expect(!Set(chunks).isDisjoint(with: firstChunks)) // shared with the rotated snapshot, and kept
        for digest in referenced { #expect(blobs.contains(digest)) }
        for digest in orphanChunks { #expect(!blobs.contains(digest), "an orphan chunk of a crashed run is left") }
        let verify = try runCLI(["verify", second["id"] as! String, "--policy", policy])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")

        // A chunk changed on disk: verify fails with exit 4 and names it; restore refuses.
        let victim = chunks[chunks.count / 2]
        let path = blobs.path(for: victim)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 5] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        let bad = try runCLI(["verify", second["id"] as! String, "--policy", policy])
        #expect(bad.status == 4, "\(bad.stdout) \(bad.stderr)")
        #expect((bad.stdout + bad.stderr).contains(victim))
        let restore = try runCLI(["restore", "minio", "--policy", policy, "--latest", "--to-bucket", "media-copy", "--yes"])
        #expect(restore.status == 4, "\(restore.stdout) \(restore.stderr)")
        #expect(try await client.bucketExists("media-copy") == false)
    }
}
