// A refresh's scrubbing hook (#38): `refresh.scrub.<source>.command`, run on the restored data before this host's
// live store takes it (Redis: against the scratch server the live one is about to replicate from) or, for a kind
// without such a scratch step (MongoDB), right after the restore.
//
// The command runs without a shell (argv as written, the first an absolute path), in `/`, with only PATH and LANG
// in its environment (the policy's ${VAR}s, which may hold connection strings, are not passed on), stdout and
// stderr to a private file of which the last 2 KiB are kept for the error. Placeholders in its arguments:
// `{host}` and `{port}` (the scratch target: empty where there is none), `{source}`, `{from_host}`, `{backup}`.
// A secret it needs (the scratch server's password) is written to its stdin, one line, never in argv or env.
// Exit 0 within its timeout is success; anything else fails the source's refresh before the live data is replaced.

import ArtifactStore
import BackupCore
import Foundation
import Synchronization

final class ScrubHook: Sendable {
    /// The hook of the source a refresh is restoring, for the kind to run against its scratch target
    /// (`SourceContext.scrubHook`): bound by the refresher around the one restore, never stored on the engine.
    @TaskLocal static var current: ScrubHook?

    let source: String
    let scrub: ScrubCommand
    let values: [String: String]
    private let ranFlag = Mutex(false)
    /// Set once the hook ran (the kind ran it against its scratch target, or the refresher after the restore).
    var ran: Bool { ranFlag.withLock { $0 } }

    init(source: String, scrub: ScrubCommand, fromHost: String, backup: String) {
        self.source = source
        self.scrub = scrub
        values = ["{source}": source, "{from_host}": fromHost, "{backup}": backup]
    }

    /// The failure of a hook: the refresh of its source fails, and the live data was not replaced (or, after
    /// the restore, is the restored but unscrubbed data).
    struct Failed: UserFacingError {
        var message: String
        var description: String { message }
        var exitStatus: ExitStatus { .failed }
        var hint: String? { "run the scrub command by hand against a scratch copy to see why; staging keeps the data it had" }
    }

    /// Runs the command with `{host}`/`{port}` of the scratch target (nil: none) and `input` on its stdin.
    func run(host: String?, port: Int?, input: String = "") throws {
        ranFlag.withLock { $0 = true }
        var values = self.values
        values["{host}"] = host ?? ""
        values["{port}"] = port.map(String.init) ?? ""
        let argv = scrub.command.map { arg in values.reduce(arg) { $0.replacingOccurrences(of: $1.key, with: $1.value) } }
        let dir = try EngineCore.privateTemporaryDirectory(prefix: "scrub")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outputPath = dir + "/output"
        guard FileManager.default.createFile(atPath: outputPath, contents: nil, attributes: [.posixPermissions: 0o600]),
              let output = FileHandle(forWritingAtPath: outputPath) else {
            throw Failed(message: "the scrub of \(source) could not start: no file for its output in \(dir)")
        }
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.environment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"]
        process.currentDirectoryURL = URL(fileURLWithPath: "/")
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            throw Failed(message: "the scrub of \(source) could not start \(argv[0]): \(error.localizedDescription)")
        }
        // Written whole before the wait: a line or two, within the pipe's buffer even when the command never reads.
        try? stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(scrub.timeoutSeconds)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                process.terminate()
                let grace = Date().addingTimeInterval(5)
                while process.isRunning && Date() < grace { usleep(50_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        let tail = Self.tail(outputPath)
        if timedOut {
            throw Failed(message: "the scrub of \(source) (\(argv[0])) did not finish within \(Int(scrub.timeoutSeconds)) s and was stopped" + (tail.isEmpty ? "" : ": \(tail)"))
        }
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how = process.terminationReason == .exit ? "exited \(process.terminationStatus)" : "was killed by signal \(process.terminationStatus)"
            throw Failed(message: "the scrub of \(source) (\(argv[0])) \(how)" + (tail.isEmpty ? "" : ": \(tail)"))
        }
    }

    /// The last 2 KiB of what the command printed, one line as a peer's text.
    private static func tail(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 2048 ? size - 2048 : 0)
        let data = (try? handle.readToEnd()) ?? Data()
        return PeerText.clean(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
