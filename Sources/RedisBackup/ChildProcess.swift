import BackupCore
import CleanSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with a clean signal state (`CleanSpawn`, which says why not Foundation's `Process`: a
/// `redis-server` started with a worker thread's blocked signals ignores SIGTERM, and its fork children never
/// see the SIGUSR1 with which it ends an abandoned replication transfer, so the next SYNC waits forever).
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable` (an absolute path) with stdin, stdout and stderr on /dev/null (stdout into
    /// `stdoutPath` when given, created 0600), with a clean signal state and nothing else of ours (`CleanSpawn`).
    public init(executable: String, arguments: [String], stdoutPath: String? = nil) throws {
        do {
            pid = try CleanSpawn.spawn(argv: [executable] + arguments, stdout: stdoutPath.map { .file($0) } ?? .null)
        } catch let failure as CleanSpawn.Failure {
            throw BackupFailure(failure.description)
        }
    }

    /// True until the child has exited (reaps it when it has).
    public var isRunning: Bool {
        lock.withLock {
            if exitStatus != nil { return false }
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { exitStatus = status; return false }
            return true
        }
    }

    public func signal(_ sig: Int32) {
        if isRunning { kill(pid, sig) }
    }

    /// Waits for the child to exit and returns its raw wait status.
    @discardableResult
    public func wait() -> Int32 {
        lock.withLock {
            if let exitStatus { return exitStatus }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            exitStatus = status
            return status
        }
    }

    deinit {
        if exitStatus == nil, isRunning { kill(pid, SIGKILL); wait() }
    }
}
