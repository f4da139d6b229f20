import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writes to the process's standard output and error with write(2). Foundation's `FileHandle.write` traps on
/// EPIPE once SIGPIPE is ignored (see `BrokenPipe`); here a closed stdout ends the process as the shell expects.
enum StandardStream {
    static func output(_ bytes: [UInt8]) { write(1, bytes) }
    static func error(_ text: String) { write(2, Array(text.utf8)) }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else if n < 0 && errno == EPIPE {
                    BrokenPipe.dieOfBrokenStandardStream()
                } else {
                    return // a full disk under a redirected stream: nothing better to say it on
                }
            }
        }
    }
}
