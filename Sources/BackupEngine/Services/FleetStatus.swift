// Fleet status (#38): every host's catalog copy in the shared off-site bucket, read (never written) and
// summarised per host and source. A catalog copy from the bucket is untrusted input: its size is bounded before it
// is fetched, its sha256 checked against the one recorded at upload, and it is opened only as a scratch copy and
// checked (SQLite's integrity check, every row in our layout) before anything in it is believed. A copy that fails
// any of this is reported for its host; the other hosts are still shown.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import OffsiteStore
import S3Client

public struct FleetSourceStatus: Sendable, Encodable {
    public var source: String
    /// The newest good backup's time, and its age when the report was made (the RPO now).
    public var newestGood: Date?
    public var rpoSeconds: Double?
    public var lastRunOK: Bool?
    public var lastDrill: Date?
    public var lastDrillPassed: Bool?
    /// The last drill's duration: the measured RTO.
    public var rtoSeconds: Double?
    public var corrupt: Int

    enum CodingKeys: String, CodingKey {
        case source, newestGood = "newest_good", rpoSeconds = "rpo_seconds", lastRunOK = "last_run_ok", lastDrill = "last_drill"
        case lastDrillPassed = "last_drill_passed", rtoSeconds = "rto_seconds", corrupt
    }
}

/// The newest refresh (a drill of this host's backups done by another host into its live stores, #38) that
/// another host left a receipt of, under its own directory: `<writer>/refreshes/<this host>/<id>.json`.
public struct FleetRefreshSeen: Sendable, Encodable {
    /// The host that did the refresh (whose directory holds the receipt).
    public var by: String
    /// The receipt's key under the prefix.
    public var receipt: String
    /// Read and checked: the refresh (nil when the receipt was refused).
    public var refresh: RefreshResult?
    /// Why the receipt was refused (too large, not of the receipt's form, not describing its place).
    public var error: String?
}

public struct FleetHostStatus: Sendable, Encodable {
    public var host: String
    /// This host (the policy's `host:`).
    public var isSelf: Bool
    /// When the host last copied its catalog (the object's Last-Modified), and how long ago.
    public var copyTime: Date?
    public var copyAgeSeconds: Double?
    public var copyBytes: Int64?
    /// Why the copy could not be read (too large, wrong sha256, not a sound catalog); nil when it was.
    public var copyError: String?
    /// The copy failed its integrity check (damaged, or rows outside the layout): an integrity problem (exit 4).
    public var copyCorrupt = false
    public var sources: [FleetSourceStatus] = []
    /// The newest refresh of this host's backups by each other host (their receipts).
    public var refreshedBy: [FleetRefreshSeen] = []
    /// What is wrong, one line each (empty: nothing).
    public var problems: [String] = []

    enum CodingKeys: String, CodingKey {
        case host, isSelf = "self", copyTime = "copy_time", copyAgeSeconds = "copy_age_seconds", copyBytes = "copy_bytes"
        case copyError = "copy_error", copyCorrupt = "copy_corrupt", sources, refreshedBy = "refreshed_by", problems
    }
}

/// Another host's catalog copy that is not used: what is wrong with it. `corrupt`: it is not what that host wrote
/// (wrong sha256, not a sound catalog, rows outside the layout), an integrity problem (exit 4).
public struct CatalogCopyRefused: UserFacingError {
    public var message: String
    public var corrupt: Bool
    public var description: String { message }
    public var exitStatus: ExitStatus { corrupt ? .integrity : .failed }
    public var hint: String? { corrupt ? "ask that host to run a backup (it copies its catalog after every run), or look at who else can write to its directory" : nil }
}

/// The limits `fleet status` holds every host to.
public struct FleetLimits: Sendable {
    /// A host whose catalog copy is older than this has stopped copying (the FleetHostCopyStale alert's 26 h).
    public var maxCopyAge: Double = 26 * 3600
    /// A source whose newest good backup is older than this is past its RPO (the BackupTooOld alert's 26 h).
    public var maxRPO: Double = 26 * 3600
    /// The largest catalog copy fetched (a catalog of a million artifacts is a few hundred MiB; bigger is not ours).
    public var maxCopyBytes: Int64 = 512 << 20

    public init(maxCopyAge: Double = 26 * 3600, maxRPO: Double = 26 * 3600, maxCopyBytes: Int64 = 512 << 20) {
        self.maxCopyAge = maxCopyAge
        self.maxRPO = maxRPO
        self.maxCopyBytes = maxCopyBytes
    }
}

struct FleetStatusReader: EngineService {
    let core: EngineCore

