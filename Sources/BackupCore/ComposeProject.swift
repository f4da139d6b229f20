import Foundation

/// `compose:` in the policy: the stack's Compose project, given to every `docker compose …` (and
/// `docker-compose …`) command the policy names (MongoDB tools, `drill.mongosh`), so they find the project whatever
/// the working directory: cron starts jobs in `$HOME`, systemd in `/`, where Compose finds no project ("no
/// configuration file provided: not found").
///
/// Each such command gets `--project-directory DIR`, `-f FILE` for each file and `-p NAME` inserted after
/// `compose`, unless it already names its own files (`-f`/`--file`) or project directory. Without `compose:`,
/// Compose's own variables (`COMPOSE_FILE`, `COMPOSE_PROJECT_NAME`, from the environment) still apply.
public struct ComposeProject: Sendable, Equatable {
    /// Absolute directory of the project (`--project-directory`): where its `.env` is read and relative paths
    /// in the files resolve.
    public var projectDirectory: String?
    /// The Compose files in order (absolute: relative ones were resolved against `projectDirectory`).
    public var files: [String]
    /// `-p`: the project name, when it is not the directory's name.
    public var projectName: String?

    public init(projectDirectory: String? = nil, files: [String] = [], projectName: String? = nil) {
        self.projectDirectory = projectDirectory
        self.files = files
        self.projectName = projectName
    }

    /// The global options this project adds: `--project-directory DIR -f F… -p NAME`.
    public var options: [String] {
        var out: [String] = []
        if let projectDirectory { out += ["--project-directory", projectDirectory] }
        for file in files { out += ["-f", file] }
        if let projectName { out += ["-p", projectName] }
        return out
    }

    /// Where `compose` is in a command (`[docker, compose, …]` → 1, `[docker-compose, …]` → 0), or nil when it is
    /// not a Compose command.
    public static func composeIndex(_ command: [String]) -> Int? {
        guard let first = command.first else { return nil }
        let program = first.split(separator: "/").last.map(String.init) ?? first
        if program == "docker-compose" { return 0 }
        if program == "docker", command.count > 1, command[1] == "compose" { return 1 }
        return nil
    }

    /// Whether the command already says where its project is (`-f`, `--file`, `--project-directory`), before its
    /// subcommand.
    public static func namesItsProject(_ command: [String]) -> Bool {
        guard let index = composeIndex(command) else { return false }
        for word in command[(index + 1)...] {
            guard word.hasPrefix("-") else { break }
            let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
            if ["-f", "--file", "--project-directory"].contains(name) { return true }
        }
        return false
    }

    /// The command with this project's options after `compose`; any other command, or one that names its own
    /// project, unchanged.
    public func apply(to command: [String]) -> [String] {
        guard let index = Self.composeIndex(command), !Self.namesItsProject(command), !options.isEmpty else { return command }
        return Array(command[...index]) + options + Array(command[(index + 1)...])
    }

    /// `/opt/kaleem (docker-compose.yml, docker-compose.prod.yml) as kaleem`, for `policy check`.
    public var description: String {
        var parts: [String] = []
        if let projectDirectory { parts.append(projectDirectory) }
        if !files.isEmpty { parts.append("(" + files.joined(separator: ", ") + ")") }
        if let projectName { parts.append("as \(projectName)") }
        return parts.joined(separator: " ")
    }
}

/// Source settings that run commands which may be Compose commands (`docker compose exec …`): the policy's
/// `compose:` project is applied to them once the policy is read.
public protocol ComposeCommands: SourceSettings {
    /// The settings with `project` applied to each of their commands.
    func applying(_ project: ComposeProject) -> Self
    /// Each command by its policy key (`mongodump`, …), for `policy check --connect`.
    var commands: [(key: String, command: [String])] { get }
}
