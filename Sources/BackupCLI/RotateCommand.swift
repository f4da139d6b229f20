import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct RotateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Apply the retention policy: remove what it does not keep, and say why each kept backup stays.",
        discussion: """
        Never removed: the newest good backup of a source, pinned backups, and any good backup while the newest \
        backup of its source is a failure. --dry-run prints the plan and changes nothing; --now plans as of \
        another moment ("what would go next Tuesday?").
        """
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .customLong("source"), help: "Only this source (repeatable).")
    var sources: [String] = []

    @Flag(help: "Print the plan; delete nothing.")
    var dryRun = false

    @Option(help: "Plan as of this moment (ISO 8601, e.g. 2026-12-01T03:00:00Z) instead of now.")
    var now: String?

    @Flag(help: "Accept a retention policy that keeps nothing by rule (only the newest good and pinned backups stay).")
    var allowEmptyPolicy = false

    func validate() throws {
        if let now, Timestamps.parseISO8601(now) == nil {
            throw ValidationError("--now \(now) is not an ISO 8601 time such as 2026-12-01T03:00:00Z")
        }
    }

    func run() throws {
        let results = try options.makeEngine().rotate(sources: sources, dryRun: dryRun,
                                                      now: now.flatMap(Timestamps.parseISO8601),
                                                      allowEmptyPolicy: allowEmptyPolicy)
        if options.json {
            try Output.json(RotationJSON(results))
        } else {
            for r in results {
                let verb = r.dryRun ? "would remove" : "removed"
                print("\(r.source): keep \(r.plan.keep.count), \(verb) \(r.dryRun ? r.plan.remove.count : r.removed.count)")
                if let held = r.plan.heldBack { print("  held back: \(held)") }
                for k in r.plan.keep { print("  keep   \(k.id)  \(k.reasons.joined(separator: "; "))") }
                for id in r.plan.remove { print("  \(r.dryRun || r.removed.contains(id) ? "remove" : "left  ") \(id)") }
                if let error = r.error { print("  stopped: \(error)") }
            }
        }
        if results.contains(where: { $0.error != nil }) { throw CommandExit(status: .failed) }
    }
}

/// `{"keep": [{"id", "source", "reasons"}], "remove": [{"id", "source"}], "held_back": TEXT or null, "dry_run"}`
struct RotationJSON: Encodable {
    struct Keep: Encodable { var id: String; var source: String; var reasons: [String] }
    struct Remove: Encodable { var id: String; var source: String; var removed: Bool }
    var keep: [Keep] = []
    var remove: [Remove] = []
    var held_back: String?
    var dry_run: Bool
    var errors: [String]

    init(_ results: [RotationResult]) {
        for r in results {
            keep += r.plan.keep.map { Keep(id: $0.id, source: r.source, reasons: $0.reasons) }
            remove += r.plan.remove.map { Remove(id: $0, source: r.source, removed: r.removed.contains($0)) }
        }
        let held = results.compactMap { r in r.plan.heldBack.map { "\(r.source): \($0)" } }
        held_back = held.isEmpty ? nil : held.joined(separator: "; ")
        dry_run = results.first?.dryRun ?? true
        errors = results.compactMap { r in r.error.map { "\(r.source): \($0)" } }
    }

    enum CodingKeys: String, CodingKey { case keep, remove, held_back, dry_run, errors }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(keep, forKey: .keep)
        try c.encode(remove, forKey: .remove)
        try c.encode(held_back, forKey: .held_back)
        try c.encode(dry_run, forKey: .dry_run)
        try c.encode(errors, forKey: .errors)
    }
}
