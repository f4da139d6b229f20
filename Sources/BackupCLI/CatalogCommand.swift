import ArgumentParser
import BackupCore
import BackupEngine

struct CatalogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "Work with the catalog itself.",
        subcommands: [CatalogRebuildCommand.self]
    )
}

struct CatalogRebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Recreate the catalog from the manifests in the repository (or, with --from-offsite, in the off-site copy).",
        discussion: """
        An existing catalog is moved aside (<catalog>.pre-rebuild-<time>), never deleted. The rebuild starts from \
        the newest sound catalog copy (<repo>/catalog-copy/catalog.sqlite, made after every run; with \
        --from-offsite also the off-site catalog/catalog.sqlite), which keeps verify, drill and restore history, \
        then adds every backup only the manifests know. Pre-deploy restore points are pinned again.
        """
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Download the manifests from repository.offsite first (a new host with only the off-site copy).")
    var fromOffsite = false

    func run() async throws {
        let result = try await options.makeEngine().rebuildCatalog(fromOffsite: fromOffsite)
        if options.json {
            try Output.json(CatalogRebuildJSON(catalog: result.catalogPath, previous_catalog: result.previousCatalog, runs: result.runs,
                                               artifacts: result.artifacts, fetched: result.fetched, skipped: result.skipped,
                                               from_copy: result.fromCopy, copy_rejected: result.copyRejected,
                                               added_from_manifests: result.addedFromManifests, covered_by_copy: result.coveredByCopy,
                                               refused: result.refused))
        } else {
            print("catalog \(result.catalogPath) rebuilt: \(result.artifacts) artifacts in \(result.runs) runs"
                  + (fromOffsite ? " (\(result.fetched) manifests fetched off-site)" : ""))
            if let copy = result.fromCopy {
                print("started from the catalog copy \(copy) (its verify, drill and restore history kept); \(result.addedFromManifests) backup(s) added from manifests only")
            } else {
                print("no usable catalog copy: rebuilt from the manifests alone (verify and drill history start afresh: run verify --all)")
            }
            for r in result.copyRejected { print("catalog copy not used: \(r)") }
            if let previous = result.previousCatalog { print("the previous catalog was moved to \(previous)") }
            for s in result.coveredByCopy { print("unreadable manifest (its backup is in the copy; verify will report it): \(s)") }
            for s in result.skipped { print("skipped \(s)") }
            for s in result.refused { print("refused (not adopted: it does not describe the file beside it) \(s)") }
        }
        // A manifest that could not be read orphans its backup: the rebuild is not complete (exit 4).
        if !result.refused.isEmpty {
            ExitCodeMapping.printError("error: \(result.refused.count) manifest(s) were refused: they do not describe the file beside them in the repository's layout")
            ExitCodeMapping.printError("Try: look at them (someone may have edited the repository or the off-site bucket); the backups they claim are not in the rebuilt catalog")
            throw CommandExit(status: .integrity)
        }
        if !result.skipped.isEmpty {
            ExitCodeMapping.printError("error: \(result.skipped.count) manifest(s) could not be read; their backups are not in the rebuilt catalog")
            ExitCodeMapping.printError("Try: restore those manifests (from the off-site copy: catalog rebuild --from-offsite), or copy catalog-copy/catalog.sqlite back if it is newer")
            throw CommandExit(status: .integrity)
        }
    }
}

struct CatalogRebuildJSON: Encodable {
    var catalog: String
    var previous_catalog: String?
    var runs: Int
    var artifacts: Int
    var fetched: Int
    var skipped: [String]
    var from_copy: String?
    var copy_rejected: [String]
    var added_from_manifests: Int
    var covered_by_copy: [String]
    var refused: [String]
}
