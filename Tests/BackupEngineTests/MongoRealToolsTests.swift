import BackupCatalog
import BackupCore
import Foundation
import TestSupport
import Testing

/// The MongoDB paths against stand-ins that fail the way the real tools fail (Tests/StandIns/README.md): the
/// `--config` read with yaml.v2's rules, mongorestore's current count lines with progress lines between them, an
/// unacknowledged write concern, and mongosh's REPL, which exits 0 after a failing statement.
@Suite(.blockingThreads) struct MongoRealToolsTests {
    typealias Setup = MongoEndToEndTests.Setup

    /// A URI full of `/` (every URI has them): yaml.v2 refuses JSON's `\/`, so this failed on the real tools.
    @Test func theConfigIsReadByAStrictYAMLReader() throws {
        let s = Setup(extra: "    oplog: true")
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let dump = try #require(try s.logEntries().first)
        #expect(dump["config_uri"] as? Bool == true)
        let restore = try s.run(["restore", "mongo", "--latest", "--yes", "--json"])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
    }

    /// Database Tools 100.16+ backquote the namespace; progress lines push the early count lines out of any tail.
    @Test(arguments: ["100.16.0", "100.9.0"])
    func drillCountsSurviveLongOutput(version: String) throws {
        let s = Setup(extra: """
            oplog: true
        drill: { mongo_uri: "mongodb://drill:scratch-pw@scratch:27017/" }
        """)
        #expect(try s.run(["backup"]).status == 0)
        let drill = try s.run(["drill", "--json"], ["STANDIN_TOOLS_VERSION": version, "STANDIN_PROGRESS_LINES": "400"])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "passed", "\(result)")
        #expect((result["detail"] as? String)?.contains("every document count matches") == true)
    }

    /// mongorestore dials the server before it reads its archive: a refused connection exits with the archive's
    /// feed still writing, which gets EPIPE. Before SIGPIPE was ignored (BrokenPipe) the whole process died of
    /// signal 13: no error, no catalog row (and in CI the test runner itself died, 300 tests in flight).
    @Test func aToolThatStopsReadingFailsTheRestoreWithItsOwnError() throws {
        let s = Setup(extra: "    oplog: true")
        let big = s.dir.file("big.archive")
        let made = try runProcess("python3", [packageRoot + "/scripts/gen-mongo-archive.py", String(8 << 20), big])
        #expect(made.status == 0, "\(made.stderr)")
        let backup = try s.run(["backup", "--json"], ["STANDIN_ARCHIVE": big])
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        let restore = try s.run(["restore", "mongo", "--latest", "--yes"], ["STANDIN_MODE": "fail"])
        #expect(restore.status == 1, "\(restore.status) \(restore.stdout) \(restore.stderr)")
        #expect(restore.stderr.contains("connection refused"), "\(restore.stderr)")
        let restores = try Catalog(path: s.dir.file("repo/catalog.sqlite")).restores(source: "mongo")
        #expect(restores.map(\.outcome) == ["failed"])
    }

    /// w=0 in the target: mongorestore prints `done` and no counts. A restore says it is not verified (and does
    /// not call a restore that ran a failure); a drill refuses up front, since it could check nothing.
    @Test func unacknowledgedWriteConcern() throws {
        let s = Setup(extra: """
            oplog: true
        drill: { mongo_uri: "mongodb://drill:scratch-pw@scratch:27017/?w=0" }
        """)
        #expect(try s.run(["backup"]).status == 0)
        let restore = try s.run(["restore", "mongo", "--latest", "--yes", "--json", "--to-uri", "mongodb://u:p@other:27017/?w=0"])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        let json = try object(restore.stdout)
        #expect(json["verified"] as? Bool == false)
        let human = try s.run(["restore", "mongo", "--latest", "--yes", "--to-uri", "mongodb://u:p@other:27017/?w=0"])
        #expect(human.stdout.contains("NOT verified"), "\(human.stdout)")
        let restores = try Catalog(path: s.dir.file("repo/catalog.sqlite")).restores(source: "mongo")
        #expect(restores.map(\.outcome) == ["unverified", "unverified"])

        let before = try s.logEntries().count
        let drill = try s.run(["drill", "--json"])
        #expect(drill.status != 0)
        let result = try #require(try array(drill.stdout).first)
        #expect(result["result"] as? String == "error")
        #expect((result["detail"] as? String)?.contains("w=0") == true)
        #expect(try s.logEntries().count == before, "nothing was restored")
    }

    /// mongosh exits 0 after a failing statement: a refused drop must still read as "NOT dropped".
    @Test func aFailingMongoshIsNotTakenForSuccess() throws {
        let s = Setup(extra: """
            oplog: true
        drill: { mongo_uri: "mongodb://drill:scratch-pw@scratch:27017/" }
        """)
        #expect(try s.run(["backup"]).status == 0)
        let drill = try s.run(["drill", "--json"], ["STANDIN_MONGOSH_MODE": "fail"])
        let result = try #require(try array(drill.stdout).first)
        let detail = try #require(result["detail"] as? String)
        #expect(detail.contains("NOT dropped") && detail.contains("not authorized"), "\(detail)")
        #expect(!detail.contains("scratch-pw"))
    }
}

