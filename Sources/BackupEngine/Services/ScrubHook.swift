// A refresh's scrubbing hook (#38): `refresh.scrub.<source>.command`, run on the restored data before this host's
// live store takes it (Redis: against the scratch server the live one is about to replicate from; MongoDB: against
// the scratch databases `kbrefresh_<db>` the backup was restored into, before they are renamed into place) or, for
// a kind without such a scratch step, right after the restore.
//
// The command runs without a shell (argv as written, the first an absolute path), in `/`, with only PATH and LANG
// in its environment (the policy's ${VAR}s, which may hold connection strings, are not passed on), stdout and
// stderr to a private file of which the last 2 KiB are kept for the error. Placeholders in its arguments:
// `{host}` and `{port}` (the scratch target: empty where there is none), `{database}` and `{databases}` (MongoDB:
// the scratch database when the backup holds one, and all of them comma-separated; empty for other kinds),
// `{source}`, `{from_host}`, `{backup}`.
// A secret it needs (the scratch server's password) is written to its stdin, one line, never in argv or env.
// Exit 0 within its timeout is success; anything else fails the source's refresh before the live data is replaced.

import ArtifactStore
import BackupCore
import CleanSpawn
import Foundation
import Synchronization

final class ScrubHook: Sendable {
    /// The hook of the source a refresh is restoring, for the kind to run against its scratch target
    /// (`SourceContext.scrubHook`): bound by the refresher around the one restore, never stored on the engine.
    @TaskLocal static var current: ScrubHook?
    /// True while the refresher restores a source (with or without a hook): a kind that can restore through a
    /// scratch step and swap (MongoDB) does so then, rather than restoring straight into the live store.
    @TaskLocal static var refreshing = false

    let source: String
    let scrub: ScrubCommand
    let values: [String: String]
    private let ranFlag = Mutex(false)
    /// Set once the hook ran (the kind ran it against its scratch target, or the refresher after the restore).
    var ran: Bool { ranFlag.withLock { $0 } }

    init(source: String, scrub: ScrubCommand, fromHost: String, backup: String) {
        self.source = source
        self.scrub = scrub
        values = ["{source}": source, "{from_host}": fromHost, "{backup}": backup, "{database}": "", "{databases}": ""]
    }

