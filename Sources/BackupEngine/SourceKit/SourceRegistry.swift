// The registry: `kind:` → adapter. The only place in Sources that lists the kinds of source.
import BackupCore
import Foundation

struct SourceRegistry: Sendable {
    let adapters: [SourceKind: any SourceAdapter]

    init(_ adapters: [any SourceAdapter]) {
        self.adapters = Dictionary(adapters.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
        for adapter in adapters {
            precondition((adapter.asStream != nil) != (adapter.asSnapshot != nil),
                         "kind \(adapter.kind.rawValue) must adopt one of StreamKind and SnapshotKind")
        }
    }

    /// Every kind this build knows. Register a new kind here (one line).
    static let standard = SourceRegistry([
        RedisAdapter(),
        MongoAdapter(),
        BucketAdapter(),
        FilesAdapter(),
        QdrantAdapter(),
    ])

    /// The adapter of a kind; a kind this build does not know (an artifact written by a newer version, a
    /// damaged catalog row) is an error that names it.
    func adapter(for kind: SourceKind) throws -> any SourceAdapter {
        guard let adapter = adapters[kind] else {
            throw BackupFailure("unknown source kind \"\(kind.rawValue)\" (this build knows: \(kinds.map(\.rawValue).joined(separator: ", ")))",
                                exitStatus: .usage,
                                hint: "was this backup written by a newer kaleem-backup? use that version, or check the catalog row")
        }
        return adapter
    }

    var kinds: [SourceKind] { adapters.keys.sorted() }

    /// The policy parsers of every kind.
    var policyKinds: SourceKindTable { SourceKindTable(adapters.values.map { $0 as any SourceSettingsParser }) }
}

/// What the CLI needs to know of the kinds without importing them: help text and the policy parsers.
public enum SourceKinds {
    /// Each kind (by name) with its one-line summary and its restore options, for `restore --help` and the
    /// manual (laid out as the other options there).
    public static var restoreSections: [(kind: String, summary: String, options: [RestoreOptionSpec])] {
        SourceRegistry.standard.kinds.map { kind in
            let a = SourceRegistry.standard.adapters[kind]!
            return (kind.rawValue, a.summary, a.restoreOptions)
        }
    }

    /// The kinds a policy may use.
    public static var policyTable: SourceKindTable { SourceRegistry.standard.policyKinds }

    public static var names: [String] { SourceRegistry.standard.kinds.map(\.rawValue) }

    /// Artifacts of this kind are content-addressed snapshots: their stored size is what they added to the
    /// repository (new blobs and the manifest), their raw size the logical size of everything they list.
    public static func storesSnapshots(_ kind: SourceKind) -> Bool {
        SourceRegistry.standard.adapters[kind]?.layout == .snapshot
    }
}
