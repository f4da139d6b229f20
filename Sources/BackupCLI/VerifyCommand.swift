import ArgumentParser
import BackupCore
import BackupEngine

struct VerifyCommand: ParsableCommand {
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

    @Flag(help: "Re-check the off-site copies instead (each file re-read and re-hashed; blobs by size and sha256).")
    var offsite = false

    func validate() throws {
        if ids.isEmpty && !all { throw ValidationError("name artifact ids, or give --all") }
        if !ids.isEmpty && all { throw ValidationError("give artifact ids or --all, not both") }
    }

    func run() throws {
        let engine = try options.makeEngine()
        let results = offsite ? try engine.verifyOffsite(ids: ids, all: all) : try engine.verify(ids: ids, all: all)
        if options.json {
            try Output.json(results)
        } else if results.isEmpty {
            print("nothing to verify")
        } else {
            for r in results { print("\(r.ok ? "ok    " : "FAILED") \(r.id)  \(r.detail)") }
        }
        if results.contains(where: { !$0.ok }) { throw CommandExit(status: .integrity) }
    }
}
