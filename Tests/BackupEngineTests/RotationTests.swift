import ArtifactStore
import BackupCatalog
import BackupCore
import BackupEngine
import Foundation
import Logging
import RedisBackup
import TestSupport
import Testing

/// A clock the test moves by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date
    init(_ start: Date) { current = start }
    var now: Date { lock.withLock { current } }
    func set(_ date: Date) { lock.withLock { current = date } }
}

@Suite(.blockingThreads) struct RotationTests {
    func engine(_ policyPath: String, clock: ManualClock) throws -> BackupEngine {
        let policy = try PolicyLoader.load(path: policyPath, environment: [:])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return BackupEngine(policy: policy, environment: EngineEnvironment(variables: [:], clock: { clock.now }, host: "test", logger: logger))
    }

    /// Ten simulated nights of real backups with `daily: 7`: exactly the last seven stay, on disk and in the
    /// catalog; then a week of failures removes nothing good.
    @Test func tenNightsThenAWeekOfFailures() async throws {
        // On the engine executor, as the CLI runs the engine (EngineExecutor.swift).
        try await EngineExecutor.run {
            let redis = try RedisTestServer()
            let c = try redis.connect()
            try SampleData.fill(c, databases: [0], keysPerType: 2)
            c.close()
            let dir = TemporaryDirectory()
            let policyPath = writeRedisPolicy(in: dir, url: redis.url, extra: "retention: { daily: 7, keep_last: 3, timezone: Asia/Riyadh }")
            let first = Timestamps.parseISO8601("2026-11-01T23:30:00Z")! // 02:30 in Riyadh, Nov 2
            let clock = ManualClock(first)
            var ids: [String] = []
            for night in 0..<10 {
                clock.set(first.addingTimeInterval(Double(night) * 86400))
                let result = try await engine(policyPath, clock: clock).backup(tag: .nightly)
                #expect(result.run.status == .ok)
                ids.append(result.artifacts[0].id)
            }
            let repoFiles = { filesUnder(dir.file("repo")).filter { $0.hasSuffix(".rdb.gz") }.map { ($0 as NSString).lastPathComponent } }
            #expect(Set(repoFiles()) == Set(ids.suffix(7).map { $0 + ".rdb.gz" }))
            #expect(filesUnder(dir.file("repo")).filter { $0.hasSuffix(".manifest.json") }.count == 7)
            let catalog = try Catalog(path: dir.file("repo/catalog.sqlite"))
            #expect(Set(try catalog.artifacts().map(\.id)) == Set(ids.suffix(7)))
            let all = try catalog.artifacts(includeDeleted: true)
            #expect(all.count == 10)
            #expect(Set(all.filter { $0.deletedAt != nil }.map(\.id)) == Set(ids.prefix(3)))

            // The server goes away for a week: every night fails, nothing good is removed.
            redis.server.kill9()
            for night in 10..<17 {
                clock.set(first.addingTimeInterval(Double(night) * 86400))
                let result = try await engine(policyPath, clock: clock).backup(tag: .nightly)
                #expect(result.run.status == .failed)
                let plan = try await engine(policyPath, clock: clock).rotate(dryRun: true)
                #expect(plan[0].plan.heldBack != nil)
                _ = try await engine(policyPath, clock: clock).rotate(dryRun: false)
            }
            #expect(Set(repoFiles()) == Set(ids.suffix(7).map { $0 + ".rdb.gz" }))
            #expect(try catalog.artifacts(status: .ok).count == 7)
        }
    }

