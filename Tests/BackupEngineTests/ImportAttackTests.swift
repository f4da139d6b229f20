import BackupCatalog
@testable import BackupEngine
import BackupCore
import Foundation
import TestSupport
import Testing

/// Review round 2 of `import` (attack2): what a dump directory may hold that mongodump never writes.
@Suite(.blockingThreads) struct ImportAttackTests {
    static func dump(_ s: MongoEndToEndTests.Setup, _ name: String) throws -> String {
        let dump = s.dir.file(name)
        try FileManager.default.createDirectory(atPath: dump + "/kaleem", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dump + "/kaleem/users.bson", contents: Data(TestArchiveWriter.documents(5, tag: "user").joined()))
        return dump
    }

    /// A `<db>` that is a link to another directory: refused (nothing outside the dump is read), exit 2.
    @Test func aDatabaseDirectoryThatIsASymlinkIsRefused() throws {
        let s = MongoEndToEndTests.Setup()
        let dump = try Self.dump(s, "mongodb-20261201")
        let outside = s.dir.file("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: outside + "/secrets.bson", contents: Data(TestArchiveWriter.documents(3, tag: "secret").joined()))
        try FileManager.default.createSymbolicLink(atPath: dump + "/evil", withDestinationPath: outside)
        let r = try s.run(["import", dump])
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("evil: is a symbolic link"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.dir.file("repo/mongo")))
    }

    /// A FIFO named like a collection (or the oplog) used to block `import` forever in open(2); now refused at once.
    @Test func aFIFOInADumpIsRefusedNotWaitedFor() throws {
        let s = MongoEndToEndTests.Setup()
        let dump = try Self.dump(s, "mongodb-20261202")
        #expect(mkfifo(dump + "/kaleem/stuck.bson", 0o600) == 0)
        let r = try s.run(["import", dump, "--dry-run"])
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("stuck.bson: is a FIFO"), "\(r.stderr)")
        let other = try Self.dump(s, "mongodb-20261203")
        #expect(mkfifo(other + "/oplog.bson", 0o600) == 0)
        let o = try s.run(["import", other, "--dry-run"])
        #expect(o.status == 2 && o.stderr.contains("oplog.bson: is a FIFO"), "\(o.status) \(o.stderr)")
        // A collection file that is a link (to /etc/shadow, say) is named as a link, not "cannot be opened".
        let linked = try Self.dump(s, "mongodb-20261204")
        try FileManager.default.createSymbolicLink(atPath: linked + "/kaleem/shadow.bson", withDestinationPath: "/etc/shadow")
        let l = try s.run(["import", linked, "--dry-run"])
        #expect(l.status == 2 && l.stderr.contains("shadow.bson: is a symbolic link"), "\(l.status) \(l.stderr)")
    }

    /// A time in a name that is no time (12:61:39, 25:00, the year 1) is refused, not carried over by the calendar.
    @Test func timesOutOfRangeInNamesAreRefused() throws {
        let s = MongoEndToEndTests.Setup()
        for name in ["mongodb-20261201-126139", "mongodb-20261201-250000", "mongodb-20261201-120099", "mongodb-00010101"] {
            let dump = try Self.dump(s, name)
            let r = try s.run(["import", dump, "--dry-run"])
            #expect(r.status == 2 && r.stderr.contains("which is not a date"), "\(name): \(r.status) \(r.stdout) \(r.stderr)")
        }
        let good = try Self.dump(s, "mongodb-20261201-235959")
        let r = try s.run(["import", good, "--dry-run"])
        #expect(r.status == 0 && r.stdout.contains("2026-12-01T23:59:59"), "\(r.stdout) \(r.stderr)")
    }

    /// The digest that recognises a re-import is the first pass's; the second pass (the one stored) must read
    /// the same bytes, or a file replaced in between was stored under the digest of the other (reproduced with
    /// strace delaying the lock: the original then reported "already imported" while the repository held the
    /// replacement). Now a mismatch fails the import.
    @Test func aFileThatChangesBetweenThePassesIsNotStored() throws {
        let dir = TemporaryDirectory()
        let rdb = dir.file("redis-20261201.rdb")
        try FileManager.default.copyItem(atPath: fixturesDirectory + "/redis/encodings.rdb", toPath: rdb)
        let first = try Importer.digest(rdb, format: .rdb)
        var same = 0
        try Importer.stream(rdb, format: .rdb, expecting: first) { same += $0.count }
        #expect(same > 0)
        try FileManager.default.removeItem(atPath: rdb)
        try FileManager.default.copyItem(atPath: fixturesDirectory + "/redis/hash-ziplist.rdb", toPath: rdb)
        #expect {
            try Importer.stream(rdb, format: .rdb, expecting: first) { _ in }
        } throws: { "\($0)".contains("changed while it was imported") }
    }
}
