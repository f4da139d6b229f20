import BackupCore
import Dispatch
import Foundation
import Subprocess
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A mongodump or mongorestore run that went wrong: names the tool, says what happened, keeps the last
/// lines of its stderr (secrets scrubbed).
public struct MongoToolError: UserFacingError, Equatable {
    public var tool: String
    public var problem: String
    public var stderrTail: [String]
    public var hintText: String?

    public init(tool: String, problem: String, stderrTail: [String], hintText: String? = nil) {
        self.tool = tool
        self.problem = problem
        self.stderrTail = stderrTail
        self.hintText = hintText
    }

    public var exitStatus: ExitStatus { .failed }
    public var description: String {
        var text = "\(tool): \(PeerText.clean(problem))"
        if !stderrTail.isEmpty { text += "; last output: " + PeerText.clean(stderrTail.suffix(5).joined(separator: " | ")) }
        return text
    }
    public var hint: String? { hintText }
}

/// What a tool run produced.
public struct MongoToolOutcome: Sendable {
    public var bytes: Int64
    public var stderrTail: [String]
    /// mongorestore: the counts it printed, read from every line of its stderr (empty for the other tools).
    public var report = MongoRestoreReport()
}

/// How the connection string reaches a tool. Never argv (visible in `ps`), never the environment, never a
/// file: the tool may run in another mount namespace (`docker run -i`, `docker compose exec -T`) that sees
/// nothing of this host's files, and a file would outlive a SIGKILL.
enum CredentialChannel {
    /// mongodump: its stdin is free (`--archive` writes to stdout), so the `--config` YAML is written to its
    /// stdin and stdin closed; it reads `--config=/dev/stdin` to the end (mongo-tools' ParseConfigFile is an
    /// os.ReadFile of the path).
    case stdinConfig
    /// mongorestore: its stdin carries the archive. A POSIX `sh` in the tool's own namespace reads the first
    /// line of stdin (the YAML, one line), hands it to the tool as fd 3 through a here-document (a pipe, in
    /// the shell's memory: no file, not exported), and execs the tool with `--config=/dev/fd/3`; the archive
    /// follows on the same stdin, untouched (`read` takes one byte at a time from a pipe).
    case shellShim
    /// mongosh: the script, connection string included, is its stdin.
    case inScript
}

/// Runs mongodump and mongorestore with `--archive` on stdout/stdin, and mongosh with a script on stdin.
///
/// A command is a program or a wrapper whose last word that is not an option is the tool, e.g.
/// `[docker, compose, exec, -T, mongo, mongorestore]` or `[docker, run, --rm, -i, --network, host, mongo:7,
/// mongodump]`; the wrapper is kept as it is and the tool's arguments appended. Every message is scrubbed of
/// the connection string's password.
public struct MongoTools: Sendable {
    public var uri: Secret
    public var timeoutSeconds: Double
    /// The source's name, so that messages can name the policy key to set.
    public var source: String

    public init(uri: Secret, timeoutSeconds: Double, source: String = "NAME") {
        self.uri = uri
        self.timeoutSeconds = timeoutSeconds
        self.source = source
    }

    /// Secrets that must never appear in a message: the whole URI and its password.
    var secrets: [Secret] {
        var out = [uri]
        if let schemeEnd = uri.value.range(of: "://"),
           let at = uri.value[schemeEnd.upperBound...].firstIndex(of: "@") {
            let userInfo = uri.value[schemeEnd.upperBound..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                let password = String(userInfo[userInfo.index(after: colon)...])
                out.append(Secret(password))
                if let decoded = password.removingPercentEncoding, decoded != password { out.append(Secret(decoded)) }
            }
        }
        return out
    }

    func scrub(_ text: String) -> String { Redaction.scrub(text, secrets: secrets) }

    /// `mongodump --archive --config=/dev/stdin [--db=D] [--excludeCollection=C]… [--oplog]`, stdout streamed to `chunk`.
    public func dump(command: [String], databases: [String], exclude: [String], oplog: Bool,
                     chunk: @escaping ([UInt8]) throws -> Void) async throws -> MongoToolOutcome {
        var args = ["--archive"]
        if let db = databases.first { args.append("--db=\(db)") }
        args += exclude.map { "--excludeCollection=\($0)" }
        if oplog { args.append("--oplog") }
        let outcome = try await run(command: command, toolKey: "mongodump", arguments: args, stdin: nil, stdout: chunk, credentials: .stdinConfig)
        if outcome.bytes == 0 {
            throw MongoToolError(tool: "mongodump", problem: "wrote no archive (0 bytes) although it exited 0",
                                 stderrTail: outcome.stderrTail, hintText: "check the connection string and the user's backup role")
        }
        return outcome
    }

