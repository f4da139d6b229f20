import BackupCatalog
import BackupCore
import Foundation
import TestSupport
import Testing

/// MongoDB through stand-in mongodump/mongorestore (Tests/StandIns): they honour the real tools' flags and
/// stream the real archives of Tests/Fixtures/mongo. What only a real server can show is checked by
/// scripts/check-mongo.sh.
@Suite(.blockingThreads) struct MongoEndToEndTests {
    static let standIns = packageRoot + "/Tests/StandIns"
    static let password = "Pw-\(UUID().uuidString.prefix(8))"

    struct Setup {
        let dir = TemporaryDirectory()
        var policy: String { dir.file("policy.yml") }
        var log: String { dir.file("standin.jsonl") }
        var tmp: String { dir.file("tmp") }

        init(extra: String = "", mongodump: String = "mongodump", timeout: String = "60s") {
            try? FileManager.default.createDirectory(atPath: dir.file("tmp"), withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: policy, contents: Data("""
            repository: { path: \(dir.file("repo")) }
            sources:
              mongo:
                kind: mongodb
                uri: "mongodb://backup:\(MongoEndToEndTests.password)@db.internal:27017/?authSource=admin"
                mongodump: \(mongodump)
                timeout: \(timeout)
            \(extra)
            """.utf8))
        }

        func env(_ extra: [String: String] = [:]) -> [String: String] {
            var e = ["PATH": MongoEndToEndTests.standIns + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                     "STANDIN_LOG": log, "TMPDIR": tmp]
            e.merge(extra) { $1 }
            return e
        }

        func run(_ args: [String], _ extra: [String: String] = [:]) throws -> ProcessResult {
            try runCLI(args + ["--policy", policy], environment: env(extra))
        }

        func logEntries() throws -> [[String: Any]] {
            guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
            return try text.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        }
    }

    @Test func backupVerifyAndRestoreThroughTheTools() throws {
        let s = Setup(extra: "    oplog: true")
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let a = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first)
        let stats = try #require(a["stats"] as? [String: Any])
        #expect(stats["documents"] as? Int == 44)
        #expect(stats["namespaces"] as? Int == 3)
        #expect((stats["per_namespace"] as? [String: Int]) == ["test.foo": 25, "admin.system.version": 1, "oplog": 18])
        #expect(stats["server_version"] as? String == "4.0.2")
        #expect((a["path"] as? String)?.hasSuffix(".archive.gz") == true)

