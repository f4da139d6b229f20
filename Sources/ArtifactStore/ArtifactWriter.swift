import BackupCore
import Crypto
import Foundation

/// What a finished artifact file holds.
public struct StoredFile: Sendable, Equatable {
    public var path: String
    public var bytesRaw: Int64
    public var bytesStored: Int64
    /// Hex sha256 of the stored (compressed) file.
    public var sha256: String

    public init(path: String, bytesRaw: Int64, bytesStored: Int64, sha256: String) {
        self.path = path
        self.bytesRaw = bytesRaw
        self.bytesStored = bytesStored
        self.sha256 = sha256
    }
}

/// The artifact pipeline: source bytes → gzip → sha256 → `<path>.partial`, then `commit()` renames it into
/// place. Memory stays bounded whatever the size of the source. Not thread-safe: one producer thread.
public final class ArtifactWriter {
    private let file: AtomicFileWriter
    private var gzip: ParallelGzipWriter!
    private var hasher = SHA256()
    private var stored: Int64 = 0
    private var raw: Int64 = 0

    public init(path: String, compression: CompressionPolicy) throws {
        file = try AtomicFileWriter(path: path)
        gzip = ParallelGzipWriter(level: compression.level, workers: compression.workers) { [unowned self] chunk in
            self.hasher.update(bufferPointer: chunk)
            self.stored += Int64(chunk.count)
            try self.file.write(chunk)
        }
    }

    public var partialPath: String { file.partialPath }
    public var bytesRaw: Int64 { raw }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        raw += Int64(buffer.count)
        try gzip.write(buffer)
    }

    /// Ends the gzip stream and makes the file durable under its final name.
    public func commit() throws -> StoredFile {
        try gzip.finish()
        let digest = hasher.finalize().hexString
        try file.commit()
        return StoredFile(path: file.path, bytesRaw: raw, bytesStored: stored, sha256: digest)
    }

    /// Drops everything written; no file is left behind.
    public func abort() {
        gzip.cancel()
        file.abort()
    }
}
