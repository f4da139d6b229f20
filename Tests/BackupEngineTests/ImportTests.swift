import BackupCatalog
import BackupCore
import Foundation
import TestSupport
import Testing

/// `import` adopts the backups the operations document's own scripts wrote (§6.1 `redis-YYYYMMDD.rdb` and
/// `mongodb-YYYYMMDD/`, the deploy script's `mongo-YYYYMMDD-HHMMSS.archive.gz`): verified in their format,
/// dated from their names, then listed, restored and rotated like any backup.
@Suite(.blockingThreads) struct ImportTests {
    /// A real server's dump.rdb, named as §6.1 names it: imported, dated, verified, restored byte for byte.
    @Test func aRedisDumpFromTheDocumentsScriptIsRestorable() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        for i in 0..<200 { _ = try c.command("SET", "key:\(i)", "value \(i)") }
        _ = try c.command("SAVE")
        c.close()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        let old = dir.file("redis-20261201.rdb")
        try FileManager.default.copyItem(atPath: redis.directory.path + "/data/dump.rdb", toPath: old)
        let original = try sha256sum(old)

        let dry = try runCLI(["import", old, "--dry-run", "--policy", policy])
        #expect(dry.status == 0 && dry.stdout.contains("would import as a rdb backup of redis taken 2026-12-01"), "\(dry.stdout) \(dry.stderr)")
        #expect(filesUnder(dir.file("repo")).allSatisfy { !$0.hasSuffix(".gz") })

        let r = try runCLI(["import", old, "--json", "--policy", policy])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let item = try #require(try array(r.stdout).first)
        #expect(item["status"] as? String == "ok")
        let id = try #require(item["id"] as? String)
        #expect(id.hasPrefix("20261201T"))
        let artifact = try #require(try Catalog(path: dir.file("repo/catalog.sqlite")).artifacts(source: "redis").first)
        #expect(artifact.stats["keys"]?.intValue == 200)
        #expect(artifact.tag.rawValue == "imported")
        #expect(artifact.path.hasPrefix("redis/2026-12-01/"))
        #expect(try sha256sum(old) == original) // the original is left as it was

        #expect(try runCLI(["verify", id, "--policy", policy]).status == 0)
        let target = TemporaryDirectory()
        let restore = try runCLI(["restore", "redis", "--backup", id, "--to-dir", target.path, "--yes", "--policy", policy])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        #expect(try sha256sum(target.file("dump.rdb")) == original)

