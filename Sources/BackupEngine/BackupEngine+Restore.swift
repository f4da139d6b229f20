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

extension BackupEngine {
    /// restore SOURCE: the source's kind restores it with its own options (the CLI passes them through).
    public func restore(_ request: RestoreRequest, kindArguments: [String] = [], plan: ([String]) -> Void) async throws -> (lines: [String], json: any Encodable) {
        let source = try selectSources([request.source])[0]
        let adapter = try registry.adapter(for: source.kind)
        var request = request
        if !kindArguments.isEmpty {
            request.options = try RestoreOptions.parse(kindArguments, specs: adapter.restoreOptions, kind: source.kind, source: source.name)
        }
        let outcome = try await adapter.restore(source, request, context: context, plan: plan)
        return (outcome.lines, outcome.json)
    }

    func selectArtifact(source: String, _ backup: BackupSelector) throws -> ArtifactInfo {
        switch backup {
        case .id(let id):
            let a = try show(id: id)
            guard a.source == source else {
                throw BackupFailure("backup \(a.id) belongs to source \"\(a.source)\", not \"\(source)\"", exitStatus: .usage)
            }
            guard a.deletedAt == nil else {
                throw BackupFailure("backup \(a.id) was removed by rotation on \(Timestamps.iso8601(a.deletedAt!))", exitStatus: .usage,
                                    hint: "pick another one: kaleem-backup list --source \(source)")
            }
            return a
        case .before(let date):
            guard let a = try catalog().artifacts(source: source, status: .ok).first(where: { $0.createdAt < date }) else {
                throw BackupFailure("source \"\(source)\" has no good backup taken before \(Timestamps.iso8601(date))", exitStatus: .failed,
                                    hint: "see what exists: kaleem-backup list --source \(source)")
            }
            return a
        case .latest:
            guard let a = try catalog().artifacts(source: source, status: .ok, limit: 1).first else {
                throw BackupFailure("source \"\(source)\" has no good backup to restore", exitStatus: .failed,
                                    hint: "take one: kaleem-backup backup --source \(source)")
            }
            return a
        }
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