        // mongodump got --archive and --oplog, and the credentials only through --config.
        let dump = try #require(try s.logEntries().first)
        let argv = try #require(dump["argv"] as? [String])
        #expect(argv.contains("--archive") && argv.contains("--oplog"))
        #expect(argv.contains { $0.hasPrefix("--config=") })
        #expect(dump["config_uri"] as? Bool == true)
        #expect(!argv.joined(separator: " ").contains(Self.password))
        #expect(!argv.joined(separator: " ").contains("mongodb://"))
        // The config file is gone, and the password is nowhere in the output or the repository.
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.tmp).isEmpty)
        #expect(!(r.stdout + r.stderr).contains(Self.password))
        #expect(!anyFileContains(s.dir.file("repo"), Self.password))

        let verify = try s.run(["verify", "--all", "--json"])
        #expect(verify.status == 0, "\(verify.stdout)")
        #expect((try array(verify.stdout).first?["detail"] as? String)?.contains("26 documents + 18 oplog entries") == true)

        // Without --yes nothing is written; with it, the exact archive bytes reach mongorestore, renamed.
        let refused = try s.run(["restore", "mongo", "--latest"])
        #expect(refused.status == 2)
        #expect(refused.stdout.contains("into mongodb://backup:***@db.internal"))
        #expect(try s.logEntries().count == 1)
        let restore = try s.run(["restore", "mongo", "--backup", a["id"] as! String, "--ns-from", "test.*", "--ns-to", "drill_test.*",
                                 "--drop", "--yes", "--json"])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        let result = try object(restore.stdout)
        #expect(result["restored"] as? Int == 26)
        #expect(result["expected"] as? Int == 26)
        let fed = try #require(try s.logEntries().last)
        #expect(fed["tool"] as? String == "mongorestore")
        #expect(fed["sha256"] as? String == (try sha256sum(fixturesDirectory + "/mongo/dump-w-oplog.archive")))
        #expect((fed["restored"] as? [String: Int]) == ["drill_test.foo": 25, "admin.system.version": 1])
        let restoreArgv = try #require(fed["argv"] as? [String])
        #expect(restoreArgv.contains("--nsFrom=test.*") && restoreArgv.contains("--nsTo=drill_test.*") && restoreArgv.contains("--drop"))
        #expect(!restoreArgv.joined(separator: " ").contains(Self.password))

        // A summary with failed documents fails the restore; a dry run passes --dryRun and writes nothing.
        let failed = try s.run(["restore", "mongo", "--latest", "--yes"], ["STANDIN_FAILED_DOCS": "3"])
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("3 document(s) failed to restore"))
        let dry = try s.run(["restore", "mongo", "--latest", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect((try s.logEntries().last?["argv"] as? [String])?.contains("--dryRun") == true)

        // Every restore is in the catalog, failures too, the password hidden.
        let restores = try Catalog(path: s.dir.file("repo/catalog.sqlite")).restores(source: "mongo")
        #expect(restores.map(\.outcome).sorted() == ["dry-run", "failed", "ok"])
        #expect(restores.allSatisfy { !$0.target.contains(Self.password) && !$0.detail.contains(Self.password) })
    }

    @Test(arguments: [
        ("fail", "mongodump: failed"),
        ("hang", "did not finish within 3 s"),
        ("garbage", "no mongodump archive magic"),
        ("empty", "wrote no archive"),
    ])
    func badDumpsFail(mode: String, message: String) throws {
        // Only the hung dump is given a 3 s deadline; the others keep the minute, so a loaded machine (a python3
        // start taking seconds) cannot turn "fail" into a timeout.
        let s = mode == "hang" ? Setup(timeout: "3s") : Setup()
        let r = try s.run(["backup", "--json"], ["STANDIN_MODE": mode])
        #expect(r.status == (mode == "garbage" ? 4 : 1), "\(r.stderr)")
        let a = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first)
        #expect(a["status"] as? String == "failed")
        #expect((a["detail"] as? String)?.contains(message) == true, "\(a["detail"] ?? "")")
        #expect(!(r.stdout + r.stderr).contains(Self.password))
        #expect(filesUnder(s.dir.file("repo")).allSatisfy { !$0.hasSuffix(".gz") && !$0.hasSuffix(".partial") })
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.tmp).isEmpty)
    }

    /// A hung mongodump dies with a kaleem-backup killed by SIGKILL (fault finding 12): the tool runs under a
    /// lifeline shell in its own process group, which kills the group when its parent is gone.
    @Test func aHungDumpDiesWithAKilledBackup() throws {
        let s = Setup(timeout: "10m")
        var env = cliEnvironment(s.env(["STANDIN_MODE": "hang"]))
        env["PATH"] = s.env()["PATH"]
        let (cli, _) = try startProcess(try kaleemBinary(), ["backup", "--policy", s.policy], environment: env)
        var dump: Int32?
        let deadline = Date().addingTimeInterval(30)
        while dump == nil && Date() < deadline && cli.isRunning {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry), pid != cli.processIdentifier,
                      let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { continue }
                let argv = cmdline.split(separator: "\0")
                // The stand-in itself (python3 …/mongodump --archive …), not the lifeline shell that names it.
                if argv.contains(where: { $0.hasSuffix("/mongodump") }), argv.contains("--archive"), !argv.contains("-c") { dump = pid }
            }
            usleep(20_000)
        }
        let found = try #require(dump, "the stand-in mongodump was not seen")
        // It is hung (the stand-in sleeps): only the lifeline can end it now.
        usleep(300_000)
        kill(cli.processIdentifier, SIGKILL)
        cli.waitUntilExit()
        var gone = false
        let until = Date().addingTimeInterval(10)
        while Date() < until {
            let stat = (try? String(contentsOfFile: "/proc/\(found)/stat", encoding: .utf8)) ?? ""
            if stat.isEmpty || stat.split(separator: ")").last?.split(separator: " ").first == "Z" { gone = true; break }
            usleep(50_000)
        }
        if !gone { kill(found, SIGKILL) }
        #expect(gone, "the hung mongodump \(found) outlived the killed kaleem-backup")
    }

    /// `ls` lists namespaces with their counts: recorded at backup time, or walked again with --deep; both agree.
    @Test func lsListsNamespacesRecordedAndDeep() throws {
        let s = Setup()
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let id = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        func listing(_ extra: [String]) throws -> [String: Int] {
            let ls = try s.run(["ls", id, "--json"] + extra)
            #expect(ls.status == 0, "\(ls.stderr)")
            var out: [String: Int] = [:]
            for e in try array(ls.stdout) { out[e["path"] as? String ?? ""] = e["documents"] as? Int }
            return out
        }
        let recorded = try listing([])
        #expect(recorded["test.foo"] == 25)
        #expect(try listing(["--deep"]) == recorded)
        #expect(try listing(["--deep", "--match", "test.*"]) == ["test.foo": 25])
    }

    @Test func gzippedArchivesFromAWrapperCommand() throws {
        let s = Setup(mongodump: "[mongodump, --gzip]")
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let stats = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first?["stats"] as? [String: Any])
        #expect(stats["gzip_inside"] as? Bool == true)
        #expect(stats["documents"] as? Int == 44)
        #expect(try s.run(["verify", "--all"]).status == 0)
        let restore = try s.run(["restore", "mongo", "--latest", "--yes"])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect((try s.logEntries().last?["argv"] as? [String])?.contains("--gzip") == true)
    }

    @Test func missingToolNamesThePolicyKey() throws {
        let s = Setup(mongodump: "/nonexistent/bin/mongodump")
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 1)
        let detail = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first?["detail"] as? String)
        #expect(detail.contains("not installed"))
        #expect(detail.contains("sources.mongo.mongodump"))
    }

    @Test func corruptedArtifactIsNotRestored() throws {
        let s = Setup()
        let r = try s.run(["backup", "--json"])
        let a = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first)
        let file = s.dir.file("repo/" + (a["path"] as! String))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: file))
        let restore = try s.run(["restore", "mongo", "--latest", "--yes"])
        #expect(restore.status == 4)
        #expect(restore.stderr.contains("refusing to restore"))
        #expect(try s.logEntries().filter { $0["tool"] as? String == "mongorestore" }.isEmpty)
    }

    @Test func policyRulesForMongo() throws {
        let dir = TemporaryDirectory()
        for (extra, expected) in [
            ("    databases: [a, b]", "list at most one"),
            ("    exclude: [sessions]", "exclude needs databases"),
            ("    databases: [app]\n    oplog: true", "whole replica set"),
        ] {
            let path = dir.file("p.yml")
            _ = FileManager.default.createFile(atPath: path, contents: Data("""
            repository: { path: /tmp/x }
            sources:
              mongo:
                kind: mongodb
                uri: "mongodb://u:hunter2@h/"
            \(extra)
            """.utf8))
            let r = try runCLI(["policy", "check", "--policy", path])
            #expect(r.status == 2)
            #expect(r.stderr.contains(expected), "\(r.stderr)")
            #expect(!r.stderr.contains("hunter2"))
        }
    }
}

