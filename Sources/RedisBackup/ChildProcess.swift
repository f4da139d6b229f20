import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with a clean signal state.
///
/// Why not Foundation's `Process`: a child inherits the blocked-signal mask of the thread that spawns it,
/// and worker threads (Dispatch, Swift concurrency, test runners) block most signals. A `redis-server`
/// started that way ignores SIGTERM, and its fork children never see the SIGUSR1 with which the server ends
/// an abandoned replication transfer, so the next SYNC waits forever. `posix_spawn` with SETSIGMASK and
/// SETSIGDEF gives the child an empty mask and default handlers, as a shell would.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable` (an absolute path) with stdin, stdout and stderr on /dev/null (stdout into
    /// `stdoutPath` when given, created 0600).
    public init(executable: String, arguments: [String], stdoutPath: String? = nil) throws {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in 1..<32 where sig != SIGKILL && sig != SIGSTOP { sigaddset(&defaults, Int32(sig)) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] {
            if fd == 1, let stdoutPath {
                posix_spawn_file_actions_addopen(&actions, fd, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            } else {
                posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }

        // Nothing else of ours reaches the child: not the run lock, the catalog, an artifact being written, nor a
        // pipe another thread just opened (a scratch server holding a pipe's write end keeps its reader waiting
        // for an end that never comes).
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attr, argv, environ)
        guard rc == 0 else {
            throw BackupFailure("cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), looked up at run time: Swift's Glibc module
    /// does not declare it. Without it (an older libc) children inherit what is not close-on-exec.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

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
