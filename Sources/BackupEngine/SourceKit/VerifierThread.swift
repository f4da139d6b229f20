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
///
/// With `readAhead`, a thread of its own reads, hashes (sha256 of the stored bytes) and inflates the file while
/// the caller walks the chunks and copies them: the two halves of a verification on two cores, at most 8 chunks
/// (2 MiB) apart. Call `stopReadingAhead()` on every way out, and before asking the reader for its digest.
struct GzipChunkSource: ByteSource {
    let reader: GzipReader
    let copy: ((UnsafeRawBufferPointer) throws -> Void)?
    private let readAhead: GzipReadAhead?
    private var error: Error?

    init(reader: GzipReader, copy: ((UnsafeRawBufferPointer) throws -> Void)? = nil, readAhead: Bool = false) {
        self.reader = reader
        self.copy = copy
        self.readAhead = readAhead ? GzipReadAhead(reader) : nil
    }

    mutating func nextChunk() throws -> [UInt8]? {
        if let readAhead {
            guard let chunk = try readAhead.channel.receive() else { return nil }
            if let copy { try chunk.withUnsafeBytes { try copy($0) } }
            return chunk
        }
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
        do {
            if readAhead != nil {
                while try nextChunk() != nil {}
            } else { // without the chunk copies nextChunk makes
                while try reader.read({ try copy?($0) }) {}
            }
        } catch { self.error = error }
    }

    func finishError() throws {
        if let error { throw error }
    }

    /// Stops the read-ahead thread (what it has not read stays unread) and waits for it to end; the reader is
    /// then this thread's again. Idempotent; nothing to do without read-ahead.
    func stopReadingAhead() { readAhead?.stop() }
}

/// The thread behind `GzipChunkSource(readAhead: true)`. The reader is touched by that thread only until
/// `stop()` has returned (the semaphore orders the two).
private final class GzipReadAhead: @unchecked Sendable {
    let channel = ByteChannel(capacity: 8)
    private let reader: GzipReader
    private let ended = DispatchSemaphore(value: 0)

    init(_ reader: GzipReader) {
        self.reader = reader
        let thread = Thread { [self] in run() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func run() {
        do {
            while !channel.isAbandoned, try reader.read({ channel.send(Array($0)) }) {}
            channel.finish()
        } catch {
            channel.fail(error)
        }
        ended.signal()
    }

    func stop() {
        channel.abandon()
        ended.wait()
        ended.signal() // for a second stop()
    }
}
