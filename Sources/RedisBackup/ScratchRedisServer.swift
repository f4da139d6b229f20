import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A `redis-server` this process starts on a free 127.0.0.1 port in a directory of its own: for the demo,
/// the tests and (later) restore drills. Settings go through a 0600 config file, never argv, so a password
/// given to it never shows in `ps`.
public final class ScratchRedisServer: @unchecked Sendable {
    public let port: Int
    public let directory: String
    public let password: Secret?
    private let process: ChildProcess

    /// Starts the server and waits until it answers PING (and has finished loading any RDB). `giveUp`, asked
    /// every 20 ms while waiting, stops the wait (and the server) when it returns true: a drill whose
    /// verification failed while the server was loading from it.
    /// - Parameters:
    ///   - settings: extra `redis.conf` lines, e.g. `["repl-diskless-sync no"]`.
    ///   - dieWithParent: the server gets SIGKILL when the thread that started it ends (Linux's parent-death
    ///     signal, through util-linux's `setpriv --pdeathsig`), so a kaleem-backup killed mid-drill leaves no
    ///     scratch server behind. Only for servers started and stopped by one long-lived thread (the CLI's
    ///     main thread, a daemon job's thread).
    public static func start(executable: String = "redis-server", directory: String, password: Secret? = nil,
                             settings: [String] = [], startTimeout: Double = 20, bind: String = "127.0.0.1",
                             dieWithParent: Bool = false, giveUp: (() -> Bool)? = nil) throws -> ScratchRedisServer {
        guard let path = ExecutableLookup.find(executable) else {
            throw BackupFailure("\(executable) is not installed or not on PATH",
                                hint: "install it (Debian: apt-get install redis-server), or set the path to redis-server")
        }
        var lastError: Error?
        for _ in 0..<3 {
            let port = try FreePort.pick()
            do {
                return try ScratchRedisServer(executable: path, directory: directory, port: port, password: password,
                                              settings: settings, startTimeout: startTimeout, bind: bind, dieWithParent: dieWithParent,
                                              giveUp: giveUp)
            } catch let error as BackupFailure where error.message.contains("Address already in use") {
                lastError = error // the port was taken in between: try another one
            }
            // Any other failure is the server's own (a bad RDB, a bad setting) and would be again: not retried.
            // Nor may it be: a drill's dump.rdb is a FIFO, which a second server would read from the middle.
        }
        throw lastError!
    }

    public let bindAddress: String

    /// Thrown by `start` when the server logged that it cannot load its RDB (the server is killed first: before
    /// exiting, Redis re-reads its dump file to check it, and a drill's dump file is a FIFO that never ends).
    public struct RefusedToLoad: Error, CustomStringConvertible {
        public var line: String
        public var description: String { "redis-server refused to load the RDB: \(line)" }
    }

    /// What redis-server logs when its RDB cannot be loaded (rdb.c: rdbReportError, rdbLoad; server.c:
    /// loadDataFromDisk).
    static let loadFailureMarks = ["Internal error in RDB reading", "Terminating server after rdb file reading failure",
                                   "Fatal error loading the DB", "Short read or OOM loading DB", "contains module data I can't load",
                                   "contains AUX module data I can't load", "Can't handle RDB format version", "Wrong RDB checksum",
                                   "Unrecoverable error"]

    /// The first line of the log that says the RDB was refused, or nil.
    func loadFailure() -> String? {
        guard let text = try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where Self.loadFailureMarks.contains(where: { line.contains($0) }) {
            return String(line.drop { $0 != "#" }.dropFirst().drop { $0 == " " }.prefix(300))
        }
        return nil
    }

    /// Thrown by `start` when its `giveUp` said so before the server was ready (the server is killed first).
    public struct GaveUp: Error, CustomStringConvertible {
        public var description: String { "the scratch redis-server was stopped before it was ready" }
    }

