// The storage seam's contract: every `Repository` implementation passes the same suite. It runs against the
// local directory (a temp directory) and the S3 one (a real moto server on 127.0.0.1). A new implementation is
// added to `Store` and must pass unchanged.
import ArtifactStore
import BackupCore
import Foundation
import NIOCore
import OffsiteStore
import S3Client
import TestSupport
import Testing

enum Store: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case local, s3
    var testDescription: String { rawValue }
}

/// One repository under test, and a way to change a stored file's bytes behind its back (a disk or bucket
/// that lies), and cleanup.
final class StoreHarness: @unchecked Sendable {
    let repository: any Repository
    let tamper: @Sendable (String, Data) async throws -> Void
    private let keep: [AnyObject]
    private let stop: () -> Void

    init(_ store: Store) async throws {
        switch store {
        case .local:
            let dir = TemporaryDirectory("kb-repo-contract")
            let local = LocalRepository(root: dir.file("repo"))
            try local.prepare()
            repository = local
            tamper = { relative, data in try data.write(to: URL(fileURLWithPath: local.absolute(relative))) }
            keep = [dir]
            stop = {}
        case .s3:
            let server = try S3TestServer()
            let client = try server.client()
            try await client.createBucket("offsite")
            let remote = S3Repository(client: client, bucket: "offsite", prefix: "kaleem/")
            repository = remote
            // A raw PUT: new bytes, and no sha256 metadata (what another writer of the bucket would leave).
            tamper = { relative, data in
                try await client.putObject(bucket: "offsite", key: "kaleem/" + relative, bytes: ByteBuffer(bytes: Array(data)))
            }
            keep = [server]
            stop = { remote.close(); server.stop() }
        }
    }

    deinit { stop() }
}

private func sha256Hex(_ data: Data) -> String {
    var hasher = StreamingSHA256()
    data.withUnsafeBytes { hasher.update($0) }
    return hasher.finalize()
}

/// A local file holding `data`, in `dir`.
private func source(_ dir: TemporaryDirectory, _ name: String, _ data: Data) throws -> String {
    let path = dir.file(name)
    try data.write(to: URL(fileURLWithPath: path))
    return path
}

private func leftovers(_ dir: String) -> [String] {
    ((try? FileManager.default.subpathsOfDirectory(atPath: dir)) ?? []).sorted()
}

@Suite(.serialized, .blockingThreads)
struct RepositoryContractTests {
    static let small = Data("a manifest\n".utf8)
    /// Over the 1 MiB copy buffer, not a multiple of it.
    static let large = Data((0..<(3 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })

    @Test(arguments: Store.allCases)
    func storedFilesComeBackWhole(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let r = h.repository
        let dir = TemporaryDirectory()
        let files: [(String, Data)] = [("redis/2026-12-01/A.rdb.gz", Self.large), ("redis/2026-12-01/A.manifest.json", Self.small),
                                       ("redis/blobs/ab/empty", Data()), ("catalog/catalog.sqlite", Self.small + Self.small)]
        for (i, (relative, data)) in files.enumerated() {
            try await r.put(try source(dir, "in\(i)", data), as: relative, sha256: sha256Hex(data))
        }
        for (i, (relative, data)) in files.enumerated() {
            let stat = try #require(try await r.stat(relative))
            #expect(stat.size == Int64(data.count))
            #expect(stat.recordedSHA256 == nil || stat.recordedSHA256 == sha256Hex(data))
            #expect(try await r.digest(relative) == sha256Hex(data))
            try await r.check(relative, size: Int64(data.count), sha256: sha256Hex(data))
            let out = dir.file("out\(i)/deeper/file")
            try await r.get(relative, to: out, sha256: sha256Hex(data))
            #expect(FileManager.default.contents(atPath: out) == data)
            #expect(FileIO.fileMode(out) == 0o600)
        }
        #expect(Set(try await r.list(under: "redis/").map(\.relative)) == Set(files.prefix(3).map(\.0)))
        #expect(Set(try await r.list(under: "redis/blobs/").map(\.relative)) == ["redis/blobs/ab/empty"])
        #expect(Set(try await r.list(under: "").map(\.relative)) == Set(files.map(\.0)))
        #expect(try await r.list(under: "mongo/").isEmpty)
        let listed = try await r.list(under: "redis/2026-12-01/A.rdb")
        #expect(listed == [RepositoryFile(relative: "redis/2026-12-01/A.rdb.gz", size: Int64(Self.large.count), recordedSHA256: nil)])
    }

    @Test(arguments: Store.allCases)
    func aSecondPutReplacesTheFile(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let dir = TemporaryDirectory()
        try await h.repository.put(try source(dir, "one", Self.small), as: "x/1", sha256: sha256Hex(Self.small))
        try await h.repository.put(try source(dir, "two", Self.large), as: "x/1", sha256: sha256Hex(Self.large))
        #expect(try await h.repository.digest("x/1") == sha256Hex(Self.large))
        #expect(try await h.repository.list(under: "x/").count == 1)
    }

    @Test(arguments: Store.allCases)
    func aPutWhoseBytesDoNotMatchStoresNothing(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let dir = TemporaryDirectory()
        await #expect(throws: (any Error).self) {
            try await h.repository.put(try source(dir, "in", Self.large), as: "x/wrong", sha256: sha256Hex(Self.small))
        }
        #expect(try await h.repository.stat("x/wrong") == nil)
        #expect(try await h.repository.list(under: "").isEmpty)
    }

