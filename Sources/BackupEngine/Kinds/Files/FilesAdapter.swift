// `kind: files`: configuration files as one POSIX pax tar per run (gzip, age when encryption is on), every
// file's size, mode, owner and sha256 in the manifest; restores into a directory or in place, drills into a
// scratch directory. Secrets (.env*, *.key, *.pem, secret_paths) are never stored unencrypted unless the
// policy says so.
import ArtifactStore
import BackupCore
import Crypto
import Foundation
import TarFormat
#if canImport(Glibc)
import Glibc
#endif

struct FilesAdapter: StreamKind {
    typealias Settings = FilesSourcePolicy
    let kind = SourceKind("files")
    let fileExtension = "tar"
    let summary = "configuration files as one POSIX tar (modes, owners, symlinks), restored into a directory or in place"
    var restoresOnRollbackByDefault: Bool { false }

    // MARK: checks (policy check, and before every backup)

    func check(_ source: TypedSource<FilesSourcePolicy>, policy: Policy) throws -> [String] {
        let files = source.settings
        let set = try FileSet.collect(files, source: source.name)
        var problems: [String] = []
        let encrypted = !(policy.encryption?.recipients.isEmpty ?? true)
        let identity = policy.encryption?.identityFile.flatMap { realpath($0, nil).map { p in defer { free(p) }; return String(cString: p) } }
        for item in set.items where !item.isDirectory {
            if let identity, let real = realpath(item.absolute, nil) {
                defer { free(real) }
                if String(cString: real) == identity {
                    problems.append("\(item.absolute) is the age identity file (encryption.identity_file): a backup must not hold its own key; exclude it")
                }
            }
            if !encrypted && !files.allowPlaintextSecrets && FileSet.isSecret(item.relative, files) {
                problems.append("\(item.absolute) holds secrets and the policy sets no encryption.recipients: it would be stored in clear (set encryption, or sources.\(source.name).allow_plaintext_secrets: true)")
            }
        }
        return problems
    }

    // MARK: backup

    struct Recorded {
        var entry: TarEntry
        var sha256: String?
        var changedDuringBackup = false

        var json: JSONValue {
            var o: [String: JSONValue] = ["path": .string(entry.path), "type": .string(entry.type.rawValue), "size": .int(Int(entry.size)),
                                          "mode": .string(String(entry.mode, radix: 8)), "uid": .int(entry.uid), "gid": .int(entry.gid),
                                          "user": .string(entry.user), "group": .string(entry.group), "mtime": .double(entry.mtime)]
            if let sha256 { o["sha256"] = .string(sha256) }
            if let link = entry.linkTarget { o["link"] = .string(link) }
            if changedDuringBackup { o["changed_during_backup"] = .bool(true) }
            return .object(o)
        }
    }

    func backupStream(_ source: TypedSource<FilesSourcePolicy>, into writer: ArtifactWriter, context: SourceContext) throws -> [String: JSONValue] {
        let files = source.settings
        let problems = try check(source, policy: context.policy)
        if !problems.isEmpty { throw BackupFailure(problems.joined(separator: "; "), exitStatus: .usage) }
        let set = try FileSet.collect(files, source: source.name)
        var warnings = set.warnings
        var tar = TarWriter { try writer.write($0) }
        var owners = OwnerNames()
        var recorded: [Recorded] = []
        context.progress?.counting("files", total: set.items.count)
        for item in set.items {
            defer { context.progress?.add(items: 1) }
            var entry = TarEntry(path: item.relative, type: .file, mode: UInt32(item.info.st_mode) & 0o7777, uid: Int(item.info.st_uid),
                                 gid: Int(item.info.st_gid), user: owners.user(item.info.st_uid), group: owners.group(item.info.st_gid),
                                 mtime: Self.mtime(item.info))
            if item.isDirectory {
                entry.type = .directory
                try tar.begin(entry)
                try tar.end()
                recorded.append(Recorded(entry: entry))
            } else if item.isSymlink {
                entry.type = .symlink
                entry.linkTarget = try Self.readLink(item.absolute)
                try tar.begin(entry)
                try tar.end()
                recorded.append(Recorded(entry: entry))
            } else {
                guard item.info.st_size <= files.maxFileSize else {
                    throw BackupFailure("\(item.absolute) is \(item.info.st_size) bytes, over sources.\(source.name).max_file_size (\(files.maxFileSize))",
                                        exitStatus: .usage, hint: "exclude it (sources.\(source.name).exclude) or raise max_file_size")
                }
                var r = try emitFile(item, entry: entry, tar: &tar)
                if r.changedDuringBackup {
                    // Read again once; a file still changing is stored as read, and said so.
                    r = try emitFile(item, entry: entry, tar: &tar)
                    if r.changedDuringBackup {
                        warnings.append("\(item.absolute) changed while it was read, twice: stored as last read")
                        context.logger.warning("file changed during backup", metadata: ["file": "\(item.absolute)"])
                    }
                }
                recorded.append(r)
            }
        }
        try tar.finish()
        return stats(recorded, warnings: warnings, previous: previousEntries(source.name, context: context))
    }

