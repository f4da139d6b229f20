import BackupCatalog
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
}