    /// The hosts in the bucket: the directories under the prefix that are host names and hold a catalog copy.
    /// One delimiter listing, then one listing of `<host>/catalog/` each.
    func hosts(root: S3Repository) async throws -> [(host: String, copy: RepositoryFile, modified: Date?)] {
        let prefixes = try await root.client.listCommonPrefixes(bucket: root.bucket, prefix: root.prefix)
        var found: [(String, RepositoryFile, Date?)] = []
        for p in prefixes {
            let name = String(p.dropFirst(root.prefix.count).dropLast())
            guard HostName.isValid(name) else { continue }
            var copy: S3Object?
            try await root.client.listObjects(bucket: root.bucket, prefix: root.prefix + name + "/catalog/", maxPages: 1) { page in
                copy = page.first { $0.key == root.prefix + name + "/" + CatalogRebuilder.offsiteCopy }
            }
            guard let copy else { continue } // the old layout's source directories, or a host that never copied its catalog
            found.append((name, RepositoryFile(relative: name + "/" + CatalogRebuilder.offsiteCopy, size: copy.size, recordedSHA256: nil),
                          Timestamps.parseISO8601(copy.lastModified)))
        }
        return found
    }

    func status(limits: FleetLimits) async throws -> [FleetHostStatus] {
        guard let root = try core.offsiteBucketRoot() else {
            throw BackupFailure("fleet status reads the hosts' catalog copies from the off-site bucket, and \(policy.origin) has no repository.offsite",
                                exitStatus: .usage, hint: "add repository.offsite (the bucket every host copies to)")
        }
        defer { root.close() }
        let me = try? core.offsiteHost()
        let now = environment.clock()
        let scratch = try EngineCore.privateTemporaryDirectory(prefix: "fleet-status")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var result: [FleetHostStatus] = []
        for (host, copy, modified) in try await hosts(root: root) {
            var status = FleetHostStatus(host: host, isSelf: host == me, copyTime: modified,
                                         copyAgeSeconds: modified.map { max(0, now.timeIntervalSince($0)) }, copyBytes: copy.size)
            do {
                let sources = try await read(copy, root: root, into: scratch + "/" + host + ".sqlite", now: now, status: &status)
                status.sources = sources
            } catch {
                status.copyError = describe(error)
            }
            status.problems = Self.problems(status, limits: limits)
            result.append(status)
        }
        // The receipts each host left of the refreshes it did from other hosts (#38): the newest per other host.
        for writer in result.map(\.host) {
            let seen: [FleetRefreshSeen]
            do {
                seen = try await receipts(writer: writer, root: root, scratch: scratch)
            } catch {
                if let w = result.firstIndex(where: { $0.host == writer }) { result[w].problems.append("\(writer): its refresh receipts cannot be listed: \(describe(error))") }
                continue
            }
            for r in seen {
                if let error = r.error, let w = result.firstIndex(where: { $0.host == writer }) {
                    result[w].problems.append("\(writer): refresh receipt \(r.receipt) refused: \(error)")
                }
                guard let f = result.firstIndex(where: { $0.host == r.refresh?.from_host ?? "" }) else { continue }
                result[f].refreshedBy.append(r)
            }
        }
        return result
    }

    /// The newest receipt (`RefreshReceipts.newer`) under `<writer>/refreshes/<host>/` for each host, read as
    /// untrusted input (`RefreshReceipts.fetch`).
    private func receipts(writer: String, root: S3Repository, scratch: String) async throws -> [FleetRefreshSeen] {
        var newest: [String: RepositoryFile] = [:]
        for file in try await root.list(under: writer + "/" + RefreshReceipts.directory + "/") {
            let parts = file.relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 4, HostName.isValid(parts[2]), parts[3].hasSuffix(".json") else { continue }
            if newest[parts[2]].map({ RefreshReceipts.newer(file, than: $0) }) ?? true { newest[parts[2]] = file }
        }
        var out: [FleetRefreshSeen] = []
        for (from, file) in newest.sorted(by: { $0.key < $1.key }) {
            var seen = FleetRefreshSeen(by: writer, receipt: file.relative, refresh: nil, error: nil)
            do {
                seen.refresh = try await RefreshReceipts.fetch(file, from: root, to: scratch + "/receipt-\(writer)-\(from).json", writer: writer, fromHost: from)
            } catch {
                seen.error = describe(error)
            }
            out.append(seen)
        }
        return out
    }

