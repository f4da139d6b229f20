import BackupCatalog
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

struct DeployHookTests {
    /// pre-deploy sets are pinned and outlive rotation until their release is confirmed and falls out of
    /// `pre_deploy`; rollback --restore-data brings Redis back to the restore point.
    @Test func hooksPinConfirmAndRollBack() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 3)
        let dir = TemporaryDirectory()
        let textfile = dir.file("m/kaleem_backup.prom")
        let policy = writeRedisPolicy(in: dir, url: redis.url,
                                      extra: "retention: { daily: 1, keep_last: 1, pre_deploy: 1 }\nmetrics: { textfile: \(textfile) }")

        let pre = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:1.4.2", "--policy", policy])
        #expect(pre.status == 0, "\(pre.stderr)")
        let setA = pre.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(setA.hasPrefix("run-") && !setA.contains("\n"))
        let again = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:1.4.2", "--policy", policy])
        #expect(again.stderr.contains("already had pre-deploy set \(setA)"))

        // Data written after the restore point.
        _ = try c.command("SET", "written-after-the-hook", "x")
        _ = try c.command("DEL", "str:0:1")

        // Nightly backups with keep_last 1 do not remove the pinned pre-deploy sets.
        for _ in 0..<2 { #expect(try runCLI(["backup", "--policy", policy]).status == 0) }
        let catalog = try Catalog(path: dir.file("repo/catalog.sqlite"))
        let pinnedA = try catalog.artifacts().filter { $0.release == "kaleem-api:1.4.2" }
        #expect(pinnedA.count == 2)
        #expect(pinnedA.allSatisfy { $0.pinned && $0.pinReason == "release kaleem-api:1.4.2" })
        let listed = try array(try runCLI(["list", "--policy", policy, "--json"]).stdout)
        #expect(listed.contains { $0["tag"] as? String == "pre-deploy" && $0["pinned"] as? Bool == true && $0["release"] as? String == "kaleem-api:1.4.2" })

        // Rollback with data: the keys written after the hook are gone, the deleted one is back.
        let rollback = try runCLI(["hook", "rollback", "--release", "kaleem-api:1.4.2", "--reason", "health-check-failed",
                                   "--restore-data", "--yes", "--policy", policy])
        #expect(rollback.status == 0, "\(rollback.stdout) \(rollback.stderr)")
        _ = try c.command("SELECT", "0")
        #expect(try c.command("EXISTS", "written-after-the-hook") == .integer(0))
        #expect(try c.command("EXISTS", "str:0:1") == .integer(1))
        // Without --restore-data it prints the exact commands.
        let dry = try runCLI(["hook", "rollback", "--release", "kaleem-api:1.4.2", "--reason", "manual", "--policy", policy])
        #expect(dry.stdout.contains("kaleem-backup restore redis --backup"))
        c.close()

        // Confirming 1.4.2, then 1.5.0: with pre_deploy 1 the older release is unpinned and rotation removes it.
        #expect(try runCLI(["hook", "post-deploy", "--release", "kaleem-api:1.4.2", "--outcome", "success", "--duration", "42", "--policy", policy]).status == 0)
        #expect(try catalog.artifacts().filter { $0.release == "kaleem-api:1.4.2" }.allSatisfy(\.pinned))
        #expect(try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:1.5.0", "--policy", policy]).status == 0)
        let post = try runCLI(["hook", "post-deploy", "--release", "kaleem-api:1.5.0", "--outcome", "success", "--duration", "65", "--policy", policy])
        #expect(post.stdout.contains("unpinned"))
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        #expect(try catalog.artifacts().filter { $0.release == "kaleem-api:1.4.2" }.isEmpty)
        #expect(try catalog.artifacts().contains { $0.release == "kaleem-api:1.5.0" && $0.pinned })

        // The stack's deployment metrics.
        let metrics = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(metrics.contains("deployment_success_total{environment=\"production\",service=\"api\"} 2"))
        #expect(metrics.contains("deployment_duration_seconds_count{environment=\"production\",service=\"api\",status=\"success\"} 2"))
        #expect(metrics.contains("rollback_total{environment=\"production\",service=\"api\",reason=\"health-check-failed\"} 1"))
        #expect(try runProcess("/bin/sh", ["-c", "promtool check metrics < \"$0\"", textfile]).status == 0)
    }

    /// With a bucket source too (the real local S3 server): the pre-deploy set holds a snapshot; a rollback
    /// restores buckets only with --include-buckets, and then the bucket is back at the restore point.
    @Test func rollbackRestoresBucketsOnlyWhenAsked() async throws {
        let redis = try RedisTestServer()
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("uploads")
        try await putAll(client, ["uploads": ["avatars/1.png": Array("one".utf8), "avatars/2.png": Array("two".utf8)]])
        let dir = TemporaryDirectory()
        writeS3Policy(in: dir, server: s3, buckets: ["uploads"])
        let policy = dir.file("both.yml")
        let text = try String(contentsOfFile: dir.file("policy.yml"), encoding: .utf8)
            + "  redis:\n    kind: redis\n    url: \"\(redis.url)\"\n"
        FileManager.default.createFile(atPath: policy, contents: Data(text.utf8))

        let pre = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:3.0.0", "--policy", policy, "--json"])
        #expect(pre.status == 0, "\(pre.stderr)")
        let artifacts = try #require(try object(pre.stdout)["artifacts"] as? [[String: Any]])
        #expect(Set(artifacts.compactMap { $0["source"] as? String }) == ["minio", "redis"])
        #expect(artifacts.allSatisfy { $0["pinned"] as? Bool == true && $0["status"] as? String == "ok" })

        // After the deploy: one upload added, one deleted.
        try await putAll(client, ["uploads": ["avatars/3.png": Array("three".utf8)]])
        try await client.deleteObject(bucket: "uploads", key: "avatars/1.png")

        let printed = try runCLI(["hook", "rollback", "--release", "kaleem-api:3.0.0", "--reason", "manual", "--policy", policy])
        #expect(printed.stdout.contains("kaleem-backup restore minio --backup"))
        #expect(printed.stdout.contains("--bucket uploads --delete-extra --yes"))

        let dataOnly = try runCLI(["hook", "rollback", "--release", "kaleem-api:3.0.0", "--reason", "health-check-failed",
                                   "--restore-data", "--yes", "--policy", policy])
        #expect(dataOnly.status == 0, "\(dataOnly.stdout) \(dataOnly.stderr)")
        #expect(try await client.listObjects(bucket: "uploads").map(\.key) == ["avatars/2.png", "avatars/3.png"])

        let withBuckets = try runCLI(["hook", "rollback", "--release", "kaleem-api:3.0.0", "--reason", "health-check-failed",
                                      "--restore-data", "--include-buckets", "--yes", "--policy", policy])
        #expect(withBuckets.status == 0, "\(withBuckets.stdout) \(withBuckets.stderr)")
        #expect(withBuckets.stdout.contains("restored minio bucket uploads"))
        #expect(try await readAll(client, bucket: "uploads") == ["avatars/1.png": Array("one".utf8), "avatars/2.png": Array("two".utf8)])
    }

    @Test func preDeployFailureExitsNonZero() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())")
        let r = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:2.0.0", "--policy", policy])
        #expect(r.status != 0)
        #expect(r.stderr.contains("pre-deploy backup of redis failed"))
    }
}