/// A database name recorded in the catalog (a rebuild may take it from a manifest) never reaches mongosh as
/// script text, and verify refuses namespaces that are not the archive's.
@Suite(.blockingThreads) struct MongoNamespaceTrustTests {
    @Test func aForgedNamespaceIsRefusedAndNeverScripted() throws {
        let s = MongoEndToEndTests.Setup(extra: """
            oplog: true
        drill: { mongo_uri: "mongodb://drill:scratch-pw@scratch:27017/" }
        """)
        #expect(try s.run(["backup"]).status == 0)
        let catalog = try Catalog(path: s.dir.file("repo/catalog.sqlite"))
        var a = try #require(try catalog.artifacts(status: .ok).first)
        guard case .object(var per)? = a.stats["per_namespace"] else { Issue.record("no per_namespace"); return }
        per["x\")+kb.getSiblingDB(\"prod\").dropDatabase()+(\"x.c"] = .int(1)
        a.stats["per_namespace"] = .object(per)
        try catalog.updateArtifact(a)
        let verify = try s.run(["verify", a.id])
        #expect(verify.status == 4, "\(verify.stdout) \(verify.stderr)")
        #expect(verify.stdout.contains("namespaces differ"), "\(verify.stdout)")
        let drill = try s.run(["drill", "--json", "--backup", a.id])
        #expect(drill.status != 0)
        #expect(!(try s.logEntries()).contains { ($0["drops"] as? [String])?.contains("prod") == true })
    }
}

/// An archive taken with `oplog: true` is restored to one instant: mongorestore replays its oplog after the
/// documents (`--oplogReplay`) unless a filter or a rename makes that impossible (the tool refuses them together).
@Suite(.blockingThreads) struct MongoOplogReplayTests {
    typealias Setup = MongoEndToEndTests.Setup

