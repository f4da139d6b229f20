import ArgumentParser
import BackupCore
import Foundation

/// The one place where errors become exit codes and messages on stderr.
enum ExitCodeMapping {
    static func report(_ error: Error, command: KaleemBackup.Type) -> ExitStatus {
        switch error {
        case let exit as CommandExit:
            return exit.status
        case let user as UserFacingError:
            printError("error: \(user.description)")
            if let hint = user.hint { printError("Try: \(hint)") }
            return user.exitStatus
        default:
            // Help and --version exit 0 on stdout; every other parsing error is a usage error (2).
            let code = command.exitCode(for: error)
            let message = command.fullMessage(for: error)
            if code == .success {
                print(message)
                return .ok
            }
            if !message.isEmpty { printError(message) }
            if error is CleanExit { return .ok }
            if code.rawValue == ExitCode.validationFailure.rawValue || error is ValidationError {
                return .usage
            }
            return code.rawValue == EX_USAGE ? .usage : (code.rawValue == 0 ? .ok : .failed)
        }
    }

    static func printError(_ text: String) {
        StandardStream.error(text + "\n")
    }
}

private let EX_USAGE: Int32 = 64
