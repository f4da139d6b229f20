import BackupCore
import Foundation

/// Which RDB version each Redis version writes (and the newest it can load), and the version of a
/// `redis-server` binary. A server loads RDB files up to its own version and refuses newer ones
/// ("Can't handle RDB format version 10"), so a restore or a drill must not hand a server a newer RDB.
public enum RedisVersions {
    /// RDB version written by Redis `version` ("6.2.14"): 2.6–3.0 → 6, 3.2 → 7, 4.0 → 8, 5.0–6.2 → 9,
    /// 7.0 → 10, 7.2 → 11, 7.4 and later → 12. Nil when `version` is not a version.
    public static func rdbVersion(forRedis version: String) -> Int? {
        let parts = version.split(separator: ".").map { Int($0) }
        guard parts.count >= 2, let major = parts[0], let minor = parts[1] else { return nil }
        switch (major, minor) {
        case (..<3, _), (3, 0...1): return 6
        case (3, _): return 7
        case (4, _): return 8
        case (5, _), (6, _): return 9
        case (7, 0): return 10
        case (7, 1...3): return 11
        default: return 12
        }
    }

    /// `major.minor` of a version, to match a backup with the server that wrote it.
    public static func series(_ version: String) -> String {
        version.split(separator: ".").prefix(2).joined(separator: ".")
    }

    /// The version `redis-server --version` prints (`Redis server v=6.2.14 sha=…`), or nil.
    public static func serverVersion(executable: String) -> String? {
        guard let path = ExecutableLookup.find(executable) else { return nil }
        var template = Array((NSTemporaryDirectory() + "/kaleem-version-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        close(fd)
        let file = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { unlink(file) }
        guard let child = try? ChildProcess(executable: path, arguments: ["--version"], stdoutPath: file) else { return nil }
        guard child.wait() == 0, let text = try? String(contentsOfFile: file, encoding: .utf8),
              let r = text.range(of: #"v=[0-9]+\.[0-9]+(\.[0-9]+)?"#, options: .regularExpression) else { return nil }
        return String(text[r].dropFirst(2))
    }

    /// A `redis-server` binary and its version.
    public struct Candidate: Sendable, Equatable {
        public var executable: String
        public var version: String
        public var rdbVersion: Int
    }

    /// The scratch server to use among `executables` (each a path or a name on PATH): one that can load an
    /// RDB of `loads` (when known) and whose own RDB is at most `mustNotExceed` (the target's, for replication;
    /// nil for a drill). Preferred: the same `major.minor` as `prefer` (the version that wrote the backup), then
    /// the newest that fits. Nil when none fits; `found` says what was there, for the message.
    public static func chooseScratch(_ executables: [String], loads: Int?, mustNotExceed: Int?, prefer: String?)
        -> (chosen: Candidate?, found: [Candidate]) {
        var found: [Candidate] = []
        for e in executables {
            guard let path = ExecutableLookup.find(e), !found.contains(where: { $0.executable == path }),
                  let version = serverVersion(executable: path), let rdb = rdbVersion(forRedis: version) else { continue }
            found.append(Candidate(executable: path, version: version, rdbVersion: rdb))
        }
        let fits = found.filter { c in (loads.map { c.rdbVersion >= $0 } ?? true) && (mustNotExceed.map { c.rdbVersion <= $0 } ?? true) }
        if let prefer, let same = fits.first(where: { series($0.version) == series(prefer) }) { return (same, found) }
        return (fits.max { $0.rdbVersion < $1.rdbVersion }, found)
    }
}