    /// The copy fetched, checked, and summarised per source.
    private func read(_ copy: RepositoryFile, root: S3Repository, into path: String, now: Date,
                      status: inout FleetHostStatus) async throws -> [FleetSourceStatus] {
        let catalog: Catalog
        do {
            catalog = try await Self.fetchCatalogCopy(copy.relative, from: root, to: path)
        } catch let refused as CatalogCopyRefused {
            status.copyCorrupt = refused.corrupt
            throw refused
        }
        defer {
            try? catalog.close()
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(path + suffix) }
        }
        if status.copyTime == nil, let newest = try catalog.newestRunStart() {
            status.copyTime = newest
            status.copyAgeSeconds = max(0, now.timeIntervalSince(newest))
        }
        return try catalog.sourceSummaries().sorted { $0.source < $1.source }.map { s in
            FleetSourceStatus(source: s.source, newestGood: s.lastSuccess, rpoSeconds: s.lastSuccess.map { max(0, now.timeIntervalSince($0)) },
                              lastRunOK: s.lastRunOK, lastDrill: s.lastDrill, lastDrillPassed: s.lastDrillPassed,
                              rtoSeconds: s.lastDrillDuration, corrupt: s.corrupt)
        }
    }

    /// A host's catalog copy (`relative` under the bucket's prefix) fetched into `path` and opened, as untrusted
    /// input: its size bounded before it is fetched, its sha256 checked against the one recorded at upload, then
    /// opened as a scratch copy (migrated there if older) and refused unless SQLite finds nothing wrong with it and
    /// every row describes a file of our layout. Used by `fleet status` and `--from-host`.
    static func fetchCatalogCopy(_ relative: String, from root: any Repository, to path: String,
                                 limit: Int64 = FleetLimits().maxCopyBytes) async throws -> Catalog {
        let name = root.location + relative
        guard let head = try await root.stat(relative) else {
            throw CatalogCopyRefused(message: "\(name) is not there (the host never copied its catalog, or the name is wrong)", corrupt: false)
        }
        guard head.size <= limit else {
            throw CatalogCopyRefused(message: "\(name) is \(head.size) bytes, more than a catalog copy's \(limit): not read", corrupt: true)
        }
        // Every copy a host uploads carries its sha256 (x-amz-meta-sha256): one without it was not written by us.
        guard let recorded = head.recordedSHA256 else {
            throw CatalogCopyRefused(message: "\(name) carries no recorded sha256 (every copy kaleem-backup uploads does): not read", corrupt: true)
        }
        do {
            try await root.get(relative, to: path, sha256: recorded)
        } catch let error as IntegrityError {
            throw CatalogCopyRefused(message: error.description, corrupt: true)
        }
        guard let size = FileIO.fileSize(path), size <= limit else {
            unlink(path)
            throw CatalogCopyRefused(message: "\(name) grew past \(limit) bytes while it was fetched: not read", corrupt: true)
        }
        if let problem = Catalog.schemaRefusal(path: path) {
            throw CatalogCopyRefused(message: "\(name) refused: \(problem)", corrupt: true)
        }
        let catalog: Catalog
        do {
            catalog = try Catalog(path: path)
        } catch {
            throw CatalogCopyRefused(message: "\(name) is not a catalog this version can read (\(error))", corrupt: true)
        }
        do {
            if let problem = try catalog.copyRefusal() {
                if !problem.hasPrefix("damaged") { try? catalog.close() }
                throw CatalogCopyRefused(message: "\(name) refused: \(problem)", corrupt: true)
            }
        } catch let refused as CatalogCopyRefused {
            throw refused
        } catch {
            try? catalog.close()
            throw CatalogCopyRefused(message: "\(name) cannot be checked (\(error))", corrupt: true)
        }
        return catalog
    }

    public static func age(_ seconds: Double) -> String {
        if seconds < 3600 { return "\(Int(seconds / 60)) min" }
        if seconds < 172_800 { return String(format: "%.1f h", seconds / 3600) }
        return String(format: "%.1f days", seconds / 86400)
    }

    static func problems(_ h: FleetHostStatus, limits: FleetLimits) -> [String] {
        var lines: [String] = []
        if let error = h.copyError { lines.append("\(h.host): catalog copy unreadable: \(error)") }
        if let age = h.copyAgeSeconds, age > limits.maxCopyAge {
            lines.append("\(h.host): catalog copy is \(Self.age(age)) old, more than \(Self.age(limits.maxCopyAge)): the host stopped copying")
        }
        for s in h.sources {
            let name = "\(h.host)/\(s.source)"
            for problem in SourceProblem.find(rpoSeconds: s.rpoSeconds, lastRunOK: s.lastRunOK, lastDrill: s.lastDrillPassed.map { SourceProblem.LastDrill(failed: !$0) },
                                              corrupt: s.corrupt, maxRPO: limits.maxRPO, drills: .lastMustPass, now: Date()) {
                switch problem {
                case .stale(let rpo, let limit): lines.append("\(name): newest good backup is \(Self.age(rpo)) old, more than \(Self.age(limit))")
                case .noGoodBackup: lines.append("\(name): no good backup")
                case .lastRunFailed: lines.append("\(name): last run failed")
                case .drillFailed: lines.append("\(name): last drill failed")
                case .corrupt(let n): lines.append("\(name): \(n) corrupt backup(s)")
                case .drillOverdue, .neverDrilled, .interruptedRestore: break // not judged here
                }
            }
        }
        return lines
    }
}
