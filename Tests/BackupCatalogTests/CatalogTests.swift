@testable import BackupCatalog
import GRDB
import BackupCore
import Foundation
import Testing

struct CatalogTests {
    let t0 = Date(timeIntervalSince1970: 1_764_383_400) // 2025-11-29T02:30:00Z

    func run(_ id: String, at date: Date, tag: RunTag = .nightly, release: String? = nil) -> RunInfo {
        RunInfo(id: id, tag: tag, release: release, startedAt: date, status: .running, host: "test")
    }

    func artifact(_ id: String, run: String, source: String = "redis", at date: Date, status: ArtifactStatus = .ok) -> ArtifactInfo {
        ArtifactInfo(id: id, runID: run, source: source, kind: SourceKind("redis"), path: "\(source)/d/\(id).rdb.gz", bytesRaw: 100,
                     bytesStored: 40, sha256: String(repeating: "a", count: 64), status: status, createdAt: date,
                     stats: ["keys": .int(5), "databases": .object(["0": .object(["keys": .int(5)])])], tag: .nightly)
    }

    @Test func roundTripsRunsAndArtifacts() throws {
        let c = try Catalog()
        try c.insertRun(run("r1", at: t0, tag: .preDeploy, release: "kaleem-api:1.4.2"))
        var a = artifact("a1", run: "r1", at: t0)
        try c.insertArtifact(a)
        a.status = .ok
        a.detail = nil
        try c.updateArtifact(a)
        try c.finishRun(id: "r1", status: .ok, at: t0.addingTimeInterval(5))
        let back = try #require(try c.artifact(matching: "a1"))
        #expect(back.stats == a.stats)
        #expect(back.tag == .preDeploy)
        #expect(back.release == "kaleem-api:1.4.2")
        #expect(back.createdAt.timeIntervalSince1970 == t0.timeIntervalSince1970)
        let r = try #require(try c.run(id: "r1"))
        #expect(r.status == .ok)
        #expect(r.finishedAt == t0.addingTimeInterval(5))
    }

    /// A removed backup keeps its counts but not its per-file list (which made the catalog grow by megabytes a
    /// night with a files source); a live one keeps everything.
    @Test func aRemovalDropsThePerFileList() throws {
        let c = try Catalog()
        try c.insertRun(run("r1", at: t0))
        let entries: JSONValue = .array((0..<3).map { .object(["path": .string("f\($0)"), "sha256": .string("x")]) })
        for id in ["old", "new"] {
            var a = artifact(id, run: "r1", at: t0)
            a.stats = ["files": .int(3), "entries": entries]
            try c.insertArtifact(a)
        }
        try c.beginRemoval(ids: ["old"], at: t0.addingTimeInterval(60))
        let old = try #require(try c.artifacts(includeDeleted: true).first { $0.id == "old" })
        #expect(old.deletedAt != nil)
        #expect(old.stats["entries"] == nil)
        #expect(old.stats["files"] == .int(3))
        let live = try #require(try c.artifact(matching: "new"))
        #expect(live.stats["entries"] == entries)
    }

    @Test func listsNewestFirstWithFilters() throws {
        let c = try Catalog()
        try c.insertRun(run("r1", at: t0))
        for i in 0..<5 {
            try c.insertArtifact(artifact("a\(i)", run: "r1", source: i % 2 == 0 ? "redis" : "mongo", at: t0.addingTimeInterval(Double(i) * 60),
                                          status: i == 4 ? .failed : .ok))
        }
        #expect(try c.artifacts().map(\.id) == ["a4", "a3", "a2", "a1", "a0"])
        #expect(try c.artifacts(limit: 2).map(\.id) == ["a4", "a3"])
        #expect(try c.artifacts(source: "redis").map(\.id) == ["a4", "a2", "a0"])
        #expect(try c.artifacts(source: "redis", status: .ok).map(\.id) == ["a2", "a0"])
        #expect(try c.artifacts(runID: "r1").count == 5)
    }

    @Test func findsByUniquePrefix() throws {
        let c = try Catalog()
        try c.insertRun(run("r1", at: t0))
        try c.insertArtifact(artifact("20261129T023000Z-aaaaaa", run: "r1", at: t0))
        try c.insertArtifact(artifact("20261129T023000Z-abbbbb", run: "r1", at: t0))
        try c.insertArtifact(artifact("20261130T023000Z-cccccc", run: "r1", at: t0))
        #expect(try c.artifact(matching: "20261130")?.id == "20261130T023000Z-cccccc")
        #expect(try c.artifact(matching: "20261129T023000Z-ab")?.id == "20261129T023000Z-abbbbb")
        #expect(try c.artifact(matching: "nope") == nil)
        #expect(try c.artifact(matching: "%") == nil) // LIKE wildcards are literal
        do {
            _ = try c.artifact(matching: "20261129")
            Issue.record("ambiguous prefix accepted")
        } catch let error as BackupFailure {
            #expect(error.exitStatus == .usage)
            #expect(error.message.contains("ambiguous"))
        }
    }

