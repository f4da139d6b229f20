import ArtifactStore
import BackupCore
import Foundation
import TestSupport
import Testing

@Suite(.blockingThreads) struct RepositoryTests {
    @Test func atomicWritesAndModes() throws {
        let dir = TemporaryDirectory()
        let repo = LocalRepository(root: dir.file("repo"))
        try repo.prepare()
        #expect(FileIO.fileMode(repo.root) == 0o700)
        let rel = repo.relativeArtifactPath(source: "redis", id: "X", createdAt: Date(timeIntervalSince1970: 0), extension: "rdb")
        #expect(rel == "redis/1970-01-01/X.rdb.gz")
        try repo.prepareDirectory(forArtifact: rel)
        #expect(FileIO.fileMode(dir.file("repo/redis")) == 0o700)
        #expect(FileIO.fileMode(dir.file("repo/redis/1970-01-01")) == 0o700)
        try FileIO.writeAtomically(Data("hello".utf8), to: repo.absolute("redis/1970-01-01/f"))
        #expect(FileIO.fileMode(repo.absolute("redis/1970-01-01/f")) == 0o600)
    }

    @Test func partialFilesAreCleanedUp() throws {
        let dir = TemporaryDirectory()
        let repo = LocalRepository(root: dir.path)
        try FileIO.makeDirectories(dir.file("redis/2026-01-01"))
        _ = FileManager.default.createFile(atPath: dir.file("redis/2026-01-01/a.rdb.gz.partial"), contents: Data("x".utf8))
        _ = FileManager.default.createFile(atPath: dir.file("redis/2026-01-01/keep.rdb.gz"), contents: Data("x".utf8))
        let removed = repo.removePartialFiles()
        #expect(removed.count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.file("redis/2026-01-01/a.rdb.gz.partial")))
        #expect(FileManager.default.fileExists(atPath: dir.file("redis/2026-01-01/keep.rdb.gz")))
    }

    @Test func unwritableRepositoryIsAClearError() throws {
        let dir = TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.file("plainfile"), contents: Data())
        let repo = LocalRepository(root: dir.file("plainfile/repo"))
        do {
            try repo.prepare()
            Issue.record("prepared a repository under a file")
        } catch let error as FileSystemError {
            #expect(error.description.contains(dir.file("plainfile")))
            #expect(error.hint != nil)
        }
    }

    @Test func secondLockIsRefusedWithTheHoldersPid() throws {
        let dir = TemporaryDirectory()
        let first = try RunLock(path: dir.file(".lock"), purpose: "backup")
        do {
            _ = try RunLock(path: dir.file(".lock"), purpose: "backup")
            Issue.record("second lock taken")
        } catch let error as LockedError {
            #expect(error.holderPID == getpid())
            #expect(error.exitStatus == .locked)
            #expect(error.description.contains("pid=\(getpid())"))
        }
        first.release()
        let again = try RunLock(path: dir.file(".lock"), purpose: "backup")
        again.release()
    }

    @Test func manifestRoundTrips() throws {
        let created = Date(timeIntervalSince1970: 1_764_383_400.25)
        let run = RunInfo(id: "run-1", tag: .preDeploy, release: "api:1", startedAt: created, status: .ok, host: "h")
        let artifact = ArtifactInfo(id: "a", runID: "run-1", source: "redis", kind: SourceKind("redis"), path: "redis/d/a.rdb.gz",
                                    bytesRaw: 10, bytesStored: 5, sha256: "ab", status: .ok, createdAt: created,
                                    stats: ["keys": .int(3)], tag: .preDeploy, release: "api:1")
        let m = Manifest(artifact: artifact, run: run)
        let text = String(decoding: try m.encoded(), as: UTF8.self)
        #expect(text.contains("\"bytes_stored\" : 5"))
        #expect(text.contains("redis/d/a.rdb.gz"))
        #expect(try Manifest.decode(try m.encoded()) == m)
    }
}
