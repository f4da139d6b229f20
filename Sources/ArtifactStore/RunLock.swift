import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One run at a time per repository: an exclusive `flock` on `<repo>/.lock`, which holds the holder's pid.
/// The kernel releases it when the process dies, however it dies, so a crash never leaves a stale lock.
public final class RunLock {
    public let path: String
    private var fd: Int32

    /// Takes the lock or throws `LockedError` at once (it never waits).
    public init(path: String, purpose: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystemError("open lock file", path: path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            let holder = Self.readHolder(fd)
            close(fd)
            fd = -1
            if code == EWOULDBLOCK { throw LockedError(path: path, holder: holder) }
            throw FileSystemError("lock", path: path, code: code)
        }
        let text = "pid=\(getpid()) purpose=\(purpose)\n"
        ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    public func release() {
        guard fd >= 0 else { return }
        ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }

    private static func readHolder(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "unknown" }
        return String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Another run holds the repository's lock. Exit 11.
public struct LockedError: UserFacingError, Equatable {
    public var path: String
    /// What the holder wrote: `pid=1234 purpose=backup`.
    public var holder: String

    public var holderPID: Int32? {
        guard let range = holder.range(of: #"pid=(\d+)"#, options: .regularExpression) else { return nil }
        return Int32(holder[range].dropFirst(4))
    }

    public var exitStatus: ExitStatus { .locked }
    public var description: String {
        "another kaleem-backup run holds the repository lock \(path) (\(holder.isEmpty ? "holder unknown" : holder))"
    }
    public var hint: String? {
        "wait for it to finish (ps -p \(holderPID.map(String.init) ?? "PID")); the lock is released when that process exits"
    }
}