        // Again: recognised and skipped.
        let again = try runCLI(["import", old, "--policy", policy])
        #expect(again.status == 0 && again.stdout.contains("already imported as \(id)"), "\(again.stdout)")
        #expect(try Catalog(path: dir.file("repo/catalog.sqlite")).artifacts(source: "redis").count == 1)
    }

    /// A truncated RDB is refused by the verifier: a failed row says why, no file stays, exit 4.
    @Test func aTruncatedDumpIsNotImported() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1")
        let rdb = try Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/redis/encodings.rdb"))
        let cut = dir.file("redis-20261130.rdb")
        FileManager.default.createFile(atPath: cut, contents: rdb.prefix(rdb.count / 2))
        let r = try runCLI(["import", cut, "--policy", policy])
        #expect(r.status == 4, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("FAILED"), "\(r.stdout)")
        let rows = try Catalog(path: dir.file("repo/catalog.sqlite")).artifacts(source: "redis")
        #expect(rows.map(\.status) == [.failed])
        #expect(filesUnder(dir.file("repo/redis")).isEmpty)
    }

    /// The deploy script's `mongodump --archive --gzip` file, dated by its name to the second.
    @Test func theDeployScriptsMongoArchive() throws {
        let s = MongoEndToEndTests.Setup()
        let archive = s.dir.file("mongo-20261201-021500.archive.gz")
        let made = try runProcess("/bin/sh", ["-c", "gzip -c \"$0\" > \"$1\"", fixturesDirectory + "/mongo/dump-w-oplog.archive", archive])
        #expect(made.status == 0)
        let r = try s.run(["import", archive, "--json"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let item = try #require(try array(r.stdout).first)
        #expect(item["taken_at"] as? String == "2026-12-01T02:15:00.000Z")
        let artifact = try #require(try Catalog(path: s.dir.file("repo/catalog.sqlite")).artifacts(source: "mongo").first)
        #expect(artifact.stats["documents"]?.intValue == 44)
        #expect(artifact.stats["gzip_inside"] == .bool(true))
        let restore = try s.run(["restore", "mongo", "--latest", "--yes", "--json"])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        let fed = try #require(try s.logEntries().last { $0["tool"] as? String == "mongorestore" })
        #expect((fed["argv"] as? [String])?.contains("--gzip") == true)
        #expect(try object(restore.stdout)["restored"] as? Int == 26)
    }

    /// §6.1's `mongodump --out /backup/mongodb-YYYYMMDD`: the directory becomes the archive mongodump --archive
    /// writes, which the verifier walks and mongorestore (the strict stand-in) reads back.
    @Test func aDirectoryDumpBecomesAnArchive() throws {
        let s = MongoEndToEndTests.Setup()
        let dump = s.dir.file("mongodb-20261202")
        try FileManager.default.createDirectory(atPath: dump + "/kaleem", withIntermediateDirectories: true)
        func bson(_ n: Int, _ tag: String) -> Data { Data(TestArchiveWriter.documents(n, tag: tag).joined()) }
        FileManager.default.createFile(atPath: dump + "/kaleem/users.bson", contents: bson(2500, "user")) // several blocks
        FileManager.default.createFile(atPath: dump + "/kaleem/users.metadata.json", contents: Data(#"{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}],"uuid":"00112233445566778899aabbccddeeff","collectionName":"users","type":"collection"}"#.utf8))
        FileManager.default.createFile(atPath: dump + "/kaleem/empty.bson", contents: Data())
        FileManager.default.createFile(atPath: dump + "/kaleem/empty.metadata.json", contents: Data(#"{"indexes":[],"collectionName":"empty","type":"collection"}"#.utf8))
        FileManager.default.createFile(atPath: dump + "/oplog.bson", contents: bson(3, "op"))
        FileManager.default.createFile(atPath: dump + "/prelude.json", contents: Data(#"{"ServerVersion":"6.0.14","ToolVersion":"100.9.4"}"#.utf8))

        let r = try s.run(["import", dump, "--json"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let artifact = try #require(try Catalog(path: s.dir.file("repo/catalog.sqlite")).artifacts(source: "mongo").first)
        #expect((artifact.stats["per_namespace"]).map { "\($0)" }?.contains("kaleem.users") == true)
        #expect(artifact.stats["documents"]?.intValue == 2503)
        #expect(artifact.stats["server_version"] == .string("6.0.14"))
        #expect(try s.run(["verify", artifact.id]).status == 0)
        let restore = try s.run(["restore", "mongo", "--latest", "--drop", "--yes", "--json"])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        let json = try object(restore.stdout)
        #expect(json["restored"] as? Int == 2500)
        #expect(json["oplog_applied"] as? Int == 3)

        // A document cut short is refused with where it ends, and nothing is recorded as good.
        let broken = s.dir.file("mongodb-20261203")
        try FileManager.default.createDirectory(atPath: broken + "/kaleem", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: broken + "/kaleem/users.bson", contents: bson(10, "user").dropLast(7))
        let bad = try s.run(["import", broken])
        #expect(bad.status == 2, "\(bad.status) \(bad.stdout) \(bad.stderr)")
        #expect(bad.stderr.contains("truncated"), "\(bad.stderr)")
    }

    /// Nothing is written when any path cannot be imported; ambiguity is resolved only by --source.
    @Test func refusalsComeBeforeAnythingIsWritten() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", extra: """
          cache:
            kind: redis
            url: "redis://127.0.0.1:2"
        """)
        let rdb = dir.file("redis-20261201.rdb")
        try FileManager.default.copyItem(atPath: fixturesDirectory + "/redis/encodings.rdb", toPath: rdb)
        let ambiguous = try runCLI(["import", rdb, "--policy", policy])
        #expect(ambiguous.status == 2 && ambiguous.stderr.contains("say which with --source"), "\(ambiguous.stderr)")
        let text = dir.file("notes.txt")
        FileManager.default.createFile(atPath: text, contents: Data("hello".utf8))
        let mixed = try runCLI(["import", rdb, text, "--source", "cache", "--policy", policy])
        #expect(mixed.status == 2 && mixed.stderr.contains("is neither a mongodump archive (6de29981, or gzip of one) nor an RDB file (REDIS…)"), "\(mixed.stderr)")
        let link = dir.file("redis-20261202.rdb")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: rdb)
        let linked = try runCLI(["import", link, "--source", "cache", "--policy", policy])
        #expect(linked.status == 2 && linked.stderr.contains("symlink is not followed"), "\(linked.stderr)")
        let wrongKind = try runCLI(["import", rdb, "--source", "nope", "--policy", policy])
        #expect(wrongKind.status == 2)
        #expect(!FileManager.default.fileExists(atPath: dir.file("repo/cache")))
        let ok = try runCLI(["import", rdb, "--source", "cache", "--policy", policy])
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
    }
}
