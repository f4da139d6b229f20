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
/// C0 controls (but newline and tab, which our own texts use) and DEL become `\x1b`, C1 controls `\u{85}`, and the
/// bidirectional overrides and isolates (which reorder what is shown) `\u{202E}`. JSON output needs none of it
/// (its strings are escaped) and is never passed here.
enum TerminalText {
    static func safe(_ s: String, keepNewlines: Bool = true) -> String {
        guard s.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0xC2 || $0 == 0xE2 }) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            let v = scalar.value
            if (v == 0x0A && keepNewlines) || v == 0x09 {
                out.unicodeScalars.append(scalar)
            } else if v < 0x20 || v == 0x7F {
                out += String(format: "\\x%02x", v)
            } else if (0x80...0x9F).contains(v) || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) {
                out += String(format: "\\u{%X}", v)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
