import BackupCore
import Foundation
import RedisBackup
import S3Client

#if canImport(Glibc)
import Glibc
#endif

/// A real S3 server on a free 127.0.0.1 port, stopped when released: moto's server (the WSGI application
/// `python3 -m moto.server` runs), forked for this test from the test process's one `MotoForkServer`, so that
/// it starts empty and its own without paying moto's imports again. With `authentication`, it is given an IAM
/// user (Tests/StandIns/moto_setup.py) and from then on checks every signature and rejects unknown keys;
/// without it, it accepts any credentials.
///
/// Why both: moto's own signature check disagrees with botocore for keys holding non-ASCII characters, `+`,
/// `?` or `%` (boto3 fails on them the same way), so the awkward-key tests run with authentication off.
public final class S3TestServer: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let port: Int
    public let accessKey: String
    public let secretKey: String
    private var pid: Int32?
    private let lock = NSLock()

    public init(authentication: Bool = false) throws {
        directory = TemporaryDirectory("kb-s3")
        let log = directory.file("moto.log")
        // The server binds a port the kernel picks and only then says which (no pick-then-bind race with other
        // tests); it counts as started when moto itself answers there.
        let (pid, port) = try MotoForkServer.shared.start(log: log)
        self.pid = pid
        self.port = port
        guard let reply = httpGet("http://127.0.0.1:\(port)/", timeout: 30), reply.1.contains("ListAllMyBucketsResult") else {
            MotoForkServer.shared.stop(pid: pid)
            let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(1500)) } ?? ""
            throw BackupFailure("the S3 test server (moto, forked by Tests/StandIns/moto_forkserver.py) does not answer on port \(port): \(tail)",
                                hint: "install it: python3 -m pip install 'moto[server]'")
        }
        if authentication {
            let r = try runProcess("python3", [packageRoot + "/Tests/StandIns/moto_setup.py", "http://127.0.0.1:\(port)"])
            let parts = r.stdout.split(whereSeparator: \.isWhitespace)
            guard r.status == 0, parts.count == 2 else {
                MotoForkServer.shared.stop(pid: pid)
                throw BackupFailure("could not create credentials on the S3 test server: \(r.stderr.suffix(1500))")
            }
            accessKey = String(parts[0])
            secretKey = String(parts[1])
        } else {
            accessKey = "AKIAKALEEMTEST"
            secretKey = "kaleem-test-secret-key"
        }
    }

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    public var credentials: S3Credentials { S3Credentials(accessKey: accessKey, secretKey: Secret(secretKey)) }

    /// A client of this server (shut it down when done).
    public func client(options: S3ClientOptions = S3ClientOptions()) throws -> S3Client {
        try S3Client(endpoint: endpoint, credentials: credentials, options: options)
    }

    /// Stops the server now (to test what happens when it goes away): once this returns, its port refuses
    /// connections.
    public func stop() {
        lock.lock()
        let p = pid
        pid = nil
        lock.unlock()
        if let p { MotoForkServer.shared.stop(pid: p) }
    }

    deinit { stop() }
}

extension S3TestServer {
    /// A 127.0.0.1 port nothing listens on.
    public static func unusedPort() throws -> Int { try FreePort.pick() }
}

/// The test process's moto fork server (Tests/StandIns/moto_forkserver.py): one python3 that imports moto and
/// loads its S3 and IAM backends once, started on first use, and forks a fresh server for each `S3TestServer`.
/// It reads requests on a pipe from this process: when this process exits, however it exits, the pipe closes and
/// it kills the servers still running and exits. One that cannot start fails the test that asked (and the next
/// request tries again).
final class MotoForkServer: @unchecked Sendable {
    static let shared = MotoForkServer()

    private let lock = NSLock()
    private var process: Process?
    private var requests: Int32 = -1
    private var replies: Int32 = -1
    private var log = ""

    /// A new server: its process id and port.
    func start(log serverLog: String) throws -> (Int32, Int) {
        let reply = try request("start \(serverLog)")
        let words = reply.split(separator: " ")
        guard words.count == 3, words[0] == "ok", let pid = Int32(words[1]), let port = Int(words[2]) else {
            let tail = (try? String(contentsOfFile: serverLog, encoding: .utf8)).map { String($0.suffix(1500)) } ?? ""
            throw BackupFailure("the S3 test server (moto) did not start: \(reply) \(tail)", hint: "install it: python3 -m pip install 'moto[server]'")
        }
        return (pid, port)
    }

    /// Stops a server and waits until it is gone.
    func stop(pid: Int32) {
        _ = try? request("stop \(pid)")
    }

    private func request(_ line: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        // A fork server that died (it should not) is started again once.
        for _ in 0..<2 {
            if process?.isRunning != true { try launch() }
            if send(line + "\n"), let reply = readLine() { return reply }
            shutDown()
        }
        let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(1500)) } ?? ""
        throw BackupFailure("the moto fork server (python3 Tests/StandIns/moto_forkserver.py) did not answer: \(tail)",
                            hint: "install it: python3 -m pip install 'moto[server]'")
    }

    private func launch() throws {
        shutDown()
        BrokenPipe.ignore()
        log = FileManager.default.temporaryDirectory.appendingPathComponent("kb-moto-forkserver-\(getpid()).log").path
        _ = FileManager.default.createFile(atPath: log, contents: nil, attributes: [.posixPermissions: 0o600])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", packageRoot + "/Tests/StandIns/moto_forkserver.py", log]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        // This process's ends of the pipes: not inherited by the children it starts later (a kaleem-backup that
        // outlived the test process would keep the fork server and its servers alive).
        requests = dup(input.fileHandleForWriting.fileDescriptor)
        replies = dup(output.fileHandleForReading.fileDescriptor)
        _ = fcntl(requests, F_SETFD, FD_CLOEXEC)
        _ = fcntl(replies, F_SETFD, FD_CLOEXEC)
        try? input.fileHandleForWriting.close()
        try? output.fileHandleForReading.close()
        process = p
    }

    private func shutDown() {
        if requests >= 0 { close(requests) }
        if replies >= 0 { close(replies) }
        requests = -1
        replies = -1
        if let p = process, p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
        process = nil
    }

    private func send(_ line: String) -> Bool {
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(requests, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            bytes = bytes.dropFirst(n)
        }
        return true
    }

    /// One line of the fork server's (without its newline); nil at end of file.
    private func readLine() -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(replies, &byte, 1)
            if n < 0, errno == EINTR { continue }
            guard n == 1 else { return nil }
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            guard line.count < 4096 else { return nil }
            line.append(byte)
        }
    }
}
