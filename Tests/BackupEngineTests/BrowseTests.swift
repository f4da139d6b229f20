import BackupCore
import Foundation
import TestSupport
import Testing

/// `diff` and `find` on real backups: a Redis server (keys changed, added, removed, retyped, in two databases)
/// and a files source.
@Suite(.serialized, .blockingThreads) struct BrowseTests {
    @Test func redisDiffAndFind() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        defer { c.close() }
        for i in 0..<500 { _ = try c.command(["SET", "user:\(i)", "v\(i)"]) }
        _ = try c.command(["HSET", "cart:1", "item", "1"])
        _ = try c.command(["SET", "retyped", "a string"])
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "retention: { keep_last: 10 }")
        func cli(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
        let first = try #require((try object(try cli(["backup", "--json"]).stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)

        _ = try c.command(["SET", "user:7", "changed"])
        _ = try c.command(["HSET", "cart:1", "item", "2"])
        _ = try c.command(["DEL", "user:9"])
        _ = try c.command(["SET", "user:new", "added"])
        _ = try c.command(["DEL", "retyped"])
        _ = try c.command(["RPUSH", "retyped", "now a list"])
        _ = try c.command(["SELECT", "2"])
        _ = try c.command(["SET", "user:7", "same name, other database"])
        _ = try c.command(["SELECT", "0"])
        let second = try #require((try object(try cli(["backup", "--json"]).stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)

        let diff = try cli(["diff", first, second, "--json"])
        #expect(diff.status == 0, "\(diff.stderr)")
        let d = try object(diff.stdout)
        func paths(_ key: String) -> [String] { ((d[key] as? [[String: Any]]) ?? []).compactMap { $0["path"] as? String }.sorted() }
        #expect(paths("added") == ["user:7", "user:new"], "\(d)")  // user:7 of database 2
        #expect(paths("changed") == ["cart:1", "retyped", "user:7"], "\(d)")
        #expect(paths("removed") == ["user:9"])
        #expect(d["unchanged"] as? Int == 498) // 502 keys, 3 changed, 1 removed
        // Narrowed like ls.
        let narrowed = try object(try cli(["diff", first, second, "--json", "--match", "cart:*"]).stdout)
        #expect((narrowed["changed"] as? [Any])?.count == 1 && (narrowed["added"] as? [Any])?.isEmpty == true)
        // Two backups of different sources, or an unknown id: refused.
        #expect(try cli(["diff", first, "nope"]).status == 2)

        // find: newest first; a key only the second backup holds.
        let found = try array(try cli(["find", "user:new", "--json"]).stdout)
        #expect(found.map { $0["id"] as? String } == [second])
        let both = try array(try cli(["find", "user:4*", "--json"]).stdout)
        #expect(both.map { $0["id"] as? String } == [second, first])
        #expect(both.first?["matches"] as? Int == 111)
        #expect(try cli(["find", "nothing-like-this"]).stdout.contains("no good backup"))

        // `latest` wherever an id is taken, with --source to pick the source.
        #expect(try object(try cli(["show", "latest", "--json"]).stdout)["id"] as? String == second)
        #expect(try object(try cli(["show", "latest", "--source", "redis", "--json"]).stdout)["id"] as? String == second)
        #expect(try cli(["show", "latest", "--source", "mongo"]).status == 2)
        let v = try cli(["verify", "--latest", "--json"])
        let verified = try array(v.stdout).map { $0["id"] as? String }
        #expect(v.status == 0 && verified == [second], "\(v.stdout)")
        #expect(try array(try cli(["ls", "latest", "--match", "user:new", "--json"]).stdout).count == 1)
        #expect(try object(try cli(["diff", first, "latest", "--json"]).stdout)["to"] as? String == second)

        // Times as people type them: an age, a date alone, and nonsense refused with what is accepted.
        func restoreBefore(_ time: String) throws -> ProcessResult {
            try cli(["restore", "redis", "--before", time, "--to-url", redis.url, "--dry-run", "--json"])
        }
        let aged = try restoreBefore("0m")
        #expect(aged.status == 0 && aged.stdout.contains(second), "\(aged.stdout) \(aged.stderr)")
        let tomorrow = Timestamps.iso8601(Date().addingTimeInterval(86_400 * 2)).prefix(10) // YYYY-MM-DD
        #expect(try restoreBefore(String(tomorrow)).stdout.contains(second))
        let long = try restoreBefore("2000-01-01")
        #expect(long.status == 1 && long.stderr.contains("no good backup taken before 2000-01-01"), "\(long.stderr)") // nothing that old
        let dated = try restoreBefore("3d ago")
        #expect(dated.status == 1 && dated.stderr.contains("no good backup taken before"), "\(dated.stderr)")
        let nonsense = try restoreBefore("last tuesday")
        #expect(nonsense.status == 2 && nonsense.stderr.contains("YYYY-MM-DD"), "\(nonsense.stderr)")
        let plan = try cli(["rotate", "--dry-run", "--now", "2w", "--json"])
        #expect(plan.status == 0, "\(plan.stderr)")
    }

    /// `--tag` takes any label; the three with a meaning keep it; a malformed one is refused with the rule.
    @Test func anyLabelIsATag() throws {
        let root = TemporaryDirectory()
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: root.file("a.yml")))
        let dir = TemporaryDirectory()
        let policy = dir.file("policy.yml")
        try Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          config: { kind: files, root: \(root.path), paths: [a.yml] }
        """.utf8).write(to: URL(fileURLWithPath: policy))
        let r = try runCLI(["backup", "--tag", "before-migration.v2", "--json", "--policy", policy])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try object(r.stdout)["run"].flatMap { $0 as? [String: Any] }?["tag"] as? String == "before-migration.v2")
        #expect(try array(try runCLI(["list", "--json", "--policy", policy]).stdout).first?["tag"] as? String == "before-migration.v2")
        let bad = try runCLI(["backup", "--tag", "Not A Tag", "--policy", policy])
        #expect(bad.status == 2 && bad.stderr.contains("Not A Tag"), "\(bad.stderr)")
        #expect(try runCLI(["backup", "--tag", "pre-deploy", "--policy", policy]).status == 2) // still needs --release
    }

    @Test func filesDiff() throws {
        let root = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: root.file("conf"), withIntermediateDirectories: true)
        for name in ["a.yml", "b.yml", "c.yml"] { try Data("\(name)\n".utf8).write(to: URL(fileURLWithPath: root.file("conf/" + name))) }
        let dir = TemporaryDirectory()
        let policy = dir.file("policy.yml")
        try Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          config: { kind: files, root: \(root.path), paths: [conf/] }
        retention: { keep_last: 10 }
        """.utf8).write(to: URL(fileURLWithPath: policy))
        func cli(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
        let first = try #require((try object(try cli(["backup", "--json"]).stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        try Data("changed\n".utf8).write(to: URL(fileURLWithPath: root.file("conf/a.yml")))
        try FileManager.default.removeItem(atPath: root.file("conf/b.yml"))
        try Data("new\n".utf8).write(to: URL(fileURLWithPath: root.file("conf/d.yml")))
        let second = try #require((try object(try cli(["backup", "--json"]).stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        let text = try cli(["diff", first, second])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("+ file conf/d.yml") && text.stdout.contains("~ file conf/a.yml") && text.stdout.contains("- file conf/b.yml"), "\(text.stdout)")
        #expect(text.stdout.contains("1 added, 1 changed, 1 removed"))
    }

    /// A bucket source's diff merges the two snapshots bucket by bucket in key order (a chunk of each in memory):
    /// the same answers as the generic diff, narrowed the same way.
    @Test func bucketDiff() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        var media: [String: [UInt8]] = [:]
        for i in 0..<200 { media["m/\(String(format: "%03d", i))"] = Array("m\(i)".utf8) }
        try await client.createBucket("media")
        try await client.createBucket("docs")
        try await putAll(client, ["media": media, "docs": ["a.md": Array("a".utf8), "z.md": Array("z".utf8)]])
        let dir = TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(s3.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        let policy = dir.file("policy.yml")
        try Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          minio: { kind: s3, endpoint: "\(s3.endpoint)", buckets: [docs, media], access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        retention: { keep_last: 10 }
        """.utf8).write(to: URL(fileURLWithPath: policy))
        func cli(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
        let first = try #require((try object(try cli(["backup", "--json"]).stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        try await putAll(client, ["media": ["m/050": Array("changed".utf8), "m/0505": Array("new".utf8), "n/1": Array("new".utf8)],
                                  "docs": ["b.md": Array("b".utf8)]])
        try await client.deleteObjects(bucket: "media", keys: ["m/199"])
        try await client.deleteObjects(bucket: "docs", keys: ["a.md"])
        let second = try #require((try object(try cli(["backup", "--json"]).stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)

        let diff = try cli(["diff", first, second, "--json"])
        #expect(diff.status == 0, "\(diff.stderr)")
        let d = try object(diff.stdout)
        func paths(_ d: [String: Any], _ key: String) -> [String] { ((d[key] as? [[String: Any]]) ?? []).compactMap { $0["path"] as? String } }
        #expect(paths(d, "added") == ["b.md", "m/0505", "n/1"], "\(d)")
        #expect(paths(d, "changed") == ["m/050"])
        #expect(paths(d, "removed") == ["a.md", "m/199"])
        #expect(d["unchanged"] as? Int == 200 - 2 + 1) // media's 200 less the changed and the removed, and z.md
        let narrowed = try object(try cli(["diff", first, second, "--json", "--prefix", "m/05"]).stdout)
        #expect(paths(narrowed, "added") == ["m/0505"] && paths(narrowed, "changed") == ["m/050"] && paths(narrowed, "removed").isEmpty)
        #expect(narrowed["unchanged"] as? Int == 9)
    }
}
