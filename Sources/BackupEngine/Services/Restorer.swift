// The restorer: a backup chosen, handed to its kind's adapter with the kind's own options, the restore recorded.

import ArtifactStore
import BackupCore
import Foundation

/// Which backup to restore.
public enum BackupSelector: Sendable, Equatable {
    case id(String)
    case latest
    /// The newest good backup taken before this moment.
    case before(Date)
}

struct Restorer: EngineService {
    let core: EngineCore

    /// restore SOURCE: the source's kind restores it with its own options (the CLI passes them through).
    func restore(_ request: RestoreRequest, kindArguments: [String] = [], plan: ([String]) -> Void) async throws -> (lines: [String], json: any Encodable) {
        let source = try core.selectSources([request.source])[0]
        let adapter = try registry.adapter(for: source.kind)
        var request = request
        if !kindArguments.isEmpty {
            request.options = try RestoreOptions.parse(kindArguments, specs: adapter.restoreOptions, kind: source.kind, source: source.name)
        }
        let outcome = try await adapter.restore(source, request, context: context, plan: plan)
        return (outcome.lines, outcome.json)
    }

    func recordRestore(_ artifact: ArtifactInfo, mode: String, target: String, outcome: String, started: Date, seconds: Double,
                       detail: String) throws {
        var rng = SystemRandomNumberGenerator()
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? String(getuid())
        try catalog().insertRestore(id: "restore-" + Identifier.make(at: started, using: &rng), artifactID: artifact.id,
                                    source: artifact.source, startedAt: started, durationSeconds: seconds, mode: mode,
                                    target: target, outcome: outcome, user: user, host: environment.host, detail: detail)
    }
}
