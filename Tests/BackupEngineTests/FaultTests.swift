import BackupCatalog
import BackupCore
import BackupEngine
import Foundation
import Logging
import RedisBackup
import TestSupport
import Testing

/// The fault campaign's findings, each reproduced: a SIGKILL at every unlink of a rotation, a pin given while
/// a rotation holds the lock, pins across a catalog rebuild, a clock set back, a truncated catalog, a file name
/// that is a path, durations and nesting that trapped or crashed.
@Suite(.serialized, .blockingThreads) struct FaultTests {
    /// Four backups kept by `keep_last: 10`, then a rotation to `keep_last: 1` killed at its n-th unlink.
    static func killedRotation(at n: Int) throws -> (dir: TemporaryDirectory, policy: String, server: RedisTestServer) {
        let server = try RedisTestServer()
        let c = try server.connect()
        for i in 0..<50 { _ = try c.command(["SET", "k\(i)", "v"]) }
        c.close()
        let dir = TemporaryDirectory()
        let keepMany = writeRedisPolicy(in: dir, url: server.url, extra: "retention: { keep_last: 10, daily: 0 }", name: "many.yml")
        for _ in 0..<4 { #expect(try runCLI(["backup", "--policy", keepMany]).status == 0) }
        let keepOne = writeRedisPolicy(in: dir, url: server.url, extra: "retention: { keep_last: 1, daily: 0 }", name: "one.yml")
        let r = try runProcess("/usr/bin/strace", ["-f", "-qq", "-o", "/dev/null", "-e", "trace=unlink,unlinkat",
                                                   "-e", "inject=unlink,unlinkat:signal=KILL:when=\(n)", try kaleemBinary(),
                                                   "rotate", "--policy", keepOne], environment: cliEnvironment())
        _ = r
        return (dir, keepOne, server)
    }

    /// Every artifact `list` shows as good has its file and manifest on disk.
    static func everyListedBackupHasItsFiles(_ dir: TemporaryDirectory, _ policy: String) throws -> [String] {
        let list = try runCLI(["list", "--json", "--policy", policy])
        #expect(list.status == 0, "\(list.stderr)")
        var missing: [String] = []
        for a in try array(list.stdout) where a["status"] as? String == "ok" {
            let path = dir.file("repo/" + (a["path"] as? String ?? ""))
            if access(path, F_OK) != 0 { missing.append(a["id"] as? String ?? "?") }
        }
        return missing
    }

    @Test(arguments: 1...8)
    func rotationKilledAtAnyUnlinkLeavesNoGoodRowWithoutItsFile(n: Int) throws {
        let (dir, policy, server) = try Self.killedRotation(at: n)
        #expect(try Self.everyListedBackupHasItsFiles(dir, policy).isEmpty, "kill at unlink \(n)")
        // The source goes down: the next command (a failing backup) still finishes the interrupted removal.
        server.server.stop()
        let failing = try runCLI(["backup", "--policy", policy])
        #expect(failing.status == 1)
        #expect(try Self.everyListedBackupHasItsFiles(dir, policy).isEmpty)
        let good = try array(try runCLI(["list", "--json", "--policy", policy]).stdout).filter { $0["status"] as? String == "ok" }
        #expect(good.count >= 1, "the newest good backup is never lost")
        // Nothing of a removed backup is left on disk: only the kept ones' files.
        let files = filesUnder(dir.file("repo/redis")).filter { $0.hasSuffix(".rdb.gz") }
        #expect(files.count == good.count, "\(files) vs \(good.map { $0["id"] ?? "" })")
    }

    /// `pin` while a rotation (or a backup) holds the repository lock: refused with exit 11, never "pinned"
    /// and then deleted.
    @Test func pinWhileTheLockIsHeldIsRefused() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        let backup = try runCLI(["backup", "--json", "--policy", policy])
        let id = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        let fd = open(dir.file("repo/.lock"), O_RDWR)
        #expect(fd >= 0)
        #expect(flock(fd, LOCK_EX) == 0)
        let pin = try runCLI(["pin", id, "--reason", "keep", "--policy", policy])
        #expect(pin.status == 11, "\(pin.stderr)")
        flock(fd, LOCK_UN)
        close(fd)
        #expect(try runCLI(["pin", id, "--reason", "keep", "--policy", policy]).status == 0)
    }

