import BackupCore
import CZlib
import Dispatch
import Foundation

/// Streaming gzip compression on several cores, the way pigz does it, producing ONE standard gzip member
/// that `gzip -d` reads.
///
/// The input is cut into blocks. Each block is compressed on its own thread as raw deflate, primed with the
/// last 32 KiB of the block before it (so the ratio stays that of a single stream), and ended with a sync
/// flush (an empty stored block, byte-aligned) except the last, which ends the stream. The block outputs,
/// concatenated in order, are one deflate stream; the CRC-32s of the blocks are combined with
/// `crc32_combine`. Memory is bounded: at most `maxInFlight` blocks are queued at once.
///
/// `write` and `finish` must be called from one thread; the sink is called on that thread, in order.
public final class ParallelGzipWriter {
    public typealias Sink = (UnsafeRawBufferPointer) throws -> Void

    private let level: Int32
    private let blockSize: Int
    private let maxInFlight: Int
    private let storeIncompressible: Bool
    private let sink: Sink
    /// Input bytes of the blocks that were stored rather than deflated.
    public private(set) var storedBytes: UInt64 = 0
    private var current: [UInt8] = []
    private var dictionary: [UInt8] = []
    private var inFlight: [BlockJob] = []
    private var crc: UInt = 0
    private var totalIn: UInt64 = 0
    private var headerWritten = false
    private var finished = false
    private static let windowSize = 32 * 1024
    private let queue = DispatchQueue(label: "kaleem.gzip", attributes: .concurrent)

    /// - Parameters:
    ///   - level: zlib level 1...9.
    ///   - workers: threads compressing at once (nil: one per core).
    ///   - storeIncompressible: blocks whose bytes could not shrink by a tenth are stored (deflate's stored
    ///     blocks: the same gzip format, no compression) instead of deflated.
    public init(level: Int = Defaults.compressionLevel, workers: Int? = nil,
                blockSize: Int = Defaults.compressionBlockSize, storeIncompressible: Bool = true, sink: @escaping Sink) {
        self.level = Int32(level)
        self.storeIncompressible = storeIncompressible
        self.blockSize = blockSize
        let n = max(1, workers ?? ProcessInfo.processInfo.activeProcessorCount)
        maxInFlight = n + 1
        self.sink = sink
        current.reserveCapacity(blockSize)
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        precondition(!finished, "write after finish")
        var offset = 0
        while offset < buffer.count {
            let take = min(blockSize - current.count, buffer.count - offset)
            current.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + take]))
            offset += take
            if current.count == blockSize { try submit(last: false) }
        }
    }

    /// Compresses what is left, drains every block and writes the gzip trailer.
    public func finish() throws {
        guard !finished else { return }
        try submit(last: true)
        while !inFlight.isEmpty { try drainFirst() }
        var trailer = [UInt8](repeating: 0, count: 8)
        let c = UInt32(truncatingIfNeeded: crc)
        let size = UInt32(truncatingIfNeeded: totalIn)
        for i in 0..<4 {
            trailer[i] = UInt8((c >> (8 * UInt32(i))) & 0xff)
            trailer[4 + i] = UInt8((size >> (8 * UInt32(i))) & 0xff)
        }
        try trailer.withUnsafeBytes { try sink($0) }
        finished = true
    }

    /// Waits for queued blocks without writing them (after a failure elsewhere).
    public func cancel() {
        for job in inFlight { job.done.wait() }
        inFlight.removeAll()
        finished = true
    }

    private func submit(last: Bool) throws {
        if !headerWritten {
            // magic, deflate, no flags, mtime 0 (reproducible output), no extra flags, OS = Unix.
            let header: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]
            try header.withUnsafeBytes { try sink($0) }
            headerWritten = true
        }
        let job = BlockJob(input: current, dictionary: dictionary, level: level, last: last, storeIncompressible: storeIncompressible)
        totalIn += UInt64(current.count)
        if current.count >= Self.windowSize {
            dictionary = Array(current[(current.count - Self.windowSize)...])
        } else {
            dictionary = Array((dictionary + current).suffix(Self.windowSize))
        }
        current.removeAll(keepingCapacity: true)
        inFlight.append(job)
        queue.async { job.run() }
        // Keep memory bounded, and write out finished blocks early so the sink stays busy.
        while inFlight.count > maxInFlight { try drainFirst() }
        while let first = inFlight.first, first.isDone { try drainFirst() }
    }

    private func drainFirst() throws {
        let job = inFlight.removeFirst()
        job.done.wait()
        if let failure = job.failure {
            cancel()
            throw BackupFailure("gzip compression failed: \(failure)")
        }
        crc = crc32_combine(crc, job.crc, off_t(job.input.count))
        if job.stored { storedBytes += UInt64(job.input.count) }
        try job.output.withUnsafeBytes { try sink($0) }
    }
}

