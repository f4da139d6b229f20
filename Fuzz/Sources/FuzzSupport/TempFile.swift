import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file of this process's own under /dev/shm (or TMPDIR when there is no /dev/shm) holding the input, for the
/// readers that take a path (the gzip reader, a catalog copy). Rewritten for each input; `remove` deletes it and
/// its SQLite companions.
public enum FuzzFile {
    public static let path: String = {
        let dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
        return "\(dir)/kaleem-fuzz-\(getpid())"
    }()

    public static func write(_ data: UnsafePointer<UInt8>, _ size: Int, to path: String = FuzzFile.path) {
        remove(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { fatalError("cannot create \(path): errno \(errno)") }
        var off = 0
        while off < size {
            let n = Glibc.write(fd, data + off, size - off)
            guard n > 0 else { fatalError("cannot write \(path): errno \(errno)") }
            off += n
        }
        close(fd)
    }

    public static func remove(_ path: String = FuzzFile.path) {
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(path + suffix) }
    }
}
