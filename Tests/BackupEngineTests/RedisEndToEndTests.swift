import ArtifactStore
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

/// The whole slice with real parts: a real redis-server, the built CLI, gzip, sha256sum, redis-check-rdb,
/// and a second redis-server loading what was backed up.
@Suite(.blockingThreads) struct RedisEndToEndTests {
    @Test(arguments: ["yes", "no"])
    func backupRestoresIntoAnotherServer(diskless: String) throws {
        let redis = try RedisTestServer(settings: ["repl-diskless-sync \(diskless)"])
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0, 1, 5], keysPerType: 15)
        c.close()
        let original = try redis.keyspace()
        #expect(original.count == 3)

        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        let r = try runCLI(["backup", "--policy", policy, "--json", "--tag", "nightly"])
        #expect(r.status == 0, "\(r.stderr)")
        let result = try object(r.stdout)
        let run = try #require(result["run"] as? [String: Any])
        #expect(run["status"] as? String == "ok")
        #expect(run["tag"] as? String == "nightly")
        #expect(run.keys.contains("release"))
        let artifacts = try #require(result["artifacts"] as? [[String: Any]])
        #expect(artifacts.count == 1)
        let a = artifacts[0]
        for key in ["id", "source", "kind", "status", "path", "sha256", "bytes_raw", "bytes_stored", "stats"] {
            #expect(a[key] != nil, "missing \(key)")
        }
        #expect(a["status"] as? String == "ok")
        #expect(a["kind"] as? String == "redis")
        let stats = try #require(a["stats"] as? [String: Any])
        #expect(stats["keys"] as? Int == original.values.reduce(0, +))
        #expect(stats["rdb_version"] as? Int == 10)
        #expect(stats["framing"] as? String == (diskless == "yes" ? "eof-mark" : "length"))

        // The stored file: standard gzip, the recorded sha256, private modes.
        let file = dir.file("repo/" + (a["path"] as! String))
        #expect(try runProcess("gzip", ["-t", file]).status == 0)
        #expect(try sha256sum(file) == a["sha256"] as? String)
        #expect(FileIO.fileSize(file) == Int64(a["bytes_stored"] as! Int))
        #expect(FileIO.fileMode(file) == 0o600)
        #expect(FileIO.fileMode((file as NSString).deletingLastPathComponent) == 0o700)
        #expect(FileIO.fileMode(dir.file("repo")) == 0o700)
        #expect(FileIO.fileMode(dir.file("repo/catalog.sqlite")) == 0o600)
        let manifestPath = (file as NSString).deletingLastPathComponent + "/\(a["id"] as! String).manifest.json"
        let manifest = try Manifest.decode(try #require(FileManager.default.contents(atPath: manifestPath)))
        #expect(manifest.artifact.sha256 == a["sha256"] as? String)
        #expect(manifest.artifact.status == .ok)
        #expect(FileIO.fileMode(manifestPath) == 0o600)

        // The RDB inside: redis-check-rdb accepts it, and a second server loads the same keys.
        let restored = TemporaryDirectory("kb-restored")
        try FileManager.default.createDirectory(atPath: restored.file("data"), withIntermediateDirectories: true)
        try gunzip(file, to: restored.file("data/dump.rdb"))
        let check = try runProcess("redis-check-rdb", [restored.file("data/dump.rdb")])
        #expect(check.status == 0, "\(check.stdout)")
        #expect(check.stdout.contains("RDB looks OK"))
        #expect(check.stdout.contains("\(original.values.reduce(0, +)) keys read"))
        let second = try ScratchRedisServer.start(directory: restored.file("data"))
        defer { second.stop() }
        let loaded = try second.connect()
        guard case .bulk(let info?) = try loaded.command("INFO", "keyspace") else { Issue.record("no keyspace"); return }
        let text = String(decoding: info, as: UTF8.self)
        for (db, keys) in original { #expect(text.contains("db\(db):keys=\(keys),"), "\(text)") }
        // TTLs came along.
        _ = try loaded.command("SELECT", "1")
        guard case .integer(let ttl) = try loaded.command("TTL", "ttl:1:3") else { Issue.record("no TTL"); return }
        #expect(ttl > 3000 && ttl <= 3603)
        loaded.close()

        // list, show and verify report it.
        let list = try runCLI(["list", "--policy", policy, "--json"])
        #expect(list.status == 0)
        let listed = try array(list.stdout)
        #expect(listed.map { $0["id"] as? String } == [a["id"] as? String])
        #expect(listed[0]["created_at"] != nil)
        let show = try runCLI(["show", "--policy", policy, "--json", a["id"] as! String])
        #expect(try object(show.stdout)["sha256"] as? String == a["sha256"] as? String)
        let verify = try runCLI(["verify", "--policy", policy, "--json", "--all"])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        let verified = try array(verify.stdout)
        #expect(verified.count == 1)
        #expect(verified[0]["ok"] as? Bool == true)
        #expect(verified[0]["id"] as? String == a["id"] as? String)
    }

    @Test func alteredArtifactFailsVerify() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 5)
        c.close()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        let r = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let a = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first)
        let file = dir.file("repo/" + (a["path"] as! String))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[bytes.count / 2] ^= 0x20
        try bytes.write(to: URL(fileURLWithPath: file))
        let verify = try runCLI(["verify", "--policy", policy, "--json", String((a["id"] as! String).prefix(22))])
        #expect(verify.status == 4)
        let results = try array(verify.stdout)
        #expect(results.first?["ok"] as? Bool == false)
        #expect((results.first?["detail"] as? String)?.contains("sha256") == true)
        // Text mode says FAILED, exit 4 too.
        let text = try runCLI(["verify", "--policy", policy, "--all"])
        #expect(text.status == 4)
        #expect(text.stdout.contains("FAILED"))
        // A deleted file is reported, not crashed on.
        try FileManager.default.removeItem(atPath: file)
        let missing = try runCLI(["verify", "--policy", policy, "--json", "--all"])
        #expect(missing.status == 4)
        #expect((try array(missing.stdout).first?["detail"] as? String)?.contains("missing") == true)
    }

    @Test func secretsStayOutOfEverything() throws {
        let password = "pw-\(UUID().uuidString)"
        let redis = try RedisTestServer(password: password)
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 3)
        c.close()
        let dir = TemporaryDirectory()
        let secretFile = dir.file("redis.pass")
        _ = FileManager.default.createFile(atPath: secretFile, contents: Data((password + "\n").utf8))
        let policy = dir.file("p.yml")
        _ = FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          redis: { kind: redis, url: "redis://127.0.0.1:\(redis.port)", password_file: \(secretFile) }
          inline: { kind: redis, url: "redis://:\(password)@127.0.0.1:\(redis.port)" }
          wrong: { kind: redis, url: "redis://:not-\(password)@127.0.0.1:\(redis.port)" }
        """.utf8))
        let r = try runCLI(["backup", "--policy", policy, "--json", "--verbose"])
        #expect(r.status == 3, "\(r.stdout) \(r.stderr)") // two good, one wrong password: partial
        let artifacts = try #require(try object(r.stdout)["artifacts"] as? [[String: Any]])
        #expect(artifacts.map { $0["status"] as? String } == ["ok", "ok", "failed"])
        #expect((artifacts[2]["detail"] as? String)?.contains("authentication failed") == true)
        #expect(!r.stdout.contains(password))
        #expect(!r.stderr.contains(password))
        #expect(!anyFileContains(dir.file("repo"), password))
        let check = try runCLI(["policy", "check", "--policy", policy])
        #expect(check.status == 0)
        #expect(!check.stdout.contains(password))
    }

    @Test func backupOfOneNamedSource() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        _ = FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          cache: { kind: redis, url: "\(redis.url)" }
          sessions: { kind: redis, url: "\(redis.url)" }
        """.utf8))
        let r = try runCLI(["backup", "--policy", policy, "--json", "--source", "sessions", "--tag", "pre-deploy", "--release", "kaleem-api:1.4.2"])
        #expect(r.status == 0, "\(r.stderr)")
        let result = try object(r.stdout)
        #expect((result["artifacts"] as? [[String: Any]])?.map { $0["source"] as? String } == ["sessions"])
        #expect((result["run"] as? [String: Any])?["release"] as? String == "kaleem-api:1.4.2")
        // An empty server is a valid (tiny) backup.
        #expect((result["artifacts"] as? [[String: Any]])?.first?["status"] as? String == "ok")
        let unknown = try runCLI(["backup", "--policy", policy, "--source", "nope"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("no source named \"nope\""))
        let list = try runCLI(["list", "--policy", policy, "--json", "--source", "sessions", "--limit", "5"])
        #expect(try array(list.stdout).first?["release"] as? String == "kaleem-api:1.4.2")
    }
}