/// One block's compression, run on a worker thread. Its fields are written by the worker before `done` is
/// signalled and read by the writer only after waiting on it.
private final class BlockJob: @unchecked Sendable {
    let input: [UInt8]
    let dictionary: [UInt8]
    let level: Int32
    let last: Bool
    var output: [UInt8] = []
    var crc: UInt = 0
    /// The block was stored rather than deflated (it would not shrink).
    var stored = false
    let storeIncompressible: Bool
    var failure: String?
    let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var finishedFlag = false

    init(input: [UInt8], dictionary: [UInt8], level: Int32, last: Bool, storeIncompressible: Bool) {
        self.input = input
        self.dictionary = dictionary
        self.level = level
        self.last = last
        self.storeIncompressible = storeIncompressible
    }

    var isDone: Bool { lock.withLock { finishedFlag } }

    func run() {
        compress()
        lock.withLock { finishedFlag = true }
        done.signal()
    }

    private func compress() {
        crc = input.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        // Data that cannot shrink by a tenth (vectors of floats, media, what is already compressed) is stored,
        // not deflated, as borg's `auto` compression does: deflate spends as long on it as on text (about
        // 30 MB/s a core) to save a few percent. Decided per block from the block alone, so the output does
        // not depend on timing or on the number of cores.
        let blockLevel = storeIncompressible && ParallelGzipWriter.entropyBitsPerByte(input) > ParallelGzipWriter.storeAboveBitsPerByte ? 0 : level
        stored = blockLevel == 0
        var stream = z_stream()
        var rc = deflateInit2_(&stream, blockLevel, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
                               Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { failure = "deflateInit2 returned \(rc)"; return }
        defer { deflateEnd(&stream) }
        if !dictionary.isEmpty && blockLevel != 0 { // a stored block refers to nothing before it
            rc = dictionary.withUnsafeBufferPointer { deflateSetDictionary(&stream, $0.baseAddress, uInt($0.count)) }
            guard rc == Z_OK else { failure = "deflateSetDictionary returned \(rc)"; return }
        }
        let bound = Int(deflateBound(&stream, uLong(input.count))) + 64
        output = [UInt8](repeating: 0, count: bound)
        var produced = 0
        let flush = last ? Z_FINISH : Z_SYNC_FLUSH
        input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = uInt(inBuf.count)
            while true {
                if produced == output.count { output.append(contentsOf: [UInt8](repeating: 0, count: 64 * 1024)) }
                let capacity = output.count - produced
                rc = output.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_out = outBuf.baseAddress! + produced
                    stream.avail_out = uInt(capacity)
                    let r = deflate(&stream, flush)
                    produced = outBuf.count - Int(stream.avail_out)
                    return r
                }
                if rc == Z_STREAM_END { break }
                if rc != Z_OK && rc != Z_BUF_ERROR { failure = "deflate returned \(rc)"; return }
                if !last && stream.avail_in == 0 && stream.avail_out > 0 { break }
            }
        }
        output.removeSubrange(produced...)
    }
}

extension ParallelGzipWriter {
    /// Above this order-0 entropy (bits per byte), entropy coding could save under a tenth of the block.
    public static let storeAboveBitsPerByte = 7.2

    /// The order-0 (byte histogram) entropy of `bytes`, 0...8 bits per byte: a lower bound on what Huffman
    /// coding alone can reach, and a cheap test (a few GB/s) of whether deflate is worth running.
    public static func entropyBitsPerByte(_ bytes: [UInt8]) -> Double {
        guard !bytes.isEmpty else { return 0 }
        var counts = [Int](repeating: 0, count: 256)
        bytes.withUnsafeBufferPointer { b in
            counts.withUnsafeMutableBufferPointer { c in
                for byte in b { c[Int(byte)] &+= 1 }
            }
        }
        let total = Double(bytes.count)
        var bits = 0.0
        for n in counts where n > 0 {
            let p = Double(n) / total
            bits -= p * log2(p)
        }
        return bits
    }
}