    /// `sh -c SHIM mongorestore --archive … --config=/dev/fd/3`, fed the config line, then `input` (each call returns
    /// the next chunk, nil at the end).
    public func restore(command: [String], arguments: [String], input: @escaping () throws -> [UInt8]?) async throws -> MongoToolOutcome {
        try await run(command: command, toolKey: "mongorestore", arguments: ["--archive"] + arguments, stdin: input, stdout: nil,
                      credentials: .shellShim, readsCounts: true)
    }

    /// The shell that turns the first line of stdin into the tool's fd 3 (see `CredentialChannel.shellShim`).
    static let shim = """
        IFS= read -r kb_config || { echo "kaleem-backup: no configuration on stdin" >&2; exit 97; }
        exec 3<<KB_CONFIG_END
        $kb_config
        KB_CONFIG_END
        kb_config=
        exec "$@"
        """

    /// The outermost process of every tool run: it runs the command in the foreground and, beside it, a watcher
    /// that kills the whole process group (the tool, a wrapper such as `docker`, the shim) as soon as this shell's
    /// parent changes, i.e. kaleem-backup died, even by SIGKILL. A hung tool no longer outlives us (re-parented to
    /// init). `PR_SET_PDEATHSIG` is not used: it fires when the spawning *thread* exits, and tools are spawned
    /// from the cooperative pool. The watcher's output goes to /dev/null so it never holds the tool's pipes open.
    static let lifeline = """
        kb_parent=$PPID
        (
          while :; do
            read -r kb_stat < /proc/$$/stat || exit 0
            kb_stat=${kb_stat##*) }
            set -- $kb_stat
            [ "$2" = "$kb_parent" ] || kill -KILL 0
            sleep 0.5 2>/dev/null || sleep 1
          done
        ) </dev/null >/dev/null 2>&1 &
        kb_watcher=$!
        "$@"
        kb_status=$?
        kill "$kb_watcher" 2>/dev/null
        exit $kb_status
        """

    /// The command as run: the lifeline, the wrapper, then (shim) `sh -c SHIM kaleem-backup`, then the tool and its
    /// arguments.
    static func commandLine(_ command: [String], arguments: [String], credentials: CredentialChannel) -> [String] {
        let toolIndex = command.lastIndex { !$0.hasPrefix("-") } ?? 0
        let wrapper = Array(command[..<toolIndex])
        let tool = Array(command[toolIndex...])
        let watched = ["/bin/sh", "-c", lifeline, "kaleem-backup"]
        switch credentials {
        case .stdinConfig: return watched + wrapper + tool + arguments + ["--config=/dev/stdin"]
        case .shellShim: return watched + wrapper + ["sh", "-c", shim, "kaleem-backup"] + tool + arguments + ["--config=/dev/fd/3"]
        case .inScript: return watched + wrapper + tool + arguments
        }
    }

    /// `uri: "…"` on one line, quoted the way yaml.v2 reads it back (see `MongoConfigYAML`).
    var configLine: [UInt8] { Array(MongoConfigYAML.line(uri: uri.value).utf8) }

    /// Runs a script in the mongo shell (`mongosh --nodb --quiet`), connection string and all fed through stdin.
    /// The script reports its own outcome (`MongoshScript`): mongosh's REPL exits 0 after a failing statement, so
    /// a run whose output lacks the success marker is a failure, whatever its exit code.
    public func shell(command: [String], script body: String) async throws -> MongoToolOutcome {
        try await runScript(command: command, body: body, limit: 64 * 1024).outcome
    }

    /// `shell`, returning the lines the script printed before its success marker (what `print(...)` statements
    /// of the body wrote: listings). Up to 8 MiB of output is kept; beyond it the first lines are lost, which the
    /// caller must notice (it asked for every line it expects).
    public func query(command: [String], script body: String) async throws -> [String] {
        let (_, text, script) = try await runScript(command: command, body: body, limit: 8 << 20)
        return MongoshScript.lines(text).map(String.init).filter { !$0.contains(script.okMarker) }
    }

    private func runScript(command: [String], body: String, limit: Int) async throws -> (outcome: MongoToolOutcome, text: String, script: MongoshScript) {
        var fed = false
        let script = MongoshScript(connect: uri.value, body: body, nonce: UUID().uuidString.prefix(12).lowercased())
        let program = script.text
        let stdout = BoundedText(limit: limit)
        let outcome = try await run(command: command, toolKey: "mongosh", arguments: ["--nodb", "--quiet"], stdin: {
            if fed { return nil }
            fed = true
            return Array(program.utf8)
        }, stdout: { stdout.append($0) }, credentials: .inScript)
        switch script.outcome(stdout.text) {
        case (true, _)?:
            return (outcome, stdout.text, script)
        case (false, let message)?:
            throw MongoToolError(tool: "mongosh", problem: scrub("the script failed: \(message)"), stderrTail: outcome.stderrTail,
                                 hintText: "check the connection string, the user's roles and that the server answers")
        case nil:
            let said = stdout.text.split(whereSeparator: \.isNewline).suffix(3).map { scrub(String($0)) }
            throw MongoToolError(tool: "mongosh", problem: "exited 0 without reporting that the script ran to its end (mongosh's REPL exits 0 after a failing statement)",
                                 stderrTail: outcome.stderrTail + said, hintText: "run the same mongosh by hand and read its output; check the connection string")
        }
    }

