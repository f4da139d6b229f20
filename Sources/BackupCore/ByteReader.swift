/// Pull-style reads over a `ByteSource`: exact byte counts across chunk boundaries, with the offset
/// consumed so far (for error messages). `atEnd` tells a clean end from a truncated read.
public struct ByteReader<S: ByteSource> {
    public enum Failure: Error, Equatable {
        /// The stream ended `missing` bytes short of a read.
        case truncated(at: Int64)
    }

    private var source: S
    private var chunk: [UInt8] = []
    private var pos = 0
    private var base: Int64 = 0
    private var exhausted = false

    public init(_ source: S) { self.source = source }

    /// Bytes consumed so far.
    public var offset: Int64 { base + Int64(pos) }

    private mutating func refill() throws -> Bool {
        if exhausted { return false }
        base += Int64(chunk.count)
        chunk = []
        pos = 0
        guard let next = try source.nextChunk() else { exhausted = true; return false }
        chunk = next
        return true
    }

    /// True when no byte is left.
    public mutating func atEnd() throws -> Bool {
        while pos == chunk.count { if try !refill() { return true } }
        return false
    }

    public mutating func byte() throws -> UInt8 {
        while pos == chunk.count { if try !refill() { throw Failure.truncated(at: offset) } }
        defer { pos += 1 }
        return chunk[pos]
    }

    public mutating func bytes(_ n: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(min(n, 1 << 20))
        var left = n
        while left > 0 {
            while pos == chunk.count { if try !refill() { throw Failure.truncated(at: offset) } }
            let take = min(left, chunk.count - pos)
            out.append(contentsOf: chunk[pos..<pos + take])
            pos += take
            left -= take
        }
        return out
    }

    public mutating func uint32LE() throws -> UInt32 {
        let b = try bytes(4)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }
}
