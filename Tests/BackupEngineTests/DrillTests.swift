import BackupCatalog
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

@Suite(.blockingThreads) struct DrillTests {
    @Test func redisDrillPassesThenCatchesACorruptedBackup() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0, 2, 7], keysPerType: 6)
        c.close()
        let dir = TemporaryDirectory()
        let textfile = dir.file("metrics/kaleem_backup.prom")
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "metrics: { textfile: \(textfile) }")
        let backup = try runCLI(["backup", "--policy", policy, "--json"])
        #expect(backup.status == 0)
        let artifact = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)

        let drill = try runCLI(["drill", "--policy", policy, "--json", "--latest"])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "passed")
        #expect(result["artifact"] as? String == artifact["id"] as? String)
        #expect((result["duration_seconds"] as? Double ?? 0) > 0)
        #expect((result["detail"] as? String)?.contains("db7=") == true)

        // show reports the artifact's last drill.
        let show = try object(try runCLI(["show", "--policy", policy, "--json", artifact["id"] as! String]).stdout)
        #expect((show["last_drill"] as? [String: Any])?["result"] as? String == "passed")

        // RPO and RTO in status; the drill gauges in the textfile.
        let status = try #require(try array(try runCLI(["status", "--policy", policy, "--json"]).stdout).first)
        #expect(status["newest_good"] as? String == artifact["id"] as? String)
        #expect((status["rpo_seconds"] as? Double).map { $0 >= 0 && $0 < 600 } == true)
        #expect((status["last_drill"] as? [String: Any])?["result"] as? String == "passed")
        let metrics = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(metrics.contains("kaleem_backup_drill_last_run_success{source=\"redis\"} 1"))
        #expect(metrics.contains("kaleem_backup_drill_last_success_timestamp_seconds{source=\"redis\"}"))

        // A corrupted artifact: the drill fails with exit 4 and says why.
        let file = dir.file("repo/" + (artifact["path"] as! String))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[bytes.count / 3] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: file))
        let failed = try runCLI(["drill", "--policy", policy, "--json", "--backup", artifact["id"] as! String])
        #expect(failed.status == 4)
        let bad = try #require(try array(failed.stdout).first)
        #expect(bad["result"] as? String == "failed")
        #expect((bad["detail"] as? String)?.contains("does not verify") == true)

        // One catalog row per drill, each with a duration.
        let drills = try Catalog(path: dir.file("repo/catalog.sqlite")).drills(source: "redis")
        #expect(drills.count == 2)
        #expect(drills.allSatisfy { $0.durationSeconds > 0 })
        #expect(try String(contentsOfFile: textfile, encoding: .utf8).contains("kaleem_backup_drill_last_run_success{source=\"redis\"} 0"))
    }

    /// A server whose RDB is several times the drill's 1 MiB FIFO (100,000 keys: 3.3 MiB), with every value type
    /// besides: enough for the writer to block on a server that stops reading, and for damage at 90% of the file
    /// to be found while the server loads. (It was `SampleData.fill(keysPerType: 3000)`: lists and sets of up to
    /// 3,000 members each, ~22–31 million members and values, 1.4 GB of server memory, a fifth of the suite's CPU.)
    static func largerThanTheFIFO() throws -> RedisTestServer {
        let redis = try RedisTestServer(settings: ["enable-debug-command yes"])
        let c = try redis.connect()
        defer { c.close() }
        try SampleData.fill(c, databases: [0], keysPerType: 20)
        guard case .simple("OK") = try c.command("DEBUG", "POPULATE", "100000", "bulk", "64") else {
            throw BackupFailure("DEBUG POPULATE failed")
        }
        return redis
    }

    /// The scratch server loads from a FIFO while the backup is verified: a server that stops reading part way
    /// (as one refusing the RDB does) fails the drill, naming it, and nothing waits for it; a backup with
    /// more than a pipe's worth of data is needed for the writer to be blocked on it.
    @Test func aScratchServerThatStopsReadingFailsTheDrillWithoutHanging() throws {
        let redis = try Self.largerThanTheFIFO()
        let dir = TemporaryDirectory()
        let fake = dir.file("bin/redis-server")
        try FileManager.default.createDirectory(atPath: dir.file("bin"), withIntermediateDirectories: true)
        try """
        #!/bin/sh
        # A redis-server that reads the first bytes of its dump.rdb, then exits as one refusing the RDB would.
        if [ "$1" = "--version" ]; then exec redis-server --version; fi
        dir=$(sed -n 's/^dir //p' "$1")
        head -c 100 "$dir/dump.rdb" >/dev/null
        echo "# Can't handle RDB format version 99 (the test's fake server)" >> "$dir/redis.log"
        exit 1
        """.write(toFile: fake, atomically: true, encoding: .utf8)
        #expect(chmod(fake, 0o755) == 0)
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "drill: { redis_server: \(fake) }")
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        let drill = try runCLI(["drill", "--policy", policy, "--json", "--latest"])
        #expect(drill.status == 4, "\(drill.stdout) \(drill.stderr)")
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "failed")
        #expect((result["detail"] as? String)?.contains("refused to load the backup") == true, "\(result)")
        #expect((result["detail"] as? String)?.contains("Can't handle RDB format version 99") == true, "\(result)")
    }

    /// A backup whose damage shows only after the server has read part of it: the drill fails as "does not
    /// verify" (never "passed" on what the server loaded), and the scratch server does not wait for the rest.
    @Test func damageFoundWhileTheServerLoadsFailsTheDrill() throws {
        let redis = try Self.largerThanTheFIFO()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        let backup = try runCLI(["backup", "--policy", policy, "--json"])
        let artifact = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let file = dir.file("repo/" + (artifact["path"] as! String))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[bytes.count * 9 / 10] ^= 0x01 // late in the file: the server has read most of the RDB by then
        try bytes.write(to: URL(fileURLWithPath: file))
        let drill = try runCLI(["drill", "--policy", policy, "--json", "--latest"])
        #expect(drill.status == 4, "\(drill.stdout) \(drill.stderr)")
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "failed")
        #expect((result["detail"] as? String)?.contains("does not verify") == true, "\(result)")
    }

    @Test func mongoDrillIsArchiveOnlyWithoutAScratchServer() throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        _ = FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          mongo: { kind: mongodb, uri: "mongodb://u:pw@db:27017/" }
        drill: { mongo_image: "off" }
        """.utf8))
        let env = ["PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        #expect(try runCLI(["backup", "--policy", policy], environment: env).status == 0)
        let drill = try runCLI(["drill", "--policy", policy, "--json"], environment: env)
        #expect(drill.status == 0, "\(drill.stderr)")
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "archive-only")
        #expect((result["detail"] as? String)?.contains("26 documents + 18 oplog entries") == true)
        #expect((result["detail"] as? String)?.contains("drill.mongo_image is off") == true)
    }

    /// §8.4 by default: without drill.mongo_uri, the backup is restored into a throwaway MongoDB of its server's
    /// version (`docker run -d --rm mongo:4.0` for the fixture's 4.0.2), pinged until it answers (the stand-in's
    /// mongod accepts a second after it starts), counted, and the container removed.
    @Test func mongoDrillIntoAThrowawayContainer() throws {
        let s = MongoEndToEndTests.Setup(extra: "    oplog: true")
        let dockerLog = s.dir.file("docker.jsonl")
        let env = ["DOCKER_LOG": dockerLog, "DOCKER_CONTAINERS": s.dir.file("containers.json")]
        #expect(try s.run(["backup"], env).status == 0)
        let drill = try s.run(["drill", "--json"], env)
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "passed", "\(result)")
        let detail = result["detail"] as? String ?? ""
        #expect(detail.contains("every document count matches") && detail.contains("throwaway mongo:4.0 container") && detail.contains("removed"), "\(detail)")
        let calls = try String(contentsOfFile: dockerLog, encoding: .utf8).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["argv"] as? [String]
        }
        let run = try #require(calls.first { $0.first == "run" && $0.contains("-d") })
        #expect(run.contains("mongo:4.0") && run.contains("--rm"))
        #expect(run.contains { $0.hasPrefix("127.0.0.1:") && $0.hasSuffix(":27017") })
        #expect(calls.contains { $0.first == "rm" && $0.contains("-f") })
        // Nothing left running: the stand-in's mongod is gone and the container list is empty.
        let left = try String(contentsOfFile: s.dir.file("containers.json"), encoding: .utf8)
        #expect(left == "{}", "\(left)")
        // The restore reached the container's port, and the tools never saw the production password there.
        let restore = try #require(try s.logEntries().last { $0["tool"] as? String == "mongorestore" })
        #expect(restore["refused"] == nil)
    }

    /// No docker on the host: archive-only, and the result says why.
    @Test func mongoDrillWithoutDockerIsArchiveOnlyAndSaysWhy() throws {
        let s = MongoEndToEndTests.Setup()
        let tools = TemporaryDirectory()
        for tool in ["mongodump", "mongorestore", "mongosh"] {
            // A wrapper, not a symlink: the stand-in finds its fixtures from its own path.
            FileManager.default.createFile(atPath: tools.file(tool), contents: Data("#!/bin/sh\nexec \"\(packageRoot)/Tests/StandIns/\(tool)\" \"$@\"\n".utf8),
                                           attributes: [.posixPermissions: 0o755])
        }
        let env = ["PATH": tools.path + ":/usr/bin:/bin"]
        #expect(try s.run(["backup"], env).status == 0)
        let drill = try s.run(["drill", "--json"], env)
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "archive-only")
        #expect((result["detail"] as? String)?.contains("docker is not installed here") == true, "\(result)")
    }

    /// An image the registry does not have: the drill is an error with docker's message, nothing left running.
    @Test func aThrowawayImageThatDoesNotExistIsAnError() throws {
        let s = MongoEndToEndTests.Setup(extra: "drill: { mongo_image: \"mongo:99.0\" }")
        let env = ["DOCKER_CONTAINERS": s.dir.file("containers.json")]
        #expect(try s.run(["backup"], env).status == 0)
        let drill = try s.run(["drill", "--json"], env)
        #expect(drill.status != 0)
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "error")
        #expect((result["detail"] as? String)?.contains("manifest unknown") == true, "\(result)")
    }

    /// With `drill.mongo_uri`, the archive is restored under scratch names, counts compared, scratch databases dropped.
    @Test func mongoDrillIntoAScratchServer() throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        _ = FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          mongo: { kind: mongodb, uri: "mongodb://u:prod-pw@db:27017/", oplog: true }
        drill: { mongo_uri: "mongodb://drill:scratch-pw@scratch:27017/" }
        """.utf8))
        let log = dir.file("standin.jsonl")
        let env = ["PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                   "STANDIN_LOG": log]
        #expect(try runCLI(["backup", "--policy", policy], environment: env).status == 0)
        let drill = try runCLI(["drill", "--policy", policy, "--json"], environment: env)
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "passed")
        #expect((result["detail"] as? String)?.contains("scratch databases dropped") == true)
        #expect(!(drill.stdout + drill.stderr).contains("scratch-pw"))
        let entries = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let restore = try #require(entries.first { $0["tool"] as? String == "mongorestore" })
        let restored = try #require(restore["restored"] as? [String: Int])
        #expect(restored.count == 1)
        #expect(restored.keys.first?.hasPrefix("kb_drill_") == true && restored.values.first == 25)
        #expect(!(restore["argv"] as? [String] ?? []).joined().contains("scratch-pw"))
        let shell = try #require(entries.first { $0["tool"] as? String == "mongosh" })
        #expect((shell["drops"] as? [String])?.count == 1)
        #expect((shell["drops"] as? [String])?.first?.hasPrefix("kb_drill_") == true)
        #expect(!(shell["argv"] as? [String] ?? []).joined().contains("scratch"))

        let failing = try runCLI(["drill", "--policy", policy, "--json"], environment: env.merging(["STANDIN_FAILED_DOCS": "2"]) { $1 })
        #expect(failing.status == 4)
        #expect((try array(failing.stdout).first?["detail"] as? String)?.contains("failed to restore") == true)
    }

    @Test func nothingToDrill() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1")
        let r = try runCLI(["drill", "--policy", policy])
        #expect(r.status == 1)
        #expect(r.stderr.contains("no good backup"))
    }
}
