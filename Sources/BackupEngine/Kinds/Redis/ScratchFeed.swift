// The write end of a drill's dump.rdb FIFO: the verification writes the RDB into it while the scratch
// redis-server loads it from the other end (RedisAdapter.drillRedis).
import ArtifactStore
import BackupCore
import Foundation

/// Never blocks for good, never loses what the server has not read yet.
///
/// - The FIFO is opened read-write and non-blocking: opening it waits for no one, and the server's own open
///   (read-only, blocking) returns at once because a writer exists. The descriptor stays open until the feed is
///   released (after the drill awaited the verification), so bytes written before the server opened the FIFO
///   are still there when it does. Redis stops reading at the RDB's end marker and checksum: it needs no end of
///   file. A verification that fails stops the server instead (`verificationFailed`, which the drill's wait
///   for the server asks).
/// - A full pipe is waited on in 100 ms polls; between them the feed looks whether it was abandoned (the drill is
///   leaving: the write throws) or told to stop feeding (the server loaded, or exited: the rest is dropped, and
///   the verification goes on to its verdict).
/// - The descriptor is closed only in `deinit`, never while another thread may be writing to it.
final class ScratchFeed: @unchecked Sendable {
    struct Abandoned: Error, CustomStringConvertible {
        var description: String { "the scratch redis-server stopped reading the backup" }
    }

    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var abandoned = false
    private var loaded = false
    private var failed = false

    init(fifo path: String) throws {
        self.path = path
        BrokenPipe.ignore()
        guard mkfifo(path, 0o600) == 0 else { throw FileSystemError("create the FIFO", path: path) }
        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError("open", path: path) }
        // A deeper pipe (1 MiB, Linux's default limit for an unprivileged process; 64 KiB when refused) lets the
        // verification run ahead of the server's small reads instead of waking it every 64 KiB.
        _ = fcntl(fd, 1031 /* F_SETPIPE_SZ, which Glibc does not export to Swift */, 1 << 20)
    }

    deinit { close(fd) }

    /// Writes all of `bytes`, waiting while the pipe is full; throws `Abandoned` once the feed was abandoned.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var next = bytes.baseAddress, !bytes.isEmpty else { return }
        var left = bytes.count
        while left > 0 {
            let (stop, done) = lock.withLock { (abandoned, loaded) }
            if stop { throw Abandoned() }
            if done { return } // no one reads any more: the rest is only the verification's
            let n = Glibc.write(fd, next, left)
            if n > 0 {
                next += n
                left -= n
            } else if n < 0 && errno == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 100)
            } else if !(n < 0 && errno == EINTR) {
                throw FileSystemError("write", path: path)
            }
        }
    }

    /// Makes every write from now on throw `Abandoned` (a waiting one within 100 ms).
    func abandon() { lock.withLock { abandoned = true } }

    /// The server loaded, or exited: later writes are dropped without error.
    func stopFeeding() { lock.withLock { loaded = true } }

    /// Called by the verification when it ends.
    func verificationEnded(ok: Bool) { lock.withLock { failed = !ok } }

    /// The verification ended and failed: the server will not get the rest, stop it.
    var verificationFailed: Bool { lock.withLock { failed } }
}
