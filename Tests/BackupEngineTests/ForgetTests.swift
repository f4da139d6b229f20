import BackupCatalog
import BackupCore
import Foundation
import TestSupport
import Testing

/// `forget`: a backup removed on purpose, local and off-site; protected ones only with --force --reason.
@Suite(.blockingThreads) struct ForgetTests {
    @Test func aCorruptBackupCanBeRetiredAndTheProtectedOnesAreRefused() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "retention: { keep_last: 10, daily: 0 }")
        for _ in 0..<4 { #expect(try runCLI(["backup", "--policy", policy]).status == 0) }
        let rows = try array(try runCLI(["list", "--json", "--policy", policy]).stdout)
        let ids = rows.compactMap { $0["id"] as? String } // newest first
        #expect(ids.count == 4)

        // The newest good backup is refused; so is a pinned one; --force needs a reason.
        let newest = try runCLI(["forget", ids[0], "--yes", "--policy", policy])
        #expect(newest.status == 2 && newest.stdout.contains("newest good backup"), "\(newest.stdout) \(newest.stderr)")
        #expect(try runCLI(["pin", ids[1], "--reason", "keep", "--policy", policy]).status == 0)
        let pinned = try runCLI(["forget", ids[1], "--yes", "--policy", policy])
        #expect(pinned.status == 2 && pinned.stdout.contains("pinned"), "\(pinned.stdout)")
        #expect(try runCLI(["forget", ids[1], "--yes", "--force", "--policy", policy]).status == 2)
        #expect(try runCLI(["forget", ids[1], "--policy", policy]).status == 2) // neither --yes nor --dry-run

        // A corrupt one: found by verify, counted by status, retired by forget, and the count clears.
        let victim = rows[2]
        let path = dir.file("repo/") + (victim["path"] as? String ?? "")
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        handle.seek(toFileOffset: 30)
        handle.write(Data([1, 2, 3, 4]))
        handle.closeFile()
        _ = try runCLI(["verify", "--all", "--policy", policy])
        #expect(try array(try runCLI(["status", "--json", "--policy", policy]).stdout).first?["corrupt"] as? Int == 1)
        let dry = try runCLI(["forget", ids[2], "--dry-run", "--policy", policy])
        #expect(dry.status == 0 && dry.stdout.contains("would be removed") && FileManager.default.fileExists(atPath: path))
        let gone = try runCLI(["forget", ids[2], "--yes", "--reason", "damaged on disk, no off-site copy", "--json", "--policy", policy])
        #expect(gone.status == 0, "\(gone.stdout) \(gone.stderr)")
        #expect(try array(gone.stdout).first?["removed"] as? Bool == true)
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try array(try runCLI(["status", "--json", "--policy", policy]).stdout).first?["corrupt"] as? Int == 0)
        let left = try array(try runCLI(["list", "--json", "--policy", policy]).stdout).compactMap { $0["id"] as? String }
        #expect(left == [ids[0], ids[1], ids[3]])

        // Forced, with its reason kept in the catalog row.
        let forced = try runCLI(["forget", ids[1], "--yes", "--force", "--reason", "legal request", "--policy", policy])
        #expect(forced.status == 0, "\(forced.stdout) \(forced.stderr)")
        let row = try #require(try Catalog(path: dir.file("repo/catalog.sqlite")).artifacts(includeDeleted: true).first { $0.id == ids[1] })
        #expect(row.deletedAt != nil && row.detail?.contains("legal request") == true, "\(row.detail ?? "")")
    }
}
