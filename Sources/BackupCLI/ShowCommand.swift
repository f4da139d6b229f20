import ArgumentParser
import BackupCore
import BackupEngine

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one artifact (an id or a unique prefix of it).")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Artifact id, a unique prefix, or latest (the newest good backup).")
    var id: String

    @Option(help: "With latest: the newest good backup of this source.")
    var source: String?

    func run() async throws {
        let engine = try options.makeEngine()
        let a = try engine.show(id: id, source: source)
        let drill = try engine.lastDrill(of: a.id)
        if options.json {
            var json = ArtifactJSON(a)
            json.last_drill = drill.map(DrillJSON.init)
            try Output.json(json)
            return
        }
        let rows: [(String, String)] = [
            ("id", a.id), ("source", "\(a.source) (\(a.kind.rawValue))"), ("status", a.status.rawValue),
            ("created", Timestamps.iso8601(a.createdAt)), ("run", a.runID),
            ("tag", a.tag.rawValue + (a.release.map { ", release \($0)" } ?? "")),
            ("pinned", a.pinned ? "yes\(a.pinReason.map { " (\($0))" } ?? "")" : "no"),
            ("path", engine.repository.absolute(a.path)),
            ("size", SourceKinds.storesSnapshots(a.kind)
                ? "\(Output.bytes(a.bytesRaw)) logical, \(Output.bytes(a.bytesStored)) stored (what this snapshot added: new blobs and its manifest)"
                : "\(Output.bytes(a.bytesRaw)) raw, \(Output.bytes(a.bytesStored)) stored (\(a.compression))"),
            ("sha256", a.sha256.isEmpty ? "-" : a.sha256),
            ("last verify", a.lastVerify.map { "\($0.ok ? "ok" : "FAILED") on \(Timestamps.iso8601($0.at)): \($0.detail)" } ?? "never"),
            ("last drill", drill.map { "\($0.result.rawValue) on \(Timestamps.iso8601($0.startedAt)) in \(String(format: "%.2f", $0.durationSeconds)) s: \($0.detail)" } ?? "never"),
        ] + (a.detail.map { [("detail", $0)] } ?? []) + a.stats.keys.sorted().map { ("stats.\($0)", a.stats[$0]!.description) }
        let width = rows.map(\.0.count).max() ?? 0
        // One line per field: a newline in a peer's text (a detail, a verify's finding) is shown as \x0a.
        for (k, v) in rows { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + PeerText.escape(v)) }
    }
}
