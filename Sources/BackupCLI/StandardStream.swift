import BackupCore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Every `print` of the commands (results, tables, JSON) goes through here: the progress line on a terminal is
/// erased first, so that a result never starts on the same line as a progress line (stderr and stdout are then the
/// same terminal).
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    ProgressRenderer.shared.clearLine()
    Swift.print(items.map { "\($0)" }.joined(separator: separator), terminator: terminator)
}

/// Writes to the process's standard output and error with write(2). Foundation's `FileHandle.write` traps on
/// EPIPE once SIGPIPE is ignored (see `BrokenPipe`); here a closed stdout ends the process as the shell expects.
enum StandardStream {
    static func output(_ bytes: [UInt8]) {
        ProgressRenderer.shared.clearLine() // entries of `ls` stream out while the read is drawn below them
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

extension GlobalOptions {
    /// A line for the person on stderr (`error: …`, `note: …`, `CHECK: …`), or, with `--log-format json`, the
    /// same as one JSON log line (`{"time", "level", "message", "label", …fields}`), so that a log shipper reading
    /// stderr never meets a line it cannot parse.
    func say(_ level: Logger.Level, _ prefix: String, _ text: String, _ fields: Logger.Metadata = [:]) {
        Diagnostics.say(level, prefix, text, fields, json: logFormat == .json)
    }
}

enum Diagnostics {
    static func say(_ level: Logger.Level, _ prefix: String, _ text: String, _ fields: Logger.Metadata = [:], json: Bool) {
        ProgressRenderer.shared.clearLine()
        if json {
            StandardStream.error(JSONLogHandler.line(time: Date(), level: level, label: "kaleem-backup", message: text, metadata: fields))
        } else {
            StandardStream.error(prefix + text + "\n")
        }
    }
}
