import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import NIOCore
import S3Client
import TestSupport
import Testing

/// One lost upload back, not the whole bucket: --key/--prefix into the bucket, and --to-dir as files, with the
/// awkward keys a real bucket holds (`../x`, unicode, 750 bytes, a trailing slash). Real S3 server (moto).
@Suite(.serialized, .blockingThreads) struct BucketPartialRestoreTests {
    static let long = "deep/" + String(repeating: "k", count: 745)

    @Test func oneLostObjectComesBackAndNothingElseMoves() async throws {
        let server = try S3TestServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.shutdown() }
        try await client.createBucket("uploads")
        let objects: [String: [UInt8]] = [
            "uploads/a.txt": Array("the lost upload".utf8), "uploads/b.txt": Array("the original b".utf8),
            "other/c.txt": Array("c".utf8), "fotos/ünï çødé.jpg": Array("unicode".utf8), "../x": Array("dot dot".utf8),
            "dir/": [], Self.long: Array("long".utf8),
        ]
        try await putAll(client, ["uploads": objects])
        let dir = TemporaryDirectory()
        let policy = writeS3Policy(in: dir, server: server, buckets: ["uploads"])
        func cli(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
        let backup = try cli(["backup", "--json"])
        #expect(backup.status == 0, "\(backup.stderr)")
        let id = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)

        // ls shows every key as it is, awkward ones included.
        let listed = Set(try array(try cli(["ls", id, "--json"]).stdout).compactMap { $0["path"] as? String })
        #expect(listed == Set(objects.keys))

        // The incident: a.txt deleted, b.txt overwritten by a bad release.
        try await client.deleteObject(bucket: "uploads", key: "uploads/a.txt")
        try await client.putObject(bucket: "uploads", key: "uploads/b.txt", bytes: ByteBuffer(string: "changed by the bad release"))

        // --key: the lost one comes back without --yes (nothing is replaced); b stays as it is now.
        let one = try cli(["restore", "minio", "--latest", "--key", "uploads/a.txt", "--json"])
        #expect(one.status == 0, "\(one.stdout) \(one.stderr)")
        var now = try await readAll(client, bucket: "uploads")
        #expect(now["uploads/a.txt"] == objects["uploads/a.txt"])
        #expect(now["uploads/b.txt"] == Array("changed by the bad release".utf8))
        #expect(now.count == objects.count)

        // --prefix: b differs there, so it is replaced only with --yes.
        let refused = try cli(["restore", "minio", "--latest", "--prefix", "uploads/"])
        #expect(refused.status == 2 && refused.stderr.contains("--yes"), "\(refused.stderr)")
        #expect(try await readAll(client, bucket: "uploads")["uploads/b.txt"] == Array("changed by the bad release".utf8))
        #expect(try cli(["restore", "minio", "--latest", "--prefix", "uploads/", "--yes"]).status == 0)
        now = try await readAll(client, bucket: "uploads")
        #expect(now == objects)

        // A key the snapshot does not hold: said, with the way to find it.
        let missing = try cli(["restore", "minio", "--latest", "--key", "uploads/nope.txt"])
        #expect(missing.status == 2 && missing.stderr.contains("holds no object") && missing.stderr.contains("kaleem-backup ls"), "\(missing.stderr)")
        // --delete-extra with --key would empty the rest of the bucket: refused.
        #expect(try cli(["restore", "minio", "--latest", "--key", "uploads/a.txt", "--delete-extra", "--yes"]).status == 2)

