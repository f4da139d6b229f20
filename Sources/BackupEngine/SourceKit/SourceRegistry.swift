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

    /// The registry engines and `SourceKinds` use: `standard`, unless a caller (a test adding a kind of its own)
    /// runs under another with `SourceRegistry.$current.withValue(…)`.
    @TaskLocal static var current = SourceRegistry.standard

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

/// What the CLI needs to know of the kinds without importing them: help text, the policy parsers, what `list`
/// and `show` say of a backup. Read from `SourceRegistry.current` (the standard registry in the shipped binary).
public enum SourceKinds {
    private static var registry: SourceRegistry { SourceRegistry.current }

    /// Each kind (by name) with its one-line summary and its restore options, for `restore --help` and the
    /// manual (laid out as the other options there).
    public static var restoreSections: [(kind: String, summary: String, options: [RestoreOptionSpec])] {
        registry.kinds.map { kind in
            let a = registry.adapters[kind]!
            return (kind.rawValue, a.summary, a.restoreOptions)
        }
    }

    /// The kinds a policy may use.
    public static var policyTable: SourceKindTable { registry.policyKinds }

    public static var names: [String] { registry.kinds.map(\.rawValue) }

    /// Artifacts of this kind are content-addressed snapshots: their stored size is what they added to the
    /// repository (new blobs and the manifest), their raw size the logical size of everything they list.
    public static func storesSnapshots(_ kind: SourceKind) -> Bool {
        registry.adapters[kind]?.layout == .snapshot
    }

    /// The DETAIL of a good backup in `list` and `show`, said by its kind from the stats it recorded; empty for a
    /// kind this build does not know.
    public static func detailSummary(_ artifact: ArtifactInfo) -> String {
        registry.adapters[artifact.kind]?.detailSummary(stats: artifact.stats) ?? ""
    }

    /// Each kind's own `ls`/`diff` filters (Redis's --db, MongoDB's --deep), by kind name.
    public static var contentFilters: [(kind: String, filters: [ContentFilterOption])] {
        registry.kinds.map { ($0.rawValue, registry.adapters[$0]!.contentFilters) }
    }

    /// The kinds' filters given to `ls` or `diff` (`--db 3`, `--db=3`, `--deep`), by name, for
    /// `ContentFilter.options`; a word that is no kind's filter is a usage error naming them.
    public static func contentFilterOptions(_ words: [String]) throws -> [String: String] {
        var specs: [String: ContentFilterOption] = [:]
        for (_, filters) in contentFilters { for f in filters where specs[f.name] == nil { specs[f.name] = f } }
        let known = contentFilters.flatMap { kind, filters in filters.map { "--\($0.name)" + ($0.valueName.map { " \($0)" } ?? "") + " (\(kind))" } }
        var out: [String: String] = [:]
        var i = 0
        while i < words.count {
            let word = words[i]
            var name = word.hasPrefix("--") ? String(word.dropFirst(2)) : ""
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let spec = specs[name] else {
                throw BackupFailure("\(word) is neither an option nor a filter of a kind of source", exitStatus: .usage,
                                    hint: "the kinds' filters are: \(known.joined(separator: ", "))")
            }
            if spec.valueName == nil {
                guard inline == nil else { throw BackupFailure("--\(name) takes no value", exitStatus: .usage) }
                out[name] = ""
            } else if let inline {
                out[name] = inline
            } else {
                guard i + 1 < words.count else { throw BackupFailure("--\(name) needs a value (\(spec.valueName!))", exitStatus: .usage) }
                i += 1
                out[name] = words[i]
            }
            i += 1
        }
        return out
    }
}
