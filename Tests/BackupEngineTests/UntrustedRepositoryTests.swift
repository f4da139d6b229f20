import BackupCore
import RedisBackup
import Foundation
import TestSupport
import Testing

/// What is read back from the repository or the off-site copy (manifests, catalog rows) is untrusted input:
/// checked against the layout before it names a file, compared with the catalog by verify.
@Suite(.blockingThreads) struct UntrustedRepositoryTests {
    struct Setup {
        let server: RedisTestServer
        let dir = TemporaryDirectory()
        let policy: String
        init(extra: String = "") throws {
            server = try RedisTestServer()
            policy = writeRedisPolicy(in: dir, url: server.url, extra: extra)
        }
        func cli(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
        func backup() throws -> [String: Any] {
            let r = try cli(["backup", "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            return try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first)
        }
        /// Rewrites the manifest of `artifact` through `edit` (its JSON).
        func editManifest(_ artifact: [String: Any], _ edit: (inout [String: Any]) -> Void) throws {
            let path = dir.file("repo/" + ((artifact["path"] as! String) as NSString).deletingLastPathComponent + "/\(artifact["id"] as! String).manifest.json")
            var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            var a = try #require(json["artifact"] as? [String: Any])
            edit(&a)
            json["artifact"] = a
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
        }
    }

    /// A manifest whose path leads out of the repository is refused by a rebuild (exit 4, named), and no later
    /// rotation unlinks what it names.
    @Test func aManifestPathOutsideTheLayoutIsRefusedAndNeverDeleted() throws {
        let s = try Setup(extra: "retention: { keep_last: 1, daily: 0 }")
        let victim = s.dir.file("victim")
        _ = FileManager.default.createFile(atPath: victim, contents: Data("precious".utf8))
        let a = try s.backup()
        try s.editManifest(a) { $0["path"] = "../victim" }
        try FileManager.default.removeItem(atPath: s.dir.file("repo/catalog.sqlite"))
        try? FileManager.default.removeItem(atPath: s.dir.file("repo/catalog-copy"))
        let rebuild = try s.cli(["catalog", "rebuild", "--json"])
        #expect(rebuild.status == 4, "\(rebuild.stdout) \(rebuild.stderr)")
        let refused = try #require(try object(rebuild.stdout)["refused"] as? [String])
        #expect(refused.count == 1 && refused[0].contains("victim"), "\(refused)")
        // Rotation (keep_last: 1) after two more backups: the victim is still there.
        _ = try s.backup()
        _ = try s.backup()
        #expect(FileManager.default.fileExists(atPath: victim))
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious")
    }

    /// Fields edited consistently in a manifest (a backdated time, a count) no longer pass verify, and a rebuild
    /// does not adopt a time that is not the id's.
    @Test(arguments: ["created_at", "keys"])
    func anEditedManifestFailsVerify(field: String) throws {
        let s = try Setup()
        let a = try s.backup()
        try s.editManifest(a) { m in
            if field == "created_at" {
                m["created_at"] = "2020-01-01T00:00:00.000Z"
            } else {
                var stats = m["stats"] as? [String: Any] ?? [:]
                stats["keys"] = 999
                m["stats"] = stats
            }
        }
        let verify = try s.cli(["verify", a["id"] as! String, "--json"])
        #expect(verify.status == 4, "\(verify.stdout) \(verify.stderr)")
        #expect(verify.stdout.contains("manifest disagrees"), "\(verify.stdout)")
        if field == "created_at" {
            try FileManager.default.removeItem(atPath: s.dir.file("repo/catalog.sqlite"))
            try? FileManager.default.removeItem(atPath: s.dir.file("repo/catalog-copy"))
            let rebuild = try s.cli(["catalog", "rebuild", "--json"])
            #expect(rebuild.status == 4)
            #expect((try object(rebuild.stdout)["refused"] as? [String])?.first?.contains("created_at") == true, "\(rebuild.stdout)")
        }
    }

    /// A source named like a directory the repository uses is refused by the policy parser.
    @Test(arguments: ["catalog-copy", "packages", "catalog", "refreshes"])
    func reservedSourceNamesAreRefused(name: String) throws {
        let dir = TemporaryDirectory()
        let policy = dir.file("p.yml")
        try """
        repository: { path: \(dir.file("repo")) }
        sources:
          \(name): { kind: redis, url: "redis://127.0.0.1:1" }
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let r = try runCLI(["policy", "check", "--policy", policy])
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect((r.stdout + r.stderr).contains("reserved"))
    }
}

/// `catalog rebuild` killed at any write or rename leaves the catalog that was there, or none (which every
/// command reports), never a valid catalog missing backups.
@Suite(.serialized, .blockingThreads) struct KilledRebuildTests {
    @Test(arguments: [1, 3, 10, 40, 120, 400])
    func aKilledRebuildNeverLeavesAPartialCatalog(n: Int) throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        for _ in 0..<3 { #expect(try runCLI(["backup", "--policy", policy]).status == 0) }
        try? FileManager.default.removeItem(atPath: dir.file("repo/catalog-copy"))
        for syscall in ["pwrite64,write", "rename,renameat,renameat2"] {
            _ = try runProcess("/usr/bin/strace", ["-f", "-qq", "-o", "/dev/null", "-e", "trace=\(syscall)",
                                                   "-e", "inject=\(syscall):signal=KILL:when=\(n)", try kaleemBinary(),
                                                   "catalog", "rebuild", "--policy", policy], environment: cliEnvironment())
            let list = try runCLI(["list", "--json", "--policy", policy])
            if list.status == 0 {
                #expect(try array(list.stdout).count == 3, "\(syscall) #\(n): a catalog with \(list.stdout)")
            } else {
                #expect(list.status == 2 && list.stderr.contains("catalog rebuild"), "\(syscall) #\(n): \(list.stderr)")
            }
            let again = try runCLI(["catalog", "rebuild", "--policy", policy])
            #expect(again.status == 0, "\(again.stderr)")
            #expect(try array(try runCLI(["list", "--json", "--policy", policy]).stdout).count == 3)
        }
    }
}

/// The review's findings, each reproduced.
@Suite(.serialized, .blockingThreads) struct ReviewFindingTests {
    /// A catalog copy whose rows were re-dated (ids, paths and checksums untouched) is refused whole: the rebuild
    /// takes the manifests, and rotation removes nothing real.
    @Test func aRedatedCatalogCopyIsRefused() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url, extra: "retention: { keep_last: 3, daily: 7 }")
        for _ in 0..<3 { #expect(try runCLI(["backup", "--policy", policy]).status == 0) }
        let edit = try runProcess("/usr/bin/env", ["python3", "-c", """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE artifacts SET created_at = '2020-01-01 00:00:00.000'"); c.commit()
            """, dir.file("repo/catalog-copy/catalog.sqlite")])
        #expect(edit.status == 0, "\(edit.stderr)")
        try FileManager.default.removeItem(atPath: dir.file("repo/catalog.sqlite"))
        let rebuild = try runCLI(["catalog", "rebuild", "--json", "--policy", policy])
        #expect(rebuild.status == 0, "\(rebuild.stdout) \(rebuild.stderr)")
        let json = try object(rebuild.stdout)
        #expect((json["copy_rejected"] as? [String])?.first?.contains("layout") == true, "\(json)")
        #expect(json["artifacts"] as? Int == 3)
        let listed = try array(try runCLI(["list", "--json", "--policy", policy]).stdout)
        #expect(listed.count == 3 && listed.allSatisfy { ($0["created_at"] as? String)?.hasPrefix("2020") == false })
    }

    /// `rotate --now` is a what-if: without --dry-run it is refused, nothing removed.
    @Test func rotateNowNeedsDryRun() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url, extra: "retention: { keep_last: 1, daily: 0 }")
        for _ in 0..<2 { #expect(try runCLI(["backup", "--policy", policy]).status == 0) }
        let before = try array(try runCLI(["list", "--json", "--policy", policy]).stdout).count
        let r = try runCLI(["rotate", "--now", "2099-01-01T00:00:00Z", "--policy", policy])
        #expect(r.status == 2 && r.stderr.contains("--dry-run"), "\(r.stderr)")
        #expect(try array(try runCLI(["list", "--json", "--policy", policy]).stdout).count == before)
    }

    /// A stored file of another size is damaged, said at once (before any walk of its content).
    @Test func aFileOfAnotherSizeIsDamagedAtOnce() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        let b = try runCLI(["backup", "--json", "--policy", policy])
        let a = try #require((try object(b.stdout)["artifacts"] as? [[String: Any]])?.first)
        let file = dir.file("repo/" + (a["path"] as! String))
        let handle = try #require(FileHandle(forWritingAtPath: file))
        handle.seekToEndOfFile()
        handle.write(Data(repeating: 0, count: 4096))
        handle.closeFile()
        let v = try runCLI(["verify", a["id"] as! String, "--json", "--policy", policy])
        #expect(v.status == 4)
        #expect(v.stdout.contains("size is"), "\(v.stdout)")
    }
}

/// A peer whose error quotes the password it was sent: the password reaches neither the output, nor the catalog.
@Suite(.blockingThreads) struct QuotedSecretTests {
    @Test func aPasswordQuotedByThePeerIsScrubbed() throws {
        let port = try FreePort.pick()
        let server = try startStandInServer("redis_hostile.py", port: port, arguments: ["echo-error"])
        defer { server.signal(SIGKILL); _ = server.wait() }
        let dir = TemporaryDirectory()
        let password = "Quoted-\(UUID().uuidString.prefix(8))"
        let policy = writeRedisPolicy(in: dir, url: "redis://:\(password)@127.0.0.1:\(port)")
        let r = try runCLI(["backup", "--json", "--policy", policy])
        #expect(r.status != 0)
        #expect((r.stdout + r.stderr).contains("refused: AUTH"), "\(r.stdout) \(r.stderr)")
        #expect(!(r.stdout + r.stderr).contains(password))
        let listed = try runCLI(["list", "--json", "--policy", policy])
        #expect(!(listed.stdout + listed.stderr).contains(password))
        #expect(!anyFileContains(dir.file("repo"), password))
    }
}

/// A policy that holds a password in its text and that others can read is warned about (not refused).
@Suite(.blockingThreads) struct PolicyExposureTests {
    @Test func aReadablePolicyWithASecretIsWarnedAbout() throws {
        let dir = TemporaryDirectory()
        let secret = dir.file("secret.yml"), referenced = dir.file("ref.yml")
        try "repository: { path: \(dir.file("repo")) }\nsources:\n  redis: { kind: redis, url: \"redis://:hunter22@127.0.0.1:1\" }\n"
            .write(toFile: secret, atomically: true, encoding: .utf8)
        try "repository: { path: \(dir.file("repo")) }\nsources:\n  redis: { kind: redis, url: \"redis://:${PW:-x}@127.0.0.1:1\", password_file: /nonexistent }\n"
            .write(toFile: referenced, atomically: true, encoding: .utf8)
        #expect(chmod(secret, 0o644) == 0 && chmod(referenced, 0o644) == 0)
        let warned = try runCLI(["list", "--policy", secret])
        #expect(warned.stderr.contains("warning:") && warned.stderr.contains("chmod 600"), "\(warned.stderr)")
        #expect(!warned.stderr.contains("hunter22"))
        #expect(chmod(secret, 0o600) == 0)
        #expect(!(try runCLI(["list", "--policy", secret])).stderr.contains("chmod 600"))
        #expect(!(try runCLI(["list", "--policy", referenced])).stderr.contains("chmod 600"))
    }
}
