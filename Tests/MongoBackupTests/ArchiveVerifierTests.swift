import ArtifactStore
import BackupCore
import Foundation
import MongoBackup
import TestSupport
import Testing

func mongoFixture(_ name: String) throws -> [UInt8] {
    let path = fixturesDirectory + "/mongo/" + name
    guard let data = FileManager.default.contents(atPath: path) else { throw BackupFailure("fixture missing: \(path)") }
    return Array(data)
}

struct ArchiveVerifierTests {
    /// Expected counts from Tests/Fixtures/PROVENANCE.md (read with the real tools).
    @Test(arguments: [
        ("test.bar.archive", ["admin.system.version": 1, "test.bar": 1]),
        ("dump-w-oplog.archive", ["test.foo": 25, "admin.system.version": 1, "oplog": 18]),
    ])
    func readsRealArchives(name: String, expected: [String: Int]) throws {
        let bytes = try mongoFixture(name)
        for size in [1, 5, 100, 1 << 20] {
            let report = try MongoArchiveVerifier.verify(ChunkedBytes(bytes, chunkSize: size))
            #expect(report.namespaces == expected)
            #expect(report.formatVersion == "0.1")
            #expect(report.serverVersion != nil)
            #expect(report.bytes == Int64(bytes.count))
        }
    }

    @Test func rejectsBadFormatWithAUsefulMessage() throws {
        do {
            let r = try MongoArchiveVerifier.verify(ChunkedBytes(try mongoFixture("bad-format.archive"), chunkSize: 64))
            Issue.record("bad-format.archive accepted: \(r)")
        } catch let error as MongoArchiveError {
            #expect(error.exitStatus == .integrity)
            #expect(!error.problem.isEmpty)
            print("bad-format.archive: \(error)")
        }
    }

    @Test(arguments: ["test.bar.archive", "dump-w-oplog.archive"])
    func everyTruncationIsCaught(name: String) throws {
        let bytes = try mongoFixture(name)
        for n in 0..<bytes.count {
            #expect(throws: MongoArchiveError.self, "truncated at \(n)") {
                try MongoArchiveVerifier.verify(ChunkedBytes(Array(bytes.prefix(n)), chunkSize: 7))
            }
        }
    }

    /// A flipped byte inside a document's contents is caught by the namespace CRC.
    @Test func flippedDocumentByteIsACRCMismatch() throws {
        var bytes = try mongoFixture("dump-w-oplog.archive")
        // Find a document of test.foo: its "_id" field name appears in documents only after the prelude.
        let needle = Array("_id".utf8)
        let prelude = bytes.count / 3
        let at = try #require((prelude..<bytes.count - 3).first { Array(bytes[$0..<$0 + 3]) == needle })
        bytes[at + 5] ^= 0x01
        do {
            _ = try MongoArchiveVerifier.verify(ChunkedBytes(bytes, chunkSize: 64))
            Issue.record("flipped byte accepted")
        } catch let error as MongoArchiveError {
            #expect(error.problem.contains("CRC mismatch") || error.problem.contains("malformed"), "\(error)")
        }
    }

    @Test func gzippedArchiveVerifiesAfterInflating() throws {
        let dir = TemporaryDirectory()
        let plain = dir.file("a.archive")
        try Data(try mongoFixture("dump-w-oplog.archive")).write(to: URL(fileURLWithPath: plain))
        #expect(try runProcess("gzip", ["-k", plain]).status == 0)
        let gz = Array(try Data(contentsOf: URL(fileURLWithPath: plain + ".gz")))
        #expect(MongoArchiveVerifier.isGzip(gz))
        #expect(throws: MongoArchiveError.self) { try MongoArchiveVerifier.verify(ChunkedBytes(gz, chunkSize: 100)) }
        let report = try MongoArchiveVerifier.verify(try InflatingSource(ChunkedBytes(gz, chunkSize: 100)))
        #expect(report.documents == 44)
        #expect(report.restorableDocuments == 26)
    }

    @Test func emptyAndGarbage() {
        #expect(throws: MongoArchiveError.self) { try MongoArchiveVerifier.verify(ChunkedBytes([], chunkSize: 10)) }
        #expect(throws: MongoArchiveError.self) {
            try MongoArchiveVerifier.verify(ChunkedBytes(Array("this is not an archive at all".utf8), chunkSize: 10))
        }
    }
}
