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
            RotationJSON.write(results)
        } else {
            for r in results {
                let verb = r.dryRun ? "would remove" : "removed"
                print("\(r.source): keep \(r.plan.keep.count), \(verb) \(r.dryRun ? r.plan.remove.count : r.removed.count)")
                if let held = r.plan.heldBack { print("  held back: \(held)") }
                var lines = r.plan.keep.map { "  keep   \($0.id)  \($0.reasons.joined(separator: "; "))" }
                let removed = Set(r.removed)
                lines += r.plan.remove.map { "  \(r.dryRun || removed.contains($0) ? "remove" : "left  ") \($0)" }
                if !lines.isEmpty { print(lines.joined(separator: "\n")) }
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
            let removed = Set(r.removed)
            remove += r.plan.remove.map { Remove(id: $0, source: r.source, removed: removed.contains($0)) }
        }
        let held = results.compactMap { r in r.plan.heldBack.map { "\(r.source): \($0)" } }
        held_back = held.isEmpty ? nil : held.joined(separator: "; ")
        dry_run = results.first?.dryRun ?? true
        errors = results.compactMap { r in r.error.map { "\(r.source): \($0)" } }
    }

    /// Writes the same document as the encoder would, streamed to stdout: a plan can list a million artifacts.
    static func write(_ results: [RotationResult]) {
        typealias J = JSONText
        let summary = RotationJSON(results: results)
        var out = JSONStream()
        out.append("{\n  \"dry_run\" : \(summary.dry_run),\n")
        out.append("  \"errors\" : " + J.array(summary.errors.map { J.quote($0) }) + ",\n")
        out.append("  \"held_back\" : " + J.quote(summary.held_back) + ",\n  \"keep\" : [")
        var first = true
        for r in results {
            let source = J.quote(r.source)
            for k in r.plan.keep {
                out.append((first ? "\n" : ",\n") + "    {\"id\" : \(J.quote(k.id)), \"reasons\" : \(J.array(k.reasons.map { J.quote($0) })), \"source\" : \(source)}")
                first = false
            }
        }
        out.append("\n  ],\n  \"remove\" : [")
        first = true
        for r in results {
            let source = J.quote(r.source)
            let removed = Set(r.removed)
            for id in r.plan.remove {
                out.append((first ? "\n" : ",\n") + "    {\"id\" : \(J.quote(id)), \"removed\" : \(removed.contains(id)), \"source\" : \(source)}")
                first = false
            }
        }
        out.append("\n  ]\n}\n")
        out.flush()
    }

    /// Only the small fields (for `write`).
    private init(results: [RotationResult]) {
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
