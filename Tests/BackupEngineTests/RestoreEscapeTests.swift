import ArtifactStore
import BackupCore
import Foundation
import TestSupport
import Testing

/// Whoever owns a restore's target directory (Redis's data directory, a --to-dir) may plant symlinks there:
/// a restore run as root must neither write through them nor re-own or re-mode what they point at.
@Suite(.blockingThreads) struct RestoreEscapeTests {
    /// A Redis backup to restore, and a victim file outside the target.
    struct Setup {
        let server: RedisTestServer
        let dir = TemporaryDirectory()
        let policy: String
        var target: String { dir.file("data") }
        var victim: String { dir.file("victim") }

        init() throws {
            server = try RedisTestServer()
            let c = try server.connect()
            _ = try c.command("SET", "k", "v")
            c.close()
            policy = writeRedisPolicy(in: dir, url: server.url)
            try FileManager.default.createDirectory(atPath: dir.file("data"), withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: dir.file("victim"), contents: Data("precious".utf8), attributes: [.posixPermissions: 0o600])
        }

        func restore(_ extra: [String] = []) throws -> ProcessResult {
            try runCLI(["restore", "redis", "--latest", "--to-dir", target, "--yes", "--policy", policy] + extra)
        }

        func victimUntouched() throws -> Bool {
            var info = stat()
            guard lstat(victim, &info) == 0 else { return false }
            return try String(contentsOfFile: victim, encoding: .utf8) == "precious" && info.st_mode & 0o7777 == 0o600 && info.st_uid == geteuid()
        }
    }

    /// The temporary file's old fixed names (`dump.rdb.incoming`, `.incoming.partial`) planted as symlinks, and
    /// `dump.rdb` itself a symlink: the victim is never written, re-owned or re-moded.
    @Test(arguments: ["dump.rdb.incoming.partial", "dump.rdb.incoming", "dump.rdb"])
    func aPlantedSymlinkDoesNotRedirectTheRestore(planted: String) throws {
        let s = try Setup()
        #expect(try runCLI(["backup", "--policy", s.policy]).status == 0)
        #expect(symlink(s.victim, s.target + "/" + planted) == 0)
        let r = try s.restore()
        #expect(try s.victimUntouched(), "\(r.stdout) \(r.stderr)")
        if planted == "dump.rdb" {
            #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("symbolic link"))
        } else {
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            var info = stat()
            #expect(lstat(s.target + "/dump.rdb", &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && info.st_mode & 0o7777 == 0o600)
        }
        // Nothing of ours is left beside what was planted.
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: s.target)).contains { $0.hasPrefix(".kb-restore-") })
    }

    @Test func anEmptyTargetIsAUsageError() throws {
        let s = try Setup()
        #expect(try runCLI(["backup", "--policy", s.policy]).status == 0)
        let r = try runCLI(["restore", "redis", "--latest", "--to-dir", "", "--yes", "--policy", s.policy])
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/dump.rdb"))
        let slash = try runCLI(["restore", "redis", "--latest", "--to-dir", s.target, "--dbfilename", "../victim", "--yes", "--policy", s.policy])
        #expect(slash.status == 2)
        #expect(try s.victimUntouched())
    }

    /// A killed restore leaves only `.kb-restore-*.partial` files; the next restore into the directory removes
    /// them (and only them: a planted symlink of that name is left alone and its target untouched).
    @Test func whatAKilledRestoreLeftIsCleanedByTheNext() throws {
        let s = try Setup()
        #expect(try runCLI(["backup", "--policy", s.policy]).status == 0)
        _ = FileManager.default.createFile(atPath: s.target + "/.kb-restore-dead.partial", contents: Data("half".utf8))
        #expect(symlink(s.victim, s.target + "/.kb-restore-link.partial") == 0)
        let r = try s.restore()
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: s.target)
        #expect(!names.contains(".kb-restore-dead.partial"))
        #expect(names.contains(".kb-restore-link.partial"))
        #expect(try s.victimUntouched())
    }

    /// The writer itself: a symlink planted between the start and the commit is refused at the commit.
    @Test func aSymlinkPlantedDuringTheWriteIsRefusedAtCommit() throws {
        let dir = TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.file("victim"), contents: Data("precious".utf8))
        let w = try TargetFileWriter(directory: dir.path, name: "out")
        try Array("data".utf8).withUnsafeBytes { try w.write($0) }
        #expect(symlink(dir.file("victim"), dir.file("out")) == 0)
        #expect(throws: UnsafeTargetError.self) { try w.commit() }
        w.abort()
        #expect(try String(contentsOfFile: dir.file("victim"), encoding: .utf8) == "precious")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["out", "victim"])
        for bad in ["", ".", "..", "a/b"] {
            #expect(throws: UnsafeTargetError.self) { _ = try TargetFileWriter(directory: dir.path, name: bad) }
        }
        #expect(throws: UnsafeTargetError.self) { _ = try TargetFileWriter(directory: "", name: "x") }
    }
}

/// A file-mode restore killed at any rename leaves the server's file in place (the old one, or the new one):
/// never a data directory without its dump.rdb.
@Suite(.serialized, .blockingThreads) struct KilledFileRestoreTests {
    @Test(arguments: 1...3)
    func aKilledRestoreNeverLeavesTheTargetWithoutItsFile(n: Int) throws {
        let s = try RestoreEscapeTests.Setup()
        #expect(try runCLI(["backup", "--policy", s.policy]).status == 0)
        _ = FileManager.default.createFile(atPath: s.target + "/dump.rdb", contents: Data("old".utf8))
        _ = try runProcess("/usr/bin/strace", ["-f", "-qq", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2",
                                               "-e", "inject=rename,renameat,renameat2:signal=KILL:when=\(n)", try kaleemBinary(),
                                               "restore", "redis", "--latest", "--to-dir", s.target, "--yes", "--policy", s.policy],
                           environment: cliEnvironment())
        let content = FileManager.default.contents(atPath: s.target + "/dump.rdb")
        #expect(content != nil, "kill at rename #\(n): the target lost its dump.rdb")
        if let content { #expect(content == Data("old".utf8) || content.starts(with: Data("REDIS".utf8))) }
        // The next restore cleans what the killed one left and completes.
        #expect(try s.restore().status == 0)
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: s.target)).contains { $0.hasPrefix(".kb-restore-") })
    }
}
