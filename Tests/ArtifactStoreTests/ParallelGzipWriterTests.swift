import ArtifactStore
import BackupCore
import Foundation
import TestSupport
import Testing

@Suite(.blockingThreads) struct ParallelGzipWriterTests {
    /// Compressible text with some randomness, so blocks compress differently.
    static func sample(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        var out = [UInt8]()
        out.reserveCapacity(count)
        let words = ["redis", "kaleem", "backup", "mongo", "snapshot", "0123456789", "\n", " ", "value:", "key:"].map { Array($0.utf8) }
        while out.count < count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            if state >> 60 == 0 {
                out.append(UInt8(truncatingIfNeeded: state >> 33)) // a random byte now and then
            } else {
                out += words[Int((state >> 33) % UInt64(words.count))]
            }
        }
        return Array(out.prefix(count))
    }

    static let block = Defaults.compressionBlockSize

    @Test(arguments: [0, 1, 1000, block - 1, block, block + 1, 5 * block + 17, 40 * block])
    func gzipReadsWhatWeWrite(size: Int) throws {
        let dir = TemporaryDirectory()
        let data = Self.sample(size, seed: UInt64(size))
        let path = dir.file("out.gz")
        let writer = try ArtifactWriter(path: path, compression: CompressionPolicy(level: 6, workers: 2))
        // Feed in uneven pieces so block boundaries fall anywhere.
        var offset = 0
        var piece = 1
        while offset < data.count {
            let n = min(piece, data.count - offset)
            try data[offset..<offset + n].withUnsafeBytes { try writer.write($0) }
            offset += n
            piece = piece * 3 + 7
        }
        let stored = try writer.commit()
        #expect(stored.bytesRaw == Int64(size))
        #expect(FileIO.fileSize(path) == stored.bytesStored)
        #expect(FileIO.fileMode(path) == 0o600)
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
        #expect(try runProcess("gzip", ["-t", path]).status == 0)
        try gunzip(path, to: dir.file("out"))
        #expect(FileManager.default.contents(atPath: dir.file("out")) == Data(data))
        #expect(try sha256sum(path) == stored.sha256)
        // Our own reader agrees, and hashes the same bytes.
        let reader = try GzipReader(path: path)
        var back = [UInt8]()
        while try reader.read({ back += $0 }) {}
        #expect(back == data)
        #expect(reader.storedSHA256 == stored.sha256)
    }

    /// The ratio of the parallel writer stays close to a single stream's (the 32 KiB dictionary carries over).
    @Test func ratioCloseToGzip() throws {
        let dir = TemporaryDirectory()
        let data = Self.sample(4 << 20, seed: 7)
        _ = FileManager.default.createFile(atPath: dir.file("plain"), contents: Data(data))
        let ours = try ArtifactWriter(path: dir.file("ours.gz"), compression: CompressionPolicy(level: 6, workers: 2))
        try data.withUnsafeBytes { try ours.write($0) }
        let stored = try ours.commit()
        let r = try runProcess("/bin/sh", ["-c", "gzip -6 -c \"$0\" | wc -c", dir.file("plain")])
        let gzipSize = Int64(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))!
        #expect(Double(stored.bytesStored) <= Double(gzipSize) * 1.02, "ours \(stored.bytesStored), gzip \(gzipSize)")
    }

    @Test func abortLeavesNothing() throws {
        let dir = TemporaryDirectory()
        let writer = try ArtifactWriter(path: dir.file("x.gz"), compression: CompressionPolicy())
        let data = Self.sample(300_000, seed: 1)
        try data.withUnsafeBytes { try writer.write($0) }
        #expect(FileManager.default.fileExists(atPath: dir.file("x.gz.partial")))
        writer.abort()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func truncatedOrCorruptGzipIsAnIntegrityError() throws {
        let dir = TemporaryDirectory()
        let writer = try ArtifactWriter(path: dir.file("x.gz"), compression: CompressionPolicy())
        try Self.sample(200_000, seed: 3).withUnsafeBytes { try writer.write($0) }
        _ = try writer.commit()
        var bytes = try Data(contentsOf: URL(fileURLWithPath: dir.file("x.gz")))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: dir.file("half.gz")))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: dir.file("flipped.gz")))
        for name in ["half.gz", "flipped.gz"] {
            let reader = try GzipReader(path: dir.file(name))
            #expect(throws: IntegrityError.self) { while try reader.read({ _ in }) {} }
        }
    }

    /// Bytes that cannot shrink (random: dense vectors, media) are stored, not deflated: the file is still one
    /// gzip member every reader takes, a few bytes larger than its input, and the writer says how much it
    /// stored. Text around them is deflated as before. Turned off, everything is deflated.
    @Test func incompressibleBlocksAreStoredAndStillGzip() throws {
        let dir = TemporaryDirectory()
        var state: UInt64 = 99
        let random = (0..<(6 * Self.block)).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        let text = Self.sample(6 * Self.block, seed: 5)
        let data = text + random + text
        for store in [true, false] {
            let path = dir.file("out-\(store).gz")
            var stored: UInt64 = 0
            let file = try AtomicFileWriter(path: path)
            let gzip = ParallelGzipWriter(level: 6, workers: 2, storeIncompressible: store) { try file.write($0) }
            try data.withUnsafeBytes { try gzip.write($0) }
            try gzip.finish()
            stored = gzip.storedBytes
            try file.commit()
            #expect(try runProcess("gzip", ["-t", path]).status == 0)
            try gunzip(path, to: dir.file("back-\(store)"))
            #expect(FileManager.default.contents(atPath: dir.file("back-\(store)")) == Data(data))
            let size = FileIO.fileSize(path) ?? 0
            if store {
                #expect(stored == UInt64(random.count), "every random block stored, no text block")
                // Stored blocks cost 5 bytes per 64 KiB; the text still compresses.
                #expect(size < Int64(random.count) + Int64(text.count) / 2)
            } else {
                #expect(stored == 0)
            }
        }
        #expect(ParallelGzipWriter.entropyBitsPerByte(random) > 7.9)
        #expect(ParallelGzipWriter.entropyBitsPerByte(text) < 5)
        #expect(ParallelGzipWriter.entropyBitsPerByte([]) == 0)
    }
}
