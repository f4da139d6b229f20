// BackupCLI: the commands, one file each. A command parses its options, validates them, calls one engine
// function and prints the result (text, or JSON with --json). Exit codes are mapped in one place
// (`ExitCodeMapping`), from the errors the engine raises.
import ArgumentParser
import BackupCore
import BackupEngine
import Foundation
import Logging

public struct KaleemBackup: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "kaleem-backup",
        abstract: "Backups and restore drills for the Kaleem stack (Redis, MongoDB, MinIO).",
        discussion: """
        Exit codes: 0 ok, 1 failed, 2 usage or policy error, 3 partial (some sources failed), \
        4 integrity failure, 11 another run holds the repository lock.
        The policy is --policy, else $KALEEM_BACKUP_POLICY, else policies/local.yml, else /etc/kaleem-backup/policy.yml (demo alone falls back to the embedded copy of policies/local.yml).
        """,
        version: "\(version) (commit \(BuildInfo.commit))",
        subcommands: [BackupCommand.self, ListCommand.self, ShowCommand.self, LsCommand.self, DiffCommand.self, FindCommand.self, VerifyCommand.self,
                      RestoreCommand.self, DrillCommand.self, RefreshCommand.self, StatusCommand.self, RotateCommand.self, PinCommand.self, UnpinCommand.self, HookCommand.self, ScheduleCommand.self, DaemonCommand.self, PolicyCommand.self, CatalogCommand.self, OffsiteCommand.self, FleetCommand.self, ImportCommand.self, ForgetCommand.self, DemoCommand.self, ManualCommand.self]
    )

    /// The release; scripts/package-deb.sh reads it from this line.
    static let version = "0.1.0"

    public init() {}

    /// The program: parse, run (on the engine executor, EngineExecutor.swift), map errors to exit codes. Never returns.
    public static func runMain(arguments: [String]? = nil) async -> Never {
        umask(0o077) // every file this process creates (catalog, journal, artifacts) is 0600, directories 0700
        // A parent may have started us with signals blocked (a thread of a test runner or a supervisor):
        // unblock them so SIGTERM and SIGINT stop the daemon gracefully. Threads started later inherit this.
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_UNBLOCK, &all, nil)
        do {
            let command = try parseAsRoot(arguments)
            try await EngineExecutor.run {
                var command = command
                if var asyncCommand = command as? AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run() // --help, --version: argument-parser's own
                }
            }
            ProgressRenderer.shared.stop()
            StandardStream.finishOutput()
            Foundation.exit(ExitStatus.ok.rawValue)
        } catch {
            ProgressRenderer.shared.stop()
            let status = ExitCodeMapping.report(error, command: Self.self)
            Foundation.exit(status.rawValue)
        }
    }
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Policy file (default: $KALEEM_BACKUP_POLICY, then policies/local.yml, then /etc/kaleem-backup/policy.yml; none found: exit 2).")
    var policy: String?

    @Flag(name: .long, help: "Print the result as JSON on stdout.")
    var json = false

    @Flag(name: [.short, .long], help: "Log progress to stderr (info level; the default shows warnings and errors).")
    var verbose = false

    @Flag(name: [.short, .long], help: "Errors only on stderr: no warnings, no progress, no context line (for cron).")
    var quiet = false

    @Option(help: "How stderr is written: text (for a person) or json (one JSON object per line: time, level, message, label, and the event's fields; errors too, with exit_code and try; no progress line).")
    var logFormat: LogFormat = .text

    enum LogFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

    /// `--log-format json` was given (read from the arguments, as ExitCodeMapping needs it after parsing failed).
    static var logsJSON: Bool {
        let args = Array(CommandLine.arguments.dropFirst())
        if args.contains("--log-format=json") { return true }
        if let i = args.firstIndex(of: "--log-format"), i + 1 < args.count { return args[i + 1] == "json" }
        return false
    }

    func loadPolicy() throws -> Policy {
        let environment = ProcessInfo.processInfo.environment
        let loaded = try PolicyLoader.load(path: policy, environment: environment)
        if !quiet, let warning = PolicyLoader.exposureWarning(path: policy, environment: environment) {
            if logFormat == .json {
                makeLogger().warning("\(warning)")
            } else {
                StandardStream.error("warning: \(warning)\n")
            }
        }
        return loaded
    }

    /// stderr is a terminal (a person is watching).
    static let onTerminal = isatty(2) == 1

    func makeEngine(policy: Policy? = nil) throws -> BackupEngine {
        let policy = try policy ?? loadPolicy()
        var environment = EngineEnvironment(logger: makeLogger())
        if !quiet && (Self.onTerminal || verbose) {
            // Which policy and which repository: `list` after a backup must not silently read another one.
            if logFormat == .json {
                environment.logger.info("context", metadata: ["policy": "\(policy.origin)", "repository": "\(policy.repository.path)"])
            } else {
                StandardStream.error("kaleem-backup: policy \(policy.origin), repository \(policy.repository.path)\n")
            }
        }
        if Self.onTerminal && !quiet && !json && logFormat == .text {
            environment.progress = ProgressRenderer.shared.meter
            ProgressRenderer.shared.start()
        }
        return BackupEngine(policy: policy, environment: environment)
    }

    func makeLogger(minimum: Logger.Level = .warning) -> Logger {
        var logger = logFormat == .json ? Logger(label: "kaleem-backup") { JSONLogHandler(label: $0) }
            : Logger(label: "kaleem-backup") { ProgressAwareLogHandler(inner: StreamLogHandler.standardError(label: $0)) }
        let env = ProcessInfo.processInfo.environment["KALEEM_BACKUP_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
        logger.logLevel = env ?? (quiet ? .error : verbose ? .info : minimum)
        return logger
    }
}

/// A command that finished but must exit with a non-zero status (a partial backup, a failed verify).
struct CommandExit: Error {
    var status: ExitStatus
}
