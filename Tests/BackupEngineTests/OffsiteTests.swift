import ArtifactStore
import BackupCore
import BucketMirror
import Foundation
import RedisBackup
import S3Client
import TestSupport
import Testing

/// The off-site copy against real S3 servers (moto) on 127.0.0.1: upload and check, verify --offsite,
/// rotation removing remote copies, a failed upload retried by the next run, reading from off-site when
/// the local file is gone, and a whole new host rebuilt from the off-site copy and a key.
@Suite(.blockingThreads) struct OffsiteTests {
    /// A policy with a Redis source, a bucket source and an off-site bucket.
    func writePolicy(_ dir: TemporaryDirectory, repo: String, redis: String, minio: S3TestServer, offsite: String,
                     extra: String = "", name: String = "policy.yml") -> String {
        FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(minio.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        // Host prod under the prefix kaleem: its files are under kaleem/prod/ (#38).
        let text = """
        host: prod
        repository:
          path: \(repo)
          offsite: { endpoint: "\(offsite)", bucket: offsite-copy, prefix: kaleem, access_key: \(minio.accessKey), secret_key_file: \(dir.file("secret")) }
        sources:
          redis: { kind: redis, url: "\(redis)" }
          minio: { kind: s3, endpoint: "\(minio.endpoint)", buckets: [uploads], access_key: \(minio.accessKey), secret_key_file: \(dir.file("secret")) }
        \(extra)
        """
        FileManager.default.createFile(atPath: dir.file(name), contents: Data(text.utf8))
        return dir.file(name)
    }

    func remoteKeys(_ client: S3Client) async throws -> [String] {
        try await client.listObjects(bucket: "offsite-copy").map(\.key)
    }

    @Test func copyVerifyRotateAndRetry() async throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 5)
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("uploads")
        try await client.createBucket("offsite-copy")
        try await putAll(client, ["uploads": ["a.txt": Array("a".utf8), "b/c.txt": Array("c".utf8)]])
        let dir = TemporaryDirectory()
        let textfile = dir.file("metrics.prom")
        let policy = writePolicy(dir, repo: dir.file("repo"), redis: redis.url, minio: s3, offsite: s3.endpoint,
                                 extra: "retention: { daily: 1, keep_last: 1 }\nmetrics: { textfile: \(textfile) }")
        // The package a new host installs from (scripts/package-deb.sh --into-repository): copied off-site too.
        let package = Array("!<arch>\ndebian-binary of a test package".utf8)
        try FileManager.default.createDirectory(atPath: dir.file("repo/packages"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir.file("repo/packages/kaleem-backup_0.1.0_amd64.deb"), contents: Data(package))

        let first = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let a1 = try #require(try object(first.stdout)["artifacts"] as? [[String: Any]])
        #expect(a1.allSatisfy { $0["offsite"] as? String == "ok" })
        var keys = try await remoteKeys(client)
        for a in a1 {
            let path = a["path"] as! String
            #expect(keys.contains("kaleem/prod/" + path))
            #expect(keys.contains("kaleem/prod/" + (path as NSString).deletingLastPathComponent + "/\(a["id"] as! String).manifest.json"))
        }
        // Two objects' blobs and the manifest's two chunks (an object chunk, an index chunk).
        #expect(keys.filter { $0.hasPrefix("kaleem/prod/minio/blobs/") }.count == 2 + 2)
        #expect(keys.contains("kaleem/prod/catalog/catalog.sqlite"))
        #expect(try await getBytes(client, "offsite-copy", "kaleem/prod/packages/kaleem-backup_0.1.0_amd64.deb") == package)
        #expect(FileManager.default.fileExists(atPath: dir.file("repo/catalog-copy/catalog.sqlite")))
        // The remote copy carries its sha256; the copy's bytes are the local file's.
        let redisArtifact = a1.first { $0["source"] as? String == "redis" }!
        let head = try await client.headObject(bucket: "offsite-copy", key: "kaleem/prod/" + (redisArtifact["path"] as! String))
        #expect(head?.metadata["sha256"] == redisArtifact["sha256"] as? String)

        let verify = try runCLI(["verify", "--offsite", "--all", "--policy", policy, "--json"])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        #expect(try array(verify.stdout).count == 2)

        // A second run rotates the first away, here and off-site (its unique blob too).
        _ = try c.command("SET", "later", "1")
        try await putAll(client, ["uploads": ["a.txt": Array("A2".utf8)]])
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        keys = try await remoteKeys(client)
        for a in a1 { #expect(!keys.contains("kaleem/prod/" + (a["path"] as! String)), "removed off-site: \(a["id"]!)") }
        #expect(keys.filter { $0.hasPrefix("kaleem/prod/minio/blobs/") }.count == 2 + 2) // and the old chunks with it
        #expect(keys.contains("kaleem/prod/packages/kaleem-backup_0.1.0_amd64.deb")) // never rotated

        // The off-site server goes away: the backup is still good, marked offsite failed, metric and all.
        let down = try S3TestServer()
        down.stop()
        let webhook = try HTTPRecorder()
        let downPolicy = writePolicy(dir, repo: dir.file("repo"), redis: redis.url, minio: s3, offsite: down.endpoint,
                                     extra: "retention: { daily: 1, keep_last: 1 }\nmetrics: { textfile: \(textfile) }\nnotify: { webhook: \"\(webhook.url)\" }",
                                     name: "down.yml")
        let failed = try runCLI(["backup", "--policy", downPolicy, "--json", "--source", "redis"], environment: BucketBadInputTests.fastS3)
        #expect(failed.status == 0, "\(failed.stderr)")
        let a3 = try #require((try object(failed.stdout)["artifacts"] as? [[String: Any]])?.first)
        #expect(a3["status"] as? String == "ok")
        #expect(a3["offsite"] as? String == "failed")
        #expect((a3["offsite_detail"] as? String ?? "").contains(down.endpoint))
        #expect(try String(contentsOfFile: textfile, encoding: .utf8).contains("kaleem_backup_offsite_failed_artifacts{source=\"redis\"} 1"))
        // One notification: the off-site failure of that artifact (the backup itself was fine).
        let events = webhook.requests.compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }
        #expect(events.count == 1)
        #expect(events.first?["event"] as? String == "offsite" && events.first?["status"] as? String == "failed")
        #expect(events.first?["artifact_id"] as? String == a3["id"] as? String)
        // The next run (server back) completes it.
        #expect(try runCLI(["backup", "--policy", policy, "--source", "minio"]).status == 0)
        let listed = try array(try runCLI(["list", "--policy", policy, "--json"]).stdout)
        #expect(listed.first { $0["id"] as? String == a3["id"] as? String }?["offsite"] as? String == "ok")
        #expect(try await remoteKeys(client).contains("kaleem/prod/" + (a3["path"] as! String)))
        #expect(try String(contentsOfFile: textfile, encoding: .utf8).contains("kaleem_backup_offsite_failed_artifacts{source=\"redis\"} 0"))
        c.close()
    }

