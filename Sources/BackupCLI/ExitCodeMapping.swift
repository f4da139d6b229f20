import ArgumentParser
import BackupCore
import Foundation
import Logging

/// The one place where errors become exit codes and messages on stderr.
enum ExitCodeMapping {
    static func report(_ error: Error, command: KaleemBackup.Type) -> ExitStatus {
        switch error {
        case let exit as CommandExit:
            return exit.status
        case let user as UserFacingError:
            if GlobalOptions.logsJSON {
                var fields: Logger.Metadata = ["exit_code": "\(user.exitStatus.rawValue)"]
                if let hint = user.hint { fields["try"] = "\(hint)" }
                Diagnostics.say(.error, "", user.description, fields, json: true)
            } else {
                // One line each: a peer's newline quoted in the error cannot forge another `error:` or `Try:` line.
                printError("error: \(PeerText.escape(user.description))")
                if let hint = user.hint { printError("Try: \(PeerText.escape(hint))") }
            }
            errorAsJSON(user.description, status: user.exitStatus, hint: user.hint)
            return user.exitStatus
        default:
            // Help and --version exit 0 on stdout; every other parsing error is a usage error (2).
            let code = command.exitCode(for: error)
            let message = command.fullMessage(for: error)
            if code == .success {
                // restore --help: its kinds' own options after OPTIONS, laid out as OPTIONS; ls and diff: the kinds' filters.
                let kinds = message.contains("USAGE: kaleem-backup restore ") ? RestoreCommand.kindOptionsHelp()
                    : message.contains("USAGE: kaleem-backup ls ") || message.contains("USAGE: kaleem-backup diff ") ? ContentFilterOptions.kindFiltersHelp() : nil
                StandardStream.text((kinds.map { message.trimmingCharacters(in: .newlines) + "\n" + $0 } ?? message) + "\n")
                StandardStream.finishOutput() // help written to a full disk is an error too
                return .ok
            }
            if error is CleanExit {
                if !message.isEmpty { printError(message) }
                return .ok
            }
            let status: ExitStatus = code.rawValue == ExitCode.validationFailure.rawValue || error is ValidationError || code.rawValue == EX_USAGE
                ? .usage : (code.rawValue == 0 ? .ok : .failed)
            if GlobalOptions.logsJSON {
                Diagnostics.say(.error, "", message.trimmingCharacters(in: .whitespacesAndNewlines), ["exit_code": "\(status.rawValue)"], json: true)
            } else if !message.isEmpty {
                printError(message)
            }
            errorAsJSON(message, status: status, hint: nil)
            return status
        }
    }

    /// With `--json`, a command that fails still prints one JSON object on stdout, so that a script reading it
    /// gets the reason rather than nothing: `{"error", "exit_code", "try"}` (the same text is on stderr).
    static func errorAsJSON(_ message: String, status: ExitStatus, hint: String?) {
        guard CommandLine.arguments.dropFirst().contains("--json"), !Output.printedJSON else { return }
        struct ErrorJSON: Encodable {
            var error: String
            var exit_code: Int32
            @JSONNullable var `try`: String?
        }
        try? Output.json(ErrorJSON(error: message.trimmingCharacters(in: .whitespacesAndNewlines), exit_code: status.rawValue, try: hint))
    }

    static func printError(_ text: String) {
        StandardStream.error(text + "\n")
    }
}

private let EX_USAGE: Int32 = 64
