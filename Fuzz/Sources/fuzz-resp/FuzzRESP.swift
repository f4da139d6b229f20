// The RESP reply parser (RESPConnection.readReply) as a Redis peer drives it: the input is what the peer sends,
// written in full to one end of a socketpair that is then shut; the real connection reads the other end.
import FuzzSupport
import Foundation
import RedisBackup
#if canImport(Glibc)
import Glibc
#endif

/// Writes `input` from `offset` to `fd` (blocking), then shuts the write side. Stops early when the reader has
/// closed its end (EPIPE).
private func writeAll(_ input: [UInt8], from offset: Int, to fd: Int32) {
    input.withUnsafeBytes { b in
        var off = offset
        while off < b.count {
            let n = send(fd, b.baseAddress! + off, b.count - off, Int32(MSG_NOSIGNAL))
            if n < 0 { if errno == EINTR { continue }; break }
            off += n
        }
    }
    shutdown(fd, Int32(SHUT_WR))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var fds: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else { fatalError("socketpair: \(errno)") }
    let peer = fds[1]
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    // What fits in the socket buffer is written here, without blocking; the rest, if any, by a thread while the
    // parser reads (a thread per input would cost more than the parsing).
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
        Thread { writeAll(input, from: from, to: peer); signal.signal() }.start()
    }
    do {
        let connection = RESPConnection(fileDescriptor: fds[0], endpointDescription: "fuzz", ioTimeout: 5)
        // A reply stream: as many replies as the input holds.
        for _ in 0..<10_000 { _ = try connection.readReply() }
        connection.close()
    } catch {
        // Refused (protocol error, or the end of the input): the expected outcome for most inputs.
    }
    // The connection closed its end on every path (deinit); a writer still writing ends on EPIPE.
    done?.wait()
    close(peer)
    return 0
}
