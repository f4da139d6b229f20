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

/// The artifact pipeline: source bytes → gzip → [age encryption] → sha256 → `<path>.partial`, then `commit()` renames it into
/// place. Memory stays bounded whatever the size of the source. Not thread-safe: one producer thread.
public final class ArtifactWriter {
    private let file: AtomicFileWriter
    private var gzip: ParallelGzipWriter!
    private var hasher = SHA256()
    private var stored: Int64 = 0
    private var raw: Int64 = 0

    private var encryptor: AgeEncryptor?

    /// - Parameter recipients: when not empty, the gzip stream is encrypted to them (age format) before it is
    ///   hashed and written; the sha256 is then that of the encrypted file.
    public init(path: String, compression: CompressionPolicy, recipients: [AgeRecipient] = []) throws {
        file = try AtomicFileWriter(path: path)
        if !recipients.isEmpty {
            encryptor = try AgeEncryptor(recipients: recipients) { [unowned self] chunk in try self.store(chunk) }
        }
        gzip = ParallelGzipWriter(level: compression.level, workers: compression.workers,
                                  storeIncompressible: compression.storeIncompressible) { [unowned self] chunk in
            if let encryptor = self.encryptor { try encryptor.write(chunk) } else { try self.store(chunk) }
        }
    }

    private func store(_ chunk: UnsafeRawBufferPointer) throws {
        hasher.update(bufferPointer: chunk)
        stored += Int64(chunk.count)
        try file.write(chunk)
    }

    /// When set, a write after this moment throws `deadlineError` (the source's `deadline:`).
    public var deadline: Date? { didSet { monotonicDeadline = deadline.map { MonotonicDeadline($0) } } }
    private var monotonicDeadline: MonotonicDeadline?
    public var deadlineError: Error = BackupFailure("the deadline passed")

    /// Told the size of every write (progress on a terminal).
    public var onWrite: (@Sendable (Int) -> Void)?

    public var partialPath: String { file.partialPath }
    public var bytesRaw: Int64 { raw }

    /// When set, a source's `min_rate:` over what is written (a peer trickling a byte at a time, which no idle
    /// timeout ever sees; readers that buffer also check it where the bytes arrive).
    public var minimumRate: RateWindow?

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        if monotonicDeadline?.passed == true { throw deadlineError }
        try minimumRate?.add(buffer.count)
        raw += Int64(buffer.count)
        onWrite?(buffer.count)
        try gzip.write(buffer)
    }

    /// Ends the gzip stream and makes the file durable under its final name.
    public func commit() throws -> StoredFile {
        try gzip.finish()
        try encryptor?.finish()
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
