import BackupCore
import Foundation
import TestSupport
import Testing

/// MongoDB as deployed: the tools run through docker (`docker run -i … mongo:7 mongodump`, `docker compose exec
/// -T mongo mongorestore`). The docker stand-in runs them in a private mount namespace whose /tmp is empty, so
/// anything that needs a host file fails; the password must appear in no process's argv or environment.
@Suite(.serialized, .blockingThreads) struct MongoDockerTests {
    static let password = "Pw-\(UUID().uuidString.prefix(12))"

    struct Setup {
        let dir: String
        let marker: String
        init() throws {
            // Outside /tmp: the stand-in's log must stay visible from inside the namespace.
            dir = "/var/tmp/kb-mongo-docker-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir + "/tmp", withIntermediateDirectories: true)
            // In the temp directory kaleem-backup is given (its TMPDIR), which a container never sees.
            marker = dir + "/tmp/kb-marker-\(UUID().uuidString)"
            FileManager.default.createFile(atPath: marker, contents: Data("host".utf8))
            // `docker compose exec` needs its project, as real Compose does: the stack's file, named by COMPOSE_FILE
            // (what /etc/kaleem-backup/env sets for cron and systemd, which start in $HOME and /).
            FileManager.default.createFile(atPath: dir + "/docker-compose.yml", contents: Data("services:\n  mongo:\n    image: mongo:7\n".utf8))
            FileManager.default.createFile(atPath: dir + "/policy.yml", contents: Data("""
            repository: { path: \(dir)/repo }
            sources:
              mongo:
                kind: mongodb
                uri: "mongodb://backup:\(MongoDockerTests.password)@db.internal:27017/?authSource=admin"
                mongodump: [docker, run, --rm, -i, --network, host, mongo:7, mongodump]
                mongorestore: [docker, compose, exec, -T, mongo, mongorestore]
                timeout: 20s
            drill:
              mongo_uri: "mongodb://drill:\(MongoDockerTests.password)@127.0.0.1:27018/"
              mongosh: [docker, compose, exec, -T, mongo, mongosh]
            """.utf8))
        }

        var env: [String: String] {
            ["PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
             "STANDIN_LOG": dir + "/standin.jsonl", "STANDIN_MARKER": marker, "DOCKER_LOG": dir + "/docker.jsonl",
             "TMPDIR": dir + "/tmp", "COMPOSE_FILE": dir + "/docker-compose.yml"]
        }

        func log() throws -> [[String: Any]] {
            let text = (try? String(contentsOfFile: dir + "/standin.jsonl", encoding: .utf8)) ?? ""
            return try text.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        }

        func cleanup() {
            try? FileManager.default.removeItem(atPath: dir)
            unlink(marker)
        }
    }

    /// Runs the CLI while a poller reads every process's argv and environment every few milliseconds; returns
    /// the result and the processes in which the password was seen.
    final class Watch: @unchecked Sendable {
        let lock = NSLock()
        var finished = false
        var seen: Set<String> = []
    }