/// scripts/deploy.sh with a stand-in docker (no Docker engine here) that records its calls.
struct DeployScriptTests {
    struct Run {
        let directory: TemporaryDirectory
        let result: ProcessResult
        let dockerCalls: [[String: Any]]
        let catalog: Catalog?
    }

    func deploy(redisURL: String, health: HTTPRecorder, psFormat: String = "lines", extraEnv: [String: String] = [:]) throws -> Run {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redisURL)
        let log = dir.file("docker.jsonl")
        var env = cliEnvironment([
            "PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "KALEEM_BACKUP_BIN": try kaleemBinary(), "KALEEM_BACKUP_POLICY": policy, "KALEEM_API_IMAGE": "kaleem-api:2.0.0",
            "HEALTH_URL": health.url + "/health", "HEALTH_TIMEOUT": "2", "HEALTH_INTERVAL": "0.2",
            "DOCKER_LOG": log, "DOCKER_PS_FORMAT": psFormat, "DOCKER_PS_IMAGE": "kaleem-api:1.9.0",
        ])
        env.merge(extraEnv) { $1 }
        let result = try runProcess("/bin/bash", [packageRoot + "/scripts/deploy.sh"], environment: env)
        let calls = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let catalog = FileManager.default.fileExists(atPath: dir.file("repo/catalog.sqlite")) ? try Catalog(path: dir.file("repo/catalog.sqlite")) : nil
        return Run(directory: dir, result: result, dockerCalls: calls, catalog: catalog)
    }

    static func ups(_ calls: [[String: Any]]) -> [String] {
        calls.filter { ($0["argv"] as? [String])?.starts(with: ["compose", "up"]) == true }.compactMap { $0["image"] as? String }
    }

    @Test(arguments: ["lines", "array"])
    func successPath(psFormat: String) throws {
        let redis = try RedisTestServer()
        let health = try HTTPRecorder()
        let run = try deploy(redisURL: redis.url, health: health, psFormat: psFormat)
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(Self.ups(run.dockerCalls) == ["kaleem-api:2.0.0"])
        #expect(run.result.stderr.contains("running now: kaleem-api:1.9.0"))
        let events = try #require(run.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.success])
        #expect(try run.catalog!.artifacts().contains { $0.tag == .preDeploy && $0.pinned && $0.release == "kaleem-api:2.0.0" })
    }

    @Test func healthFailureRollsBack() throws {
        let redis = try RedisTestServer()
        let health = try HTTPRecorder(statuses: Array(repeating: 500, count: 100))
        let run = try deploy(redisURL: redis.url, health: health)
        #expect(run.result.status == 1)
        #expect(Self.ups(run.dockerCalls) == ["kaleem-api:2.0.0", "kaleem-api:1.9.0"])
        let events = try #require(run.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.rollback, .failed])
        #expect(events.first?.reason == "health-check-failed")
        #expect(run.result.stderr.contains("rolling back"))
    }

    @Test func preDeployFailureChangesNothing() throws {
        let health = try HTTPRecorder()
        let run = try deploy(redisURL: "redis://127.0.0.1:\(try FreePort.pick())", health: health)
        #expect(run.result.status == 1)
        #expect(Self.ups(run.dockerCalls).isEmpty)
        #expect(run.result.stderr.contains("NOT deploying"))
        #expect(health.requests.isEmpty)
    }

    @Test func missingVariablesAreNamed() throws {
        let r = try runProcess("/bin/bash", [packageRoot + "/scripts/deploy.sh"], environment: cliEnvironment())
        #expect(r.status != 0)
        #expect(r.stderr.contains("KALEEM_API_IMAGE"))
    }

    @Test func shellcheckClean() throws {
        let r = try runProcess("shellcheck", [packageRoot + "/scripts/deploy.sh", packageRoot + "/scripts/test.sh",
                                              packageRoot + "/scripts/install-deps.sh", packageRoot + "/scripts/quickstart.sh"])
        #expect(r.status == 0, "\(r.stdout)")
    }
}

