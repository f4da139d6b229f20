import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

/// A peer that is not the Redis it claims to be: every reply that would trap (an overflowing length), overflow
/// the stack (nesting) or grow memory without bound (a line that never ends) is refused with an error.
@Suite(.blockingThreads) struct HostileRedisTests {
    func hostile(_ mode: String) throws -> (ChildProcess, Int) {
        let port = try FreePort.pick()
        return (try startStandInServer("redis_hostile.py", port: port, arguments: [mode]), port)
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