    @Test func interruptedRunsBecomeFailed() throws {
        let c = try Catalog()
        try c.insertRun(run("r1", at: t0))
        try c.insertArtifact(artifact("done", run: "r1", at: t0, status: .ok))
        try c.insertArtifact(artifact("midway", run: "r1", at: t0, status: .running))
        let stale = try c.markInterrupted(at: t0.addingTimeInterval(60))
        #expect(stale.map(\.id) == ["midway"])
        #expect(try c.artifact(matching: "midway")?.status == .failed)
        #expect(try c.artifact(matching: "midway")?.detail?.contains("interrupted") == true)
        #expect(try c.artifact(matching: "done")?.status == .ok)
        #expect(try c.run(id: "r1")?.status == .failed)
        #expect(try c.markInterrupted(at: t0).isEmpty)
    }

    @Test func schemaEnforcesIntegrity() throws {
        let c = try Catalog()
        // An artifact of a run that does not exist is refused (foreign key).
        #expect(throws: CatalogError.self) { try c.insertArtifact(artifact("orphan", run: "missing", at: t0)) }
    }

    @Test func persistsAcrossOpens() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kb-catalog-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let c = try Catalog(path: dir + "/catalog.sqlite")
            try c.insertRun(run("r1", at: t0))
            try c.insertArtifact(artifact("a1", run: "r1", at: t0))
        }
        let again = try Catalog(path: dir + "/catalog.sqlite")
        #expect(try again.artifacts().map(\.id) == ["a1"])
    }

    @Test func unopenableCatalogSaysWhere() {
        do {
            _ = try Catalog(path: "/proc/nonexistent-dir/catalog.sqlite")
            Issue.record("opened")
        } catch let error as CatalogError {
            #expect(error.description.contains("/proc/nonexistent-dir/catalog.sqlite"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    /// A catalog written before `corrupt` existed (migrations up to v4) is rebuilt in place by v5: every run,
    /// artifact, drill, restore, off-site state and pending removal survives with its links, and `corrupt` is
    /// then accepted.
    @Test func aV4CatalogUpgradesKeepingEveryRowAndLink() throws {
        let path = NSTemporaryDirectory() + "kb-v4-\(UUID().uuidString).sqlite"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var config = Configuration()
        config.foreignKeysEnabled = true
        let old = try DatabaseQueue(path: path, configuration: config)
        try Catalog.migrator.migrate(old, upTo: "v4-removals")
        try old.write { db in
            try db.execute(sql: "INSERT INTO runs (id, tag, release, started_at, finished_at, status, host) VALUES ('r1', 'pre-deploy', 'api:1', ?, ?, 'ok', 'h')", arguments: [t0, t0])
            for (id, status) in [("a1", "ok"), ("a2", "failed"), ("a3", "ok")] {
                try db.execute(sql: """
                    INSERT INTO artifacts (id, run_id, source, kind, path, bytes_raw, bytes_stored, sha256, compression, status, created_at, pinned, pin_reason, stats, detail)
                    VALUES (?, 'r1', 'redis', 'redis', ?, 100, 40, 'aa', 'gzip', ?, ?, ?, ?, '{"keys":5}', NULL)
                    """, arguments: [id, "redis/d/\(id).rdb.gz", status, t0, id == "a1", id == "a1" ? "release api:1" : nil])
            }
            try db.execute(sql: "INSERT INTO drills (id, artifact_id, source, started_at, duration_seconds, result, detail, host) VALUES ('d1', 'a1', 'redis', ?, 1.5, 'passed', 'ok', 'h')", arguments: [t0])
            try db.execute(sql: "INSERT INTO restores (id, artifact_id, source, started_at, duration_seconds, mode, target, outcome, user, host, detail) VALUES ('x1', 'a1', 'redis', ?, 2, 'online', 't', 'ok', 'u', 'h', '')", arguments: [t0])
            try db.execute(sql: "INSERT INTO offsite (artifact_id, status, detail, updated_at) VALUES ('a1', 'ok', NULL, ?)", arguments: [t0])
            try db.execute(sql: "UPDATE artifacts SET deleted_at = ? WHERE id = 'a3'", arguments: [t0])
            try db.execute(sql: "INSERT INTO removals (artifact_id, started_at) VALUES ('a3', ?)", arguments: [t0])
        }
        try old.close()

        let c = try Catalog(path: path)
        let a1 = try #require(try c.artifact(matching: "a1"))
        #expect(a1.status == .ok && a1.pinned && a1.pinReason == "release api:1" && a1.release == "api:1" && a1.stats["keys"] == .int(5))
        #expect(a1.offsite == .ok && a1.lastVerify == nil)
        #expect(try c.artifact(matching: "a2")?.status == .failed)
        #expect(try c.drills(artifactID: "a1").map(\.id) == ["d1"])
        #expect(try c.restores(source: "redis").map(\.id) == ["x1"])
        #expect(try c.pendingRemovals().map(\.id) == ["a3"])
        #expect(try c.artifacts(includeDeleted: true).count == 3)
        // The new state and the verify record.
        #expect(try c.recordVerification(id: "a1", ok: false, damaged: true, detail: "sha256 differs", at: t0) == .corrupt)
        #expect(try c.artifact(matching: "a1")?.lastVerify == VerifyRecord(at: t0, ok: false, detail: "sha256 differs"))
        #expect(try c.recordVerification(id: "a2", ok: false, damaged: true, detail: "x", at: t0) == .failed, "a failed backup stays failed")
        #expect(try c.recordVerification(id: "a1", ok: true, damaged: false, detail: "ok", at: t0) == .ok)
        // Foreign keys still hold after the table was rebuilt.
        let check = try DatabaseQueue(path: path)
        let broken = try check.read { db in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") }
        #expect(broken.isEmpty)
    }
    /// v8 rebuilds `restores` so that `unverified` (a MongoDB restore with w=0) is accepted; the rows stay.
    @Test func aV7CatalogAcceptsUnverifiedRestoresKeepingItsRows() throws {
        let path = NSTemporaryDirectory() + "kb-v7-\(UUID().uuidString).sqlite"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var config = Configuration()
        config.foreignKeysEnabled = true
        let old = try DatabaseQueue(path: path, configuration: config)
        try Catalog.migrator.migrate(old, upTo: "v7-prune-removed-entries")
        try old.write { db in
            try db.execute(sql: "INSERT INTO runs (id, tag, release, started_at, finished_at, status, host) VALUES ('r1', 'nightly', NULL, ?, ?, 'ok', 'h')", arguments: [t0, t0])
            try db.execute(sql: """
                INSERT INTO artifacts (id, run_id, source, kind, path, bytes_raw, bytes_stored, sha256, compression, status, created_at, pinned, pin_reason, stats, detail)
                VALUES ('a1', 'r1', 'mongo', 'mongodb', 'mongo/d/a1.archive.gz', 100, 40, 'aa', 'gzip', 'ok', ?, 0, NULL, '{}', NULL)
                """, arguments: [t0])
            try db.execute(sql: "INSERT INTO restores (id, artifact_id, source, started_at, duration_seconds, mode, target, outcome, user, host, detail) VALUES ('x1', 'a1', 'mongo', ?, 2, 'mongorestore', 't', 'ok', 'u', 'h', '26 documents restored')", arguments: [t0])
            #expect(throws: (any Error).self) {
                try db.execute(sql: "INSERT INTO restores (id, artifact_id, source, started_at, duration_seconds, mode, target, outcome, user, host, detail) VALUES ('x2', 'a1', 'mongo', ?, 2, 'mongorestore', 't', 'unverified', 'u', 'h', '')", arguments: [t0])
            }
        }
        try old.close()
        let c = try Catalog(path: path)
        try c.insertRestore(id: "x2", artifactID: "a1", source: "mongo", startedAt: t0.addingTimeInterval(1), durationSeconds: 1, mode: "mongorestore",
                            target: "t", outcome: "unverified", user: "u", host: "h", detail: "w=0")
        #expect(try c.restores(source: "mongo").map(\.outcome) == ["unverified", "ok"])
        #expect(throws: (any Error).self) {
            try c.insertRestore(id: "x3", artifactID: "a1", source: "mongo", startedAt: t0, durationSeconds: 1, mode: "m", target: "t", outcome: "maybe", user: "u", host: "h", detail: "")
        }
        let broken = try DatabaseQueue(path: path).read { db in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") }
        #expect(broken.isEmpty)
    }
}
