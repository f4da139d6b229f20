import ArgumentParser
import BackupCore
import BackupEngine

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the catalog's artifacts, newest first.")

    @OptionGroup var options: GlobalOptions

    @Option(help: "Only this source.")
    var source: String?

    @Option(help: "At most this many artifacts.")
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let artifacts = try options.makeEngine().list(source: source, limit: limit)
        if options.json {
            try Output.json(artifacts.map(ArtifactJSON.init))
        } else if artifacts.isEmpty {
            print("no artifacts yet (take one with: kaleem-backup backup)")
        } else {
            Output.artifactTable(artifacts)
        }
    }
}