    static func runWatched(_ args: [String], env: [String: String]) throws -> (ProcessResult, [String]) {
        let watch = Watch()
        let poller = Thread {
            let needle = Data(MongoDockerTests.password.utf8)
            while !watch.lock.withLock({ watch.finished }) {
                for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(pid) != nil {
                    for file in ["cmdline", "environ"] {
                        if let data = FileManager.default.contents(atPath: "/proc/\(pid)/\(file)"), data.range(of: needle) != nil {
                            let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self) } ?? "?"
                            let hit = "\(file) of \(pid): \(cmd.replacingOccurrences(of: "\0", with: " "))"
                            watch.lock.withLock { _ = watch.seen.insert(hit) }
                        }
                    }
                }
                usleep(5_000)
            }
        }
        poller.start()
        let result = try runCLI(args, environment: env)
        watch.lock.withLock { watch.finished = true }
        usleep(20_000)
        return (result, watch.lock.withLock { Array(watch.seen) })
    }

    @Test func backupRestoreAndDrillThroughDocker() throws {
        let s = try Setup()
        defer { s.cleanup() }
        let policy = ["--policy", s.dir + "/policy.yml"]

        let (backup, leakedInBackup) = try Self.runWatched(["backup", "--json"] + policy, env: s.env)
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        #expect(leakedInBackup.isEmpty, "password seen in: \(leakedInBackup)")
        let artifact = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        #expect((artifact["stats"] as? [String: Any])?["documents"] as? Int == 44)

        let (restore, leakedInRestore) = try Self.runWatched(["restore", "mongo", "--latest", "--yes", "--json"] + policy, env: s.env)
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        #expect(leakedInRestore.isEmpty, "password seen in: \(leakedInRestore)")

        let (drill, leakedInDrill) = try Self.runWatched(["drill", "--json"] + policy, env: s.env)
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        #expect((try array(drill.stdout).first?["result"] as? String) == "passed", "\(drill.stdout)")
        #expect(leakedInDrill.isEmpty, "password seen in: \(leakedInDrill)")

        // Every tool ran inside the namespace (the host's /tmp marker invisible), read its credentials from
        // what we sent, and mongorestore received the exact archive bytes.
        let log = try s.log()
        #expect(log.map { $0["tool"] as? String } == ["mongodump", "mongorestore", "mongorestore", "mongosh"])
        for entry in log {
            #expect(entry["marker_visible"] as? Bool == false, "\(entry)")
            if entry["tool"] as? String != "mongosh" { #expect(entry["config_uri"] as? Bool == true, "\(entry)") }
            #expect(!((entry["argv"] as? [String]) ?? []).joined().contains(Self.password))
        }
        let restored = try #require(log.first { $0["tool"] as? String == "mongorestore" })
        #expect(restored["sha256"] as? String == (try sha256sum(fixturesDirectory + "/mongo/dump-w-oplog.archive")))
        // Nothing was left in any temp directory, and no output carries the password.
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.dir + "/tmp").allSatisfy { !$0.hasPrefix("kaleem-") })
        #expect(!(backup.stderr + restore.stderr + drill.stderr + backup.stdout + restore.stdout + drill.stdout).contains(Self.password))
    }

    /// A tool that fails, hangs or writes garbage through docker is a failed backup naming the cause; the
    /// earlier good backup stays.
    @Test(arguments: [("fail", "mongodump"), ("hang", "did not finish"), ("garbage", "archive")])
    func failuresThroughDocker(mode: String, expected: String) throws {
        let s = try Setup()
        defer { s.cleanup() }
        let policy = ["--policy", s.dir + "/policy.yml"]
        #expect(try runCLI(["backup"] + policy, environment: s.env).status == 0)
        var env = s.env
        env["STANDIN_MODE"] = mode
        if mode == "hang" {
            // Only the hang waits for the timeout: the other modes keep 20 s, so a loaded machine's slow start
            // is not taken for a hang.
            let text = try String(contentsOfFile: s.dir + "/policy.yml", encoding: .utf8).replacingOccurrences(of: "timeout: 20s", with: "timeout: 2s")
            try text.write(toFile: s.dir + "/policy.yml", atomically: true, encoding: .utf8)
        }
        let r = try runCLI(["backup", "--json"] + policy, environment: env)
        #expect(r.status == 1 || r.status == 4, "\(mode): \(r.status) \(r.stderr)")
        let detail = ((try? object(r.stdout)["artifacts"] as? [[String: Any]])??.first?["detail"] as? String) ?? ""
        #expect(detail.contains(expected), "\(mode): \(detail)")
        let good = try array(try runCLI(["list", "--json"] + policy, environment: s.env).stdout).filter { $0["status"] as? String == "ok" }
        #expect(good.count == 1)
    }
}
