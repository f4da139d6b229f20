// Files a restore writes into a directory that someone else owns (Redis's data directory, a --to-dir of a
// bucket). Whoever owns that directory may have planted a symlink where we are about to write: every operation
// is relative to one directory descriptor opened once, the file is created under a random name with
// O_CREAT|O_EXCL|O_NOFOLLOW, its mode and owner set on the descriptor, and it is renamed into place. A target
// name that is a symlink (or a directory) is refused before anything is written. A killed restore leaves only
// `.kb-restore-*.partial` files: the next restore into the same directory finds and removes them.
import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A target the restore refuses to write (a symlink, a directory, a name that is not one path component).
public struct UnsafeTargetError: UserFacingError, Equatable {
    public var path: String
    public var problem: String
    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }
    public var exitStatus: ExitStatus { .usage }
    public var description: String { "refusing to write \(path): \(problem)" }
    public var hint: String? { "nothing was written; check who can write that directory, remove what was planted there, and run the restore again" }
}

public final class TargetFileWriter {
    public let directory: String
    public let name: String
    public let temporaryName: String
    private let dirfd: Int32
    private var fd: Int32
    /// The file this one replaces, as it was when the writer was opened (nil: there was none).
    private let previous: stat?

    public static let temporaryPrefix = ".kb-restore-"