        // --to-dir: the whole bucket is refused (keys that cannot be safe paths) and nothing is written.
        let out = TemporaryDirectory()
        let unsafe = try cli(["restore", "minio", "--latest", "--to-dir", out.file("files")])
        #expect(unsafe.status == 2 && unsafe.stderr.contains("nothing was written"), "\(unsafe.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.file("files")))
        #expect(!FileManager.default.fileExists(atPath: out.file("x")))
        // A prefix of safe keys, and a unicode key, are written as files with their content.
        #expect(try cli(["restore", "minio", "--latest", "--prefix", "uploads/", "--to-dir", out.file("files")]).status == 0)
        #expect(try cli(["restore", "minio", "--latest", "--key", "fotos/ünï çødé.jpg", "--to-dir", out.file("files")]).status == 0)
        // A console's folder marker (zero bytes, a trailing /) becomes the directory, not a refusal.
        let folder = try cli(["restore", "minio", "--latest", "--key", "dir/", "--to-dir", out.file("files")])
        #expect(folder.status == 0, "\(folder.stdout) \(folder.stderr)")
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: out.file("files/dir"), isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect(FileManager.default.contents(atPath: out.file("files/uploads/a.txt")).map(Array.init) == objects["uploads/a.txt"])
        #expect(FileManager.default.contents(atPath: out.file("files/uploads/b.txt")).map(Array.init) == objects["uploads/b.txt"])
        #expect(FileManager.default.contents(atPath: out.file("files/fotos/ünï çødé.jpg")).map(Array.init) == objects["fotos/ünï çødé.jpg"])
        #expect(FileIO.fileMode(out.file("files/uploads/a.txt")) == 0o600)
        // A file there that differs is replaced only with --yes; a symlinked directory is never written through.
        try Data("edited".utf8).write(to: URL(fileURLWithPath: out.file("files/uploads/a.txt")))
        #expect(try cli(["restore", "minio", "--latest", "--key", "uploads/a.txt", "--to-dir", out.file("files")]).status == 2)
        #expect(try cli(["restore", "minio", "--latest", "--key", "uploads/a.txt", "--to-dir", out.file("files"), "--yes"]).status == 0)
        #expect(FileManager.default.contents(atPath: out.file("files/uploads/a.txt")).map(Array.init) == objects["uploads/a.txt"])
        let elsewhere = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: out.file("trap"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: out.file("trap/other"), withDestinationPath: elsewhere.path)
        let trapped = try cli(["restore", "minio", "--latest", "--key", "other/c.txt", "--to-dir", out.file("trap")])
        #expect(trapped.status == 2 && trapped.stderr.contains("not a directory"), "\(trapped.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere.path).isEmpty)
        // The old temporary name (`<key>.partial`) planted as a symlink, and the key itself a symlink: the file
        // they point at is neither written nor re-moded.
        let victim = elsewhere.file("victim")
        _ = FileManager.default.createFile(atPath: victim, contents: Data("precious".utf8), attributes: [.posixPermissions: 0o644])
        try FileManager.default.removeItem(atPath: out.file("files/uploads/b.txt"))
        try FileManager.default.createSymbolicLink(atPath: out.file("files/uploads/b.txt.partial"), withDestinationPath: victim)
        #expect(try cli(["restore", "minio", "--latest", "--key", "uploads/b.txt", "--to-dir", out.file("files")]).status == 0)
        #expect(FileManager.default.contents(atPath: out.file("files/uploads/b.txt")).map(Array.init) == objects["uploads/b.txt"])
        try FileManager.default.removeItem(atPath: out.file("files/uploads/b.txt"))
        try FileManager.default.createSymbolicLink(atPath: out.file("files/uploads/b.txt"), withDestinationPath: victim)
        let linked = try cli(["restore", "minio", "--latest", "--key", "uploads/b.txt", "--to-dir", out.file("files"), "--yes"])
        #expect(linked.status == 2 && linked.stderr.contains("symbolic link"), "\(linked.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious" && FileIO.fileMode(victim) == 0o644)

        // diff against a later snapshot: one added, one changed, one removed, the rest unchanged.
        try await client.putObject(bucket: "uploads", key: "uploads/new.txt", bytes: ByteBuffer(string: "new"))
        try await client.putObject(bucket: "uploads", key: "other/c.txt", bytes: ByteBuffer(string: "c, changed"))
        try await client.deleteObject(bucket: "uploads", key: "uploads/a.txt")
        let later = try cli(["backup", "--json"])
        let laterID = try #require((try object(later.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        let diff = try object(try cli(["diff", id, laterID, "--json"]).stdout)
        func paths(_ key: String) -> [String] { ((diff[key] as? [[String: Any]]) ?? []).compactMap { $0["path"] as? String } }
        #expect(paths("added") == ["uploads/new.txt"] && paths("changed") == ["other/c.txt"] && paths("removed") == ["uploads/a.txt"], "\(diff)")
        #expect(diff["unchanged"] as? Int == objects.count - 2)

        // Every one that ran is in the catalog (refusals before anything ran are not restores).
        let restores = try Catalog(path: dir.file("repo/catalog.sqlite")).restores(source: "minio")
        // 2 into the bucket, 5 as files; the two refused at a symlink (a directory, a key) are recorded as failed.
        #expect(restores.filter { $0.outcome == "ok" }.count == 7, "\(restores.map { "\($0.mode) \($0.outcome)" })")
        #expect(restores.filter { $0.outcome == "failed" }.count == 2)
        #expect(restores.contains { $0.mode == "files" } && restores.contains { $0.mode == "bucket" })
    }
}