    @Test func aWholeRestoreReplaysTheOplogAndSaysSo() throws {
        let s = Setup(extra: "    oplog: true")
        #expect(try s.run(["backup"]).status == 0)
        let plan = try s.run(["restore", "mongo", "--latest", "--dry-run"])
        #expect(plan.stdout.contains("then 18 oplog entries replayed (--oplogReplay"), "\(plan.stdout)")
        let restore = try s.run(["restore", "mongo", "--latest", "--drop", "--yes", "--json"])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        let json = try object(restore.stdout)
        #expect(json["oplog_replayed"] as? Bool == true)
        #expect(json["oplog_applied"] as? Int == 18)
        #expect(json["restored"] as? Int == 26)
        let run = try #require(try s.logEntries().last { $0["tool"] as? String == "mongorestore" })
        #expect((run["argv"] as? [String])?.contains("--oplogReplay") == true)

        // Asked not to: the documents only, and the plan says the oplog is left.
        let plain = try s.run(["restore", "mongo", "--latest", "--no-oplog-replay", "--yes", "--json"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(try object(plain.stdout)["oplog_replayed"] as? Bool == false)
        let last = try #require(try s.logEntries().last { $0["tool"] as? String == "mongorestore" })
        #expect((last["argv"] as? [String])?.contains("--oplogReplay") == false)
    }

    /// mongorestore refuses --oplogReplay beside --nsInclude/--nsExclude/--nsFrom: by default the replay is left out
    /// and the plan says why; asked for explicitly, it is refused before anything runs.
    @Test func aFilteredRestoreCannotReplay() throws {
        let s = Setup(extra: "    oplog: true")
        #expect(try s.run(["backup"]).status == 0)
        let renamed = try s.run(["restore", "mongo", "--latest", "--ns-from", "test.*", "--ns-to", "copy_test.*", "--yes", "--json"])
        #expect(renamed.status == 0, "\(renamed.stdout) \(renamed.stderr)")
        #expect(try object(renamed.stdout)["oplog_replayed"] as? Bool == false)
        let human = try s.run(["restore", "mongo", "--latest", "--ns-include", "test.*", "--dry-run"])
        #expect(human.stdout.contains("18 oplog entries that are not replayed (mongorestore replays an oplog only into a whole"), "\(human.stdout)")
        let before = try s.logEntries().count
        let refused = try s.run(["restore", "mongo", "--latest", "--ns-include", "test.*", "--oplog-replay", "--yes"])
        #expect(refused.status == 2 && refused.stderr.contains("cannot replay an oplog into a filtered"), "\(refused.stderr)")
        #expect(try s.logEntries().count == before)
    }

    @Test func noOplogToReplayIsAUsageError() throws {
        let s = Setup()
        #expect(try s.run(["backup"], ["STANDIN_ARCHIVE": fixturesDirectory + "/mongo/test.bar.archive"]).status == 0)
        let r = try s.run(["restore", "mongo", "--latest", "--oplog-replay", "--yes"])
        #expect(r.status == 2 && r.stderr.contains("holds no oplog to replay"), "\(r.stderr)")
        // Without the flag, an archive with no oplog restores as before, with no --oplogReplay.
        let plain = try s.run(["restore", "mongo", "--latest", "--yes", "--json"])
        #expect(plain.status == 0, "\(plain.stderr)")
        let run = try #require(try s.logEntries().last { $0["tool"] as? String == "mongorestore" })
        #expect((run["argv"] as? [String])?.contains("--oplogReplay") == false)
    }

    /// A tool that was asked to replay and never said it applied anything: the restore is not taken as done.
    @Test func aReplayThatIsNeverReportedFails() throws {
        let s = Setup(extra: "    oplog: true")
        #expect(try s.run(["backup"]).status == 0)
        let r = try s.run(["restore", "mongo", "--latest", "--yes"], ["STANDIN_OPLOG_SILENT": "1"])
        #expect(r.status == 1, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains("never said it applied it"), "\(r.stderr)")
        let restores = try Catalog(path: s.dir.file("repo/catalog.sqlite")).restores(source: "mongo")
        #expect(restores.map(\.outcome) == ["failed"])
    }
}

/// A restore killed before its end leaves a marker: `status` names the target that may be half-restored, and the
/// next restore of the source clears it.
@Suite(.blockingThreads) struct InterruptedRestoreTests {
    @Test func aKilledRestoreIsReportedUntilTheNextOne() throws {
        let s = MongoEndToEndTests.Setup(extra: "    oplog: true", timeout: "120s")
        #expect(try s.run(["backup"]).status == 0)
        let (process, wait) = try startProcess(try kaleemBinary(), ["restore", "mongo", "--latest", "--yes", "--policy", s.policy],
                                               environment: cliEnvironment(s.env(["STANDIN_MODE": "hang"])))
        // The tool is running (it logged its run) before the kill.
        for _ in 0..<100 where (try? s.logEntries().contains { $0["tool"] as? String == "mongorestore" }) != true { usleep(100_000) }
        kill(process.processIdentifier, SIGKILL)
        _ = wait()
        let status = try runCLI(["status", "--json", "--policy", s.policy], environment: s.env())
        let row = try #require(try array(status.stdout).first)
        let killed = try #require((row["interrupted_restores"] as? [[String: Any]])?.first, "\(status.stdout)")
        #expect(killed["source"] as? String == "mongo" && killed["backup"] as? String == "latest")
        let human = try runCLI(["status", "--policy", s.policy], environment: s.env())
        #expect(human.stdout.contains("INTERRUPTED RESTORE: mongo backup latest"), "\(human.stdout)")
        // A restore that completes clears the marker of the killed one.
        #expect(try s.run(["restore", "mongo", "--latest", "--yes"]).status == 0)
        let after = try array(try runCLI(["status", "--json", "--policy", s.policy], environment: s.env()).stdout)
        #expect((after.first?["interrupted_restores"] as? [Any])?.isEmpty == true)
    }
}
