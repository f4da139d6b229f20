// `ls` of a files backup: the tar's entries, headers only (contents skipped), in archive order.
import ArtifactStore
import BackupCore
import Foundation
import TarFormat

extension FilesAdapter {
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) async throws {
        let recorded = Self.entries(of: artifact)
        var tar = await TarReader(GzipChunkSource(reader: try context.reader(artifact)))
        while let entry = try tar.next() {
            guard filter.accepts(entry.path) else { continue }
            var detail: [String: JSONValue] = ["mode": .string(String(entry.mode, radix: 8)),
                                               "mtime": .string(Timestamps.iso8601(Date(timeIntervalSince1970: entry.mtime)))]
            if let link = entry.linkTarget { detail["link"] = .string(link) }
            if !entry.user.isEmpty { detail["owner"] = .string(entry.user + ":" + entry.group) }
            // Files: the sha256 the backup recorded; links: their target; directories: their mode.
            let digest: String?
            switch entry.type {
            case .file: digest = recorded[entry.path]?["sha256"].flatMap { if case .string(let s) = $0 { return s } else { return nil } }
            case .symlink: digest = "link:" + (entry.linkTarget ?? "")
            default: digest = "mode:" + String(entry.mode, radix: 8)
            }
            try emit(ContentEntry(path: entry.path, type: "\(entry.type)", size: entry.type == .file ? entry.size : nil, detail: detail,
                                  digest: digest))
        }
    }
}

// What `list` knows of files backups.
extension FilesAdapter {
    func detailSummary(stats: [String: JSONValue]) -> String {
        guard let files = stats["files"]?.intValue else { return "" }
        var text = "\(files) files"
        if let added = stats["added"]?.intValue, let changed = stats["changed"]?.intValue, let removed = stats["removed"]?.intValue {
            text += " (+\(added) ~\(changed) -\(removed) since the previous)"
        }
        if let torn = stats["changed_during_backup"]?.intValue, torn > 0 { text += ", \(torn) changed while read" }
        return text
    }
}
