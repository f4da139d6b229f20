import BackupCatalog
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

/// Partial Redis restores (`restore redis --match`): only the matching keys, with their TTLs, through RESTORE
/// with payloads built from the backup's RDB; compared key by key with DUMP on both sides (real servers).
@Suite(.serialized, .blockingThreads) struct RedisKeyRestoreTests {
    @Test func onlyTheMatchingKeysComeBackWithTheirTTLs() throws {
        let source = try RedisTestServer()
        // 100,000 keys the pattern must not pick, through redis-cli --pipe.
        let fill = try runProcess("/bin/sh", ["-c", """
            python3 -c 'import sys
            w=sys.stdout.write
            for i in range(100000): w("*3\\r\\n$3\\r\\nSET\\r\\n$%d\\r\\nk:%d\\r\\n$5\\r\\nvalue\\r\\n" % (len(str(i))+2, i))' | redis-cli -p "$0" --pipe
            """, String(source.port)])
        #expect(fill.status == 0, "\(fill.stderr)")
        let c = try source.connect()
        defer { c.close() }
        // 3,000 session keys of every type and encoding, some with TTLs.
        var sessions: [String] = []
        for i in 0..<3000 {
            let key = "sess:\(i)"
            sessions.append(key)
            switch i % 8 {
            case 0: _ = try c.command(["SET", key, String(repeating: "v\(i)", count: 1 + i % 50)])
            case 1: _ = try c.command(["HSET", key, "a", "1", "b", "\(i)"])
            case 2: _ = try c.command(["HSET", key] + (0..<200).flatMap { ["f\($0)", String(repeating: "x", count: 70)] })
            case 3: _ = try c.command(["RPUSH", key] + (0..<(1 + i % 300)).map { "item\($0)" })
            case 4: _ = try c.command(["SADD", key] + (0..<(1 + i % 600)).map { "\($0)" })
            case 5: _ = try c.command(["ZADD", key] + (0..<(1 + i % 200)).flatMap { ["\(Double($0) / 3)", "m\($0)"] })
            case 6: _ = try c.command(["SADD", key, "x\(i)", "y", "z"])
            default:
                _ = try c.command(["XADD", key, "1-1", "f", "v"])
                _ = try c.command(["XADD", key, "2-1", "f", "w"])
                _ = try c.command(["XGROUP", "CREATE", key, "g", "0"])
                _ = try c.command(["XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", key, ">"])
            }
            if i % 10 == 0 { _ = try c.command(["PEXPIRE", key, "86400000"]) }
        }
        // Long enough to be in the backup on a loaded machine (the backup starts a process and a SYNC), then
        // waited out: it must have expired when the keys are restored.
        _ = try c.command(["SET", "sess:short", "gone soon", "PX", "5000"])
        let shortExpires = Date().addingTimeInterval(5.1)
        _ = try c.command(["SELECT", "3"])
        _ = try c.command(["SET", "sess:in-db3", "three"])
        _ = try c.command(["SELECT", "0"])

        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: source.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        let left = shortExpires.timeIntervalSinceNow // sess:short's TTL runs out after the backup
        if left > 0 { usleep(useconds_t(left * 1_000_000)) }

        let target = try RedisTestServer()
        let t = try target.connect()
        defer { t.close() }
        _ = try t.command(["SET", "sess:5", "the target's own value"])
        let url = target.url

        // The dry run counts and writes nothing.
        let dry = try runCLI(["restore", "redis", "--latest", "--match", "sess:*", "--to-url", url, "--dry-run", "--json", "--policy", policy])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try object(dry.stdout)
        #expect(plan["matched"] as? Int == 3002 && plan["skipped_existing"] as? Int == 1 && plan["skipped_expired"] as? Int == 1, "\(plan)")
        #expect(try t.command(["DBSIZE"]) == .integer(1))

        // The restore: every session key but the one that exists (left as it was) and the one that expired.
        let run = try runCLI(["restore", "redis", "--latest", "--match", "sess:*", "--to-url", url, "--json", "--policy", policy])
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        let done = try object(run.stdout)
        #expect(done["restored"] as? Int == 3000 && done["skipped_existing"] as? Int == 1 && done["skipped_expired"] as? Int == 1, "\(done)")
        #expect(try t.command(["DBSIZE"]) == .integer(3000))
        #expect(try t.command(["GET", "sess:5"]) == .bulk(Array("the target's own value".utf8)))
        #expect(try t.command(["EXISTS", "k:1"]) == .integer(0))
        _ = try t.command(["SELECT", "3"])
        #expect(try t.command(["EXISTS", "sess:in-db3"]) == .integer(1))
        _ = try t.command(["SELECT", "0"])
        for key in sessions where key != "sess:5" {
            let type = try c.command(["TYPE", key])
            #expect(try t.command(["TYPE", key]) == type, "\(key)")
            if type == .simple("set") || type == .simple("hash") {
                // A hashtable's DUMP follows its dict's order (a restored copy rehashes): compare the contents.
                let read = type == .simple("set") ? "SMEMBERS" : "HGETALL"
                let a = try c.command([read, key]), b = try t.command([read, key])
                #expect(Self.sorted(a) == Self.sorted(b) && !Self.sorted(a).isEmpty, "\(key)")
                #expect(try t.command(["OBJECT", "ENCODING", key]) == (try c.command(["OBJECT", "ENCODING", key])), "\(key)")
            } else {
                #expect(try t.command(["DUMP", key]) == (try c.command(["DUMP", key])), "\(key)")
            }
            #expect(try t.command(["PEXPIRETIME", key]) == (try c.command(["PEXPIRETIME", key])), "\(key)")
        }

        // --replace overwrites, and only with --yes.
        let refused = try runCLI(["restore", "redis", "--latest", "--match", "sess:5", "--to-url", url, "--replace", "--policy", policy])
        #expect(refused.status == 2 && refused.stderr.contains("--yes"), "\(refused.stderr)")
        let replaced = try runCLI(["restore", "redis", "--latest", "--match", "sess:5", "--to-url", url, "--replace", "--yes", "--json", "--policy", policy])
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(try t.command(["DUMP", "sess:5"]) == (try c.command(["DUMP", "sess:5"])))

        // --db picks one database.
        let other = try RedisTestServer()
        let db3 = try runCLI(["restore", "redis", "--latest", "--match", "*", "--db", "3", "--to-url", other.url, "--json", "--policy", policy])
        #expect(db3.status == 0, "\(db3.stderr)")
        #expect(try other.keyspace() == [3: 1])

        // Every partial restore is recorded, with what it did.
        let restores = try Catalog(path: dir.file("repo/catalog.sqlite")).restores(source: "redis")
        #expect(restores.map(\.mode).allSatisfy { $0 == "keys" } && restores.count == 4)
        #expect(restores.contains { $0.outcome == "dry-run" } && restores.contains { $0.detail.contains("3000 restored") })

        // Misuse is refused before anything: no target, or a file target.
        #expect(try runCLI(["restore", "redis", "--latest", "--match", "x", "--policy", policy]).status == 2)
        #expect(try runCLI(["restore", "redis", "--latest", "--replace", "--to-url", url, "--policy", policy]).status == 2)
    }

