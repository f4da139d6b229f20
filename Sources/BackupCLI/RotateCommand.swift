import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct RotateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Apply the retention policy: remove what it does not keep, and say why each kept backup stays.",
        discussion: """
        Never removed: the newest good backup of a source, pinned backups, and any good backup while the newest \
        backup of its source is a failure. --dry-run prints the plan and changes nothing; --now (with --dry-run) \
        plans as of another moment ("what would go next Tuesday?").
        """
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .customLong("source"), help: "Only this source (repeatable).")
    var sources: [String] = []

    @Flag(help: "Print the plan; delete nothing.")
    var dryRun = false

    @Option(help: "With --dry-run: plan as of this moment instead of now: \(TimeExpression.help).")
    var now: String?

    @Flag(help: "Accept a retention policy that keeps nothing by rule (only the newest good and pinned backups stay).")
    var allowEmptyPolicy = false

    func validate() throws {
        if let now, TimeExpression.parse(now, now: Date(), timeZone: .current) == nil {
            throw ValidationError("--now \(now) is not a time: give \(TimeExpression.help)")
        }
        // A what-if plans against a time that is not the clock's, without the clock checks: it never deletes.
        if now != nil && !dryRun {
            throw ValidationError("--now plans a what-if and deletes nothing: add --dry-run")
        }
    }

    func run() async throws {
        let engine = try options.makeEngine()
        let zone = TimeZone(identifier: engine.policy.retention.timeZone) ?? .current
        let results = try await engine.rotate(sources: sources, dryRun: dryRun,
                                              now: now.flatMap { TimeExpression.parse($0, now: Date(), timeZone: zone) },
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

/// `{"dry_run", "errors", "held_back": TEXT or null, "keep": [{"id", "reasons", "source"}], "remove": [{"id", "removed", "source"}]}`
///
/// The one encoder of this document. It writes text directly (a plan can list a million artifacts, where
/// JSONEncoder takes ~5 s: see scripts/bench-catalog.sh); `backup --json` embeds the same text, decoded.
enum RotationJSON {
    typealias J = JSONText

    /// Writes the document, keys sorted as JSONEncoder's `.sortedKeys` would.
    static func render(_ results: [RotationResult], into out: inout JSONStream) {
        func emit(_ text: String) { out.append(text) }
        let held = results.compactMap { r in r.plan.heldBack.map { "\(r.source): \($0)" } }
        let errors = results.compactMap { r in r.error.map { "\(r.source): \($0)" } }
        emit("{\n  \"dry_run\" : \(results.first?.dryRun ?? true),\n")
        emit("  \"errors\" : " + J.array(errors.map { J.quote($0) }) + ",\n")
        emit("  \"held_back\" : " + J.quote(held.isEmpty ? nil : held.joined(separator: "; ")) + ",\n  \"keep\" : [")
        var first = true
        for r in results {
            let source = J.quote(r.source)
            for k in r.plan.keep {
                emit((first ? "\n" : ",\n") + "    {\"id\" : \(J.quote(k.id)), \"reasons\" : \(J.array(k.reasons.map { J.quote($0) })), \"source\" : \(source)}")
                first = false
            }
        }
        emit("\n  ],\n  \"remove\" : [")
        first = true
        for r in results {
            let source = J.quote(r.source)
            let removed = Set(r.removed)
            // A plan can remove a million artifacts: each entry is copied in as bytes, with no string built for it.
            for id in r.plan.remove {
                out.appendLiteral(first ? "\n    {\"id\" : " : ",\n    {\"id\" : ")
                out.appendQuoted(id)
                out.appendLiteral(!removed.isEmpty && removed.contains(id) ? ", \"removed\" : true, \"source\" : " : ", \"removed\" : false, \"source\" : ")
                out.append(source)
                out.appendLiteral("}")
                first = false
            }
        }
        emit("\n  ]\n}\n")
    }

    /// `rotate --json`: streamed to stdout.
    static func write(_ results: [RotationResult]) {
        var out = JSONStream()
        render(results, into: &out)
        out.flush()
    }

    /// The same document as a value, for `backup --json`'s `rotation`.
    static func value(_ results: [RotationResult]) -> JSONValue {
        var out = JSONStream(toStandardOutput: false)
        render(results, into: &out)
        // The renderer's own output; a failure to read it back is a bug in `render`, caught by the tests.
        return (try? JSONDecoder().decode(JSONValue.self, from: Data(out.buffer))) ?? .string("unreadable rotation document")
    }
}
