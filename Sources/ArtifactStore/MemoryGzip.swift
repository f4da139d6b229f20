// gzip of small buffers held in memory (the chunks of a bucket snapshot's manifest): deterministic output
// (no name, no time in the header) so equal input gives equal bytes and so an equal content address, and a
// decompression that refuses to grow past a limit (a chunk that inflates without end is rejected, not obeyed).
import BackupCore
import CZlib
import Foundation

public enum MemoryGzip {
    /// One gzip member of `input` at `level`; equal input and level give equal output (zlib writes mtime 0).
    public static func compress(_ input: Data, level: Int32 = 6) throws -> Data {
        var stream = z_stream()
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw BackupFailure("cannot start gzip compression (zlib)")
        }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count))) + 32
        var output = Data(count: bound)
        var produced = 0
        let rc: Int32 = input.withUnsafeBytes { (source: UnsafeRawBufferPointer) -> Int32 in
            output.withUnsafeMutableBytes { (target: UnsafeMutableRawBufferPointer) -> Int32 in
                stream.next_in = UnsafeMutablePointer(mutating: source.bindMemory(to: Bytef.self).baseAddress)
                stream.avail_in = uInt(source.count)
                stream.next_out = target.bindMemory(to: Bytef.self).baseAddress
                stream.avail_out = uInt(target.count)
                let rc = deflate(&stream, Z_FINISH)
                produced = target.count - Int(stream.avail_out)
                return rc
            }
        }
        guard rc == Z_STREAM_END else { throw BackupFailure("gzip compression did not finish (zlib \(rc))") }
        output.count = produced
        return output
    }

    /// The content of one gzip member; nil when the bytes are not a complete gzip member (damaged, truncated,
    /// trailing bytes, wrong CRC) or inflate to more than `limit` bytes.
    public static func decompress(_ input: Data, limit: Int) -> Data? {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var finished = false
        let ok: Bool = input.withUnsafeBytes { (source: UnsafeRawBufferPointer) -> Bool in
            stream.next_in = UnsafeMutablePointer(mutating: source.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(source.count)
            while true {
                let (rc, got): (Int32, Int) = buffer.withUnsafeMutableBytes { target in
                    stream.next_out = target.bindMemory(to: Bytef.self).baseAddress
                    stream.avail_out = uInt(target.count)
                    let rc = inflate(&stream, Z_NO_FLUSH)
                    return (rc, target.count - Int(stream.avail_out))
                }
                guard got <= limit - output.count else { return false }
                output.append(contentsOf: buffer[0..<got])
                if rc == Z_STREAM_END { finished = true; return stream.avail_in == 0 }
                if rc != Z_OK { return false }
                if got == 0 && stream.avail_in == 0 { return false } // truncated
            }
        }
        return ok && finished ? output : nil
    }
}
