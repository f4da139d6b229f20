import ArgumentParser
import BackupCore
import BackupEngine

struct PinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pin", abstract: "Pin a good backup: rotation never removes it.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Artifact id, or a unique prefix.")
    var id: String

    @Option(help: "Why it is kept (shown by list, show and rotate).")
    var reason: String

    func validate() throws { try validateReason(reason) }

    func run() async throws {
        let a = try options.makeEngine().pin(id: id, reason: reason)
        if options.json { try Output.json(ArtifactJSON(a)) } else { print("pinned \(a.id) (\(a.source)): \(reason)") }
    }
}

struct UnpinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Unpin a backup: rotation applies to it again.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Artifact id, or a unique prefix.")
    var id: String

    func run() async throws {
        let a = try options.makeEngine().unpin(id: id)
        if options.json { try Output.json(ArtifactJSON(a)) } else { print("unpinned \(a.id) (\(a.source))") }
    }
}
