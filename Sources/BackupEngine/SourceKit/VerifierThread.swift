// The pipeline's verification side: a verifier walks the bytes of a source on its own thread while the
// same bytes are compressed and written (one pass, bounded memory); and decompressed chunks of a stored
// artifact as a ByteSource for the verifiers.
import ArtifactStore
import BackupCore
import Foundation

/// Runs a verifier over a `ByteChannel` on a thread of its own and hands back its result.
final class VerifierThread<Report: Sendable>: @unchecked Sendable {
    let channel = ByteChannel(capacity: 16)
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var result: Result<Report, Error>?

    init(_ body: @escaping @Sendable (ChannelSource) throws -> Report) {
        let channel = self.channel
        let thread = Thread { [self] in
            let r = Result { try body(ChannelSource(channel)) }
            channel.abandon() // drop whatever follows the end (or a failure)
            lock.withLock { result = r }
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Hands a chunk of the source to the artifact writer and to the verifier; throws the verifier's error as
    /// soon as it has one, so that the source stops early.
    func feed(_ chunk: [UInt8], alongside writer: ArtifactWriter) throws {
        if let failure = earlyFailure { throw failure }
        try chunk.withUnsafeBytes { try writer.write($0) }
        channel.send(chunk)
    }

    /// The verifier's error, if it has already failed (the producer can stop early).
    var earlyFailure: Error? {
        lock.withLock {
            if case .failure(let e)? = result { return e }
            return nil
        }
    }

    /// Runs `produce`, which feeds the channel: when it throws, the verifier is stopped and waited for and the
    /// error rethrown; when it returns, the stream is ended and the verifier's report returned with its result.
    func around<T>(_ produce: () throws -> T) throws -> (T, Report) {
        let value: T
        do {
            value = try produce()
        } catch {
            channel.fail(error)
            _ = try? wait()
            throw error
        }
        channel.finish()
        return (value, try wait())
    }

    /// `around` for a producer that awaits (a download): the same contract. Its blocking `wait` is fine on the
    /// engine executor (EngineExecutor.swift), whose threads exist to block.
    func around<T>(_ produce: () async throws -> T) async throws -> (T, Report) {
        let value: T
        do {
            value = try await produce()
        } catch {
            channel.fail(error)
            _ = try? wait()
            throw error
        }
        channel.finish()
        return (value, try wait())
    }

    func wait() throws -> Report {
        done.wait()
        done.signal()
        return try lock.withLock { result! }.get()
    }
}

/// Decompressed chunks of a gzip file as a `ByteSource`; remembers a read error so `drain` can be total.
struct GzipChunkSource: ByteSource {
    let reader: GzipReader
    let copy: ((UnsafeRawBufferPointer) throws -> Void)?
    private var error: Error?

    init(reader: GzipReader, copy: ((UnsafeRawBufferPointer) throws -> Void)? = nil) {
        self.reader = reader
        self.copy = copy
    }

    mutating func nextChunk() throws -> [UInt8]? {
        var chunk: [UInt8]?
        _ = try reader.read { bytes in
            try copy?(bytes)
            chunk = Array(bytes)
        }
        return chunk
    }

    /// Reads (and hashes, and copies) the rest of the file.
    mutating func drain() {
        let copy = self.copy
        do { while try reader.read({ try copy?($0) }) {} } catch { self.error = error }
    }

    func finishError() throws {
        if let error { throw error }
    }
}
