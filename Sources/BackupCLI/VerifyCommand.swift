import ArgumentParser
import BackupCore
import BackupEngine

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-check stored artifacts: sha256 and size against the catalog, gzip, and the format (RDB).",
        discussion: "Exit 0 when every artifact checked is good, 4 when any is not."
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Artifact ids (or unique prefixes).")
    var ids: [String] = []

    @Flag(help: "Verify every good artifact of the catalog.")
    var all = false

    @Flag(help: "Verify the newest good backup (of --source when given).")
    var latest = false

    @Option(help: "With --latest or ids: of this source.")
    var source: String?

    @Flag(help: "Re-check the off-site copies instead (each file re-read and re-hashed; blobs by size and sha256).")
    var offsite = false

    func validate() throws {
        if ids.isEmpty && !all && !latest { throw ValidationError("name artifact ids, or give --latest or --all") }
        if [!ids.isEmpty, all, latest].filter({ $0 }).count > 1 { throw ValidationError("give artifact ids, --latest or --all, one of them") }
    }

    func run() async throws {
        let engine = try options.makeEngine()
        let chosen = latest ? ["latest"] : ids
        let results = await offsite ? try engine.verifyOffsite(ids: chosen, all: all) : try engine.verify(ids: chosen, all: all, source: source)
        if options.json {
            try Output.json(results)
        } else if results.isEmpty {
            print("nothing to verify")
        } else {
            for r in results {
                print("\(r.ok ? "ok    " : "FAILED") \(r.id)  \(r.detail)" + (r.status == .corrupt ? "  [marked corrupt: no longer a good backup, kept until removed by hand]" : ""))
            }
        }
        if results.contains(where: { !$0.ok }) { throw CommandExit(status: .integrity) }
    }
}
