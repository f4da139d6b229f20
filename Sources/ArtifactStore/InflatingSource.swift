import BackupCore
import CZlib

/// Decompresses a gzip stream read from another `ByteSource` (concatenated members included), for archives
/// that arrive gzipped (`mongodump --archive --gzip`).
public final class InflatingSource<Upstream: ByteSource>: ByteSource {
    private var upstream: Upstream
    private var stream = z_stream()
    private var input: [UInt8] = []
    private var inputPos = 0
    private var output = [UInt8](repeating: 0, count: 256 * 1024)
    private var upstreamDone = false
    private var memberEnded = false
    private var started = false

    public init(_ upstream: Upstream) throws {
        self.upstream = upstream
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw BackupFailure("cannot start gzip decompression")
        }
    }

    deinit { inflateEnd(&stream) }

    public func nextChunk() throws -> [UInt8]? {
        while true {
            if inputPos == input.count && !upstreamDone {
                if let next = try upstream.nextChunk() { input = next; inputPos = 0 } else { upstreamDone = true }
            }
            if inputPos == input.count && upstreamDone {
                if !started || memberEnded { return nil }
                throw IntegrityError(object: "gzip stream", problem: "gzip data ends early (truncated)")
            }
            if memberEnded { inflateReset(&stream); memberEnded = false }
            started = true
            let available = input.count - inputPos
            var produced = 0
            let rc: Int32 = input.withUnsafeMutableBufferPointer { inBuf in
                output.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_in = inBuf.baseAddress! + inputPos
                    stream.avail_in = uInt(available)
                    stream.next_out = outBuf.baseAddress
                    stream.avail_out = uInt(outBuf.count)
                    let r = inflate(&stream, Z_NO_FLUSH)
                    produced = outBuf.count - Int(stream.avail_out)
                    return r
                }
            }
            inputPos += available - Int(stream.avail_in)
            switch rc {
            case Z_OK, Z_BUF_ERROR: break
            case Z_STREAM_END: memberEnded = true
            default:
                let why = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw IntegrityError(object: "gzip stream", problem: "not valid gzip data: \(why)")
            }
            if produced > 0 { return Array(output[0..<produced]) }
        }
    }
}

/// A source that hands back chunks already read (a peeked prefix) before the rest of another source.
public final class PrefixedSource<Upstream: ByteSource>: ByteSource {
    private var pending: [[UInt8]]
    private var upstream: Upstream

    public init(prefix: [[UInt8]], then upstream: Upstream) {
        pending = prefix.filter { !$0.isEmpty }
        self.upstream = upstream
    }

    public func nextChunk() throws -> [UInt8]? {
        if !pending.isEmpty { return pending.removeFirst() }
        return try upstream.nextChunk()
    }
}
