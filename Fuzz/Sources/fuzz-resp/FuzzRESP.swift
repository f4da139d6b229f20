// The RESP reply parser (RESPConnection.readReply) as a Redis peer drives it: the input is what the peer sends,
// written in full to one end of a socketpair that is then shut; the real connection reads the other end.
import FuzzSupport
import RedisBackup

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    feedThroughSocketpair(data, size) { fd in
        let connection = RESPConnection(fileDescriptor: fd, endpointDescription: "fuzz", ioTimeout: 5)
        defer { connection.close() }
        // A reply stream: as many replies as the input holds; most inputs end in a refusal or the end of input.
        for _ in 0..<10_000 { guard (try? connection.readReply()) != nil else { return } }
    }
    return 0
}
