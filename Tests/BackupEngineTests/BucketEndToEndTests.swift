import ArtifactStore
import BackupCore
import BucketMirror
import Foundation
import NIOCore
import S3Client
import TestSupport
import Testing

/// Writes a policy with one bucket source; the secret key goes to a 0600 file.
@discardableResult
func writeS3Policy(in dir: TemporaryDirectory, server: S3TestServer, endpoint: String? = nil, buckets: [String], extra: String = "",
                   secretKey: String? = nil) -> String {
    let secretFile = dir.file("s3-secret")
    FileManager.default.createFile(atPath: secretFile, contents: Data((secretKey ?? server.secretKey).utf8), attributes: [.posixPermissions: 0o600])
    let path = dir.file("policy.yml")
    let text = """
    repository:
      path: \(dir.file("repo"))
    sources:
      minio:
        kind: s3
        endpoint: \(endpoint ?? server.endpoint)
        buckets: [\(buckets.joined(separator: ", "))]
        access_key: \(server.accessKey)
        secret_key_file: \(secretFile)
        timeout: 10s
    \(extra)
    """
    FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
}

/// Objects as the test means them: bucket → key → bytes.
typealias BucketState = [String: [String: [UInt8]]]

// Tests that talk to S3 themselves are async and `await` the client: a test never blocks a thread waiting for
// async work.
func putAll(_ client: S3Client, _ state: BucketState) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var n = 0
        for (bucket, objects) in state {
            for (key, bytes) in objects {
                group.addTask { try await client.putObject(bucket: bucket, key: key, bytes: ByteBuffer(bytes: bytes)) }
                n += 1
                if n % 16 == 0 { try await group.waitForAll() }
            }
        }
        try await group.waitForAll()
    }
}

/// Reads a whole bucket back.
func readAll(_ client: S3Client, bucket: String) async throws -> [String: [UInt8]] {
    let keys = try await client.listObjects(bucket: bucket).map(\.key)
    return try await withThrowingTaskGroup(of: (String, [UInt8]).self) { group in
        var out: [String: [UInt8]] = [:]
        var next = keys.makeIterator()
        for _ in 0..<16 {
            guard let key = next.next() else { break }
            group.addTask { (key, try await getBytes(client, bucket, key)) }
        }
        while let (key, bytes) = try await group.next() {
            out[key] = bytes
            if let key = next.next() { group.addTask { (key, try await getBytes(client, bucket, key)) } }
        }
        return out
    }
}

func getBytes(_ client: S3Client, _ bucket: String, _ key: String) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    _ = try await client.getObject(bucket: bucket, key: key, restart: { bytes = [] }) { bytes += $0.readableBytesView }
    return bytes
}

@Suite(.blockingThreads) struct BucketEndToEndTests {
    /// The issue's scenario: two buckets, more than 2,500 objects (paging), nested keys, empty objects, a
    /// 20 MiB object, awkward keys; a snapshot; changes; a second snapshot that records exactly them with list
    /// requests plus one GET per new or changed object; the first snapshot restored into new buckets equals,
    /// byte for byte, what the buckets held then.
    @Test func snapshotsRecordChangesAndRestoreThePast() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("alpha"); try await client.createBucket("beta")

