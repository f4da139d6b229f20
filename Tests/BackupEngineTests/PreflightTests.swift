import BackupCore
import Foundation
import RedisBackup
import S3Client
import Testing
import TestSupport

/// #18 (a preflight that connects): `policy check` says every problem at once; `--connect` tries what a backup
/// would touch, against real servers (redis-server, moto) and the MongoDB stand-ins.
@Suite(.blockingThreads) struct PreflightTests {
    func checks(_ r: ProcessResult) throws -> [String: (ok: Bool, detail: String)] {
        let doc = try object(r.stdout)
        var out: [String: (ok: Bool, detail: String)] = [:]
        for c in doc["checks"] as? [[String: Any]] ?? [] {
            out[c["check"] as? String ?? ""] = (c["ok"] as? Bool ?? false, c["detail"] as? String ?? "")
        }
        return out
    }

    @Test func everythingReachableIsOK() async throws {
        let redis = try RedisTestServer()
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        for bucket in ["uploads", "offsite-copy"] { try await client.createBucket(bucket) }
        try await putAll(client, ["uploads": ["a/1.txt": Array("one".utf8)]])
        let hook = try HTTPRecorder()
        let dir = TemporaryDirectory()
        chmod(dir.path, 0o755) // node_exporter (another user) must reach the metrics directory under it
        try "secret".write(toFile: dir.file("secret"), atomically: true, encoding: .utf8)
        let policy = dir.file("policy.yml")
        try """
        repository:
          path: \(dir.file("repo"))
          offsite: { endpoint: "\(s3.endpoint)", bucket: offsite-copy, prefix: kaleem, access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        sources:
          redis: { kind: redis, url: "\(redis.url)" }
          minio: { kind: s3, endpoint: "\(s3.endpoint)", buckets: [uploads], access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        metrics: { textfile: \(dir.file("metrics/kb.prom")) }
        notify: { webhook: "\(hook.url)/hook" }
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let r = try runCLI(["policy", "check", "--connect", "--json", "--policy", policy])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(try object(r.stdout)["ok"] as? Bool == true)
        let c = try checks(r)
        for name in ["policy", "repository writable", "metrics directory writable", "source redis: connects and authenticates",
                     "source redis: may run SYNC (the snapshot)", "source redis: redis-server for drills and restores",
                     "source minio: bucket uploads readable", "off-site bucket writable", "webhook answering",
                     "sources.minio.secret_key_file", "repository.offsite.secret_key_file"] {
            #expect(c[name]?.ok == true, "\(name): \(String(describing: c[name]))")
        }
        #expect(c["source minio: bucket uploads readable"]?.detail.contains("a/1.txt") == true)
        // It reads only: the repository and the metrics directory are not created (a backup creates them).
        #expect(!FileManager.default.fileExists(atPath: dir.file("repo")))
        #expect(!FileManager.default.fileExists(atPath: dir.file("metrics")))
        #expect(c["repository writable"]?.detail.contains("does not exist yet") == true)
        // The probe is gone from the off-site bucket, and no event reached the webhook (a GET only).
        #expect(try await client.listObjects(bucket: "offsite-copy").isEmpty)
        #expect(hook.requests.allSatisfy { $0.method == "GET" })
        // On a terminal-less run without --json: a table, exit 0.
        let text = try runCLI(["policy", "check", "--connect", "--policy", policy])
        #expect(text.status == 0 && text.stdout.contains("off-site bucket writable"), "\(text.stdout)")
    }

    /// Every problem in one run: a wrong password, a SYNC the user may not run, a missing bucket, an unreadable
    /// secret file, a webhook nobody answers, an off-site bucket that does not exist.
    @Test func everyProblemIsSaidAtOnce() async throws {
        let redis = try RedisTestServer()
        let admin = try redis.connect()
        _ = try admin.command("ACL", "SETUSER", "nosync", "on", ">pw", "~*", "&*", "+@all", "-sync", "-psync")
        _ = try admin.command("ACL", "SETUSER", "guarded", "on", ">right", "~*", "&*", "+@all")
        admin.close()
        let s3 = try S3TestServer()
        let dir = TemporaryDirectory()
        try "secret".write(toFile: dir.file("secret"), atomically: true, encoding: .utf8)
        let closedPort = try FreePort.pick()
        let redisHost = redis.url.replacingOccurrences(of: "redis://", with: "")
        let policy = dir.file("policy.yml")
        try """
        repository:
          path: \(dir.file("repo"))
          offsite: { endpoint: "\(s3.endpoint)", bucket: no-such-bucket, access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        sources:
          cache: { kind: redis, url: "redis://guarded:wrong@\(redisHost)" }
          sessions: { kind: redis, url: "redis://nosync:pw@\(redisHost)" }
          minio: { kind: s3, endpoint: "\(s3.endpoint)", buckets: [missing], access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
          other: { kind: s3, endpoint: "\(s3.endpoint)", buckets: [other-bucket], access_key: k, secret_key_file: \(dir.file("nope")) }
        notify: { webhook: "http://127.0.0.1:\(closedPort)/hook" }
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let r = try runCLI(["policy", "check", "--connect", "--json", "--policy", policy])
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect(try object(r.stdout)["ok"] as? Bool == false)
        let c = try checks(r)
        #expect(c["source cache: connects and authenticates"]?.ok == false)
        #expect(c["source sessions: connects and authenticates"]?.ok == true)
        #expect(c["source sessions: may run SYNC (the snapshot)"]?.ok == false, "\(String(describing: c["source sessions: may run SYNC (the snapshot)"]))")
        #expect(c["source minio: bucket missing readable"]?.ok == false)
        #expect(c["sources.other.secret_key_file"]?.ok == false)
        #expect(c["webhook answering"]?.ok == false)
        #expect(c["off-site bucket writable"]?.ok == false)
        // The message on stderr lists them all, and no secret.
        #expect(r.stderr.contains("check(s) failed") && r.stderr.contains("webhook answering") && r.stderr.contains("bucket missing"))
        #expect(!r.stderr.contains("wrong@") && !r.stdout.contains(":wrong"))
    }

    /// Loading stops at the first unset variable; policy check names every one, and prints JSON when asked.
    @Test func everyUnsetVariableIsNamed() throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("policy.yml")
        try """
        # ${IN_A_COMMENT} is not needed
        repository: { path: ${KB_TEST_REPO} }
        sources:
          redis: { kind: redis, url: "${KB_TEST_REDIS_URL}", password: "${KB_TEST_PW:?the Redis password}" }
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let r = try runCLI(["policy", "check", "--policy", policy])
        #expect(r.status == 2)
        for name in ["KB_TEST_REPO", "KB_TEST_REDIS_URL", "KB_TEST_PW"] { #expect(r.stderr.contains(name), "\(name): \(r.stderr)") }
        #expect(!r.stderr.contains("IN_A_COMMENT"))
        let json = try runCLI(["policy", "check", "--json", "--policy", policy])
        #expect(json.status == 2)
        let doc = try object(json.stdout)
        #expect(doc["ok"] as? Bool == false && doc["valid"] as? Bool == false)
        #expect((doc["checks"] as? [[String: Any]])?.count == 4, "\(json.stdout)")
    }

    /// MongoDB: the tools are found (through the stand-ins on PATH) and a ping goes through mongosh with the
    /// connection string on stdin; a mongosh that is refused fails the check.
    @Test func mongoIsPingedThroughTheShell() throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("policy.yml")
        try """
        repository: { path: \(dir.file("repo")) }
        sources:
          mongo: { kind: mongodb, uri: "mongodb://backup:pw@db.internal:27017/" }
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let standIns = packageRoot + "/Tests/StandIns"
        var env = ["PATH": standIns + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"), "STANDIN_LOG": dir.file("log.jsonl")]
        let ok = try runCLI(["policy", "check", "--connect", "--json", "--policy", policy], environment: env)
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        let c = try checks(ok)
        #expect(c["source mongo: mongodump"]?.ok == true && c["source mongo: connects and authenticates"]?.ok == true)
        let log = try String(contentsOfFile: dir.file("log.jsonl"), encoding: .utf8)
        #expect(log.contains("\"connects\": true") && !log.contains("pw@"), "\(log)")
        env["STANDIN_MONGOSH_MODE"] = "fail"
        let refused = try runCLI(["policy", "check", "--connect", "--json", "--policy", policy], environment: env)
        #expect(refused.status == 2)
        #expect(try checks(refused)["source mongo: connects and authenticates"]?.detail.contains("not authorized") == true)
    }
}
