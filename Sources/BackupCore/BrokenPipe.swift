#if canImport(Glibc)
import Glibc
#endif

/// SIGPIPE, ignored process-wide, as Go does for every descriptor but the standard streams.
///
/// kaleem-backup writes into pipes whose reader may go away at any moment: an archive streamed into
/// `mongorestore`'s stdin when the tool refuses its configuration and exits, a verification feed into a scratch
/// server. With SIGPIPE's default action the first such write killed the whole process (the backup or restore
/// ended with no error, no catalog row, no notification; the test runner died of signal 13 with 300 tests in
/// flight). Ignored, the write fails with EPIPE and the error says which tool stopped reading.
///
/// Children never inherit the ignored disposition: `ChildProcess` and swift-subprocess both start them with
/// every signal at its default (POSIX_SPAWN_SETSIGDEF). The standard output of the CLI keeps the shell's
/// convention through `StandardStream` (a write to a closed stdout ends the process by SIGPIPE, quietly).
public enum BrokenPipe {
    private static let ignored: Bool = {
        signal(SIGPIPE, SIG_IGN)
        return true
    }()

    /// Idempotent and cheap after the first call; call it before the first write into a pipe or socket.
    public static func ignore() { _ = ignored }

    /// For a write to the process's own standard output or error that failed with EPIPE: ends the process the
    /// way an un-ignoring program would (`kaleem-backup list | head -1`), without a message.
    public static func dieOfBrokenStandardStream() -> Never {
        signal(SIGPIPE, SIG_DFL)
        raise(SIGPIPE)
        _exit(128 + SIGPIPE)
    }
}
