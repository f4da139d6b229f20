@testable import BackupEngine
import BackupCore
import Crypto
import Foundation
import TarFormat
import TestSupport
import Testing

/// The tar reader against what Qdrant (1.12+, tar-rs `sparse(true)`) writes: old-GNU sparse entries (type S,
/// the map in the header and in extension headers) and base-256 numbers. Vectors made by GNU tar 1.34
/// (`--sparse --format=gnu`, the same format tar-rs writes; Tests/Fixtures/PROVENANCE.md), and crafted
/// headers for what a real file of 8 GiB would take. A reader may reject; it never traps.
@Suite(.blockingThreads) struct QdrantTarTests {
    typealias Bytes = ChunkedBytes // odd chunk sizes: headers and content cross chunk boundaries

    static func fixture(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/qdrant/" + name)))
    }

    /// Every entry; the content of those at most `expand` bytes long (holes filled), hashed.
    static func walk(_ bytes: [UInt8], expand: Int64 = 64 << 20) throws -> [(entry: TarEntry, sha256: String?)] {
        var reader = TarReader(Bytes(bytes, chunkSize: 700))
        var out: [(TarEntry, String?)] = []
        while let entry = try reader.next() {
            var sha: String?
            if entry.type == .file && entry.size <= expand {
                var hasher = SHA256()
                var n: Int64 = 0
                try reader.content { hasher.update(data: $0); n += Int64($0.count) }
                #expect(n == entry.size, "\(entry.path): \(n) bytes read, \(entry.size) declared")
                sha = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            }
            out.append((entry, sha))
        }
        #expect(reader.ended)
        return out
    }

