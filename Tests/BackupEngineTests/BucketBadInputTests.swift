import ArtifactStore
import BackupCore
import BucketMirror
import Foundation
import S3Client
import TestSupport
import Testing

/// Bucket sources when things go wrong: each failure says what happened to what, leaves no half-written
/// blob or snapshot, and the next run works. Drills, verification and garbage collection of blobs.
@Suite(.blockingThreads) struct BucketBadInputTests {
    static let fastS3 = ["KALEEM_BACKUP_S3_ATTEMPTS": "2", "KALEEM_BACKUP_S3_BACKOFF": "0.01"]

    /// A failed bucket backup: exit 1, the artifact failed with why, no snapshot file, no blob in the store.
    func expectFailed(_ r: ProcessResult, dir: TemporaryDirectory, mentions needles: [String], secret: String? = nil) throws {
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        let a = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first)
        #expect(a["status"] as? String == "failed")
        let detail = a["detail"] as? String ?? ""
        for needle in needles { #expect(detail.contains(needle), "\(needle) not in: \(detail)") }
        if let secret {
            #expect(!detail.contains(secret) && !r.stderr.contains(secret))
            #expect(!anyFileContains(dir.file("repo"), secret))
        }
        // No snapshot, no partial file; a blob stored before the failure is whole (its content is its name).
        let files = filesUnder(dir.file("repo"))
        #expect(!files.contains { $0.hasSuffix(".snapshot.json") || $0.hasSuffix(".partial") }, "\(files)")
        for blob in files where blob.contains("/blobs/") {
            #expect(try sha256sum(dir.file("repo/" + blob)) == (blob as NSString).lastPathComponent, "\(blob)")
        }
    }

    @Test func wrongCredentials() async throws {
        let server = try S3TestServer(authentication: true)
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("media")
        let dir = TemporaryDirectory()
        let wrong = "wrong-secret-\(UUID().uuidString)"
        let policy = writeS3Policy(in: dir, server: server, buckets: ["media"], secretKey: wrong)
        let r = try runCLI(["backup", "--policy", policy, "--json"], environment: Self.fastS3)
        try expectFailed(r, dir: dir, mentions: [server.endpoint, "SignatureDoesNotMatch"], secret: wrong)
    }

    @Test func endpointDownBucketMissingAndServerErrors() async throws {
        let dir = TemporaryDirectory()
        let server = try S3TestServer()
        // Nothing listens there.
        let port = try S3TestServer.unusedPort()
        var policy = writeS3Policy(in: dir, server: server, endpoint: "http://127.0.0.1:\(port)", buckets: ["media"])
        try expectFailed(try runCLI(["backup", "--policy", policy, "--json"], environment: Self.fastS3), dir: dir,
                         mentions: ["127.0.0.1:\(port)", "after 2 attempts"])
        // The bucket does not exist.
        policy = writeS3Policy(in: dir, server: server, buckets: ["nosuchbucket"])
        try expectFailed(try runCLI(["backup", "--policy", policy, "--json"], environment: Self.fastS3), dir: dir,
                         mentions: ["NoSuchBucket", "nosuchbucket"])
        // A server that answers 500 to everything: retried, then a clear failure.
        let broken = try HTTPRecorder(statuses: Array(repeating: 500, count: 20))
        policy = writeS3Policy(in: dir, server: server, endpoint: broken.url, buckets: ["media"])
        try expectFailed(try runCLI(["backup", "--policy", policy, "--json"], environment: Self.fastS3), dir: dir,
                         mentions: ["HTTP 500", "after 2 attempts"])
        #expect(broken.requests.count == 2)
    }

