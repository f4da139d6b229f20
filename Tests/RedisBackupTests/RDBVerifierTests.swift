import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

func fixture(_ name: String) throws -> [UInt8] {
    let path = fixturesDirectory + "/redis/" + name
    guard let data = FileManager.default.contents(atPath: path) else { throw BackupFailure("fixture missing: \(path)") }
    return Array(data)
}

struct RDBVerifierTests {
    /// Expected values read with the real redis-check-rdb (Tests/Fixtures/PROVENANCE.md).
    @Test(arguments: [
        ("encodings.rdb", 4, 13, RDBReport.Checksum.absent),
        ("hash-zipmap.rdb", 3, 1, .absent),
        ("hash-ziplist.rdb", 9, 1, .verified),
        ("list-quicklist.rdb", 8, 2, .verified),
        ("zset-ziplist.rdb", 10, 1, .verified),
    ])
    func readsRealFixtures(name: String, version: Int, keys: Int, checksum: RDBReport.Checksum) throws {
        let bytes = try fixture(name)
        for chunk in [1, 3, 64, 1 << 20] {
            let report = try RDBVerifier.verify(ChunkedBytes(bytes, chunkSize: chunk))
            #expect(report.version == version)
            #expect(report.keys == keys)
            #expect(report.checksum == checksum)
            #expect(report.bytes == Int64(bytes.count))
        }
    }

    @Test func rejectsTheCorruptFixture() throws {
        do {
            _ = try RDBVerifier.verify(ChunkedBytes(try fixture("corrupt_empty_keys.rdb"), chunkSize: 7))
            Issue.record("corrupt_empty_keys.rdb accepted")
        } catch let error as RDBError {
            #expect(error.problem.contains("no elements"))
            #expect(error.exitStatus == .integrity)
        }
    }

    /// Any single flipped byte of a checksummed RDB is caught (by structure or by the CRC).
    @Test(arguments: ["hash-ziplist.rdb", "list-quicklist.rdb", "zset-ziplist.rdb"])
    func everyFlippedByteIsCaught(name: String) throws {
        let bytes = try fixture(name)
        for i in 0..<bytes.count {
            var copy = bytes
            copy[i] ^= 0x01
            #expect(throws: RDBError.self, "flip at \(i)") { try RDBVerifier.verify(ChunkedBytes(copy, chunkSize: 16)) }
        }
    }

    @Test(arguments: ["hash-ziplist.rdb", "encodings.rdb"])
    func everyTruncationIsCaught(name: String) throws {
        let bytes = try fixture(name)
        for n in 0..<bytes.count - (name == "encodings.rdb" ? 1 : 8) {
            #expect(throws: RDBError.self, "truncated at \(n)") {
                try RDBVerifier.verify(ChunkedBytes(Array(bytes.prefix(n)), chunkSize: 5))
            }
        }
    }

    @Test func rejectsWhatIsNotAnRDB() {
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(Array("HELLO WORLD".utf8), chunkSize: 4)) }
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(Array("REDIS0099".utf8) + [0xFF], chunkSize: 4)) }
    }

    @Test func zeroChecksumMeansDisabled() throws {
        var bytes = try fixture("zset-ziplist.rdb")
        for i in (bytes.count - 8)..<bytes.count { bytes[i] = 0 }
        #expect(try RDBVerifier.verify(ChunkedBytes(bytes, chunkSize: 100)).checksum == .disabled)
    }
}
