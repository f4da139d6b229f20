// The browser: ls, diff and find over what a backup holds (each kind's adapter lists its contents).
// Look inside a backup: `ls`. The service finds the artifact and asks its kind's adapter for the entries.

import BackupCatalog
import BackupCore
import Foundation

/// What changed between two backups of one source.
public struct ContentDiff: Sendable {
    public var from: ArtifactInfo
    public var to: ArtifactInfo
    public var added: [ContentEntry] = []
    public var changed: [(from: ContentEntry, to: ContentEntry)] = []
    public var removed: [ContentEntry] = []
    public var unchanged = 0
}

/// A backup that holds entries matching a `find` pattern.
public struct FoundIn: Sendable {
    public var artifact: ArtifactInfo
    public var matches: Int
    /// The first few matching entries.
    public var sample: [ContentEntry]
}

struct Browser: EngineService {
    let core: EngineCore

    /// Hands the entries of a good backup that `filter` accepts to `emit`, one at a time; returns the artifact.
    /// A failed or removed backup is refused (exit 2): there is nothing trustworthy to list.
    @discardableResult
    func contents(of id: String, source: String? = nil, filter: ContentFilter, emit: (ContentEntry) throws -> Void) async throws -> ArtifactInfo {
        let artifact = try core.statusReport.show(id: id, source: source)
        guard artifact.status == .ok, artifact.deletedAt == nil else {
            throw BackupFailure("backup \(artifact.id) is \(artifact.deletedAt == nil ? artifact.status.rawValue : "removed by rotation"): there is nothing to list",
                                exitStatus: .usage, hint: "list the good backups with: kaleem-backup list --source \(artifact.source)")
        }
        try await SourceContext.$progressLabel.withValue(SourceContext.progressLabel ?? "ls") {
            try await registry.adapter(for: artifact.kind).contents(artifact, filter: filter, context: context, emit: emit)
        }
        return artifact
    }

    /// `diff FROM TO`: entries added, changed (another digest or type) and removed, by path. Both backups must be
    /// of one source. Memory: the older backup's paths and digests, unless the kind merges the two itself
    /// (bucket snapshots: both in key order, a chunk of each in memory); then the differences only.
    func diff(_ fromID: String, _ toID: String, filter: ContentFilter) async throws -> ContentDiff {
        var filter = filter
        filter.digests = true
        let fromArtifact = try core.statusReport.show(id: fromID)
        let toArtifact = try core.statusReport.show(id: toID)
        guard toArtifact.source == fromArtifact.source else {
            throw BackupFailure("\(fromArtifact.id) is of source \(fromArtifact.source) and \(toArtifact.id) of \(toArtifact.source): diff compares two backups of one source", exitStatus: .usage)
        }
        for artifact in [fromArtifact, toArtifact] where artifact.status != .ok || artifact.deletedAt != nil {
            throw BackupFailure("backup \(artifact.id) is \(artifact.deletedAt == nil ? artifact.status.rawValue : "removed by rotation"): there is nothing to list",
                                exitStatus: .usage, hint: "list the good backups with: kaleem-backup list --source \(artifact.source)")
        }
        if var own = try await registry.adapter(for: fromArtifact.kind).diff(fromArtifact, toArtifact, filter: filter, context: context) {
            own.removed.sort { $0.path < $1.path }
            own.added.sort { $0.path < $1.path }
            own.changed.sort { $0.to.path < $1.to.path }
            return own
        }
        let adapter = try registry.adapter(for: fromArtifact.kind)
        var older: [String: ContentEntry] = [:]
        let from = try await SourceContext.$progressLabel.withValue("diff 1/2") {
            try await contents(of: fromID, filter: filter) { entry in older[adapter.diffKey(entry)] = entry }
        }
        let to = toArtifact
        var result = ContentDiff(from: from, to: to)
        try await SourceContext.$progressLabel.withValue("diff 2/2") {
            try await contents(of: toID, filter: filter) { entry in
                guard let before = older.removeValue(forKey: adapter.diffKey(entry)) else { result.added.append(entry); return }
                if before.digest != entry.digest || before.type != entry.type { result.changed.append((before, entry)) } else { result.unchanged += 1 }
            }
        }
        result.removed = older.values.sorted { $0.path < $1.path }
        result.added.sort { $0.path < $1.path }
        result.changed.sort { $0.to.path < $1.to.path }
        return result
    }

    /// `find PATTERN`: the good backups (of `source`, or all) holding entries whose path matches, newest first.
    func find(_ pattern: String, source: String?, sampleSize: Int = 5) async throws -> [FoundIn] {
        let filter = ContentFilter(match: pattern)
        var found: [FoundIn] = []
        let artifacts = try catalog().artifacts(status: .ok).filter { $0.deletedAt == nil && (source == nil || $0.source == source) }
        if let source, policy.source(named: source) == nil, artifacts.isEmpty {
            throw BackupFailure("no source named \(source) in \(policy.origin), and no backup of it", exitStatus: .usage)
        }
        for (n, artifact) in artifacts.sorted(by: { $0.createdAt > $1.createdAt }).enumerated() {
            var hit = FoundIn(artifact: artifact, matches: 0, sample: [])
            try await SourceContext.$progressLabel.withValue("find \(n + 1)/\(artifacts.count)") {
                try await contents(of: artifact.id, filter: filter) { entry in
                    hit.matches += 1
                    if hit.sample.count < sampleSize { hit.sample.append(entry) }
                }
            }
            if hit.matches > 0 { found.append(hit) }
        }
        return found
    }
}
