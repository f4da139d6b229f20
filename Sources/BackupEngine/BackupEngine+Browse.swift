// Look inside a backup: `ls`. The service finds the artifact and asks its kind's adapter for the entries.
import BackupCatalog
import BackupCore
import Foundation

extension BackupEngine {
    /// Hands the entries of a good backup that `filter` accepts to `emit`, one at a time; returns the artifact.
    /// A failed or removed backup is refused (exit 2): there is nothing trustworthy to list.
    @discardableResult
    public func contents(of id: String, filter: ContentFilter, emit: (ContentEntry) throws -> Void) throws -> ArtifactInfo {
        let artifact = try show(id: id)
        guard artifact.status == .ok, artifact.deletedAt == nil else {
            throw BackupFailure("backup \(artifact.id) is \(artifact.deletedAt == nil ? artifact.status.rawValue : "removed by rotation"): there is nothing to list",
                                exitStatus: .usage, hint: "list the good backups with: kaleem-backup list --source \(artifact.source)")
        }
        try registry.adapter(for: artifact.kind).contents(artifact, filter: filter, context: context, emit: emit)
        return artifact
    }
}
