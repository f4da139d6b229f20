import BackupCatalog
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

@Suite(.blockingThreads) struct RedisRestoreTests {
    static func digest(_ c: RESPConnection) throws -> String {
        guard case .simple(let d) = try c.command("DEBUG", "DIGEST") else { throw BackupFailure("no DEBUG DIGEST") }
        return d
    }

    static func pttl(_ c: RESPConnection, db: Int, key: String) throws -> Int {
        _ = try c.command("SELECT", String(db))
        guard case .integer(let v) = try c.command("PTTL", key) else { return -3 }
        return v
    }

    @Test func fileModeInstallsTheRDBAndKeepsThePreviousFile() throws {
        let source = try RedisTestServer(settings: ["enable-debug-command yes"])
        let c = try source.connect()
        try SampleData.fill(c, databases: [0, 4], keysPerType: 5)
        let original = try Self.digest(c)
        let originalTTL = try Self.pttl(c, db: 4, key: "ttl:4:2")
        c.close()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: source.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)

        let target = dir.file("target")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: target + "/dump.rdb", contents: Data("old".utf8), attributes: [.posixPermissions: 0o640])
        // Owned by another user (as the redis user owns it on a host): the restored file keeps mode and owner.
        if geteuid() == 0 { #expect(chown(target + "/dump.rdb", 999, 998) == 0) }
        let refused = try runCLI(["restore", "redis", "--latest", "--to-dir", target, "--policy", policy])
        #expect(refused.status == 2)
        #expect(try String(contentsOfFile: target + "/dump.rdb", encoding: .utf8) == "old")
        let dry = try runCLI(["restore", "redis", "--latest", "--to-dir", target, "--dry-run", "--policy", policy])
        #expect(dry.status == 0)
        #expect(try String(contentsOfFile: target + "/dump.rdb", encoding: .utf8) == "old")

        let r = try runCLI(["restore", "redis", "--latest", "--to-dir", target, "--yes", "--server-url", source.url, "--policy", policy])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("SHUTDOWN NOSAVE"))
        #expect(r.stdout.contains("warning: the server's dir is"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: target).contains { $0.hasPrefix("dump.rdb.pre-restore-") })
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: target)).contains { $0.hasSuffix(".incoming") || $0.hasSuffix(".partial") })
        var info = stat()
        #expect(stat(target + "/dump.rdb", &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o640)
        if geteuid() == 0 { #expect(info.st_uid == 999 && info.st_gid == 998) }

        // A real redis-server started on the directory holds exactly the backup: every key, value and expiry.
        let restored = try ScratchRedisServer.start(directory: target, settings: ["enable-debug-command yes"])
        defer { restored.stop() }
        let rc = try restored.connect()
        #expect(try Self.digest(rc) == original)
        let ttl = try Self.pttl(rc, db: 4, key: "ttl:4:2")
        #expect(ttl > 0 && abs(ttl - originalTTL) < 60_000)
        rc.close()

        // Each restore is in the catalog.
        let rows = try Catalog(path: dir.file("repo/catalog.sqlite")).restores(source: "redis")
        #expect(rows.map(\.outcome).sorted() == ["dry-run", "ok"])
        #expect(rows.allSatisfy { $0.mode == "file" })
    }

    /// A live server whose data changed after the backup (keys added, deleted, modified, TTLs changed) ends with
    /// exactly the backup's data, as a master, and no scratch server is left.
    @Test func onlineModeBringsALiveServerBack() throws {
        let source = try RedisTestServer(settings: ["enable-debug-command yes"])
        let c = try source.connect()
        try SampleData.fill(c, databases: [0, 1], keysPerType: 5)
        let original = try Self.digest(c)
        c.close()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: source.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)

        let live = try RedisTestServer(password: "live-pw", settings: ["enable-debug-command yes"])
        let l = try live.connect()
        try SampleData.fill(l, databases: [0, 1], keysPerType: 5)
        _ = try l.command("SELECT", "0")
        _ = try l.command("SET", "added-after-backup", "x")
        _ = try l.command("DEL", "str:0:1")
        _ = try l.command("SET", "str:0:2", "modified")
        _ = try l.command("PERSIST", "ttl:0:3")
        _ = try l.command("EXPIRE", "str:0:4", "100")
        #expect(try Self.digest(l) != original)

        let refused = try runCLI(["restore", "redis", "--latest", "--to-url", live.url, "--policy", policy])
        #expect(refused.status == 2)
        #expect(try Self.digest(l) != original)
        #expect(!refused.stdout.contains("live-pw") && !refused.stderr.contains("live-pw"))

        let r = try runCLI(["restore", "redis", "--latest", "--to-url", live.url, "--yes", "--policy", policy, "--json"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(!r.stdout.contains("live-pw") && !r.stderr.contains("live-pw"))
        #expect(try Self.digest(l) == original)
        _ = try l.command("SELECT", "0")
        guard case .integer(let ttl) = try l.command("TTL", "ttl:0:3") else { Issue.record("no ttl"); return }
        #expect(ttl > 3000)
        guard case .bulk(let info?) = try l.command("INFO", "replication") else { Issue.record("no info"); return }
        #expect(String(decoding: info, as: UTF8.self).contains("role:master"))
        l.close()
        #expect(try runProcess("/bin/sh", ["-c", "pgrep -f '[k]aleem-restore' || true"]).stdout.isEmpty)
        #expect(try Catalog(path: dir.file("repo/catalog.sqlite")).restores(source: "redis").first?.mode == "online")

        // The target's password need not be in argv: --to-password-file, or $REDISCLI_AUTH as for redis-cli.
        let l1 = try live.connect()
        _ = try l1.command("SET", "changed-again", "x")
        l1.close()
        let bare = "redis://127.0.0.1:\(live.server.port)"
        let fromEnv = try runCLI(["restore", "redis", "--latest", "--to-url", bare, "--yes", "--policy", policy],
                                 environment: cliEnvironment(["REDISCLI_AUTH": "live-pw"]))
        #expect(fromEnv.status == 0, "\(fromEnv.stdout) \(fromEnv.stderr)")
        let l2 = try live.connect()
        #expect(try Self.digest(l2) == original)
        _ = try l2.command("SET", "changed-once-more", "x")
        let file = dir.file("target-password")
        try "live-pw\n".write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try runCLI(["restore", "redis", "--latest", "--to-url", bare, "--to-password-file", file, "--yes", "--policy", policy])
        #expect(fromFile.status == 0, "\(fromFile.stdout) \(fromFile.stderr)")
        #expect(try Self.digest(l2) == original)
        l2.close()
    }

    @Test func corruptedBackupIsNotRestored() throws {
        let source = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: source.url)
        let b = try runCLI(["backup", "--policy", policy, "--json"])
        let path = try #require((try object(b.stdout)["artifacts"] as? [[String: Any]])?.first?["path"] as? String)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: dir.file("repo/" + path)))
        bytes[bytes.count - 10] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: dir.file("repo/" + path)))
        try FileManager.default.createDirectory(atPath: dir.file("t"), withIntermediateDirectories: true)
        let r = try runCLI(["restore", "redis", "--latest", "--to-dir", dir.file("t"), "--yes", "--policy", policy])
        #expect(r.status == 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("t")).isEmpty)
    }
}
