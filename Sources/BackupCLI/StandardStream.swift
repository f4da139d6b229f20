import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writes to the process's standard output and error with write(2). Foundation's `FileHandle.write` traps on
/// EPIPE once SIGPIPE is ignored (see `BrokenPipe`); here a closed stdout ends the process as the shell expects.
enum StandardStream {
    static func output(_ bytes: [UInt8]) {
        Output.printedJSON = true // only JSON lines come this way
        write(1, bytes)
    }
    static func error(_ text: String) { write(2, Array(text.utf8)) }

    /// The errno of the first write to stdout that failed (a full disk, a closed descriptor); 0 when none did.
    nonisolated(unsafe) private static var lostOutput: Int32 = 0

    /// At the end of a command that succeeded: flushes what `print` buffered; when some of the output could not
    /// be written (`list --json > /dev/full`, a closed stdout), says so and exits 1, as coreutils do, instead of
    /// exit 0 over an empty or cut file. A reader that went away (EPIPE) ends the process by SIGPIPE as before.
    static func finishOutput() {
        if fflush(nil) != 0 {
            if errno == EPIPE { BrokenPipe.dieOfBrokenStandardStream() }
            if lostOutput == 0 { lostOutput = errno == 0 ? EIO : errno }
        }
        guard lostOutput != 0 else { return }
        error("error: the output could not be written to standard output: \(String(cString: strerror(lostOutput)))\n")
        _exit(ExitStatus.failed.rawValue)
    }

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
                    if fd == 1 && lostOutput == 0 { lostOutput = n < 0 ? errno : EIO }
                    return // a full disk under a redirected stream: said at the end (finishOutput)
                }
            }
        }
    }
}
