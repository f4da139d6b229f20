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

#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Hands `body` one end of a socketpair whose other end sends `input` in full and is then shut: what a peer
/// sends, then its close. What fits in the socket buffer is written up front without blocking; the rest, if
/// any, by a thread while `body` reads (a thread per input would cost more than the parsing). `body` owns its
/// end and closes it (a writer still writing then ends on EPIPE).
public func feedThroughSocketpair(_ data: UnsafePointer<UInt8>, _ size: Int, _ body: (Int32) -> Void) {
    var fds: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else { fatalError("socketpair: \(errno)") }
    let peer = fds[1]
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let flags = fcntl(peer, F_GETFL)
    _ = fcntl(peer, F_SETFL, flags | O_NONBLOCK)
    var written = 0
    while written < input.count {
        let n = input.withUnsafeBytes { b in send(peer, b.baseAddress! + written, b.count - written, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }
        written += n
    }
    _ = fcntl(peer, F_SETFL, flags)
    var done: DispatchSemaphore?
    if written == input.count {
        shutdown(peer, Int32(SHUT_WR))
    } else {
        let signal = DispatchSemaphore(value: 0)
        done = signal
        let from = written
        Thread {
            input.withUnsafeBytes { b in
                var off = from
                while off < b.count {
                    let n = send(peer, b.baseAddress! + off, b.count - off, Int32(MSG_NOSIGNAL))
                    if n < 0 { if errno == EINTR { continue }; break }
                    off += n
                }
            }
            shutdown(peer, Int32(SHUT_WR))
            signal.signal()
        }.start()
    }
    body(fds[0])
    done?.wait()
    close(peer)
}
