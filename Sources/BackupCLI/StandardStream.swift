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
    Swift.print(TerminalText.safe(items.map { "\($0)" }.joined(separator: separator)), terminator: terminator)
}

/// Writes to the process's standard output and error with write(2). Foundation's `FileHandle.write` traps on
/// EPIPE once SIGPIPE is ignored (see `BrokenPipe`); here a closed stdout ends the process as the shell expects.
enum StandardStream {
    static func output(_ bytes: [UInt8]) {
        ProgressRenderer.shared.clearLine() // entries of `ls` stream out while the read is drawn below them
        Output.printedJSON = true // only JSON lines come this way
        write(1, bytes)
    }
    /// Text for a person on stderr, control characters made visible (`TerminalText`).
    /// A large text for stdout (a help screen, the manual) written with write(2), so that a failure is seen: a
    /// large `print` that fails whole leaves nothing buffered for `finishOutput`'s fflush to report.
    static func text(_ text: String) {
        ProgressRenderer.shared.clearLine()
        _ = fflush(nil)
        write(1, Array(text.utf8))
    }

    static func error(_ text: String) { write(2, Array(TerminalText.safe(text).utf8)) }
    /// A JSON log line on stderr, as it is (already escaped).
    static func errorJSON(_ text: String) { write(2, Array(text.utf8)) }

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
            StandardStream.errorJSON(JSONLogHandler.line(time: Date(), level: level, label: "kaleem-backup", message: text, metadata: fields))
        } else {
            StandardStream.error(prefix + text + "\n")
        }
    }
}

/// Text from peers and from backups (a Redis error reply, an S3 error body, a key name, a tool's stderr) is shown
/// to a person with its control characters made visible: an ESC sequence in a hostile server's error must not
/// retitle, clear or rewrite the operator's terminal, and a newline in a key must not look like another entry.
/// C0 controls (but the newlines of our own multi-line texts) and DEL become `\x1b`, C1 controls `\u{85}`, and
/// the bidirectional overrides and isolates (which reorder what is shown) `\u{202E}` (PeerText). Where a peer's
/// text is interpolated, it is escaped whole (PeerText.escape: its newlines too). JSON output is never passed here.
enum TerminalText {
    static func safe(_ s: String, keepNewlines: Bool = true) -> String {
        guard keepNewlines, s.contains("\n") else { return PeerText.escape(s) }
        return s.split(separator: "\n", omittingEmptySubsequences: false).map { PeerText.escape(String($0)) }.joined(separator: "\n")
    }
}