    @Test func gnuSparseWALSegment() throws {
        let entries = try Self.walk(try Self.fixture("sparse-wal.tar"))
        #expect(entries.map(\.entry.path) == ["config.json", "0/wal/open-1"])
        let wal = try #require(entries.last)
        #expect(wal.entry.type == .file && wal.entry.size == 1 << 20)
        #expect(wal.entry.sparse == [TarSparseChunk(offset: 0, length: 4096), TarSparseChunk(offset: 299_008, length: 8192),
                                     TarSparseChunk(offset: 1 << 20, length: 0)])
        #expect(wal.entry.storedSize == 12_288)
        // The file as it was, holes and all (sha256 of the original, PROVENANCE.md).
        #expect(wal.sha256 == "16c156f35af02c31944292e0b3febe4929987a0c97297d429820a11589eba3a4")
        #expect(entries.first?.sha256 == "d368bba59a4d47ce6a0aec6497248f1ce8f2a461d49b67b6c565d808ffc097a8")
        // And a Qdrant snapshot check walks it (config.json present).
        let report = try QdrantSnapshotCheck.verify(Bytes(try Self.fixture("sparse-wal.tar"), chunkSize: 700))
        #expect(report.entries == 2)
    }

    @Test func gnuSparseWithExtensionHeaders() throws {
        let entries = try Self.walk(try Self.fixture("sparse-extended.tar"))
        let file = try #require(entries.first)
        #expect(entries.count == 1 && file.entry.path == "0/wal/open-2" && file.entry.size == 2 << 20)
        let map = try #require(file.entry.sparse)
        #expect(map.filter { $0.length > 0 }.count == 30, "\(map)") // 4 in the header, the rest in two extension headers
        #expect(file.sha256 == "f82f3a99654de1b6bc3c1dfbc61e7cd54edce0364ae1ad383df0613b756a92d8")
    }

    /// A 9 GiB file (a hole, then 21 bytes): its real size and map offsets are base-256 in GNU tar's header.
    @Test func base256RealSizeAndOffsets() throws {
        let entries = try Self.walk(try Self.fixture("sparse-9gib.tar"), expand: 0)
        let big = try #require(entries.first?.entry)
        #expect(big.path == "big" && big.size == 9_663_676_437)
        #expect(big.sparse == [TarSparseChunk(offset: 9_663_676_416, length: 21), TarSparseChunk(offset: 9_663_676_437, length: 0)])
        #expect(big.storedSize == 21)
    }

    // MARK: crafted headers

    /// A ustar header (GNU magic when `gnu`) with `fields` written raw at their offsets, checksum computed.
    static func header(name: String = "big.bin", type: UInt8 = UInt8(ascii: "0"), gnu: Bool = false, fields: [(Int, [UInt8])] = []) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ at: Int, _ bytes: [UInt8]) { for (i, b) in bytes.enumerated() { h[at + i] = b } }
        put(0, Array(name.utf8))
        put(100, Array("0000644\0".utf8))
        put(108, Array("0000000\0".utf8))
        put(116, Array("0000000\0".utf8))
        put(124, Array("00000000000\0".utf8))
        put(136, Array("00000000000\0".utf8))
        h[156] = type
        put(257, gnu ? Array("ustar  \0".utf8) : Array("ustar\u{0}00".utf8))
        for (at, bytes) in fields { put(at, bytes) }
        checksum(&h)
        return h
    }

    static func checksum(_ h: inout [UInt8]) {
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int($1) }
        let text = Array(String(format: "%06o", sum).utf8) + [0, 32]
        for (i, b) in text.enumerated() { h[148 + i] = b }
    }

    static func octal(_ v: Int64, _ width: Int) -> [UInt8] { Array(String(format: "%0\(width - 1)llo", v).utf8) + [0] }

    static func base256(_ v: UInt64, first: UInt8 = 0x80) -> [UInt8] {
        [first, 0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * (7 - $0))) }
    }

    static func expectRejected(_ bytes: [UInt8], _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try walk(bytes, expand: 1 << 20)
            Issue.record("accepted; expected a rejection with \"\(words)\"", sourceLocation: sourceLocation)
        } catch let error as TarError {
            #expect(error.problem.contains(words), "\(error.problem)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
    }

    /// What tar-rs writes for a file of 8 GiB (`num_field_wrapper_into`: 0x80, then the size big-endian): read
    /// as 8 GiB, then rejected as truncated (the archive holds a few bytes of it), not trapped on.
    @Test func base256SizeHeaderOnly() throws {
        let size: UInt64 = 8 << 30
        let archive = Self.header(fields: [(124, Self.base256(size))]) + [UInt8](repeating: 7, count: 1000)
        var reader = TarReader(Bytes(archive, chunkSize: 700))
        let entry = try #require(try reader.next())
        #expect(entry.size == Int64(size) && entry.path == "big.bin")
        #expect(throws: TarError.self) { try reader.content { _ in } }
        Self.expectRejected(archive, "truncated")
        // The GNU tar header form (the same for sizes past 2^33), and the largest a size can be.
        let huge = Self.header(fields: [(124, [0x80] + [UInt8](repeating: 0, count: 3) + [0x7f] + [UInt8](repeating: 0xff, count: 7))])
        var r2 = TarReader(Bytes(huge, chunkSize: 700))
        #expect(try r2.next()?.size == Int64.max)
    }

    @Test func base256NegativeOrPastInt64IsRejected() {
        Self.expectRejected(Self.header(fields: [(124, [UInt8](repeating: 0xff, count: 12))]), "negative")
        Self.expectRejected(Self.header(fields: [(124, [0x80] + [UInt8](repeating: 0xff, count: 11))]), "past 2^63")
        Self.expectRejected(Self.header(fields: [(124, [0x80, 0, 0, 1] + [UInt8](repeating: 0, count: 8))]), "past 2^63")
        Self.expectRejected(Self.header(fields: [(108, [0xc0] + [UInt8](repeating: 0, count: 7))]), "negative")
    }

    /// A sparse header with `chunks` (offset, length) in its map, `real` as its real size, `stored` bytes of
    /// content declared (and present).
    static func sparse(_ chunks: [(Int64, Int64)], real: Int64, stored: Int64, extended: Bool = false, gnu: Bool = true) -> [UInt8] {
        var fields: [(Int, [UInt8])] = [(124, octal(stored, 12)), (483, octal(real, 12))]
        for (i, c) in chunks.prefix(4).enumerated() {
            fields.append((386 + i * 24, octal(c.0, 12)))
            fields.append((386 + i * 24 + 12, octal(c.1, 12)))
        }
        if extended { fields.append((482, [1])) }
        let h = header(name: "wal", type: UInt8(ascii: "S"), gnu: gnu, fields: fields)
        let content = [UInt8](repeating: 0x41, count: Int(stored)) + [UInt8](repeating: 0, count: Int((512 - stored % 512) % 512))
        return h + content + [UInt8](repeating: 0, count: 1024)
    }

    @Test func sparseMapsAreChecked() throws {
        // A good one first: two chunks, a hole between and after.
        let good = try Self.walk(Self.sparse([(0, 100), (1000, 50)], real: 4096, stored: 150))
        #expect(good.first?.entry.size == 4096 && good.first?.entry.storedSize == 150)
        Self.expectRejected(Self.sparse([(1000, 50), (0, 100)], real: 4096, stored: 150), "out of order")
        Self.expectRejected(Self.sparse([(0, 100), (50, 50)], real: 4096, stored: 150), "overlaps")
        Self.expectRejected(Self.sparse([(0, 100), (4000, 200)], real: 4096, stored: 300), "past the file's real size")
        Self.expectRejected(Self.sparse([(0, 100), (1000, 50)], real: 4096, stored: 149), "the header declares 149 stored")
        Self.expectRejected(Self.sparse([(0, 100)], real: 4096, stored: 100, gnu: false), "without the GNU magic")
        // An extension header announced, the archive ends (a truncated map).
        let cut = Array(Self.sparse([(0, 100)], real: 4096, stored: 100, extended: true).prefix(512))
        Self.expectRejected(cut, "sparse extension header")
        // Offsets near Int64.max (base-256): the arithmetic is checked, not trapped.
        let nearMax = Self.header(name: "wal", type: UInt8(ascii: "S"), gnu: true,
                                  fields: [(124, Self.octal(100, 12)), (386, Self.base256(UInt64(Int64.max - 10))), (398, Self.octal(100, 12)),
                                           (483, Self.base256(UInt64(Int64.max)))])
        Self.expectRejected(nearMax + [UInt8](repeating: 0x41, count: 512) + [UInt8](repeating: 0, count: 1024), "past the file's real size")
    }

    /// Extension headers that add no chunk, each announcing another: bounded, not read forever.
    @Test func emptyExtensionHeadersAreBounded() {
        var ext = [UInt8](repeating: 0, count: 512)
        ext[504] = 1
        let limit = TarReader<ChunkedBytes>.maxSparseChunks / 21 + 1
        let archive = Array(Self.sparse([], real: 0, stored: 0, extended: true).prefix(512))
            + Array([[UInt8]](repeating: ext, count: limit + 1).joined()) + [UInt8](repeating: 0, count: 1024)
        Self.expectRejected(archive, "sparse extension headers")
    }

    /// Every byte of the sparse header area of the GNU tar vector set to other values (checksum recomputed):
    /// read or rejected, never a trap, never more content than the archive holds.
    @Test func sparseHeaderMutationsNeverTrap() throws {
        let original = try Self.fixture("sparse-wal.tar")
        let at = 1024 // the S header: after config.json's header and its one block of content
        #expect(original[at + 156] == UInt8(ascii: "S"))
        var accepted = 0
        for i in [124, 125, 135, 483, 484, 494] + Array(345..<512) {
            for value: UInt8 in [0, 0x30, 0x37, 0x80, 0xff, 0x20] {
                var bytes = original
                var h = Array(bytes[at..<at + 512])
                h[i] = value
                Self.checksum(&h)
                bytes.replaceSubrange(at..<at + 512, with: h)
                if (try? Self.walk(bytes, expand: 4 << 20)) != nil { accepted += 1 }
            }
        }
        #expect(accepted > 0)
    }

    /// A pax-format sparse file keeps its map in the content: refused rather than read as a plain file.
    @Test func paxSparseIsRefused() {
        let record = Array("22 GNU.sparse.major=1\n".utf8)
        let pax = Self.header(name: "PaxHeaders/1", type: UInt8(ascii: "x"), fields: [(124, Self.octal(Int64(record.count), 12))])
        let archive = pax + record + [UInt8](repeating: 0, count: 512 - record.count) + Self.header(name: "f") + [UInt8](repeating: 0, count: 1024)
        Self.expectRejected(archive, "pax-format sparse")
    }
}