/// A MongoDB 7 archive with views and a time-series collection, through the CLI: backed up with the right
/// counts, and restored selectively with --ns-include / --ns-exclude.
@Suite(.blockingThreads) struct MongoModernArchiveTests {
    @Test func selectiveRestoreOfAModernArchive() throws {
        let s = MongoEndToEndTests.Setup()
        let archive = s.dir.file("mongo7.archive")
        FileManager.default.createFile(atPath: archive, contents: Data(TestArchiveWriter.mongo7Archive()))
        let backup = try s.run(["backup", "--json"], ["STANDIN_ARCHIVE": archive])
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        let a = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let stats = try #require(a["stats"] as? [String: Any])
        #expect((stats["per_namespace"] as? [String: Int])?["app.weather"] == 12)
        #expect((stats["timeseries"] as? [String: String]) == ["app.weather": "app.system.buckets.weather"])
        #expect((stats["views"] as? [String]) == ["app.active_users"])
        #expect(stats["oplog_entries"] as? Int == 5)
        // list/show state documents and oplog entries apart.
        let list = try s.run(["list"])
        #expect(list.stdout.contains("393 documents + 5 oplog entries in 8 namespaces"), "\(list.stdout)")

        // Only the users: the plan lists them with their count, mongorestore gets --nsInclude, counts checked.
        let plan = try s.run(["restore", "mongo", "--latest", "--ns-include", "app.users", "--dry-run"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("250 documents in 1 namespaces") && plan.stdout.contains("app.users: 250 documents"), "\(plan.stdout)")
        #expect(plan.stdout.contains("5 oplog entries that are not replayed"))
        let restore = try s.run(["restore", "mongo", "--latest", "--ns-include", "app.*", "--ns-exclude", "app.events", "--yes", "--json"])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        let result = try object(restore.stdout)
        #expect(result["expected"] as? Int == 250 + 7 + 3 + 12 + 1)
        #expect((result["namespaces"] as? [String: Int])?["app.events"] == nil)
        let run = try #require(try s.logEntries().last { $0["tool"] as? String == "mongorestore" })
        let argv = try #require(run["argv"] as? [String])
        #expect(argv.contains("--nsInclude=app.*") && argv.contains("--nsExclude=app.events"))
        // A pattern that matches nothing is refused before anything runs.
        let none = try s.run(["restore", "mongo", "--latest", "--ns-include", "nope.*", "--yes"])
        #expect(none.status == 2 && none.stderr.contains("its namespaces are"), "\(none.stderr)")
    }
}