/// The hooks refuse the mistakes a person on call makes: a typo in a release, a second confirmation, a rehearsal.
struct HookMistakeTests {
    @Test func hooksRefuseUnknownReleasesAndRehearsalsRecordNothing() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "retention: { keep_last: 1, daily: 0, pre_deploy: 1 }")
        #expect(try runCLI(["hook", "pre-deploy", "--release", "api:1.0", "--policy", policy]).status == 0)
        #expect(try runCLI(["hook", "post-deploy", "--release", "api:1.0", "--outcome", "success", "--policy", policy]).status == 0)
        let catalog = try Catalog(path: dir.file("repo/catalog.sqlite"))
        #expect(try catalog.artifacts().filter { $0.release == "api:1.0" }.allSatisfy(\.pinned))

        // A typo: refused, nothing recorded, the real restore point stays pinned.
        let typo = try runCLI(["hook", "post-deploy", "--release", "api:1.O", "--outcome", "success", "--policy", policy])
        #expect(typo.status == 2 && typo.stderr.contains("api:1.0"), "\(typo.stderr)")
        #expect(try catalog.artifacts().filter { $0.release == "api:1.0" }.allSatisfy(\.pinned))
        #expect(try catalog.deployments().count == 1)
        // Twice for the same release: counted once.
        #expect(try runCLI(["hook", "post-deploy", "--release", "api:1.0", "--outcome", "success", "--policy", policy]).status == 0)
        #expect(try catalog.deployments().count == 1)

        // A rollback with data of a release without restore point: refused, naming those that have one.
        let rollback = try runCLI(["hook", "rollback", "--release", "api:9.9", "--reason", "health", "--restore-data", "--yes", "--policy", policy])
        #expect(rollback.status == 2 && rollback.stderr.contains("the releases with a restore point are: api:1.0"), "\(rollback.stderr)")
        #expect(try catalog.deployments().count == 1)
        // A rehearsal says what it would restore and records nothing.
        let dry = try runCLI(["hook", "rollback", "--release", "api:1.0", "--reason", "drill", "--restore-data", "--dry-run", "--policy", policy])
        #expect(dry.status == 0 && dry.stdout.contains("would restore redis from"), "\(dry.stdout) \(dry.stderr)")
        #expect(try catalog.deployments().count == 1)
        #expect(try catalog.restores(source: "redis").isEmpty)
    }
}