    /// A pin reaches the manifest: a rebuilt catalog keeps it, and the next rotation keeps the backup.
    @Test func pinsSurviveACatalogRebuild() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url, extra: "retention: { keep_last: 1, daily: 0 }")
        let first = try runCLI(["backup", "--json", "--policy", policy])
        let id = try #require((try object(first.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        #expect(try runCLI(["pin", id, "--reason", "before the migration", "--policy", policy]).status == 0)
        try FileManager.default.removeItem(atPath: dir.file("repo/catalog.sqlite"))
        let rebuild = try runCLI(["catalog", "rebuild", "--policy", policy])
        #expect(rebuild.status == 0, "\(rebuild.stderr)")
        let shown = try object(try runCLI(["show", id, "--json", "--policy", policy]).stdout)
        #expect(shown["pinned"] as? Bool == true)
        #expect(shown["pin_reason"] as? String == "before the migration")
        #expect(try runCLI(["backup", "--policy", policy]).status == 0) // rotation with keep_last: 1
        #expect(try runCLI(["show", id, "--json", "--policy", policy]).stdout.contains("\"deleted_at\" : null"))
    }

    /// A clock set back ten days: the run's own new backup is older than the existing ones, and `keep_last: 1`
    /// would remove it. It is kept, and so is the older one (dated after the clock), and the plan says why.
    @Test func aClockSetBackNeverDeletesTheBackupJustTaken() async throws {
        // On the engine executor, as the CLI runs the engine (EngineExecutor.swift).
        try await EngineExecutor.run {
            let server = try RedisTestServer()
            let dir = TemporaryDirectory()
            let path = writeRedisPolicy(in: dir, url: server.url, extra: "retention: { keep_last: 1, daily: 0 }")
            let policy = try PolicyLoader.load(path: path, environment: [:])
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let clock = ManualClock(Timestamps.parseISO8601("2026-11-30T02:00:00Z")!)
            func engine() -> BackupEngine {
                BackupEngine(policy: policy, environment: EngineEnvironment(variables: [:], clock: { clock.now }, host: "test", logger: logger))
            }
            let first = try await engine().backup(tag: .nightly)
            clock.set(Timestamps.parseISO8601("2026-11-20T02:00:00Z")!)
            let second = try await engine().backup(tag: .nightly)
            let newID = second.artifacts[0].id
            #expect(second.artifacts[0].status == .ok)
            #expect(!second.rotations.flatMap(\.removed).contains(newID))
            let listed = try engine().list(source: nil, limit: nil).map(\.id)
            #expect(listed.contains(newID), "the backup this run took was removed by its own rotation")
            // The real backup, dated after the clock, is not removed either: the clock is what is wrong.
            #expect(listed.contains(first.artifacts[0].id), "a backup dated after the clock was removed")
            #expect(second.rotations.first?.plan.heldBack?.contains("set back") == true)
        }
    }

    /// Nine nightly backups, then one run with the clock 400 days ahead or 400 days back: rotation removes none
    /// of the nine, and says why. When the clock is right again, rotation resumes.
    @Test(arguments: [400.0, -400.0])
    func aWrongClockRemovesNoBackup(days: Double) async throws {
        try await EngineExecutor.run {
            let server = try RedisTestServer()
            let dir = TemporaryDirectory()
            let path = writeRedisPolicy(in: dir, url: server.url, extra: "retention: { keep_last: 3, daily: 7 }")
            let policy = try PolicyLoader.load(path: path, environment: [:])
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let start = Timestamps.parseISO8601("2026-11-20T02:00:00Z")!
            let clock = ManualClock(start)
            func engine() -> BackupEngine {
                BackupEngine(policy: policy, environment: EngineEnvironment(variables: [:], clock: { clock.now }, host: "test", logger: logger))
            }
            var nine: [String] = []
            for night in 0..<9 {
                clock.set(start.addingTimeInterval(Double(night) * 86_400))
                nine.append(try await engine().backup(tag: .nightly).artifacts[0].id)
            }
            let before = Set(try engine().list(source: nil, limit: nil).map(\.id))
            clock.set(start.addingTimeInterval(8 * 86_400 + days * 86_400 + 3600))
            let wrong = try await engine().backup(tag: .nightly)
            #expect(wrong.rotations.flatMap(\.removed).isEmpty, "\(wrong.rotations)")
            #expect(wrong.rotations.first?.plan.heldBack != nil)
            let after = Set(try engine().list(source: nil, limit: nil).map(\.id))
            #expect(before.isSubset(of: after), "a wrong clock removed \(before.subtracting(after))")
            // A clock that stays wrong, run after run: the real backups are still not removed (the backups after
            // the jump do not yet span max_gap_hours).
            if days > 0 {
                for night in 1...5 {
                    clock.set(start.addingTimeInterval(8 * 86_400 + days * 86_400 + 3600 + Double(night) * 86_400))
                    let again = try await engine().backup(tag: .nightly)
                    #expect(again.rotations.flatMap(\.removed).allSatisfy { !before.contains($0) }, "night \(night): \(again.rotations)")
                }
                #expect(before.isSubset(of: Set(try engine().list(source: nil, limit: nil).map(\.id))))
            }
        }
    }

    @Test func anEmptyCatalogFileIsAnErrorNotANewCatalog() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        #expect(truncate(dir.file("repo/catalog.sqlite"), 0) == 0)
        for args in [["list"], ["verify", "--all"], ["backup"]] {
            let r = try runCLI(args + ["--policy", policy])
            #expect(r.status == 2, "\(args): \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("catalog rebuild") && r.stderr.contains("catalog-copy"), "\(r.stderr)")
        }
    }

    @Test func aDbfilenameIsANameNotAPath() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        let target = TemporaryDirectory()
        let r = try runCLI(["restore", "redis", "--latest", "--to-dir", target.path + "/inside", "--dbfilename", "../escape.rdb", "--yes", "--policy", policy])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(access(target.path + "/escape.rdb", F_OK) != 0)
    }

    /// `timeout: 1e19` trapped at backup; `0.0000001` became "no timeout"; 10,000 nested `[` crashed Yams.
    @Test(arguments: ["timeout: 1e19", "timeout: 0.0000001", "timeout: 8d", "timeout: 0.5"])
    func durationsOutOfRangeAreRefused(setting: String) throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          redis: { kind: redis, url: "redis://127.0.0.1:1", \(setting) }
        """.utf8))
        let r = try runCLI(["policy", "check", "--policy", policy])
        #expect(r.status == 2, "\(setting): \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("sources.redis.timeout") && r.stderr.contains("out of range") || r.stderr.contains("expected a duration"), "\(r.stderr)")
    }

    @Test func deeplyNestedPolicyIsRefusedNotCrashed() throws {
        let dir = TemporaryDirectory()
        for (name, text) in [("flow.yml", "repository: { path: /r }\nsources: " + String(repeating: "[", count: 10_000)),
                             ("dashes.yml", "repository: { path: /r }\nsources:\n" + String(repeating: "- ", count: 10_000) + "x\n"),
                             // The campaign's bypasses: a quote inside a plain scalar, a # glued to one, complex keys.
                             ("quote.yml", "repository: { path: /r }\nsources: [don't, " + String(repeating: "[", count: 10_000)),
                             ("hash.yml", "repository: { path: /r }\nsources: [a#b, " + String(repeating: "[", count: 10_000)),
                             ("keys.yml", "repository: { path: /r }\nsources:\n" + String(repeating: "? ", count: 10_000) + "x\n")] {
            let policy = dir.file(name)
            FileManager.default.createFile(atPath: policy, contents: Data(text.utf8))
            let r = try runCLI(["policy", "check", "--policy", policy])
            #expect(r.status == 2, "\(name): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains("nested too deeply"), "\(r.stderr)")
        }
        let big = dir.file("big.yml")
        FileManager.default.createFile(atPath: big, contents: Data(("# " + String(repeating: "x", count: 2 << 20)).utf8))
        #expect(try runCLI(["policy", "check", "--policy", big]).status == 2)
    }
}

/// A disk that fills while the artifact is written or finished (tmpfs of sizes around the artifact's, in a
/// private mount namespace): the partial file is removed, the failure recorded (never a row left `running`),
/// the webhook tried, the metrics written; a second run fails early with a clear message.
@Suite(.serialized, .blockingThreads) struct DiskFullTests {
    @Test func aFullDiskIsRecordedAndReported() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        var rng = SystemRandomNumberGenerator()
        for i in 0..<48 {
            let value = String(decoding: (0..<65_536).map { _ in UInt8.random(in: 97...122, using: &rng) }, as: UTF8.self)
            _ = try c.command(["SET", "blob:\(i)", value])
        }
        c.close()
        let hook = try HTTPRecorder()
        let dir = TemporaryDirectory()
        let repo = dir.file("repo")
        let policy = writeRedisPolicy(in: dir, url: redis.url, repository: repo, extra: """
        notify: { webhook: "\(hook.url)/hook", on: [failure], attempts: 1 }
        metrics: { textfile: \(dir.file("metrics.prom")) }
        """)
        // The size of one artifact, measured on a real disk first.
        let probe = try runCLI(["backup", "--json", "--policy", writeRedisPolicy(in: dir, url: redis.url, repository: dir.file("probe"), name: "probe.yml")])
        let stored = try #require((try object(probe.stdout)["artifacts"] as? [[String: Any]])?.first?["bytes_stored"] as? Int)
        var failedRuns = 0
        for size in [stored / 1024 - 300, stored / 1024 - 40, stored / 1024 + 60, stored / 1024 + 200, stored / 1024 + 700] {
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            let out = dir.file("out-\(size)")
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let script = """
            mount -t tmpfs -o size=\(size)k kb-full "$1" || exit 90
            "$2" backup --json --policy "$3" > "$4/b1.json" 2> "$4/b1.err"; echo $? > "$4/b1.rc"
            "$2" backup --json --policy "$3" > "$4/b2.json" 2> "$4/b2.err"; echo $? > "$4/b2.rc"
            "$2" list --json --policy "$3" > "$4/list.json" 2> "$4/list.err"
            find "$1" -name '*.partial' > "$4/partials"
            """
            let r = try runProcess("/usr/bin/unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "kb",
                                                        repo, try kaleemBinary(), policy, out], environment: cliEnvironment())
            #expect(r.status == 0, "tmpfs of \(size) KiB: \(r.stderr)")
            func read(_ name: String) -> String { (try? String(contentsOfFile: out + "/" + name, encoding: .utf8)) ?? "" }
            let rc1 = Int(read("b1.rc").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            let rc2 = Int(read("b2.rc").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect([0, 1].contains(rc1) && [0, 1].contains(rc2), "tmpfs of \(size) KiB: exits \(rc1) \(rc2): \(read("b1.err")) \(read("b2.err"))")
            if rc1 == 1 {
                let detail = (try? object(read("b1.json")))?["artifacts"].flatMap { ($0 as? [[String: Any]])?.first?["detail"] as? String } ?? read("b1.err")
                #expect(detail.contains("No space left") || detail.contains("not enough free space") || detail.contains("disk"), "\(size) KiB: \(detail)")
                failedRuns += 1
            }
            if rc1 == 0 {
                // The second backup does not fit: it says so before filling the disk.
                #expect(rc2 == 1, "\(size) KiB")
                let said = read("b2.json") + read("b2.err")
                #expect(said.contains("not enough free space") || said.contains("No space left") || said.contains("disk is full"), "\(size) KiB: \(said)")
            }
            if rc2 == 1 { failedRuns += 1 }
            #expect(read("partials").isEmpty, "tmpfs of \(size) KiB: partial files left: \(read("partials"))")
            let rows = (try? array(read("list.json"))) ?? []
            #expect(!rows.contains { $0["status"] as? String == "running" }, "tmpfs of \(size) KiB: a row left running: \(read("list.json")) \(read("list.err"))")
        }
        #expect(failedRuns > 0)
        // Every failed run was reported to the webhook, and the metrics file was written.
        let events = hook.requests.compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }.filter { $0["status"] as? String == "failed" }
        #expect(events.count == failedRuns, "\(events.count) failure events for \(failedRuns) failed runs")
        #expect(FileManager.default.fileExists(atPath: dir.file("metrics.prom")))
    }
}

/// A first catalog that cannot be written (the disk is full) leaves no empty file behind: once space is freed,
/// the next command works instead of refusing a "truncated" catalog.
@Suite(.serialized, .blockingThreads) struct FirstCatalogOnAFullDiskTests {
    @Test func aFailedFirstCatalogLeavesNoEmptyFile() throws {
        let dir = TemporaryDirectory()
        let repo = dir.file("repo")
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", repository: repo)
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let script = """
        mount -t tmpfs -o size=64k kb-full "$1" || exit 90
        dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null
        "$2" list --json --policy "$3" > /dev/null 2> "$4/first.err"; echo $? > "$4/first.rc"
        ls -la "$1" > "$4/after-first"
        rm -f "$1/filler"
        mount -o remount,size=4m "$1"
        "$2" list --json --policy "$3" > "$4/second.json" 2> "$4/second.err"; echo $? > "$4/second.rc"
        """
        let r = try runProcess("/usr/bin/unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "kb",
                                                    repo, try kaleemBinary(), policy, out], environment: cliEnvironment())
        #expect(r.status == 0, "\(r.stderr)")
        func read(_ name: String) -> String { (try? String(contentsOfFile: out + "/" + name, encoding: .utf8)) ?? "" }
        #expect(read("first.rc").trimmingCharacters(in: .whitespacesAndNewlines) != "0", "\(read("first.err"))")
        #expect(!read("after-first").contains("catalog.sqlite"), "\(read("after-first"))")
        #expect(read("second.rc").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(read("second.err"))")
    }
}

/// A Redis that sends one byte every half second never trips the idle `timeout`; the source's `deadline`
/// stops it (every kind gets one; default 6 h).
@Suite(.blockingThreads) struct DeadlineTests {
    @Test func aTricklingServerIsStoppedByTheDeadline() throws {
        let port = try FreePort.pick()
        let server = try startStandInServer("redis_trickle.py", port: port)
        defer { server.signal(SIGKILL); _ = server.wait() }
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          redis: { kind: redis, url: "redis://127.0.0.1:\(port)", timeout: 5s, deadline: 2s }
        """.utf8))
        let t0 = Date()
        let r = try runCLI(["backup", "--json", "--policy", policy])
        let took = Date().timeIntervalSince(t0)
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("did not finish within its deadline of 2 s"), "\(r.stdout)")
        #expect(took < 20, "took \(took) s")
        #expect(filesUnder(dir.file("repo")).allSatisfy { !$0.hasSuffix(".partial") })
    }

    @Test func theDeadlineIsValidated() throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          redis: { kind: redis, url: "redis://127.0.0.1:1", deadline: 30d }
        """.utf8))
        let r = try runCLI(["policy", "check", "--policy", policy])
        #expect(r.status == 2 && r.stderr.contains("sources.redis.deadline"), "\(r.stderr)")
    }
}

/// A corrupt manifest (what `catalog rebuild` reads) fails `verify`, and a rebuild that has to skip it says so
/// with a non-zero exit instead of silently orphaning the backup.
@Suite(.blockingThreads) struct ManifestTests {
    /// The manifest carries the run as it was (what `catalog rebuild` restores), not one rebuilt from the artifact.
    @Test func theManifestCarriesTheRealRun() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        let backup = try object(try runCLI(["backup", "--json", "--policy", policy]).stdout)
        let run = try #require(backup["run"] as? [String: Any])
        let a = try #require((backup["artifacts"] as? [[String: Any]])?.first)
        let manifestPath = dir.file("repo/" + (try #require(a["path"] as? String)).replacingOccurrences(of: ".rdb.gz", with: ".manifest.json"))
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath))) as? [String: Any])
        let recorded = try #require(manifest["run"] as? [String: Any])
        #expect(recorded["id"] as? String == run["id"] as? String)
        #expect(recorded["started_at"] as? String == run["started_at"] as? String)
        #expect(recorded["host"] as? String == run["host"] as? String)
    }

    @Test func aCorruptManifestFailsVerifyAndRebuild() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        let backup = try runCLI(["backup", "--json", "--policy", policy])
        let a = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let id = try #require(a["id"] as? String)
        let manifest = dir.file("repo/" + (try #require(a["path"] as? String)).replacingOccurrences(of: ".rdb.gz", with: ".manifest.json"))
        #expect(FileManager.default.fileExists(atPath: manifest))
        #expect(try runCLI(["verify", "--all", "--policy", policy]).status == 0)
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: manifest))
        let verify = try runCLI(["verify", "--all", "--json", "--policy", policy])
        #expect(verify.status == 4, "\(verify.stdout)")
        #expect(verify.stdout.contains("manifest cannot be read"), "\(verify.stdout)")
        // The catalog copy holds the backup: the rebuild loses nothing and says which manifest is unreadable.
        let covered = try runCLI(["catalog", "rebuild", "--policy", policy])
        #expect(covered.status == 0, "\(covered.stdout) \(covered.stderr)")
        #expect(covered.stdout.contains("unreadable manifest") && covered.stdout.contains(id), "\(covered.stdout)")
        #expect(try array(try runCLI(["list", "--json", "--policy", policy]).stdout).map { $0["id"] as? String } == [id])
        // Without the copy, the backup would be orphaned: exit 4.
        try FileManager.default.removeItem(atPath: dir.file("repo/catalog-copy"))
        let rebuild = try runCLI(["catalog", "rebuild", "--policy", policy])
        #expect(rebuild.status == 4, "\(rebuild.stdout) \(rebuild.stderr)")
        #expect(rebuild.stdout.contains("skipped") && rebuild.stderr.contains("could not be read"), "\(rebuild.stdout) \(rebuild.stderr)")
    }

    /// A lost catalog rebuilt from the catalog copy keeps verify and drill history; what only the manifests
    /// know (a backup taken after the copy was made) is added; a damaged copy is refused and said so.
    @Test func aRebuildPrefersTheCatalogCopy() throws {
        let server = try RedisTestServer()
        let c = try server.connect()
        _ = try c.command(["SET", "k", "v"])
        c.close()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url, extra: "retention: { keep_last: 10 }")
        func cli(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
        func backup() throws -> String {
            try #require((try object(try cli(["backup", "--json"]).stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        }
        let a = try backup()
        #expect(try cli(["verify", a]).status == 0)
        #expect(try cli(["drill", "--backup", a]).status == 0)
        let b = try backup() // the copy made after this run holds a's verify and drill
        let copy = dir.file("repo/catalog-copy/catalog.sqlite")
        let saved = try Data(contentsOf: URL(fileURLWithPath: copy))
        let c3 = try backup()
        try saved.write(to: URL(fileURLWithPath: copy)) // the copy predates c3
        try FileManager.default.removeItem(atPath: dir.file("repo/catalog.sqlite"))

        let rebuilt = try cli(["catalog", "rebuild", "--json"])
        #expect(rebuilt.status == 0, "\(rebuilt.stdout) \(rebuilt.stderr)")
        let r = try object(rebuilt.stdout)
        #expect((r["from_copy"] as? String)?.hasSuffix("catalog-copy/catalog.sqlite") == true, "\(r)")
        #expect(r["added_from_manifests"] as? Int == 1)
        #expect(r["artifacts"] as? Int == 3)
        let shown = try object(try cli(["show", a, "--json"]).stdout)
        #expect((shown["last_verify"] as? [String: Any])?["ok"] as? Bool == true, "\(shown)")
        #expect((shown["last_drill"] as? [String: Any])?["result"] as? String == "passed", "\(shown)")
        #expect(Set(try array(try cli(["list", "--json"]).stdout).compactMap { $0["id"] as? String }) == [a, b, c3])

        // A damaged copy: refused (named), the catalog rebuilt from the manifests alone.
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: copy))
        let fresh = try cli(["catalog", "rebuild", "--json"])
        #expect(fresh.status == 0, "\(fresh.stdout) \(fresh.stderr)")
        let f = try object(fresh.stdout)
        #expect(f["from_copy"] == nil)
        #expect((f["copy_rejected"] as? [String])?.first?.contains("catalog-copy/catalog.sqlite") == true, "\(f)")
        #expect(f["added_from_manifests"] as? Int == 3)
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == Data(repeating: 0x41, count: 8192)) // left as it was
    }
}

/// What a killed run left in the temp directory (a decompressed backup, an old connection-string file) is
/// removed by the next command; a live process's directory is not.
@Suite(.blockingThreads) struct StaleTemporaryTests {
    @Test func staleDirectoriesOfDeadRunsAreRemoved() throws {
        let tmp = TemporaryDirectory()
        let dead = tmp.file("kaleem-drill-999999-AbCdEf")
        let legacy = tmp.file("kaleem-mongo-Xy12Zq")
        let alive = tmp.file("kaleem-restore-\(getpid())-QwErTy")
        // A refresh killed midway (#38, the attack): another host's catalog copy and backup.
        let fromHost = tmp.file("kaleem-from-host-999999-Zz09aB")
        for d in [dead, legacy, alive, fromHost] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        FileManager.default.createFile(atPath: legacy + "/config.yml", contents: Data("uri: secret".utf8))
        FileManager.default.createFile(atPath: dead + "/dump.rdb", contents: Data("REDIS".utf8))
        #expect(kill(999_999, 0) != 0)
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1")
        let r = try runCLI(["list", "--policy", policy], environment: ["TMPDIR": tmp.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(!FileManager.default.fileExists(atPath: legacy))
        #expect(!FileManager.default.fileExists(atPath: fromHost))
        #expect(FileManager.default.fileExists(atPath: alive))
    }
}

/// The campaign's message findings.
@Suite(.blockingThreads) struct MessageTests {
    @Test func anUnquotedVariableInAFlowMappingSaysToQuoteIt() throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        FileManager.default.createFile(atPath: policy, contents: Data("repository: { path: /tmp/x }\nsources:\n  redis: { kind: redis, url: ${REDIS_URL} }\n".utf8))
        let r = try runCLI(["policy", "check", "--policy", policy], environment: ["REDIS_URL": "redis://h"])
        #expect(r.status == 2 && r.stderr.contains("must be quoted"), "\(r.stderr)")
    }

    @Test func aHugeIdIsNoId() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1")
        let r = try runCLI(["show", String(repeating: "2", count: 100_000), "--policy", policy])
        #expect(r.status == 2, "\(r.stderr.prefix(300))")
        #expect(r.stderr.contains("no artifact with id") && !r.stderr.contains("too complex") && r.stderr.count < 1000)
    }

    @Test(arguments: ["inf", "nan", "-5", "1e12"])
    func postDeployDurationIsValidated(value: String) throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1")
        let r = try runCLI(["hook", "post-deploy", "--release", "r1", "--outcome", "success", "--duration", value, "--policy", policy])
        #expect(r.status == 2, "\(value): \(r.stderr)")
    }

    /// The failure webhook carries bytes_stored, as the README lists.
    @Test func theFailureWebhookCarriesBytesStored() throws {
        let hook = try HTTPRecorder()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())", extra: "notify: { webhook: \"\(hook.url)/x\", attempts: 1 }")
        #expect(try runCLI(["backup", "--policy", policy]).status == 1)
        let event = try #require(hook.requests.first.flatMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] })
        #expect(event["bytes_stored"] as? Int == 0, "\(event)")
    }
}

/// A lost catalog is noticed (never silently replaced by an empty one), and a drill of a backup that is not
/// good is refused without being recorded (an operator's typo must not fire BackupDrillFailing).
@Suite(.blockingThreads) struct OperatorMistakeTests {
    @Test func aMissingCatalogBesideBackupsIsRefused() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        try FileManager.default.removeItem(atPath: dir.file("repo/catalog.sqlite"))
        for args in [["list"], ["status"], ["backup"], ["verify", "--all"]] {
            let r = try runCLI(args + ["--policy", policy])
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("is missing, and 1 backup(s) are in") && r.stderr.contains("catalog rebuild"), "\(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("repo/catalog.sqlite")))
        #expect(try runCLI(["catalog", "rebuild", "--policy", policy]).status == 0)
        #expect(try array(try runCLI(["list", "--json", "--policy", policy]).stdout).count == 1)
    }

    @Test func aDrillOfAFailedBackupIsRefusedAndNotRecorded() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())")
        let failed = try runCLI(["backup", "--json", "--policy", policy])
        let id = try #require((try object(failed.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        let drill = try runCLI(["drill", "--backup", id, "--policy", policy])
        #expect(drill.status == 2 && drill.stderr.contains("not a good backup"), "\(drill.stderr)")
        let catalog = try Catalog(path: dir.file("repo/catalog.sqlite"))
        #expect(try catalog.drills().isEmpty)
    }
}

/// A kaleem-backup killed mid-drill leaves no scratch redis-server running (it dies with its parent), and its
/// decompressed copy is removed by the next command.
@Suite(.blockingThreads) struct KilledDrillTests {
    @Test func aKilledDrillLeavesNoScratchServer() throws {
        let server = try RedisTestServer()
        // About a million keys through redis-cli --pipe: a drill that takes long enough to be caught midway.
        let fill = try runProcess("/bin/sh", ["-c", """
            python3 -c 'import sys
            w=sys.stdout.write
            for i in range(1000000): w("*3\\r\\n$3\\r\\nSET\\r\\n$%d\\r\\nkey:%d\\r\\n$16\\r\\nvalue-0123456789\\r\\n" % (len(str(i))+4, i))' | redis-cli -p "$0" --pipe
            """, String(server.port)])
        #expect(fill.status == 0, "\(fill.stderr)")
        let dir = TemporaryDirectory()
        let tmp = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        var env = cliEnvironment()
        env["TMPDIR"] = tmp.path
        let (drill, _) = try startProcess(try kaleemBinary(), ["drill", "--policy", policy], environment: env)
        let cli = drill.processIdentifier
        var scratch: Int32?
        let deadline = Date().addingTimeInterval(60)
        while scratch == nil && Date() < deadline && drill.isRunning {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { continue }
                let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
                let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                if fields.count > 2, Int32(fields[2]) == cli, cmdline.contains("redis-server") { scratch = pid }
            }
            usleep(5_000)
        }
        let found = try #require(scratch, "the drill's scratch redis-server was not seen")
        kill(cli, SIGKILL)
        drill.waitUntilExit()
        var gone = false
        let until = Date().addingTimeInterval(5)
        while Date() < until {
            let stat = (try? String(contentsOfFile: "/proc/\(found)/stat", encoding: .utf8)) ?? ""
            // Gone, or a zombie waiting for init to reap it: either way it runs no more.
            if stat.isEmpty || stat.split(separator: ")").last?.split(separator: " ").first == "Z" { gone = true; break }
            usleep(20_000)
        }
        #expect(gone, "the scratch redis-server \(found) outlived the killed kaleem-backup")
        // The next command removes the decompressed copy the killed drill left.
        #expect(try runCLI(["list", "--policy", policy], environment: ["TMPDIR": tmp.path]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.hasPrefix("kaleem-drill-") }.isEmpty)
    }
}

/// `min_rate`: a peer trickling a byte at a time is stopped after one window, long before any deadline; and a
/// deadline not written in the policy is fitted to the previous backup's duration.
@Suite(.blockingThreads) struct ProgressTimeoutTests {
    @Test func aTrickleIsStoppedByTheMinimumRate() throws {
        let port = try FreePort.pick()
        let server = try startStandInServer("redis_trickle.py", port: port)
        defer { server.signal(SIGKILL); _ = server.wait() }
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          redis: { kind: redis, url: "redis://127.0.0.1:\(port)", timeout: 5s, deadline: 1h, min_rate: 1KiB, min_rate_window: 5s }
        """.utf8))
        let t0 = Date()
        let r = try runCLI(["backup", "--json", "--policy", policy])
        let took = Date().timeIntervalSince(t0)
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("less than its min_rate of 1024 bytes/s"), "\(r.stdout)")
        #expect(took < 60, "took \(took) s")
        #expect(filesUnder(dir.file("repo")).allSatisfy { !$0.hasSuffix(".partial") })
    }

    @Test(arguments: [("min_rate: fast", "min_rate"), ("min_rate: -1", "min_rate"), ("min_rate: 2GiB", "min_rate"),
                      ("min_rate_window: 1s", "min_rate_window")])
    func theSettingsAreValidated(setting: String, key: String) throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          redis: { kind: redis, url: "redis://127.0.0.1:1", \(setting) }
        """.utf8))
        let r = try runCLI(["policy", "check", "--policy", policy])
        #expect(r.status == 2 && r.stderr.contains("sources.redis.\(key)"), "\(r.stderr)")
    }

    @Test func theDeadlineIsFittedToThePreviousBackup() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        let first = try object(try runCLI(["backup", "--json", "--policy", policy]).stdout)
        let second = try object(try runCLI(["backup", "--json", "--policy", policy]).stdout)
        func deadline(_ run: [String: Any]) -> Double? {
            ((run["artifacts"] as? [[String: Any]])?.first?["stats"] as? [String: Any])?["deadline_seconds"] as? Double
        }
        #expect(deadline(first) == Double(6 * 3600))  // nothing to fit to yet
        #expect(deadline(second) == Double(30 * 60))  // a fast first backup: the 30 min floor
        // Written in the policy, it is kept as written.
        let explicit = writeRedisPolicy(in: dir, url: redis.url, extra: "    deadline: 2h", name: "explicit.yml")
        #expect(deadline(try object(try runCLI(["backup", "--json", "--policy", explicit]).stdout)) == 7200)
    }
}
