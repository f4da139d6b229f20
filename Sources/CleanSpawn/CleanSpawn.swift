import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `posix_spawn` of a child with a clean state: the one place the project starts a process by hand (the scratch
/// `redis-server`s through `ChildProcess`, a refresh's scrub command through `ScrubProcess`; mongodump and the
/// like go through swift-subprocess).
///
/// Why by hand: a child inherits the blocked-signal mask of the thread that spawns it, and worker threads
/// (Dispatch, Swift concurrency, test runners) block most signals. A `redis-server` started that way ignores
/// SIGTERM, and its fork children never see the SIGUSR1 with which the server ends an abandoned replication
/// transfer. SETSIGMASK and SETSIGDEF give the child an empty mask and default handlers, as a shell would; every
/// descriptor but the three standard ones is closed in the child (glibc's `addclosefrom_np`, 2.34+): not the run
/// lock, the catalog, an artifact being written, nor a pipe another thread just opened.
public enum CleanSpawn {
    /// What one of the child's standard descriptors is.
    public enum Stdio: Sendable {
        /// `/dev/null` (read for stdin, write otherwise).
        case null
        /// A file created (or truncated) 0600 for writing.
        case file(String)
        /// A descriptor of ours, duplicated onto it.
        case descriptor(Int32)
    }

    public struct Failure: Error, CustomStringConvertible {
        public var executable: String
        public var errno: Int32
        public var description: String { "cannot start \(executable): \(String(cString: strerror(errno)))" }
    }

    /// Starts `argv[0]` (an absolute path) with `argv`, `environment` (`NAME=value` entries; nil: ours), the three
    /// standard descriptors as given, in a process group of its own when `newProcessGroup` (so that the group can
    /// be killed whole), in `directory` when given. Returns its pid; the caller reaps it.
    public static func spawn(argv: [String], environment: [String]? = nil, stdin: Stdio = .null, stdout: Stdio = .null, stderr: Stdio = .null,
                             newProcessGroup: Bool = false, directory: String? = nil) throws -> pid_t {
        precondition(!argv.isEmpty, "CleanSpawn.spawn needs argv[0]")
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
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attr, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attr, Int16(flags))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (fd, how) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            switch how {
            case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
            case .file(let path): posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            case .descriptor(let ours): posix_spawn_file_actions_adddup2(&actions, ours, fd)
            }
        }
        if let closeFrom = addCloseFrom { _ = closeFrom(&actions, 3) }
        if let directory, let chdir = addChdir { _ = chdir(&actions, directory) }

        let cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        let cEnv: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup($0) } + [nil] }
        defer { for p in cArgv + (cEnv ?? []) { free(p) } }
        var child: pid_t = 0
        let rc = cEnv.map { posix_spawn(&child, argv[0], &actions, &attr, cArgv, $0) } ?? posix_spawn(&child, argv[0], &actions, &attr, cArgv, environ)
        guard rc == 0 else { throw Failure(executable: argv[0], errno: rc) }
        return child
    }

    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias Chdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+) and `…_addchdir_np`, looked up at run time
    /// (Swift's Glibc module does not declare them). Without the first (an older libc) children inherit what is
    /// not close-on-exec.
    private static let addCloseFrom: CloseFrom? = {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: CloseFrom.self) }
    }()
    private static let addChdir: Chdir? = {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: Chdir.self) }
    }()
}
