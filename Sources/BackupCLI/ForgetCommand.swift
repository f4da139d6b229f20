import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct ForgetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Remove backups on purpose (a corrupt one, one that must not be kept), local and off-site.",
        discussion: """
        Refused without --force --reason: a pinned backup, the newest good backup of a source, a pre-deploy \
        restore point of the newest release. The removal is crash-safe (as rotation's) and the reason is kept in \
        the catalog row. Exit 0 when every named backup was removed (or would be, with --dry-run), 2 when one was \
        refused.
        """
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Say what would be removed; remove nothing.")
    var dryRun = false

    @Flag(help: "Required to remove anything (or use --dry-run first).")
    var yes = false

    @Flag(help: "Also remove a protected backup (pinned, newest good, newest release's restore point); needs --reason.")
    var force = false

    @Option(help: "Why (recorded in the catalog).")
    var reason: String?

    @Argument(help: "Backup ids (or unique prefixes).")
    var ids: [String]

    func validate() throws {
        try validateReason(reason)
        if ids.isEmpty { throw ValidationError("name at least one backup id") }
        if !dryRun && !yes { throw ValidationError("forget removes backups for good: add --yes (or --dry-run to see what it would do)") }
    }

    func run() async throws {
        let items = try await options.makeEngine().forget(ids: ids, dryRun: dryRun, force: force, reason: reason)
        if options.json {
            struct ItemJSON: Encodable { var id: String; var source: String; var status: String; var removed: Bool; var refused: String? }
            try Output.json(items.map { ItemJSON(id: $0.id, source: $0.source, status: $0.status.rawValue, removed: $0.removed, refused: $0.refused) })
        } else {
            for item in items {
                if let refused = item.refused {
                    print("\(item.id) (\(item.source), \(item.status.rawValue)): REFUSED: \(refused)")
                } else {
                    print("\(item.id) (\(item.source), \(item.status.rawValue)): \(dryRun ? "would be removed" : item.removed ? "removed" : "NOT removed (see the log; the next command finishes it)")")
                }
            }
        }
        if items.contains(where: { $0.refused != nil }) { throw CommandExit(status: .usage) }
        if !dryRun && items.contains(where: { $0.refused == nil && !$0.removed }) { throw CommandExit(status: .failed) }
    }
}
