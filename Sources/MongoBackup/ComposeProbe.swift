// `policy check --connect` for a Compose command (`docker compose exec -T mongo mongodump`): does Compose find the
// project from here, and does the project define the service? Asked with `docker compose [its global options]
// config --services`, which loads the project as `exec` would and lists its services.
import BackupCore
import Foundation
import Subprocess
import SystemPackage

public enum ComposeProbe {
    /// The global part of a Compose command (`docker compose -f F --project-directory D`), the subcommand
    /// (`exec`, `run`) and the service it names; nil when the command is not a Compose command.
    public static func split(_ command: [String]) -> (global: [String], subcommand: String, service: String?)? {
        guard let index = ComposeProject.composeIndex(command) else { return nil }
        let valued: Set<String> = ["-f", "--file", "--project-directory", "-p", "--project-name", "--env-file", "--profile",
                                   "--ansi", "--progress", "--parallel"]
        var i = index + 1
        while i < command.count, command[i].hasPrefix("-") {
            let name = String(command[i].split(separator: "=", maxSplits: 1).first ?? "")
            i += valued.contains(name) && !command[i].contains("=") ? 2 : 1
        }
        guard i < command.count else { return nil }
        let global = Array(command[..<i])
        let subcommand = command[i]
        // The service: the first word after the subcommand's own options.
        let execValued: Set<String> = ["-e", "--env", "-u", "--user", "-w", "--workdir", "--index"]
        var j = i + 1
        while j < command.count, command[j].hasPrefix("-") {
            let name = String(command[j].split(separator: "=", maxSplits: 1).first ?? "")
            j += execValued.contains(name) && !command[j].contains("=") ? 2 : 1
        }
        return (global, subcommand, j < command.count ? command[j] : nil)
    }

    /// Runs `GLOBAL config --services`: nil when Compose found the project and it
    /// defines the service, else what went wrong (Compose's own message).
    public static func problem(_ command: [String]) async -> String? {
        guard let (global, _, service) = split(command) else { return nil }
        guard let program = MongoTools.resolve(global[0]) else { return "\(global[0]) is not installed or not on PATH" }
        let arguments = Array(global.dropFirst()) + ["config", "--services"]
        do {
            // `config` reads the files only (it never talks to the Docker daemon), so it needs no timeout.
            let result = try await Subprocess.run(.path(FilePath(program)), arguments: Arguments(arguments),
                                                  output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
            let stderr = result.standardError.trimmingCharacters(in: .whitespacesAndNewlines)
            guard case .exited(0) = result.terminationStatus else {
                return "Compose cannot load the project from \(FileManager.default.currentDirectoryPath): \(stderr.isEmpty ? "\(result.terminationStatus)" : stderr)"
            }
            let services = result.standardOutput.split(whereSeparator: \.isNewline).map(String.init)
            if let service, !services.contains(service) {
                return "the project defines no service \"\(service)\" (it has: \(services.joined(separator: ", ")))"
            }
            return nil
        } catch {
            return "cannot run \(program): \(error)"
        }
    }
}