    /// A bucket snapshot is copied off-site incrementally to the last one copied whole: an unchanged night sends
    /// its snapshot file and manifest only, a changed one its new blobs and the chunks around them; what is
    /// off-site still verifies whole and restores.
    @Test func bucketSnapshotsAreCopiedIncrementally() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("uploads")
        try await client.createBucket("offsite-copy")
        var objects: [String: [UInt8]] = [:]
        for i in 0..<300 { objects["u/\(i % 7)/\(String(format: "%04d", i)).jpg"] = Array("object \(i)".utf8) }
        try await putAll(client, ["uploads": objects])
        let dir = TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(s3.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        let policy = dir.file("policy.yml")
        try """
        host: h1
        repository:
          path: \(dir.file("repo"))
          offsite: { endpoint: "\(s3.endpoint)", bucket: offsite-copy, prefix: kb, access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        sources:
          minio: { kind: s3, endpoint: "\(s3.endpoint)", buckets: [uploads], access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        retention: { daily: 0, keep_last: 10 }
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        func backup() throws -> [String: Any] {
            let run = try runCLI(["backup", "--policy", policy, "--json"])
            #expect(run.status == 0, "\(run.stderr)")
            let id = try #require((try object(run.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
            let listed = try array(try runCLI(["list", "--policy", policy, "--json"]).stdout)
            return try #require(listed.first { $0["id"] as? String == id })
        }
        func blobCount() async throws -> Int { try await remoteKeys(client).filter { $0.hasPrefix("kb/h1/minio/blobs/") }.count }

        let first = try backup()
        #expect(first["offsite"] as? String == "ok")
        let full = try await blobCount()
        #expect(full > 300) // every object's blob and the chunks
        #expect((first["offsite_detail"] as? String ?? "").hasPrefix("\(full + 2) files"))

        let unchanged = try backup()
        #expect((unchanged["offsite_detail"] as? String ?? "").hasPrefix("2 files at "), "\(unchanged["offsite_detail"] ?? "")")
        #expect((unchanged["offsite_detail"] as? String ?? "").hasSuffix("(incremental to \(first["id"]!))"))
        #expect(try await blobCount() == full)

        // One object changed, one added: their two blobs and the chunks that hold them (an object chunk or two and
        // the index chunk above), not the rest.
        try await putAll(client, ["uploads": ["u/3/0003.jpg": Array("changed".utf8), "u/9/new.jpg": Array("new".utf8)]])
        let changed = try backup()
        let detail = changed["offsite_detail"] as? String ?? ""
        let copied = Int(detail.prefix { $0.isNumber }) ?? -1
        #expect(copied >= 2 + 2 + 2 && copied <= 2 + 6 + 2, "\(detail)")
        #expect(detail.hasSuffix("(incremental to \(unchanged["id"]!))"))
        #expect(try await blobCount() == full + copied - 2)

        let verify = try runCLI(["verify", "--offsite", "--all", "--policy", policy, "--json"])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        #expect(try array(verify.stdout).count == 3)

        // The off-site bucket emptied behind our back: the next copy cannot trust its base and copies in full.
        let everything = try await remoteKeys(client)
        try await client.deleteObjects(bucket: "offsite-copy", keys: everything)
        let afterWipe = try backup()
        let wipeDetail = afterWipe["offsite_detail"] as? String ?? ""
        #expect(!wipeDetail.contains("incremental"), "\(wipeDetail)")
        #expect(try await blobCount() == (Int(wipeDetail.prefix { $0.isNumber }) ?? -1) - 2) // every blob it references

        // What is off-site restores alone: a new host with the off-site copy only.
        let newHost = dir.file("new-host.yml")
        try (try String(contentsOfFile: policy, encoding: .utf8)).replacingOccurrences(of: dir.file("repo"), with: dir.file("new-repo"))
            .write(toFile: newHost, atomically: true, encoding: .utf8)
        let rebuilt = try runCLI(["catalog", "rebuild", "--from-offsite", "--policy", newHost])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        let restored = try runCLI(["restore", "minio", "--latest", "--to-bucket", "uploads-again", "--policy", newHost])
        #expect(restored.status == 0, "\(restored.stderr)")
        var expected = objects
        expected["u/3/0003.jpg"] = Array("changed".utf8)
        expected["u/9/new.jpg"] = Array("new".utf8)
        #expect(try await readAll(client, bucket: "uploads-again") == expected)
    }

    /// A new host with nothing but the off-site bucket and the age key: rebuild the catalog, restore Redis
    /// and MinIO, verify. (runbooks/full-disaster-recovery.md follows these steps.)
    @Test func newHostFromTheOffsiteCopy() async throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0, 3], keysPerType: 6)
        let original = try redis.keyspace()
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("uploads")
        try await client.createBucket("offsite-copy")
        let objects: [String: [UInt8]] = ["avatars/1.png": Array("one".utf8), "docs/readme.md": Array("# hi".utf8), "empty": []]
        try await putAll(client, ["uploads": objects])
        let dir = TemporaryDirectory()
        #expect(try runProcess("age-keygen", ["-o", dir.file("key.txt")]).status == 0)
        let recipient = try #require(try AgeIdentity.parseFile(try String(contentsOfFile: dir.file("key.txt"), encoding: .utf8)).first?.recipient)
        let encryption = "encryption: { recipients: [\(recipient.description)], identity_file: \(dir.file("key.txt")) }"
        let policy = writePolicy(dir, repo: dir.file("old-host"), redis: redis.url, minio: s3, offsite: s3.endpoint, extra: encryption)
        let pre = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:9.9.9", "--policy", policy])
        #expect(pre.status == 0, "\(pre.stderr)")

        // Blobs left the host encrypted too: the objects' and the manifest's chunks (the keys are in them).
        let remoteBlobs = try await remoteKeys(client).filter { $0.contains("/blobs/") }
        #expect(remoteBlobs.count == 3 + 2 && remoteBlobs.allSatisfy { $0.hasSuffix(".age") })

        // The old host is gone.
        try FileManager.default.removeItem(atPath: dir.file("old-host"))
        let newPolicy = writePolicy(dir, repo: dir.file("new-host"), redis: redis.url, minio: s3, offsite: s3.endpoint, extra: encryption,
                                    name: "new.yml")
        let rebuild = try runCLI(["catalog", "rebuild", "--from-offsite", "--policy", newPolicy, "--json"])
        #expect(rebuild.status == 0, "\(rebuild.stdout) \(rebuild.stderr)")
        #expect(try object(rebuild.stdout)["artifacts"] as? Int == 2)
        let listed = try array(try runCLI(["list", "--policy", newPolicy, "--json"]).stdout)
        #expect(listed.count == 2)
        #expect(listed.allSatisfy { $0["pinned"] as? Bool == true && $0["release"] as? String == "kaleem-api:9.9.9" && $0["offsite"] as? String == "ok" }, "\(listed)")

        // A drill of the bucket source works from the off-site copy too (snapshot and encrypted blobs fetched).
        let drill = try runCLI(["drill", "--source", "minio", "--policy", newPolicy, "--json"])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        #expect(try array(drill.stdout).first?["result"] as? String == "passed")

        // Redis: restored from the off-site copy (fetched, sha256 checked, decrypted) into a fresh server.
        let target = try RedisTestServer()
        let r = try runCLI(["restore", "redis", "--latest", "--to-url", target.url, "--yes", "--policy", newPolicy])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(try target.keyspace() == original)
        // MinIO: the snapshot and its blobs come from off-site too.
        let m = try runCLI(["restore", "minio", "--latest", "--bucket", "uploads", "--to-bucket", "uploads-new-host", "--policy", newPolicy])
        #expect(m.status == 0, "\(m.stdout) \(m.stderr)")
        #expect(try await readAll(client, bucket: "uploads-new-host") == objects)
        // Everything verifies, here and off-site.
        #expect(try runCLI(["verify", "--all", "--policy", newPolicy]).status == 0)
        #expect(try runCLI(["verify", "--offsite", "--all", "--policy", newPolicy]).status == 0)
        // A second rebuild keeps the catalog it replaces.
        let again = try runCLI(["catalog", "rebuild", "--policy", newPolicy, "--json"])
        #expect((try object(again.stdout)["previous_catalog"] as? String)?.contains("pre-rebuild") == true)
        c.close()
    }
}