        var state: BucketState = ["alpha": [:], "beta": [:]]
        for i in 0..<2_100 {
            let size = i % 97 == 0 ? 0 : (i * 37) % 700 + 1
            state["alpha"]!["photos/\(2020 + i % 6)/\(i % 12)/img-\(i).jpg"] = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ i) }
        }
        let awkward = ["../../etc/passwd", "/leading/slash", "dir//double", "ü/日本/🎉.txt", "sp ace+plus?q=1&x#h%25",
                       String(repeating: "deep/", count: 150) + "end", "trailing/", ".."]
        for key in awkward { state["alpha"]![key] = Array("awkward \(key)".utf8) }
        for i in 0..<420 { state["beta"]!["docs/\(i % 9)/\(i).txt"] = Array("document \(i)\n".utf8) }
        var big = [UInt8](repeating: 0, count: 20 << 20)
        for i in stride(from: 0, to: big.count, by: 4096) { big[i] = UInt8(truncatingIfNeeded: i >> 12) }
        state["beta"]!["videos/big.mp4"] = big
        try await putAll(client, state)
        let total = state.values.reduce(0) { $0 + $1.count }
        #expect(total > 2_500)
        let then = state

        let dir = TemporaryDirectory()
        let textfile = dir.file("metrics/kaleem_backup.prom")
        let policy = writeS3Policy(in: dir, server: server, buckets: ["alpha", "beta"], extra: "metrics: { textfile: \(textfile) }")
        let first = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let a1 = try #require((try object(first.stdout)["artifacts"] as? [[String: Any]])?.first)
        let s1 = try #require(a1["stats"] as? [String: Any])
        #expect(a1["kind"] as? String == "s3")
        #expect(s1["objects"] as? Int == total)
        #expect(s1["new"] as? Int == total)
        #expect(s1["unchanged"] as? Int == 0)
        #expect(s1["bytes"] as? Int == state.values.flatMap(\.values).reduce(0) { $0 + $1.count })
        #expect(s1["requests"] as? Int == 3 + 1 + total) // alpha: 3 list pages, beta: 1, one GET per object
        let path1 = dir.file("repo/" + (a1["path"] as! String))
        #expect(path1.hasSuffix(".snapshot.json"))
        #expect(FileIO.fileMode(path1) == 0o600)
        #expect(FileIO.fileMode(dir.file("repo/minio/blobs")) == 0o700)
        #expect(try sha256sum(path1) == a1["sha256"] as? String)
        #expect(!anyFileContains(dir.file("repo"), server.secretKey))
        // Sizes: stored is what the snapshot added (every blob, the first time, and its manifest: the snapshot
        // file and the manifest's chunks, which are blobs too); raw the logical size.
        func blobBytes() -> Int64 {
            filesUnder(dir.file("repo/minio/blobs")).filter { !$0.hasPrefix("tmp/") }.reduce(0) { $0 + (FileIO.fileSize(dir.file("repo/minio/blobs/" + $1)) ?? 0) }
        }
        let blobsAfterFirst = blobBytes()
        let manifest1 = try #require(s1["manifest_bytes_added"] as? Int)
        #expect(manifest1 > 0 && s1["manifest_chunks_added"] as? Int == s1["manifest_chunks"] as? Int)
        #expect(try #require(s1["added_bytes"] as? Int) + manifest1 == Int(blobsAfterFirst))
        #expect(a1["bytes_stored"] as? Int == Int((FileIO.fileSize(path1) ?? 0) + blobsAfterFirst))
        #expect(a1["bytes_raw"] as? Int == s1["bytes"] as? Int)

        // Change 5 and add 7 and delete 4 in alpha; change 1 in beta.
        let changed = ["photos/2020/0/img-0.jpg", "photos/2021/1/img-1.jpg", "../../etc/passwd", "ü/日本/🎉.txt", "photos/2025/5/img-5.jpg"]
        for key in changed { state["alpha"]![key] = Array("changed \(key)".utf8) }
        for i in 0..<7 { state["alpha"]!["new/\(i)"] = Array("new \(i)".utf8) }
        state["beta"]!["docs/0/0.txt"] = Array("rewritten".utf8)
        var changes: BucketState = ["alpha": [:], "beta": ["docs/0/0.txt": state["beta"]!["docs/0/0.txt"]!]]
        for key in changed { changes["alpha"]![key] = state["alpha"]![key] }
        for i in 0..<7 { changes["alpha"]!["new/\(i)"] = state["alpha"]!["new/\(i)"] }
        try await putAll(client, changes)
        let deleted = ["photos/2022/2/img-2.jpg", "photos/2023/3/img-3.jpg", "dir//double", ".."]
        try await client.deleteObjects(bucket: "alpha", keys: deleted)

        let second = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        let a2 = try #require((try object(second.stdout)["artifacts"] as? [[String: Any]])?.first)
        let s2 = try #require(a2["stats"] as? [String: Any])
        #expect(s2["new"] as? Int == 7)
        #expect(s2["changed"] as? Int == 6)
        #expect(s2["deleted"] as? Int == 4)
        #expect(s2["objects"] as? Int == total + 7 - 4)
        #expect(s2["unchanged"] as? Int == total - 6 - 4)
        #expect(s2["requests"] as? Int == 4 + 13) // the same list pages, one GET per new or changed object
        // Stored: the 13 new contents and the manifest; list shows it beside the logical size, DETAIL the changes.
        let addedNow = changes.values.flatMap(\.values).reduce(0) { $0 + $1.count }
        #expect(s2["added_bytes"] as? Int == addedNow)
        // ...and the chunks those 17 keys fall in (and the index chunks above them), not the whole manifest again.
        let manifest2 = try #require(s2["manifest_bytes_added"] as? Int)
        #expect(manifest2 > 0 && manifest2 < manifest1, "\(manifest2) of \(manifest1)")
        #expect(try #require(s2["manifest_chunks_added"] as? Int) < (s2["manifest_chunks"] as? Int ?? 0))
        #expect(blobBytes() == blobsAfterFirst + Int64(addedNow + manifest2))
        let path2 = dir.file("repo/" + (a2["path"] as! String))
        #expect(a2["bytes_stored"] as? Int == Int(FileIO.fileSize(path2) ?? 0) + addedNow + manifest2)
        #expect(a2["bytes_raw"] as? Int == s2["bytes"] as? Int)
        let listed = try runCLI(["list", "--policy", policy])
        let row2 = try #require(listed.stdout.split(separator: "\n").first { $0.hasPrefix(a2["id"] as! String) })
        #expect(row2.contains("\(total + 3) objects in 2 buckets (+7 ~6 -4 since the previous)"), "\(row2)")
        #expect(row2.contains(" of 20."), "\(row2)") // "<stored> of 20.x MiB"
        let row1 = try #require(listed.stdout.split(separator: "\n").first { $0.hasPrefix(a1["id"] as! String) })
        #expect(row1.contains("(first snapshot)"), "\(row1)")
        let shown = try runCLI(["show", a2["id"] as! String, "--policy", policy]).stdout
        #expect(shown.contains("logical") && shown.contains("what this snapshot added"), "\(shown)")
        // The metric is the logical size.
        let metrics = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(metrics.contains("kaleem_backup_last_size_bytes{source=\"minio\"} \(s2["bytes"] as! Int)"), "\(metrics)")

        // Both snapshots verify (every blob re-hashed).
        let verify = try runCLI(["verify", "--policy", policy, "--all", "--json"])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")

        // The first snapshot, restored into new buckets, is what the buckets held then.
        let id1 = a1["id"] as! String
        for bucket in ["alpha", "beta"] {
            let r = try runCLI(["restore", "minio", "--policy", policy, "--backup", id1, "--bucket", bucket, "--to-bucket", "\(bucket)-then",
                                "--endpoint", server.endpoint, "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            let out = try object(r.stdout)
            #expect(out["uploaded"] as? Int == then[bucket]!.count)
            let restored = try await readAll(client, bucket: "\(bucket)-then")
            #expect(restored.count == then[bucket]!.count)
            for (key, bytes) in then[bucket]! where restored[key] != bytes {
                Issue.record("\(bucket)/\(key) differs after the restore")
            }
        }
        let bigETag = try await client.listObjects(bucket: "beta-then", prefix: "videos/").first?.etag
        #expect(bigETag?.contains("-") == true) // multipart upload

        // Restoring again over the live bucket: refused without --yes (it is not empty); the dry run shows
        // exactly the differences; with --yes --delete-extra the bucket goes back in time.
        let refused = try runCLI(["restore", "minio", "--policy", policy, "--backup", id1, "--bucket", "alpha"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--yes"))
        // (--before a second after the first snapshot, well before the second, picks the first; created_at is
        // printed to the second, so the second's own time would be ambiguous.)
        let firstTaken = try #require((a1["created_at"] as? String).flatMap(Timestamps.parseISO8601))
        let dry = try runCLI(["restore", "minio", "--policy", policy, "--before", Timestamps.iso8601(firstTaken.addingTimeInterval(1)), "--bucket", "alpha", "--delete-extra", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try object(dry.stdout)
        #expect(plan["planned_uploads"] as? Int == 5 + 4) // the changed ones and the deleted ones
        #expect(plan["planned_deletes"] as? Int == 7)
        #expect(plan["uploaded"] as? Int == 0)
        #expect(plan["artifact"] as? String == id1)
        let back = try runCLI(["restore", "minio", "--policy", policy, "--backup", id1, "--bucket", "alpha", "--delete-extra", "--yes", "--json"])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(try object(back.stdout)["uploaded"] as? Int == 9)
        // Back in time: a new plan finds nothing to do (keys, sizes and MD5 ETags all equal the snapshot's).
        let after = try runCLI(["restore", "minio", "--policy", policy, "--backup", id1, "--bucket", "alpha", "--delete-extra", "--dry-run", "--json"])
        #expect(try object(after.stdout)["planned_uploads"] as? Int == 0)
        #expect(try object(after.stdout)["planned_deletes"] as? Int == 0)

        // Every restore is in the catalog.
        let show = try runCLI(["show", id1, "--policy", policy, "--json"])
        #expect(show.status == 0)
    }
}

/// A garbage collection a kill interrupted (its marker left) is finished by the next rotation, even one that
/// removes nothing: an orphan blob does not wait for the next removal.
@Suite(.serialized, .blockingThreads) struct InterruptedGCTests {
    @Test func anInterruptedCollectionIsFinishedByTheNextRotation() async throws {
        let server = try S3TestServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("uploads")
        try await putAll(client, ["uploads": ["a.txt": Array("a".utf8), "b.txt": Array("b".utf8)]])
        let dir = TemporaryDirectory()
        let policy = writeS3Policy(in: dir, server: server, buckets: ["uploads"])
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        let orphan = String(repeating: "0", count: 64)
        let orphanPath = dir.file("repo/minio/blobs/00/" + orphan)
        try FileManager.default.createDirectory(atPath: dir.file("repo/minio/blobs/00"), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: orphanPath, contents: Data("orphan".utf8))
        // Without a marker, a rotation that removes nothing reads nothing and collects nothing.
        #expect(try runCLI(["rotate", "--policy", policy]).status == 0)
        #expect(FileManager.default.fileExists(atPath: orphanPath))
        // The marker of an interrupted collection: the next rotation finishes it, then the marker goes.
        _ = FileManager.default.createFile(atPath: dir.file("repo/.gc-pending-minio"), contents: Data())
        #expect(try runCLI(["rotate", "--policy", policy]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: orphanPath))
        #expect(!FileManager.default.fileExists(atPath: dir.file("repo/.gc-pending-minio")))
    }
}