    @Test func rotateCommandPlansPinsAndRefusesAnEmptyPolicy() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "retention: { daily: 1, keep_last: 1 }")
        var ids: [String] = []
        for _ in 0..<3 {
            let r = try runCLI(["backup", "--policy", policy, "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            ids.append(try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String))
        }
        // The backups rotated as they went: only the newest of today stays.
        var list = try array(try runCLI(["list", "--policy", policy, "--json"]).stdout)
        #expect(list.map { $0["id"] as? String } == [ids[2]])

        // Pinned, it survives the next backups' rotation; planned far ahead, the pinned one and the newest stay.
        #expect(try runCLI(["pin", "--policy", policy, ids[2], "--reason", "before the migration"]).status == 0)
        _ = try runCLI(["backup", "--policy", policy])
        // backup --json carries the rotation it ran, in rotate --json's shape (one encoder for both).
        let rotated = try object(try runCLI(["backup", "--policy", policy, "--json"]).stdout)
        let rotation = try #require(rotated["rotation"] as? [String: Any])
        #expect(Set(rotation.keys) == ["dry_run", "errors", "held_back", "keep", "remove"])
        #expect(rotation["dry_run"] as? Bool == false)
        #expect((rotation["errors"] as? [Any])?.isEmpty == true)
        let removedNow = try #require(rotation["remove"] as? [[String: Any]])
        #expect(removedNow.count == 1 && removedNow.first?["removed"] as? Bool == true && removedNow.first?["source"] as? String == "redis")
        #expect((rotation["keep"] as? [[String: Any]])?.contains { $0["id"] as? String == ids[2] && ($0["reasons"] as? [String])?.first?.hasPrefix("pinned") == true } == true)
        list = try array(try runCLI(["list", "--policy", policy, "--json"]).stdout)
        #expect(list.count == 2)
        let newest = try #require(list.first?["id"] as? String)
        #expect(list.last?["id"] as? String == ids[2])
        #expect(list.last?["pinned"] as? Bool == true)
        let future = try runCLI(["rotate", "--policy", policy, "--dry-run", "--json", "--now", "2099-01-01T00:00:00Z"])
        #expect(future.status == 0, "\(future.stderr)")
        let plan = try object(future.stdout)
        let keep = try #require(plan["keep"] as? [[String: Any]])
        #expect(Set(keep.compactMap { $0["id"] as? String }) == [newest, ids[2]])
        #expect(keep.first { $0["id"] as? String == ids[2] }?["reasons"] as? [String] == ["pinned: before the migration"])
        #expect(keep.first { $0["id"] as? String == newest }?["reasons"] as? [String] == ["newest good", "last 1"])
        #expect(plan["held_back"] is NSNull)
        #expect(plan["dry_run"] as? Bool == true)
        // A dry run changed nothing.
        #expect(try array(try runCLI(["list", "--policy", policy, "--json"]).stdout).count == list.count)
        #expect(try object(try runCLI(["show", "--policy", policy, "--json", ids[2]]).stdout)["pin_reason"] as? String == "before the migration")
        #expect(try runCLI(["unpin", "--policy", policy, ids[2]]).status == 0)

        // A policy that keeps nothing by rule is refused unless asked for.
        let empty = writeRedisPolicy(in: dir, url: redis.url, extra: "retention: { daily: 0, keep_last: 0 }", name: "empty.yml")
        let refused = try runCLI(["rotate", "--policy", empty, "--json"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--allow-empty-policy"))
        let allowed = try runCLI(["rotate", "--policy", empty, "--json", "--allow-empty-policy"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(try array(try runCLI(["list", "--policy", policy, "--json"]).stdout).map { $0["id"] as? String } == [newest])
        // A backup under the empty policy succeeds and says why it did not rotate.
        let backup = try runCLI(["backup", "--policy", empty, "--json"])
        #expect(backup.status == 0)
        #expect((try object(backup.stdout)["rotation_skipped"] as? String)?.contains("keeps nothing") == true)
    }

    @Test func onlyGoodBackupsCanBePinned() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())")
        _ = try runCLI(["backup", "--policy", policy])
        let failed = try #require(try array(try runCLI(["list", "--policy", policy, "--json"]).stdout).first?["id"] as? String)
        let r = try runCLI(["pin", "--policy", policy, failed, "--reason", "x"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("only good backups can be pinned"))
    }
}