    /// The placeholders of `argument` replaced in one pass, left to right: a value is never read again for
    /// placeholders (a database named `{backup}x` stays that name), whatever the order of `values`.
    static func substitute(_ argument: String, _ values: [String: String]) -> String {
        var out = ""
        var rest = Substring(argument)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            let tail = rest[open...]
            if let close = tail.firstIndex(of: "}"), let value = values[String(tail[...close])] {
                out += value
                rest = tail[tail.index(after: close)...]
            } else {
                out += "{"
                rest = tail.dropFirst()
            }
        }
        return out + rest
    }

    /// The failure of a hook: the refresh of its source fails, and the live data was not replaced (or, after
    /// the restore, is the restored but unscrubbed data).
    struct Failed: UserFacingError {
        var message: String
        var description: String { message }
        var exitStatus: ExitStatus { .failed }
        var hint: String? { "run the scrub command by hand against a scratch copy to see why; staging keeps the data it had" }
    }

    /// Runs the command with `{host}`/`{port}` of the scratch target (nil: none), the kind's own placeholders
    /// (`extra`: `{database}`, `{databases}`) and `input` on its stdin.
    func run(host: String?, port: Int?, input: String = "", extra: [String: String] = [:]) throws {
        ranFlag.withLock { $0 = true }
        var values = self.values.merging(extra) { _, given in given }
        values["{host}"] = host ?? ""
        values["{port}"] = port.map(String.init) ?? ""
        let argv = scrub.command.map { Self.substitute($0, values) }
        let spawned: ScrubProcess
        do {
            spawned = try ScrubProcess(argv: argv, environment: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"])
        } catch {
            throw Failed(message: "the scrub of \(source) could not start \(argv[0]): \(error)")
        }
        let outcome = spawned.run(input: Array(input.utf8), timeout: scrub.timeoutSeconds)
        let tail = PeerText.clean(String(decoding: outcome.tail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        if outcome.timedOut {
            throw Failed(message: "the scrub of \(source) (\(argv[0])) did not finish within \(Int(scrub.timeoutSeconds)) s and was stopped" + (tail.isEmpty ? "" : ": \(tail)"))
        }
        guard outcome.status == 0 else {
            let how = outcome.signal != 0 ? "was killed by signal \(outcome.signal)" : "exited \(outcome.status)"
            throw Failed(message: "the scrub of \(source) (\(argv[0])) \(how)" + (tail.isEmpty ? "" : ": \(tail)"))
        }
    }
}

/// The scrub command as a child in a process group of its own (`CleanSpawn`: signals at their defaults, nothing of
/// ours inherited but the two pipes, `/` as its directory). Its output is read through a pipe of which only the
/// last 2 KiB are kept (a chatty command cannot fill a disk); the deadline is ours (waitpid, not Foundation's exit
/// detection, which waits for every process holding its descriptors); when the command exits, or at the deadline,
/// the whole group is killed, so a background child it left cannot keep writing into data the live store is about
/// to take, nor hold the refresh (the attack on #38).
struct ScrubProcess {
    let pid: pid_t
    let stdinWrite: Int32
    let outputRead: Int32

    init(argv: [String], environment: [String]) throws {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0 else { throw FileSystemError("pipe", path: argv[0]) }
        guard pipe(&outPipe) == 0 else { close(inPipe[0]); close(inPipe[1]); throw FileSystemError("pipe", path: argv[0]) }
        // Close-on-exec at once: another thread's child must not inherit them (CleanSpawn closes ours past 2).
        for fd in inPipe + outPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let spawned = Result {
            try CleanSpawn.spawn(argv: argv, environment: environment, stdin: .descriptor(inPipe[0]), stdout: .descriptor(outPipe[1]),
                                 stderr: .descriptor(outPipe[1]), newProcessGroup: true, directory: "/")
        }
        close(inPipe[0])
        close(outPipe[1])
        switch spawned {
        case .success(let child):
            pid = child
            stdinWrite = inPipe[1]
            outputRead = outPipe[0]
        case .failure(let error):
            close(inPipe[1]); close(outPipe[0])
            throw BackupFailure(String(cString: strerror((error as? CleanSpawn.Failure)?.errno ?? EINVAL)))
        }
    }

    /// Feeds `input`, reads the output (keeping the last 2 KiB) until the command exits or the deadline, then
    /// kills the group and reaps the command.
    func run(input: [UInt8], timeout: Double) -> (status: Int32, signal: Int32, timedOut: Bool, tail: [UInt8]) {
        // The command is in a group of its own (a terminal's Ctrl-C does not reach it): if this process is told to
        // stop while it runs, the group goes first (the attack on #38: a scrub outlived `kill -TERM` of its refresh).
        ScrubSignals.guarding(group: pid)
        defer { ScrubSignals.release() }
        // A line or two: within the pipe's buffer even when the command never reads (EPIPE ignored: SIGPIPE is).
        _ = input.withUnsafeBytes { write(stdinWrite, $0.baseAddress, $0.count) }
        close(stdinWrite)
        _ = fcntl(outputRead, F_SETFL, fcntl(outputRead, F_GETFL) | O_NONBLOCK)
        defer { close(outputRead) }
        var tail: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        func drain() {
            while true {
                let n = buffer.withUnsafeMutableBytes { read(outputRead, $0.baseAddress, $0.count) }
                guard n > 0 else { return }
                tail += buffer[0..<n]
                if tail.count > 2048 { tail.removeFirst(tail.count - 2048) }
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var exited = false
        while !exited {
            var fds = pollfd(fd: outputRead, events: Int16(POLLIN), revents: 0)
            _ = poll(&fds, 1, 50)
            drain()
            if waitpid(pid, &status, WNOHANG) == pid { exited = true; break }
            if Date() > deadline { break }
        }
        // The command is done (or out of time): whatever of its group remains goes.
        if !exited {
            kill(-pid, SIGTERM)
            let grace = Date().addingTimeInterval(2)
            while Date() < grace {
                if waitpid(pid, &status, WNOHANG) == pid { exited = true; break }
                usleep(20_000)
            }
            kill(-pid, SIGKILL)
            if !exited { _ = waitpid(pid, &status, 0) }
            drain()
            return (0, 0, true, tail)
        }
        kill(-pid, SIGKILL)
        drain()
        let signal = status & 0x7f
        return (signal == 0 ? (status >> 8) & 0xff : 0, signal, false, tail)
    }
}

/// While a scrub runs: SIGTERM, SIGINT and SIGHUP, where this process leaves them at their default (the command
/// line; the daemon's are its service lifecycle's and are not touched), kill the scrub's process group, then end
/// this process as the signal would have. Only async-signal-safe calls in the handler.
enum ScrubSignals {
    nonisolated(unsafe) static var group: pid_t = 0
    nonisolated(unsafe) static var installed: [Int32] = []
    static let signals: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    static func guarding(group pid: pid_t) {
        group = pid
        installed = []
        for sig in signals {
            let previous = signal(sig, scrubSignalHandler)
            if previous == nil { installed.append(sig) } else { signal(sig, previous) } // not ours to change
        }
    }

    static func release() {
        for sig in installed { signal(sig, SIG_DFL) }
        installed = []
        group = 0
    }
}

private func scrubSignalHandler(_ sig: Int32) {
    let group = ScrubSignals.group
    if group > 0 { kill(-group, SIGKILL) }
    signal(sig, SIG_DFL)
    raise(sig)
}