    /// A file name a restore may create: one path component, not `.`/`..`, no NUL.
    public static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.utf8.contains(0) && name.utf8.count <= 255
    }

    /// Opens `directory` once and creates the temporary file in it. Refuses (exit 2) a target that is a symlink
    /// or a directory, and a name that is not a single plain component.
    public convenience init(directory: String, name: String) throws {
        guard !directory.isEmpty else { throw UnsafeTargetError(path: "/" + name, problem: "the target directory is empty (it would mean /)") }
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileSystemError("open the directory", path: directory) }
        try self.init(directoryDescriptor: descriptor, shownAs: directory, name: name)
    }

    /// Writes `name` in the directory open as `fd` (taken over: closed with the writer); `shown` names it in
    /// messages. See `openDirectory(_:under:)` for a walk that no symlink can redirect.
    public init(directoryDescriptor descriptor: Int32, shownAs shown: String, name: String) throws {
        guard Self.isPlainName(name) else {
            close(descriptor)
            throw UnsafeTargetError(path: shown + "/" + name, problem: "\(name) is not a plain file name")
        }
        self.directory = shown
        self.name = name
        dirfd = descriptor
        var info = stat()
        if fstatat(dirfd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 {
            if let problem = Self.refusal(info) {
                close(dirfd)
                throw UnsafeTargetError(path: directory + "/" + name, problem: problem)
            }
            previous = info
        } else {
            previous = nil
        }
        var rng = SystemRandomNumberGenerator()
        let temporary = Self.temporaryPrefix + String(UInt64.random(in: 0...UInt64.max, using: &rng), radix: 16) + AtomicFileWriter.partialSuffix
        let created = openat(descriptor, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard created >= 0 else {
            // Thrown before every stored property is set: no deinit runs, so the descriptor is closed here, once.
            let code = errno
            close(descriptor)
            throw FileSystemError("create", path: shown + "/" + temporary, code: code)
        }
        temporaryName = temporary
        fd = created
    }

    private static func refusal(_ info: stat) -> String? {
        switch info.st_mode & S_IFMT {
        case S_IFLNK: return "it is a symbolic link (it could send the restored file anywhere on this host)"
        case S_IFDIR: return "it is a directory"
        case S_IFREG: return nil
        default: return "it is not a regular file"
        }
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        try FileIO.writeAll(fd, buffer, path: directory + "/" + temporaryName)
    }

    /// Syncs the file, gives it the mode and owner of the file it replaces (else `mode`), keeps that file as
    /// `keep` when given, renames the new one into place and syncs the directory.
    public func commit(mode: mode_t = 0o600, keep: String? = nil) throws {
        guard fd >= 0 else { return }
        let shown = directory + "/" + name
        // Taken again: what is there now is what is replaced (a symlink planted since the start is refused).
        var now = stat()
        let exists = fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0
        if exists, let problem = Self.refusal(now) { throw UnsafeTargetError(path: shown, problem: problem) }
        let model = exists ? now : previous
        if let model {
            // The restored file takes the mode and owner of the one it replaces: restoring as root must not leave a
            // 0600 root-owned dump.rdb that the redis user cannot read at start.
            guard fchmod(fd, model.st_mode & 0o7777) == 0 else { throw FileSystemError("set the mode of", path: shown) }
            if geteuid() == 0 || model.st_uid == geteuid() {
                if fchown(fd, model.st_uid, model.st_gid) != 0 && geteuid() == 0 { throw FileSystemError("set the owner of", path: shown) }
            }
        } else {
            guard fchmod(fd, mode) == 0 else { throw FileSystemError("set the mode of", path: shown) }
        }
        guard fsync(fd) == 0 else { throw FileSystemError("sync", path: directory + "/" + temporaryName) }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw FileSystemError("close", path: directory + "/" + temporaryName) }
        if exists, let keep {
            guard Self.isPlainName(keep) else { throw UnsafeTargetError(path: directory + "/" + keep, problem: "\(keep) is not a plain file name") }
            // A second name for the previous file, then the new one renamed over the first: at no moment is the
            // target name missing (a restore killed in between leaves the old file or the new one, never none).
            // Where hard links are not supported, the previous file is renamed aside instead.
            if linkat(dirfd, name, dirfd, keep, 0) != 0 {
                guard renameat(dirfd, name, dirfd, keep) == 0 else { throw FileSystemError("keep the previous file as", path: directory + "/" + keep) }
            }
        }
        guard renameat(dirfd, temporaryName, dirfd, name) == 0 else { throw FileSystemError("rename into place", path: shown) }
        if fsync(dirfd) != 0, errno != EINVAL { throw FileSystemError("sync directory", path: directory) }
    }

    /// Removes the temporary file; safe after a failed commit or twice.
    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        unlinkat(dirfd, temporaryName, 0)
    }

    deinit {
        if fd >= 0 { close(fd); unlinkat(dirfd, temporaryName, 0) }
        close(dirfd)
    }

    /// Opens `relative` (directories separated by `/`) under `root`, one component at a time relative to the
    /// previous one's descriptor, each `O_NOFOLLOW|O_DIRECTORY` (created 0700 when missing): a component that is
    /// a symlink or not a directory is refused (exit 2), whenever it was planted. Returns the last descriptor.
    public static func openDirectory(_ relative: [String], under root: String) throws -> Int32 {
        guard !root.isEmpty else { throw UnsafeTargetError(path: "/", problem: "the target directory is empty (it would mean /)") }
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError("open the directory", path: root) }
        var shown = root
        for part in relative {
            shown += "/" + part
            guard isPlainName(part) else { close(fd); throw UnsafeTargetError(path: shown, problem: "\(part) is not a plain directory name") }
            var next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT {
                if mkdirat(fd, part, 0o700) != 0 && errno != EEXIST {
                    let code = errno
                    close(fd)
                    throw FileSystemError("create the directory", path: shown, code: code)
                }
                next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if next < 0 {
                let code = errno
                close(fd)
                if code == ELOOP || code == ENOTDIR {
                    throw UnsafeTargetError(path: shown, problem: "it is not a directory (a symlink or a file): nothing is written through it")
                }
                throw FileSystemError("open the directory", path: shown, code: code)
            }
            close(fd)
            fd = next
        }
        return fd
    }

    /// Removes what killed restores left in `directory` (regular files named `.kb-restore-*.partial`, never
    /// through a symlink); returns their names. A directory that cannot be opened has none.
    @discardableResult
    public static func removeLeftovers(in directory: String) -> [String] {
        guard !directory.isEmpty else { return [] }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return [] }
        defer { close(dfd) }
        let listing = dup(dfd)
        guard listing >= 0, let dir = fdopendir(listing) else { if listing >= 0 { close(listing) }; return [] }
        defer { closedir(dir) }
        var removed: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            guard name.hasPrefix(temporaryPrefix), name.hasSuffix(AtomicFileWriter.partialSuffix) else { continue }
            var info = stat()
            guard fstatat(dfd, name, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if unlinkat(dfd, name, 0) == 0 { removed.append(name) }
        }
        return removed.sorted()
    }
}
