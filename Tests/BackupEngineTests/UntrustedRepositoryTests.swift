import BackupCore
import Foundation
import TestSupport
import Testing

/// What is read back from the repository or the off-site copy (manifests, catalog rows) is untrusted input:
/// checked against the layout before it names a file, compared with the catalog by verify.
struct UntrustedRepositoryTests {
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
    @Test(arguments: ["catalog-copy", "packages", "catalog"])
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
@Suite(.serialized) struct KilledRebuildTests {
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