    @Test(arguments: Store.allCases)
    func aGetWhoseBytesDoNotMatchLeavesNothing(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let dir = TemporaryDirectory()
        try await h.repository.put(try source(dir, "in", Self.large), as: "x/f", sha256: sha256Hex(Self.large))
        let out = TemporaryDirectory()
        do {
            try await h.repository.get("x/f", to: out.file("f"), sha256: sha256Hex(Self.small))
            Issue.record("a copy with the wrong sha256 was accepted")
        } catch let error as IntegrityError {
            #expect(error.object.hasSuffix("x/f"))
            #expect(error.description.contains(sha256Hex(Self.small)))
        }
        #expect(leftovers(out.path).isEmpty)
    }

    @Test(arguments: Store.allCases)
    func aMissingFileIsSaidSo(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let out = TemporaryDirectory()
        #expect(try await h.repository.stat("x/none") == nil)
        await #expect(throws: (any Error).self) { try await h.repository.get("x/none", to: out.file("f"), sha256: nil) }
        #expect(leftovers(out.path).isEmpty)
        do {
            try await h.repository.check("x/none", size: 1, sha256: sha256Hex(Self.small))
            Issue.record("check passed for a missing file")
        } catch let error as IntegrityError {
            #expect(error.problem.contains("missing"))
        }
    }

    @Test(arguments: Store.allCases)
    func bytesChangedBehindTheStoreAreCaught(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let dir = TemporaryDirectory()
        try await h.repository.put(try source(dir, "in", Self.small), as: "x/f", sha256: sha256Hex(Self.small))
        var flipped = Self.small
        flipped[3] ^= 0x01
        try await h.tamper("x/f", flipped)
        #expect(try await h.repository.digest("x/f") == sha256Hex(flipped))
        do {
            try await h.repository.check("x/f", size: Int64(Self.small.count), sha256: sha256Hex(Self.small))
            Issue.record("check passed for changed bytes")
        } catch let error as IntegrityError {
            #expect(error.description.contains(sha256Hex(flipped)))
        }
        let out = TemporaryDirectory()
        await #expect(throws: IntegrityError.self) { try await h.repository.get("x/f", to: out.file("f"), sha256: sha256Hex(Self.small)) }
        #expect(leftovers(out.path).isEmpty)
    }

    @Test(arguments: Store.allCases)
    func deleteRemovesAndToleratesTheAbsent(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let dir = TemporaryDirectory()
        for name in ["a", "b", "c"] {
            try await h.repository.put(try source(dir, name, Self.small), as: "x/\(name)", sha256: sha256Hex(Self.small))
        }
        try await h.repository.delete(["x/a", "x/c", "x/never-there"])
        #expect(try await h.repository.list(under: "x/").map(\.relative) == ["x/b"])
        try await h.repository.delete([])
    }

    @Test(arguments: Store.allCases)
    func pathsOutsideTheLayoutAreRefused(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let dir = TemporaryDirectory()
        let file = try source(dir, "in", Self.small)
        for bad in ["", "/etc/passwd", "../escape", "a/../../escape", "a//b", "./a", "a/."] {
            await #expect(throws: IntegrityError.self, "put \(bad)") { try await h.repository.put(file, as: bad, sha256: sha256Hex(Self.small)) }
            await #expect(throws: IntegrityError.self, "get \(bad)") { try await h.repository.get(bad, to: dir.file("out"), sha256: nil) }
            await #expect(throws: IntegrityError.self, "stat \(bad)") { _ = try await h.repository.stat(bad) }
            await #expect(throws: IntegrityError.self, "delete \(bad)") { try await h.repository.delete([bad]) }
        }
        #expect(try await h.repository.list(under: "").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.file("out")))
    }

    /// The fetch-when-missing path sits on the protocol: the local repository takes a missing file from any store.
    @Test(arguments: Store.allCases)
    func aMissingLocalFileIsFetchedFromTheStore(_ store: Store) async throws {
        let h = try await StoreHarness(store)
        let dir = TemporaryDirectory()
        try await h.repository.put(try source(dir, "in", Self.large), as: "s/2026-12-01/A.rdb.gz", sha256: sha256Hex(Self.large))
        let here = LocalRepository(root: dir.file("here"))
        try here.prepare()
        // A wrong expectation fetches nothing.
        await #expect(throws: IntegrityError.self) {
            try await here.fetchIfMissing("s/2026-12-01/A.rdb.gz", sha256: sha256Hex(Self.small), from: h.repository)
        }
        #expect(!FileManager.default.fileExists(atPath: here.absolute("s/2026-12-01/A.rdb.gz")))
        #expect(!FileManager.default.fileExists(atPath: here.absolute("s/2026-12-01/A.rdb.gz.partial")))
        #expect(try await here.fetchIfMissing("s/2026-12-01/A.rdb.gz", sha256: sha256Hex(Self.large), from: h.repository))
        #expect(FileManager.default.contents(atPath: here.absolute("s/2026-12-01/A.rdb.gz")) == Self.large)
        #expect(try await !here.fetchIfMissing("s/2026-12-01/A.rdb.gz", sha256: sha256Hex(Self.large), from: h.repository))
    }
}
