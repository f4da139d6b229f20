import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

/// A peer that is not the Redis it claims to be: every reply that would trap (an overflowing length), overflow
/// the stack (nesting) or grow memory without bound (a line that never ends) is refused with an error.
struct HostileRedisTests {
    /// Starts Tests/StandIns/redis_hostile.py in `mode` and waits until it accepts connections.
    func hostile(_ mode: String) throws -> (ChildProcess, Int) {
        let port = try FreePort.pick()
        let server = try ChildProcess(executable: "/usr/bin/env", arguments: ["python3", packageRoot + "/Tests/StandIns/redis_hostile.py", String(port), mode])
        let started = Date()
        while Date().timeIntervalSince(started) < 10 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
            close(fd)
            if ok { return (server, port) }
            usleep(50_000)
        }
        server.signal(SIGKILL)
        _ = server.wait()
        throw BackupFailure("the hostile server did not start")
    }

    @Test(arguments: [
        ("huge-bulk", "bulk reply of 9223372036854775807"),
        ("deep-array", "nested more than"),
        ("long-line", "reply line of more than"),
        ("wide-array", "array reply of 2000000000"),
        ("bulk-no-crlf", "not ended by CRLF"),
    ])
    func aHostileReplyIsRefused(mode: String, message: String) throws {
        let (server, port) = try hostile(mode)
        defer { server.signal(SIGKILL); _ = server.wait() }
        let c = try RESPConnection(endpoint: try RedisEndpoint.parse("redis://127.0.0.1:\(port)"), ioTimeout: 5)
        defer { c.close() }
        do {
            let reply = try c.command("PING")
            Issue.record("a hostile reply was accepted: \(String(describing: reply).prefix(80))")
        } catch let error as RedisError {
            #expect(error.description.contains(message), "\(error)")
        }
    }
}
