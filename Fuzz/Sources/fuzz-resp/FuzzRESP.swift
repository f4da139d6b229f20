// The RESP reply parser (RESPConnection.readReply) as a Redis peer drives it: the input is what the peer sends,
// written in full to one end of a socketpair that is then closed; the real connection reads the other end.
import FuzzSupport
import Foundation
import RedisBackup
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var fds: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else { fatalError("socketpair: \(errno)") }
    let peer = fds[1]
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    // What does not fit in the socket buffer is written by a thread while the parser reads.
    let done = DispatchSemaphore(value: 0)
    let writer = Thread {
        input.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = send(peer, b.baseAddress! + off, b.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; break } // the reader gave up and closed its end
                off += n
            }
        }
        shutdown(peer, Int32(SHUT_WR))
        done.signal()
    }
    writer.start()
    do {
        let connection = RESPConnection(fileDescriptor: fds[0], endpointDescription: "fuzz", ioTimeout: 5)
        // A reply stream: as many replies as the input holds.
        for _ in 0..<10_000 { _ = try connection.readReply() }
        connection.close()
    } catch {
        // Refused (protocol error, or the end of the input): the expected outcome for most inputs.
    }
    // The connection closed its end on every path (deinit); the writer ends on EPIPE if it was still writing.
    done.wait()
    close(fds[1])
    return 0
}
