import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

@Suite(.blockingThreads) struct RedisSnapshotTests {
    /// Both framings: diskless (`$EOF:` mark) and disk-based (`$<len>`); the result is the server's RDB.
    @Test(arguments: [("yes", SnapshotFraming.eofMark), ("no", .length)])
    func snapshotsBothFramings(diskless: String, framing: SnapshotFraming) throws {
        let redis = try RedisTestServer(settings: ["repl-diskless-sync \(diskless)"])
        let c = try redis.connect()
        let counts = try SampleData.fill(c, databases: [0, 2], keysPerType: 5)
        c.close()
        var bytes: [UInt8] = []
        let taken = try RedisSnapshot.take(endpoint: redis.server.endpoint, password: nil, timeout: 20) { bytes += $0 }
        #expect(taken.framing == framing)
        #expect(taken.bytes == Int64(bytes.count))
        let report = try RDBVerifier.verify(ChunkedBytes(bytes, chunkSize: 4096))
        #expect(report.checksum == .verified)
        #expect(report.keys == counts.values.reduce(0, +))
        #expect(report.databases[2]?.keys == counts[2])
        #expect(report.redisVersion != nil)
    }

    @Test func authenticatesWithPassword() throws {
        let redis = try RedisTestServer(password: "s3cret-pw")
        var endpoint = redis.server.endpoint
        var bytes = 0
        _ = try RedisSnapshot.take(endpoint: endpoint, password: Secret("s3cret-pw"), timeout: 20) { bytes += $0.count }
        #expect(bytes > 0)
        endpoint.password = nil
        do {
            _ = try RedisSnapshot.take(endpoint: endpoint, password: Secret("wrong-pw"), timeout: 20) { _ in }
            Issue.record("wrong password accepted")
        } catch let error as RedisError {
            #expect(error.description.contains("authentication failed"))
            #expect(!error.description.contains("wrong-pw"))
            #expect(!error.description.contains("s3cret-pw"))
        }
    }

    /// A server that only sends keepalives (its BGSAVE is slow or stuck) does not hang the backup.
    @Test func snapshotThatNeverStartsTimesOut() throws {
        let redis = try RedisTestServer(settings: ["repl-diskless-sync no", "rdb-key-save-delay 200000"])
        let c = try redis.connect()
        for i in 0..<50 { _ = try c.command("SET", "k\(i)", "v") }
        c.close()
        let started = Date()
        do {
            _ = try RedisSnapshot.take(endpoint: redis.server.endpoint, password: nil, timeout: 20, startTimeout: 1.5) { _ in }
            Issue.record("snapshot did not time out")
        } catch let error as RedisError {
            #expect(error.description.contains("did not start sending the snapshot within 1 s"))
            #expect(error.hint?.contains("rdb_bgsave_in_progress") == true)
        }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func serverDownIsAClearError() throws {
        let port = try FreePort.pick()
        do {
            _ = try RedisSnapshot.take(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), password: nil, timeout: 5) { _ in }
            Issue.record("connected to nothing")
        } catch let error as RedisError {
            #expect(error.description.contains("127.0.0.1:\(port)"))
            #expect(error.description.contains("cannot connect"))
            #expect(error.hint != nil)
        }
    }
}

/// A child (scratch redis-server, redis-server --version) gets stdin/stdout/stderr and nothing else of ours:
/// a pipe, lock or catalog descriptor it inherited would outlive us in it (a reader waiting for the pipe's end
/// would wait for as long as the server runs).
@Suite(.blockingThreads) struct ChildProcessTests {
    @Test func childrenInheritNoOtherDescriptor() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0) // not close-on-exec
        defer { close(fds[0]); close(fds[1]) }
        let dir = TemporaryDirectory()
        let child = try ChildProcess(executable: "/bin/ls", arguments: ["/proc/self/fd"], stdoutPath: dir.file("fds"))
        #expect(child.wait() == 0)
        let listed = Set(try String(contentsOfFile: dir.file("fds"), encoding: .utf8).split(separator: "\n").compactMap { Int32($0) })
        // 0–2, and the directory ls itself opened to list them.
        #expect(listed.isSubset(of: [0, 1, 2, 3]), "inherited: \(listed.subtracting([0, 1, 2, 3]).sorted()) (the pipe was \(fds))")
    }
}

/// A scratch server that refuses its RDB (a module it does not have) is reported within seconds, with its own
/// log line, even when its dump file is a FIFO whose write end is held (a drill's): before exiting, Redis re-reads
/// the file to check it, and that read never ends.
@Suite(.blockingThreads) struct ScratchRefusalTests {
    @Test func aRefusedLoadEndsTheWaitWithTheServersLine() throws {
        let dir = TemporaryDirectory()
        let fifo = dir.file("dump.rdb")
        #expect(mkfifo(fifo, 0o600) == 0)
        let fd = open(fifo, O_RDWR | O_NONBLOCK)
        #expect(fd >= 0)
        defer { close(fd) }
        // RDB v10 (Redis 7.0 loads it), one key of module type 7 whose module ("graphdata") is not loaded.
        let charset = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var id: UInt64 = 0
        for ch in "graphdata" { id = id << 6 | UInt64(charset.firstIndex(of: ch)!) }
        id = id << 10 | 1
        let rdb: [UInt8] = Array("REDIS0010".utf8) + [0xFE, 0x00, 0x07, 1] + Array("k".utf8) + [0x81]
            + withUnsafeBytes(of: id.bigEndian) { Array($0) } + [2, 5, 0] + [0xFF] + [UInt8](repeating: 0, count: 8)
        #expect(rdb.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == rdb.count)
        let started = Date()
        do {
            let server = try ScratchRedisServer.start(directory: dir.path, startTimeout: 120)
            server.stop()
            Issue.record("the server loaded a module it does not have")
        } catch let refused as ScratchRedisServer.RefusedToLoad {
            #expect(refused.line.contains("module"), "\(refused.line)")
        }
        #expect(Date().timeIntervalSince(started) < 30, "the refusal took \(Date().timeIntervalSince(started)) s")
    }
}
