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

@Suite(.blockingThreads) struct ArchiveVerifierTests {
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

/// Archives of MongoDB 5+ deployments, written in mongodump 100.x's layout by `TestArchiveWriter`: views,
/// time-series collections, capped, clustered and empty collections, interleaved blocks, the oplog.
@Suite(.blockingThreads) struct ModernArchiveTests {
    @Test func viewsTimeseriesAndEmptyCollectionsVerify() throws {
        let bytes = TestArchiveWriter.mongo7Archive()
        for chunk in [7, 4096] {
            let report = try MongoArchiveVerifier.verify(ChunkedBytes(bytes, chunkSize: chunk))
            #expect(report.namespaces == ["app.users": 250, "app.events": 120, "app.capped": 7, "app.clustered": 3, "app.empty": 0,
                                          "app.weather": 12, "app.system.views": 1, "oplog": 5])
            #expect(report.views == ["app.active_users"])
            #expect(report.timeseries == ["app.weather": "app.system.buckets.weather"])
            #expect(report.oplogEntries == 5)
            #expect(report.restorableDocuments == 250 + 120 + 7 + 3 + 12 + 1)
        }
    }

    /// From MongoDB 8.3 a time-series collection's documents are dumped under its own name.
    @Test func timeseriesUnderItsOwnNameFrom83() throws {
        var w = TestArchiveWriter(serverVersion: "8.3.0")
        w.metadata(db: "app", collection: "weather", type: "timeseries", indexes: [])
        w.endPrelude()
        w.block(db: "app", collection: "weather", documents: TestArchiveWriter.documents(4))
        w.end(db: "app", collection: "weather")
        let report = try MongoArchiveVerifier.verify(ChunkedBytes(w.bytes, chunkSize: 64))
        #expect(report.namespaces == ["app.weather": 4])
    }

    /// The buckets of a time-series collection must end like any collection's: a truncated archive is caught.
    @Test func missingEndOfTheBucketsIsCaught() throws {
        var w = TestArchiveWriter()
        w.metadata(db: "app", collection: "weather", type: "timeseries", indexes: [])
        w.endPrelude()
        w.block(db: "app", collection: "system.buckets.weather", documents: TestArchiveWriter.documents(4))
        #expect(throws: MongoArchiveError.self) { try MongoArchiveVerifier.verify(ChunkedBytes(w.bytes, chunkSize: 64)) }
        // A collection announced in the prelude with no end at all (not a view) is caught too.
        var v = TestArchiveWriter()
        v.metadata(db: "app", collection: "users")
        v.endPrelude()
        #expect(throws: MongoArchiveError.self) { try MongoArchiveVerifier.verify(ChunkedBytes(v.bytes, chunkSize: 64)) }
    }

    /// Every flipped byte of the body (documents, headers, CRCs) is caught or leaves the counts intact.
    @Test func flippedBytesInTheBodyAreCaught() throws {
        let bytes = TestArchiveWriter.mongo7Archive()
        let good = try MongoArchiveVerifier.verify(ChunkedBytes(bytes, chunkSize: 512))
        var undetected = 0
        for i in stride(from: 4, to: bytes.count, by: 97) {
            var copy = bytes
            copy[i] ^= 0x20
            if let r = try? MongoArchiveVerifier.verify(ChunkedBytes(copy, chunkSize: 512)), r.namespaces == good.namespaces { undetected += 1 }
        }
        // Bytes of the prelude's Extended JSON (names, options) change no count and carry no CRC.
        #expect(undetected < bytes.count / 97 / 4, "\(undetected) flips undetected")
    }
}