    /// The disk fills while a blob is downloaded (a file-size limit makes write() fail, as a full disk does):
    /// the backup fails, no blob exists under a final name, no partial file stays; the next run completes.
    @Test func diskFullDuringBlobDownload() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("media")
        var objects: [String: [UInt8]] = [:]
        for i in 0..<10 { objects["small/\(i)"] = Array("small \(i)".utf8) }
        objects["large.bin"] = [UInt8](repeating: 7, count: 3 << 20)
        try await putAll(client, ["media": objects])
        let dir = TemporaryDirectory()
        let policy = writeS3Policy(in: dir, server: server, buckets: ["media"])
        let limited = try runProcess("/bin/bash", ["-c", "trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\"", try kaleemBinary(),
                                                   "backup", "--policy", policy, "--json"], environment: cliEnvironment())
        try expectFailed(limited, dir: dir, mentions: ["large.bin", "blobs/tmp"])
        let ok = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let stats = try #require((try object(ok.stdout)["artifacts"] as? [[String: Any]])?.first?["stats"] as? [String: Any])
        #expect(stats["new"] as? Int == 11)
    }

    /// A real full disk (a tmpfs smaller than the bucket): the failed snapshot's blobs are collected before the
    /// failure is recorded, so the row says why ("No space left"), not "interrupted" with the cause lost, and no
    /// blob of it stays.
    @Test func aFullDiskDuringASnapshotKeepsItsCause() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("media")
        var objects: [String: [UInt8]] = [:]
        var rng = SystemRandomNumberGenerator()
        for i in 0..<24 { objects["photo/\(i).jpg"] = (0..<(96 << 10)).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        try await putAll(client, ["media": objects])
        let dir = TemporaryDirectory()
        let repo = dir.file("repo")
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        let policy = writeS3Policy(in: dir, server: server, buckets: ["media"])
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let script = """
        mount -t tmpfs -o size=1200k kb-full "$1" || exit 90
        "$2" backup --json --policy "$3" > "$4/b.json" 2> "$4/b.err"; echo $? > "$4/b.rc"
        "$2" list --json --policy "$3" > "$4/list.json" 2> "$4/list.err"
        find "$1" -type f -path '*blobs*' ! -name '*.sqlite*' > "$4/blobs"
        """
        let r = try runProcess("/usr/bin/unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "kb",
                                                    repo, try kaleemBinary(), policy, out], environment: cliEnvironment())
        #expect(r.status == 0, "\(r.stderr)")
        func read(_ name: String) -> String { (try? String(contentsOfFile: out + "/" + name, encoding: .utf8)) ?? "" }
        #expect(read("b.rc").trimmingCharacters(in: .whitespacesAndNewlines) == "1", "\(read("b.err"))")
        let rows = try array(read("list.json"))
        let row = try #require(rows.first, "\(read("list.err"))")
        #expect(row["status"] as? String == "failed")
        #expect((row["detail"] as? String)?.contains("No space left") == true, "\(row)")
        #expect(read("blobs").isEmpty, "blobs left: \(read("blobs"))")
    }

    @Test func drillVerifyRotationAndTampering() async throws {
        let server = try S3TestServer()
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("media"); try await client.createBucket("avatars")
        var objects: [String: [UInt8]] = [:]
        for i in 0..<20 { objects["o/\(i)"] = Array("object \(i)".utf8) }
        try await putAll(client, ["media": objects, "avatars": ["me.png": Array("png".utf8)]])
        let dir = TemporaryDirectory()
        let policy = writeS3Policy(in: dir, server: server, buckets: ["media", "avatars"], extra: """
        retention:
          daily: 7
          keep_last: 1
        """)
        let b1 = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(b1.status == 0, "\(b1.stderr)")
        let id1 = try #require((try object(b1.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)

        // The drill restores each bucket into a scratch bucket, compares every object, and deletes it.
        let drill = try runCLI(["drill", "--policy", policy, "--source", "minio", "--json"])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        let record = try #require(try array(drill.stdout).first)
        #expect(record["result"] as? String == "passed")
        #expect((record["duration_seconds"] as? Double ?? 0) > 0)
        #expect((record["detail"] as? String ?? "").contains("kb-drill-\(id1.lowercased())"))
        #expect(try await client.listBuckets().sorted() == ["avatars", "media"])

        // Two objects change; the second backup rotates the first away, and the blobs only it held go too.
        try await putAll(client, ["media": ["o/1": Array("new one".utf8), "o/2": Array("new two".utf8)]])
        let b2 = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(b2.status == 0, "\(b2.stderr)")
        let a2 = try #require((try object(b2.stdout)["artifacts"] as? [[String: Any]])?.first)
        let id2 = a2["id"] as! String
        let listed = try runCLI(["list", "--policy", policy, "--json"])
        #expect(try array(listed.stdout).map { $0["id"] as? String } == [id2])
        let document = try SnapshotDocument.decode(try #require(FileManager.default.contents(atPath: dir.file("repo/" + (a2["path"] as! String)))), file: "s")
        let reader = ChunkReader(blobs: BlobStore(root: dir.file("repo/minio/blobs")))
        let snapshot = try await document.materialize(reader: reader)
        var referenced = Set<String>() // the objects' blobs and the manifest's chunks
        var marker = BlobMarker()
        try await marker.mark(document, reader: reader) { referenced.insert($0) }
        let marked = marker.marked
        let blobFiles = filesUnder(dir.file("repo/minio/blobs")).map { ($0 as NSString).lastPathComponent }
        #expect(Set(blobFiles) == referenced)
        #expect(referenced.isStrictSuperset(of: snapshot.blobDigests))

        // A blob altered on disk: drill, restore and verify all fail with exit 4 and say which.
        let victim = snapshot.buckets.first { $0.name == "media" }!.objects.first { $0.key == "o/5" }!
        let blobPath = dir.file("repo/minio/blobs/\(victim.sha256.prefix(2))/\(victim.sha256)")
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: blobPath))
        let badDrill = try runCLI(["drill", "--policy", policy, "--source", "minio", "--json"])
        #expect(badDrill.status == 4, "\(badDrill.stdout) \(badDrill.stderr)")
        #expect(try array(badDrill.stdout).first?["result"] as? String == "failed")
        let restore = try runCLI(["restore", "minio", "--policy", policy, "--latest", "--bucket", "media", "--to-bucket", "media-copy", "--yes"])
        #expect(restore.status == 4)
        #expect(restore.stderr.contains(victim.sha256))
        let verify = try runCLI(["verify", id2, "--policy", policy])
        #expect(verify.status == 4)
        #expect((verify.stdout + verify.stderr).contains(victim.sha256))
        // verify marked it corrupt (#18): from now on it is not chosen at all, and the refusal says why (exit 4).
        let refused = try runCLI(["restore", "minio", "--policy", policy, "--latest", "--bucket", "media", "--to-bucket", "media-copy", "--yes"])
        #expect(refused.status == 4 && refused.stderr.contains("marked corrupt") && refused.stderr.contains(id2), "\(refused.stderr)")
        let refusedDrill = try runCLI(["drill", "--policy", policy, "--source", "minio"])
        #expect(refusedDrill.status == 4 && refusedDrill.stderr.contains("marked corrupt"), "\(refusedDrill.stderr)")
        #expect(try await client.bucketExists("media-copy") == false)
    }
}
