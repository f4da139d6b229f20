// The SYNC reply framing (RedisSnapshot.receive: keepalive newlines, +FULLRESYNC, `$<length>` or `$EOF:<mark>`
// and the payload up to the mark) as a Redis master drives it, through a socketpair like fuzz-resp.
import BackupCore
import FuzzSupport
import RedisBackup

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    feedThroughSocketpair(data, size) { fd in
        let connection = RESPConnection(fileDescriptor: fd, endpointDescription: "fuzz", ioTimeout: 5)
        defer { connection.close() }
        var received = 0
        _ = try? RedisSnapshot.receive(connection, endpoint: RedisEndpoint(host: "fuzz"), startTimeout: 5) { received += $0.count }
    }
    return 0
}
