import Foundation

/// A source of byte chunks read one after another (a decompressed file, a network stream, a channel).
public protocol ByteSource {
    /// The next chunk, or nil at the end of the stream. Chunks are never empty.
    mutating func nextChunk() throws -> [UInt8]?
}

/// A bounded, blocking queue of byte chunks between one producer thread and one consumer thread, so that a
/// verifier can read a stream at its own pace while memory stays bounded (`capacity` chunks at most).
///
/// The producer `send`s then `finish`es (or `fail`s); the consumer reads through `ByteSource`. A consumer
/// that stops early calls `abandon()`, after which `send` drops chunks instead of blocking.
public final class ByteChannel: @unchecked Sendable {
    private let condition = NSCondition()
    private var chunks: [[UInt8]] = []
    private var head = 0
    private let capacity: Int
    private var finished = false
    private var failure: Error?
    private var abandoned = false

    public init(capacity: Int = 8) {
        self.capacity = capacity
    }

    public func send(_ chunk: [UInt8]) {
        guard !chunk.isEmpty else { return }
        condition.lock()
        defer { condition.unlock() }
        while chunks.count - head >= capacity && !abandoned { condition.wait() }
        if abandoned { return }
        chunks.append(chunk)
        condition.broadcast()
    }

    public func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    public func fail(_ error: Error) {
        condition.lock()
        failure = error
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    public func abandon() {
        condition.lock()
        abandoned = true
        chunks.removeAll()
        head = 0
        condition.broadcast()
        condition.unlock()
    }

    /// True once the consumer called `abandon()`: a producer may stop early.
    public var isAbandoned: Bool {
        condition.lock()
        defer { condition.unlock() }
        return abandoned
    }

    /// Blocks until a chunk is available; nil at the end; rethrows a producer's failure.
    public func receive() throws -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        while head == chunks.count && !finished { condition.wait() }
        if head < chunks.count {
            let chunk = chunks[head]
            head += 1
            if head > 64 { chunks.removeFirst(head); head = 0 }
            condition.broadcast()
            return chunk
        }
        if let failure { throw failure }
        return nil
    }
}

/// The consumer side of a `ByteChannel` as a `ByteSource`.
public struct ChannelSource: ByteSource {
    public let channel: ByteChannel
    public init(_ channel: ByteChannel) { self.channel = channel }
    public mutating func nextChunk() throws -> [UInt8]? { try channel.receive() }
}