    /// One regular file into the archive, hashed on the way; `changedDuringBackup` when its size or mtime moved
    /// while it was read (the caller then reads it again: the later entry wins when the archive is extracted).
    private func emitFile(_ item: FileSet.Item, entry template: TarEntry, tar: inout TarWriter) throws -> Recorded {
        let fd = open(item.absolute, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError("open", path: item.absolute) }
        defer { close(fd) }
        var before = stat()
        guard fstat(fd, &before) == 0, (before.st_mode & S_IFMT) == S_IFREG else { throw FileSystemError("stat", path: item.absolute) }
        var entry = template
        entry.size = Int64(before.st_size)
        entry.mode = UInt32(before.st_mode) & 0o7777
        entry.mtime = Self.mtime(before)
        try tar.begin(entry)
        var hasher = SHA256()
        var left = entry.size
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while left > 0 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, Int(min(Int64($0.count), left))) }
            if n < 0 { if errno == EINTR { continue }; throw FileSystemError("read", path: item.absolute) }
            if n == 0 { break } // shrank while read: end() pads, and it is read again
            try buffer.withUnsafeBytes { try tar.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            hasher.update(data: buffer[0..<n])
            left -= Int64(n)
        }
        let grew = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 1) } > 0
        let padded = try tar.end()
        var after = stat()
        _ = fstat(fd, &after)
        let changed = padded > 0 || grew || after.st_size != before.st_size || Self.mtime(after) != Self.mtime(before)
        return Recorded(entry: entry, sha256: hasher.finalize().hexString, changedDuringBackup: changed)
    }

    static func mtime(_ info: stat) -> Double {
        Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec / 1000) / 1e6 // microseconds: what a round trip keeps
    }

    static func readLink(_ path: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { throw FileSystemError("read the link", path: path) }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The stats recorded with the artifact (and in its manifest): every entry, counts, and what changed
    /// since the previous backup of the source.
    private func stats(_ recorded: [Recorded], warnings: [String], previous: [String: JSONValue]?) -> [String: JSONValue] {
        var out: [String: JSONValue] = [
            "entries": .array(recorded.map(\.json)),
            "files": .int(recorded.filter { $0.entry.type == .file }.count),
            "directories": .int(recorded.filter { $0.entry.type == .directory }.count),
            "symlinks": .int(recorded.filter { $0.entry.type == .symlink }.count),
            "bytes": .int(Int(recorded.reduce(Int64(0)) { $0 + $1.entry.size })),
            "changed_during_backup": .int(recorded.filter(\.changedDuringBackup).count),
        ]
        if !warnings.isEmpty { out["warnings"] = .array(warnings.map { .string($0) }) }
        if let previous {
            var added = 0, changed = 0
            var now = Set<String>()
            for r in recorded {
                now.insert(r.entry.path)
                guard let old = previous[r.entry.path] else { added += 1; continue }
                if old["sha256"] != r.json["sha256"] || old["mode"] != r.json["mode"] || old["link"] != r.json["link"] || old["type"] != r.json["type"] {
                    changed += 1
                }
            }
            out["added"] = .int(added)
            out["changed"] = .int(changed)
            out["removed"] = .int(previous.keys.filter { !now.contains($0) }.count)
        }
        return out
    }

    /// The previous good backup's entries, by path (nil when there is none).
    private func previousEntries(_ source: String, context: SourceContext) -> [String: JSONValue]? {
        guard let last = try? context.catalog().artifacts(source: source, status: .ok, limit: 1).first else { return nil }
        return Self.entries(of: last)
    }

    static func entries(of artifact: ArtifactInfo) -> [String: JSONValue] {
        guard case .array(let list)? = artifact.stats["entries"] else { return [:] }
        var out: [String: JSONValue] = [:]
        for e in list { if case .string(let path)? = e["path"] { out[path] = e } }
        return out
    }

    // MARK: verify

    /// Walks the tar (headers, checksums, padding, end blocks), hashes every file, and compares every entry
    /// with the manifest (the last entry of a path wins, as on extraction).
    func verifyContents(_ artifact: ArtifactInfo, _ contents: GzipChunkSource, path: String) throws -> String {
        var reader = TarReader(contents)
        var found: [String: (entry: TarEntry, sha256: String?)] = [:]
        while let entry = try reader.next() {
            var sha: String?
            if entry.type == .file {
                var hasher = SHA256()
                try reader.content { hasher.update(data: $0) }
                sha = hasher.finalize().hexString
            }
            found[entry.path] = (entry, sha)
        }
        var rest = contents
        rest.drain()
        try rest.finishError()
        let expected = Self.entries(of: artifact)
        var problems: [String] = []
        for (p, e) in expected {
            guard let f = found[p] else { problems.append("\(p) is missing"); continue }
            if e["type"] != .string(f.entry.type.rawValue) { problems.append("\(p) is a \(f.entry.type.rawValue)") }
            if let sha = f.sha256, e["sha256"] != .string(sha) { problems.append("\(p) has sha256 \(sha)") }
            if e["link"].map({ $0 != .string(f.entry.linkTarget ?? "") }) ?? false { problems.append("\(p) links elsewhere") }
        }
        for p in found.keys where expected[p] == nil { problems.append("\(p) is not in the manifest") }
        if !problems.isEmpty {
            throw IntegrityError(object: path, problem: "the archive disagrees with its manifest: " + problems.sorted().prefix(5).joined(separator: "; "))
        }
        let files = found.values.filter { $0.entry.type == .file }
        return "sha256 ok, gzip ok, tar ok: \(files.count) files, \(files.reduce(Int64(0)) { $0 + $1.entry.size }) bytes, every sha256 matches the manifest"
    }

    // MARK: drill, rollback, look

    /// Extracts into a scratch directory (every hash compared on the way), reports drift against the live
    /// files (informational), removes the scratch directory.
    func drill(_ artifact: ArtifactInfo, source: TypedSource<FilesSourcePolicy>, context: SourceContext) async -> (DrillResult, String) {
        do {
            let files = source.settings
            let scratch = try context.temporaryDirectory(prefix: "kaleem-drill")
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let check = await context.verify(artifact, copy: nil)
            guard check.ok else { return (.failed, "the backup does not verify: \(check.detail)") }
            let outcome = try await extract(artifact, into: scratch, only: [], inPlace: false, confirmed: true, dryRun: false, context: context)
            var drift = 0
            for (path, e) in Self.entries(of: artifact) where e["type"] == .string("file") {
                let live = files.root + "/" + path
                if case .string(let sha)? = e["sha256"], (try? sha256OfFile(live)) != sha { drift += 1 }
            }
            let driftText = drift == 0 ? "the live configuration matches" : "\(drift) file(s) differ from the live configuration"
            return (.passed, "extracted \(outcome.written) entries into a scratch directory, every sha256 matches the manifest; \(driftText); scratch directory removed")
        } catch let error as IntegrityFailure {
            return (.failed, context.describe(error))
        } catch {
            return (.error, "the drill could not run: \(context.describe(error))")
        }
    }

    func rollback(_ artifact: ArtifactInfo, source: TypedSource<FilesSourcePolicy>, restoreData: Bool, context: SourceContext) async throws -> [String] {
        guard restoreData else { return ["kaleem-backup restore \(artifact.source) --backup \(artifact.id) --in-place --yes"] }
        let options = RestoreOptions.with(flags: ["in-place"])
        let request = RestoreRequest(source: source.name, backup: .id(artifact.id), confirmed: true, options: options)
        let outcome = try await context.restore(self, source, into: try restoreTarget(source, options), request)
        return ["restored \(artifact.source) from \(artifact.id): " + (outcome.lines.last ?? "")]
    }

}

/// uid/gid → names, looked up once each.
struct OwnerNames {
    private var users: [uid_t: String] = [:]
    private var groups: [gid_t: String] = [:]

    mutating func user(_ uid: uid_t) -> String {
        if let u = users[uid] { return u }
        let name = getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? ""
        users[uid] = name
        return name
    }

    mutating func group(_ gid: gid_t) -> String {
        if let g = groups[gid] { return g }
        let name = getgrgid(gid).map { String(cString: $0.pointee.gr_name) } ?? ""
        groups[gid] = name
        return name
    }
}
