// ArtifactStore: where artifacts live and how they are written. Every file is written as `<name>.partial`,
// fsynced, renamed into place and its directory fsynced, so a crash leaves only `.partial` files behind
// (removed by the next run) and never a half-written file under a final name. Directories are 0700, files
// 0600. Compression (gzip through the system zlib) and sha256 happen while the bytes stream through.
import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A file-system operation that failed: names the operation, the path and the system's reason.
public struct FileSystemError: UserFacingError, Equatable {
    public var operation: String
    public var path: String
    public var code: Int32

    public init(_ operation: String, path: String, code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var exitStatus: ExitStatus { .failed }
    public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(code)))" }
    public var hint: String? {
        switch code {
        case ENOSPC, EDQUOT: return "free space on the repository's disk (or move repository.path), then run the backup again; nothing that was good before was removed"
        case EACCES, EPERM, EROFS: return "check the permissions of \(path), or point repository.path at a writable directory"
        case ENOTDIR, ENOENT: return "check that repository.path names a directory that can be created"
        default: return nil
        }
    }

    /// True when the disk is full: callers keep what they had and report it.
    public var isDiskFull: Bool { code == ENOSPC || code == EDQUOT }
}

/// Thin, checked wrappers over the POSIX calls the repository needs.
public enum FileIO {
    /// Creates `path` and missing parents with mode 0700 (existing directories are left as they are).
    public static func makeDirectories(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            if isDir.boolValue { return }
            throw FileSystemError("create directory", path: path, code: ENOTDIR)
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path { try makeDirectories(parent) }
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            throw FileSystemError("create directory", path: path)
        }
    }

    /// fsync of a file by name (before it is renamed into place).
    public static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError("open", path: path) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw FileSystemError("sync", path: path) }
    }

    /// fsync of a directory, so that a rename inside it survives a power cut.
    public static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw FileSystemError("open directory", path: path) }
        defer { close(fd) }
        if fsync(fd) != 0, errno != EINVAL { throw FileSystemError("sync directory", path: path) }
    }

    /// Writes all of `buffer` to `fd`, retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        guard var base = buffer.baseAddress else { return }
        var left = buffer.count
        while left > 0 {
            let n = write(fd, base, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError("write", path: path)
            }
            left -= n
            base += n
        }
    }

    /// Writes `data` to `path` atomically (`.partial`, fsync, rename, directory fsync), mode 0600.
    public static func writeAtomically(_ data: Data, to path: String, mode: mode_t = 0o600) throws {
        let writer = try AtomicFileWriter(path: path, mode: mode)
        do {
            try data.withUnsafeBytes { try writer.write($0) }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Bytes free for this user on the file system holding `path` (nil when it cannot be read).
    public static func freeSpace(_ path: String) -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        let (bytes, overflow) = Int64(info.f_bavail).multipliedReportingOverflow(by: Int64(info.f_frsize))
        return overflow ? Int64.max : bytes
    }

    public static func fileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    public static func fileMode(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_mode & 0o777)
    }
}

/// Writes one file the crash-safe way. Bytes go to `<path>.partial` (0600, or `mode`); `commit()` fsyncs, renames
/// it to `path` and fsyncs the directory; `abort()` removes the partial file. Not thread-safe.
/// The partial file is always a new file: whatever has the name (a partial left by a crash, or a symlink planted by
/// someone who can write the directory) is removed first and the file is created with O_EXCL|O_NOFOLLOW, so no
/// write and no mode change ever goes through a link to another file (the metrics textfile's directory is
/// node_exporter's, whose parent another user may own).
public final class AtomicFileWriter {
    public let path: String
    public let partialPath: String
    private var fd: Int32

    public static let partialSuffix = ".partial"

    public init(path: String, mode: mode_t = 0o600) throws {
        self.path = path
        partialPath = path + Self.partialSuffix
        fd = -1
        for _ in 0..<3 {
            unlink(partialPath)
            fd = open(partialPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 || errno != EEXIST { break } // EEXIST: re-created in between; try again, then give up
        }
        guard fd >= 0 else { throw FileSystemError("create", path: partialPath) }
        fchmod(fd, mode) // on the descriptor: never by path
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        try FileIO.writeAll(fd, buffer, path: partialPath)
    }

    /// - Parameter finalPath: where the file goes, when its name was only known at the end (a blob named by
    ///   its hash); default `path`.
    public func commit(as finalPath: String? = nil) throws {
        guard fd >= 0 else { return }
        let target = finalPath ?? path
        if fsync(fd) != 0 { throw FileSystemError("sync", path: partialPath) }
        if close(fd) != 0 { fd = -1; throw FileSystemError("close", path: partialPath) }
        fd = -1
        if rename(partialPath, target) != 0 { throw FileSystemError("rename into place", path: target) }
        try FileIO.syncDirectory((target as NSString).deletingLastPathComponent)
    }

    /// Removes the partial file; safe to call after a failed commit or twice.
    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(partialPath)
    }

    deinit { if fd >= 0 { close(fd) } }
}
