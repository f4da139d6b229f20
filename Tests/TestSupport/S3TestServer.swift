import BackupCore
import Foundation
import RedisBackup
import S3Client

#if canImport(Glibc)
import Glibc
#endif

/// A real S3 server on a free 127.0.0.1 port: `python3 -m moto.server -H 127.0.0.1 -p PORT`, stopped when
/// released. With `authentication`, it is given an IAM user (Tests/StandIns/moto_setup.py) and from then on
/// checks every signature and rejects unknown keys; without it, it accepts any credentials.
///
/// Why both: moto's own signature check disagrees with botocore for keys holding non-ASCII characters, `+`,
/// `?` or `%` (boto3 fails on them the same way), so the awkward-key tests run with authentication off.
public final class S3TestServer: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let port: Int
    public let accessKey: String
    public let secretKey: String
    private var process: ChildProcess?

    public init(authentication: Bool = false) throws {
        directory = TemporaryDirectory("kb-s3")
        let log = directory.file("moto.log")
        // A free port can be taken by another test between the pick and moto's bind: then something else accepts
        // on it and moto exits. The server counts as started only when moto itself answers (its S3 XML, its
        // process alive); else it is tried again on another port.
        var started: Int?
        for _ in 0..<3 where started == nil {
            let candidate = try FreePort.pick()
            let command = "exec python3 -m moto.server -H 127.0.0.1 -p \(candidate) >\"$0\" 2>&1"
            let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", command, log])
            let deadline = Date().addingTimeInterval(30)
            while child.isRunning, Date() < deadline {
                if Self.accepts(port: candidate), let reply = httpGet("http://127.0.0.1:\(candidate)/", timeout: 5),
                   reply.1.contains("ListAllMyBucketsResult"), child.isRunning {
                    started = candidate
                    break
                }
                usleep(50_000)
            }
            if started == nil {
                child.signal(SIGKILL)
                _ = child.wait()
            } else {
                process = child
            }
        }
        guard let started else {
            let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(1500)) } ?? ""
            throw BackupFailure("the S3 test server (python3 -m moto.server) did not start: \(tail)",
                                hint: "install it: python3 -m pip install 'moto[server]'")
        }
        port = started
        if authentication {
            let r = try runProcess("python3", [packageRoot + "/Tests/StandIns/moto_setup.py", "http://127.0.0.1:\(port)"])
            let parts = r.stdout.split(whereSeparator: \.isWhitespace)
            guard r.status == 0, parts.count == 2 else {
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

    /// Stops the server now (to test what happens when it goes away).
    public func stop() {
        guard let p = process else { return }
        p.signal(SIGTERM)
        _ = p.wait()
        process = nil
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    deinit { stop() }
}

extension S3TestServer {
    /// A 127.0.0.1 port nothing listens on.
    public static func unusedPort() throws -> Int { try FreePort.pick() }
}
