import ArtifactStore
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

/// Bad input gets a clear message and the documented exit code, and loses nothing.
@Suite(.blockingThreads) struct BadInputTests {
    @Test func redisDown() throws {
        let port = try FreePort.pick()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(port)")
        let r = try runCLI(["backup", "--policy", policy])
        #expect(r.status == 1)
        #expect(r.stdout.contains("cannot connect") || r.stderr.contains("cannot connect"), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("127.0.0.1:\(port)"))
        // The failure is recorded, and no file is left for it.
        let list = try array(try runCLI(["list", "--policy", policy, "--json"]).stdout)
        #expect(list.first?["status"] as? String == "failed")
        #expect(filesUnder(dir.file("repo")).allSatisfy { !$0.hasSuffix(".gz") && !$0.hasSuffix(".partial") })
    }

    @Test func wrongPassword() throws {
        let redis = try RedisTestServer(password: "right-one")
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://:wrong-one@127.0.0.1:\(redis.port)")
        let r = try runCLI(["backup", "--policy", policy])
        #expect(r.status == 1)
        #expect((r.stdout + r.stderr).contains("authentication failed"))
        #expect(!(r.stdout + r.stderr).contains("wrong-one"))
        #expect(!(r.stdout + r.stderr).contains("right-one"))
    }

    @Test(arguments: [
        ("repository: { path: /tmp/x }\nsources:\n  redis: { kind: redis, url: \"redis://h\", colour: blue }\n", "sources.redis.colour"),
        ("repository: [oops\n", "YAML syntax error"),
        ("repository: { path: /tmp/x }\nsources:\n  redis: { kind: redis, url: \"${KB_TEST_UNSET_URL:?point it at Redis}\" }\n",
         "KB_TEST_UNSET_URL is required: point it at Redis"),
    ])
    func brokenPolicyExits2(text: String, expected: String) throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("bad.yml")
        _ = FileManager.default.createFile(atPath: policy, contents: Data(text.utf8))
        for args in [["backup"], ["policy", "check"], ["list"]] {
            let r = try runCLI(args + ["--policy", policy])
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(policy))
            #expect(r.stderr.contains(expected), "\(r.stderr)")
            #expect(r.stderr.contains("Try: "))
        }
        // Nothing was created for a policy that did not parse (the broken policies name /r as the repository).
        #expect(!FileManager.default.fileExists(atPath: "/r"))
    }

    @Test func missingPolicyFileExits2() throws {
        let r = try runCLI(["policy", "check", "--policy", "/nonexistent/policy.yml"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("/nonexistent/policy.yml"))
        #expect(r.stderr.contains("does not exist"))
        let env = try runCLI(["policy", "check"], environment: ["KALEEM_BACKUP_POLICY": "/nonexistent/env.yml"])
        #expect(env.status == 2)
        #expect(env.stderr.contains("/nonexistent/env.yml"))
    }

    @Test func usageErrorsExit2() throws {
        #expect(try runCLI(["verify"]).status == 2)
        // Any label is a tag (#18); a malformed one is a usage error.
        #expect(try runCLI(["backup", "--tag", "Some Times"]).status == 2)
        #expect(try runCLI(["backup", "--tag", "-leading-dash"]).status == 2)
        #expect(try runCLI(["backup", "--tag", "pre-deploy"]).status == 2)
        #expect(try runCLI(["no-such-command"]).status == 2)
        let help = try runCLI(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("Exit codes"))
    }

    @Test func repositoryNotWritable() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.file("afile"), contents: Data())
        let policy = writeRedisPolicy(in: dir, url: redis.url, repository: dir.file("afile/repo"))
        let r = try runCLI(["backup", "--policy", policy])
        #expect(r.status == 1)
        #expect(r.stderr.contains(dir.file("afile")), "\(r.stderr)")
        #expect(r.stderr.contains("Try: "))
    }

    @Test func secondConcurrentRunExits11() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        try LocalRepository(root: dir.file("repo")).prepare()
        let held = try RunLock(path: dir.file("repo/.lock"), purpose: "backup")
        let r = try runCLI(["backup", "--policy", policy])
        #expect(r.status == 11)
        #expect(r.stderr.contains("pid=\(getpid())"), "\(r.stderr)")
        held.release()
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
    }

    @Test func unknownArtifact() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1")
        let r = try runCLI(["show", "--policy", policy, "nope"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("no artifact with id \"nope\""))
    }
}