    private init(executable: String, directory: String, port: Int, password: Secret?, settings: [String],
                 startTimeout: Double, bind: String, dieWithParent: Bool, giveUp: (() -> Bool)?) throws {
        self.port = port
        self.directory = directory
        self.password = password
        bindAddress = bind
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        var conf = [
            bind == "127.0.0.1" ? "bind 127.0.0.1" : "bind \(bind) 127.0.0.1",
            "port \(port)",
            "dir \(directory)",
            "logfile \(directory)/redis.log",
            "daemonize no",
            "save \"\"",
            "appendonly no",
            "repl-diskless-sync-delay 0",
        ]
        if let password { conf.append("requirepass \"\(password.value)\"") }
        conf += settings
        let confPath = directory + "/redis.conf"
        _ = FileManager.default.createFile(atPath: confPath, contents: Data((conf.joined(separator: "\n") + "\n").utf8),
                                       attributes: [.posixPermissions: 0o600])
        if dieWithParent, access("/usr/bin/setpriv", X_OK) == 0 {
            process = try ChildProcess(executable: "/usr/bin/setpriv", arguments: ["--pdeathsig", "KILL", "--", executable, confPath])
        } else {
            process = try ChildProcess(executable: executable, arguments: [confPath])
        }
        let deadline = Date().addingTimeInterval(startTimeout)
        var polls = 0
        while true {
            if !process.isRunning {
                if let line = loadFailure() { throw RefusedToLoad(line: line) }
                throw BackupFailure("redis-server exited at start (port \(port)): \(logTail())")
            }
            if (try? ping()) == true { return }
            polls += 1
            if polls % 10 == 0, let line = loadFailure() {
                process.signal(SIGKILL)
                process.wait()
                throw RefusedToLoad(line: line)
            }
            if giveUp?() == true {
                process.signal(SIGKILL)
                process.wait()
                throw GaveUp()
            }
            if Date() > deadline {
                process.signal(SIGKILL)
                process.wait()
                throw BackupFailure("redis-server did not answer within \(Int(startTimeout)) s on port \(port): \(logTail())")
            }
            usleep(20_000)
        }
    }

    public var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: port, password: password) }

    /// `redis://127.0.0.1:PORT` (with the password when there is one: for tests only).
    public var url: String {
        password.map { "redis://:\($0.value)@127.0.0.1:\(port)" } ?? "redis://127.0.0.1:\(port)"
    }

    public var isRunning: Bool { process.isRunning }
    public var pid: Int32 { process.pid }

    /// A new authenticated connection.
    public func connect() throws -> RESPConnection {
        let c = try RESPConnection(endpoint: endpoint, ioTimeout: 30)
        try RedisSnapshot.authenticate(c, endpoint: endpoint, password: password)
        return c
    }

    private func ping() throws -> Bool {
        let c = try RESPConnection(host: "127.0.0.1", port: port, endpointDescription: "scratch", connectTimeout: 1, ioTimeout: 2)
        defer { c.close() }
        if let password { _ = try c.command("AUTH", password.value) }
        guard try c.command("PING") == .simple("PONG") else { return false }
        guard case .bulk(let info?) = try c.command("INFO", "persistence") else { return false }
        return String(decoding: info, as: UTF8.self).contains("loading:0")
    }

    /// Stops the server without saving; kills it if it does not go within 10 s.
    public func stop() {
        guard process.isRunning else { return }
        if let c = try? connect() {
            _ = try? c.command("SHUTDOWN", "NOSAVE")
            c.close()
        }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.signal(SIGKILL)
            process.wait()
        }
    }

    /// Kills the server at once (simulates a crash or an outage).
    public func kill9() {
        process.signal(SIGKILL)
        process.wait()
    }

    deinit { stop() }

    public func logTail(lines: Int = 5) -> String {
        guard let text = try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8) else { return "no log" }
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }
}


/// Finds an executable the way a shell does.
public enum ExecutableLookup {
    public static func find(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for dir in (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
