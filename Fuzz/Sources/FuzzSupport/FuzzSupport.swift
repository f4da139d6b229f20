import BackupCore

/// The fuzzer's input as a `ByteSource`, handed out in chunks whose size depends on the input's length (1 to
/// 97 bytes), so that every chunk boundary of a streaming reader is crossed somewhere.
public struct FuzzBytes: ByteSource {
    public let bytes: [UInt8]
    public let chunkSize: Int
    private var offset = 0

    public init(_ data: UnsafePointer<UInt8>, _ size: Int, chunkSize: Int? = nil) {
        bytes = Array(UnsafeBufferPointer(start: data, count: size))
        self.chunkSize = chunkSize ?? (1 + size % 97)
    }

    public mutating func nextChunk() throws -> [UInt8]? {
        guard offset < bytes.count else { return nil }
        let end = min(bytes.count, offset + chunkSize)
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
}