    /// A backup written by Redis 7.0 (RDB 10) into a Redis 6.2 target (reads payloads up to RDB 9): refused before
    /// anything, the target untouched.
    @Test func aTargetTooOldForThePayloadsIsRefusedUntouched() throws {
        let source = try RedisTestServer()
        let c = try source.connect()
        defer { c.close() }
        for i in 0..<50 { _ = try c.command(["SET", "sess:\(i)", "v"]) }
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: source.url)
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        let old = try RedisTestServer(executable: redis62Executable)
        let t = try old.connect()
        defer { t.close() }
        _ = try t.command(["SET", "keep", "me"])
        let r = try runCLI(["restore", "redis", "--latest", "--match", "sess:*", "--to-url", old.url, "--policy", policy])
        #expect(r.status != 0)
        #expect(r.stderr.contains("Refused before anything was touched"), "\(r.stderr)")
        #expect(try t.command(["DBSIZE"]) == .integer(1))
    }

    /// Set members, or a hash's field/value pairs, in a stable order.
    static func sorted(_ v: RESPValue) -> [[UInt8]] {
        guard case .array(let items?) = v else { return [] }
        let bulks = items.compactMap { if case .bulk(let b?) = $0 { return b } else { return nil } }
        return bulks.sorted { $0.lexicographicallyPrecedes($1) }
    }
}