    /// Where the first word of a configured command (the tool, or a wrapper such as docker) is: for preflight.
    public static func locate(_ command: [String]) -> String? {
        command.first.flatMap(resolve)
    }

    /// An executable's path: as given when it contains `/`, else the first match on PATH; nil when there is none.
    static func resolve(_ program: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = "\(dir)/\(program)"
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs one tool; `stdout` receives its standard output when given, `stdin` feeds its standard input.
    func run(command: [String], toolKey: String, arguments: [String], stdin: (() throws -> [UInt8]?)?,
             stdout: (([UInt8]) throws -> Void)?, credentials: CredentialChannel, readsCounts: Bool = false) async throws -> MongoToolOutcome {
        guard !command.isEmpty else { throw MongoToolError(tool: toolKey, problem: "no command configured", stderrTail: []) }
        // The first word of the configured command (the tool, or a wrapper such as docker) must exist here: found
        // before the lifeline shell runs it, so that a missing tool is said as such rather than as sh's exit 127.
        let program = command[0]
        guard let resolved = Self.resolve(program) else {
            throw MongoToolError(tool: toolKey, problem: "\(program) is not installed or not on PATH (set sources.\(source).\(toolKey) in the policy)", stderrTail: [],
                                 hintText: "install the MongoDB Database Tools, or set sources.\(source).\(toolKey) to its path or to a wrapper such as [docker, run, --rm, -i, --network, host, mongo:7, \(toolKey)]")
        }
        let line = Self.commandLine([resolved] + command.dropFirst(), arguments: arguments, credentials: credentials)
        // The configuration goes first on stdin; then whatever the tool reads (the archive, for mongorestore).
        var input = stdin
        if credentials != .inScript {
            var sent = false
            let config = configLine
            input = {
                if !sent { sent = true; return config }
                return try stdin?()
            }
        }
        let executable: Executable = .path(FilePath(line[0]))
        // A process group of its own: a timeout or a failed consumer stops the tool, its wrapper and the lifeline
        // together, and the lifeline's `kill 0` reaches no process of ours.
        var platform = PlatformOptions()
        platform.processGroupID = 0
        let configuration = Configuration(executable: executable, arguments: Arguments(Array(line.dropFirst())),
                                          platformOptions: platform)
        let timeout = timeoutSeconds
        let box = RunBox(stdin: input, stdout: stdout)
        box.readsCounts = readsCounts
        let (status, tail, bytes): (TerminationStatus, [String], Int64)
        do {
            (status, tail, bytes) = try await Self.execute(configuration, box: box, timeout: timeout)
        } catch let error as SubprocessError where error.code == .executableNotFound {
            throw MongoToolError(tool: toolKey, problem: "\(program) is not installed or not on PATH (set sources.\(source).\(toolKey) in the policy)", stderrTail: [],
                                 hintText: "install the MongoDB Database Tools, or set sources.\(source).\(toolKey) to its path or to a wrapper such as [docker, run, --rm, -i, --network, host, mongo:7, \(toolKey)]")
        } catch let error as UserFacingError {
            throw error
        } catch {
            throw MongoToolError(tool: toolKey, problem: scrub("cannot run \(program): \(error)"), stderrTail: [])
        }
        let cleanTail = tail.map(scrub)
        if box.timedOut {
            throw MongoToolError(tool: toolKey, problem: "did not finish within \(Int(timeout)) s and was stopped", stderrTail: cleanTail,
                                 hintText: "raise the source's timeout if the database is just large, or check that the server answers")
        }
        if case .exited(127) = status, cleanTail.contains(where: { $0.contains("not found") }) {
            throw MongoToolError(tool: toolKey, problem: "\(toolKey) is not installed where the command runs (exit 127)", stderrTail: cleanTail,
                                 hintText: "install the MongoDB Database Tools there, or set sources.\(source).\(toolKey) to a wrapper such as [docker, compose, exec, -T, mongo, \(toolKey)]")
        }
        guard case .exited(0) = status else {
            throw MongoToolError(tool: toolKey, problem: "failed (\(status))", stderrTail: cleanTail,
                                 hintText: "read its last output above; check the connection string, the user's roles and the tool's version")
        }
        if box.stoppedReading {
            throw MongoToolError(tool: toolKey, problem: "exited with status 0 before reading all of its input", stderrTail: cleanTail,
                                 hintText: "the archive was not fully restored; read the tool's last output above and check its version and wrapper command")
        }
        return MongoToolOutcome(bytes: bytes, stderrTail: cleanTail, report: box.report)
    }

    private static func execute(_ configuration: Configuration, box: RunBox, timeout: Double) async throws
        -> (TerminationStatus, [String], Int64) {
        BrokenPipe.ignore() // the tool may exit while its stdin is being fed
        let result = try await Subprocess.run(configuration, input: .inputWriter, output: .sequence, error: .sequence) { execution in
            let watchdog = Task {
                try await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
                box.timedOut = true
                try? execution.send(signal: .terminate, toProcessGroup: true)
                try await Task.sleep(nanoseconds: 5_000_000_000)
                try? execution.send(signal: .kill, toProcessGroup: true)
            }
            defer { watchdog.cancel() }
            async let tail: [String] = Self.tail(of: execution.standardError, box: box)
            async let fed: Void = {
                let writer = execution.standardInputWriter
                if let stdin = box.stdin {
                    do {
                        while let chunk = try stdin() {
                            do {
                                _ = try await writer.write(chunk)
                            } catch {
                                // EPIPE: the tool exited or closed its stdin. Its own exit status and output say
                                // why (a refused connection, a bad configuration), so that is what is reported.
                                box.stoppedReading = true
                                break
                            }
                        }
                    } catch {
                        box.feedError = error // our side: the artifact could not be read
                    }
                }
                try? await writer.finish()
            }()
            var bytes: Int64 = 0
            do {
                for try await buffer in execution.standardOutput {
                    let chunk = buffer.withUnsafeBytes { Array($0) }
                    bytes += Int64(chunk.count)
                    try box.stdout?(chunk)
                }
            } catch {
                // The consumer failed (disk full, invalid archive): stop the tool, then report the consumer's error.
                try? execution.send(signal: .kill, toProcessGroup: true)
                _ = await tail
                await fed
                throw error
            }
            await fed
            return (await tail, bytes)
        }
        if let feedError = box.feedError { throw feedError }
        return (result.terminationStatus, result.closureResult.0, result.closureResult.1)
    }

    /// The last lines of a stream (bounded memory); with `box.readsCounts`, every line also goes through
    /// mongorestore's count reader, so that counts printed early are not lost with the tail.
    private static func tail(of stream: SubprocessOutputSequence, box: RunBox) async -> [String] {
        var lines: [String] = []
        /// A line longer than this is cut (a tool that never prints a newline cannot grow memory).
        let longest = 64 * 1024
        func take(_ line: String) {
            if box.readsCounts { box.report.consume(line) }
            if !line.isEmpty { lines.append(line) }
        }
        // Bytes, split at newlines as they come: only the new bytes are scanned (re-splitting a long pending line
        // on every chunk made a tool that never ends its line cost quadratic time). A line longer than `longest`
        // is cut there and the rest of it dropped, up to its newline.
        var pending: [UInt8] = []
        var dropping = false
        do {
            for try await buffer in stream {
                buffer.withUnsafeBytes { raw in
                    for byte in raw {
                        if byte == 10 {
                            if !dropping { take(String(decoding: pending, as: UTF8.self)) }
                            pending.removeAll(keepingCapacity: true)
                            dropping = false
                        } else if !dropping {
                            pending.append(byte)
                            if pending.count >= longest {
                                take(String(decoding: pending, as: UTF8.self))
                                pending.removeAll(keepingCapacity: true)
                                dropping = true
                            }
                        }
                    }
                }
                if lines.count > Defaults.stderrTailLines * 4 { lines.removeFirst(lines.count - Defaults.stderrTailLines * 4) }
            }
        } catch {}
        if !pending.isEmpty && !dropping { take(String(decoding: pending, as: UTF8.self)) }
        return Array(lines.suffix(Defaults.stderrTailLines * 4))
    }
}

/// The last `limit` bytes of a tool's output, as text.
final class BoundedText: @unchecked Sendable {
    private var bytes: [UInt8] = []
    private let limit: Int
    init(limit: Int) { self.limit = limit }
    func append(_ chunk: [UInt8]) {
        bytes += chunk
        if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
    }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// State shared by the tool's stdin feeder, its stdout consumer and the watchdog, which run as tasks of their own.
private final class RunBox: @unchecked Sendable {
    let stdin: (() throws -> [UInt8]?)?
    let stdout: (([UInt8]) throws -> Void)?
    var timedOut = false
    var feedError: Error?
    /// The tool stopped reading its stdin before the feed ended (the write got EPIPE).
    var stoppedReading = false
    var readsCounts = false
    var report = MongoRestoreReport()

    init(stdin: (() throws -> [UInt8]?)?, stdout: (([UInt8]) throws -> Void)?) {
        self.stdin = stdin
        self.stdout = stdout
    }
}
