import BackupCore
import BackupEngine
import Foundation
import Testing
import TestSupport

@Suite(.blockingThreads) struct PolicyParserTests {
    func parse(_ yaml: String, env: [String: String] = [:]) throws(PolicyError) -> Policy {
        try PolicyParser.parse(yaml, origin: "test.yml", environment: env, sourceKinds: SourceKinds.policyTable)
    }

    static let minimal = """
    repository: { path: /var/backups/kaleem }
    sources:
      cache: { kind: redis, url: "redis://127.0.0.1:6379" }
    """

    @Test func minimalPolicy() throws {
        let p = try parse(Self.minimal)
        #expect(p.repository.path == "/var/backups/kaleem")
        #expect(p.repository.catalog == nil)
        #expect(p.sources.map(\.name) == ["cache"])
        #expect(p.compression == CompressionPolicy(level: 6, workers: nil, storeIncompressible: true))
        guard let r = p.sources[0].settings as? RedisSourcePolicy else { Issue.record("not redis"); return }
        #expect(r.endpoint.port == 6379)
        #expect(r.timeoutSeconds == Defaults.sourceIdleTimeoutSeconds)
    }

    @Test func sourcesKeepFileOrder() throws {
        let p = try parse("""
        repository: { path: /r }
        sources:
          zeta: { kind: redis, url: "redis://a" }
          alpha: { kind: redis, url: "redis://b" }
          mid: { kind: redis, url: "redis://c", password_file: /run/secrets/x, timeout: 5m }
        compression: { level: 9, workers: 2, store_incompressible: false }
        """)
        #expect(p.sources.map(\.name) == ["zeta", "alpha", "mid"])
        #expect(p.compression == CompressionPolicy(level: 9, workers: 2, storeIncompressible: false))
        guard let r = p.sources[2].settings as? RedisSourcePolicy else { return }
        #expect(r.password == .file("/run/secrets/x"))
        #expect(r.timeoutSeconds == 300)
    }

    @Test func expandsEnvironment() throws {
        let p = try parse("""
        repository: { path: "${REPO:-/default}" }
        sources:
          redis: { kind: redis, url: "${REDIS_URL:?set REDIS_URL}" }
        """, env: ["REDIS_URL": "redis://:pw@cache:6380"])
        #expect(p.repository.path == "/default")
        guard let r = p.sources[0].settings as? RedisSourcePolicy else { return }
        #expect(r.endpoint.host == "cache")
        #expect(r.endpoint.password == Secret("pw"))
    }

    /// Every broken policy names the file, the key path and what was expected.
    @Test(arguments: [
        ("repository: { path: /r }\nsources:\n  redis: { kind: redis, url: \"redis://h\", colour: blue }\n",
         "sources.redis.colour", "unknown key \"colour\""),
        ("repository: { path: /r }\nsourcez: {}\n", "sourcez", "unknown key \"sourcez\""),
        ("repository: { path: /r }\n", "", "missing key \"sources\""),
        ("sources: { r: { kind: redis, url: \"redis://h\" } }\n", "", "missing key \"repository\""),
        ("repository: { path: /r }\nsources:\n  redis: { kind: redis, url: \"${REDIS_URL:?set REDIS_URL first}\" }\n",
         "sources.redis.url", "environment variable REDIS_URL is required: set REDIS_URL first"),
        ("repository: { path: \"${NOPE}\" }\nsources: { r: { kind: redis, url: \"redis://h\" } }\n",
         "repository.path", "environment variable NOPE is not set"),
        ("repository: { path: /r }\nsources:\n  redis: { kind: redis, url: \"http://h\" }\n",
         "sources.redis.url", "expected a URL redis://"),
        ("repository: { path: /r }\nsources:\n  redis: { kind: memcached, url: \"redis://h\" }\n",
         "sources.redis.kind", "unknown source kind \"memcached\""),
        ("repository: { path: /r }\nsources:\n  redis: { url: \"redis://h\" }\n",
         "sources.redis", "missing key \"kind\""),
        ("repository: { path: /r }\nsources:\n  redis: { kind: redis, url: \"redis://h\" }\ncompression: { level: 11 }\n",
         "compression.level", "expected a whole number from 1 to 9, found \"11\""),
        ("repository: { path: /r }\nsources:\n  redis: { kind: redis, url: \"redis://h\", timeout: soon }\n",
         "sources.redis.timeout", "expected a duration"),
        ("repository: { path: /r }\nsources: [a, b]\n", "sources", "expected a mapping"),
        ("repository: { path: /r }\nsources: {}\n", "sources", "expected at least one source"),
        ("repository: { path: /r }\nsources:\n  \"../x\": { kind: redis, url: \"redis://h\" }\n",
         "sources.../x", "must be 1-64 letters"),
        ("repository: { path: /r }\nsources:\n  r: { kind: redis, url: \"redis://h\", password: a, password_file: /b }\n",
         "sources.r.password_file", "either password or password_file"),
        ("repository: { path: /r }\nrepository: { path: /s }\nsources: { r: { kind: redis, url: \"redis://h\" } }\n",
         "repository", "duplicate key"),
        ("repository: { path: /r }\nsources:\n  m: { kind: s3, endpoint: \"minio:9000\", access_key: a, secret_key: b }\n",
         "sources.m.endpoint", "expected an http:// or https:// URL"),
        ("repository: { path: /r }\nsources:\n  m: { kind: s3, endpoint: \"http://u:hunter2@minio:9000\", access_key: a, secret_key: b }\n",
         "sources.m.endpoint", "must not hold credentials"),
        ("repository: { path: /r }\nsources:\n  m: { kind: s3, endpoint: \"http://minio:9000\", access_key: a }\n",
         "sources.m", "missing key \"secret_key_file\""),
        ("repository: { path: /r }\nsources:\n  m: { kind: s3, endpoint: \"http://minio:9000\", access_key: a, secret_key: b, secret_key_file: c }\n",
         "sources.m.secret_key_file", "either secret_key or secret_key_file"),
        ("repository: { path: /r }\nsources:\n  m: { kind: s3, endpoint: \"http://minio:9000\", access_key: a, secret_key: b, buckets: [Uploads] }\n",
         "sources.m.buckets", "\"Uploads\" is not a bucket name"),
        ("repository: { path: /r }\nsources:\n  m: { kind: s3, endpoint: \"http://minio:9000\", access_key: a, secret_key: b, concurrency: 0 }\n",
         "sources.m.concurrency", "expected a whole number from 1 to 64"),
    ])
    func rejects(yaml: String, keyPath: String, problem: String) {
        do {
            _ = try parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.keyPath == keyPath)
            #expect(error.problem.contains(problem), "\(error.problem)")
            #expect(error.description.hasPrefix("policy test.yml"))
            #expect(error.exitStatus == .usage)
        }
    }

    @Test func parsesBucketSources() throws {
        let p = try parse("""
        repository: { path: /r }
        sources:
          minio:
            kind: s3
            endpoint: ${MINIO:-http://minio:9000}
            buckets: [uploads, avatars.v2]
            prefix: public/
            access_key: kaleem-backup
            secret_key_file: /run/secrets/minio
            region: eu-central-1
            concurrency: 4
            timeout: 30s
          all: { kind: s3, endpoint: "https://s3.example.com", access_key: a, secret_key: "${SECRET}" }
        drill: { endpoint: "http://127.0.0.1:9100" }
        """, env: ["SECRET": "s3cr3t"])
        guard let m = p.sources[0].settings as? S3SourcePolicy, let all = p.sources[1].settings as? S3SourcePolicy else {
            Issue.record("not s3 sources"); return
        }
        #expect(m.endpoint == "http://minio:9000" && m.buckets == ["uploads", "avatars.v2"] && m.prefix == "public/")
        #expect(m.secretKey == .file("/run/secrets/minio") && m.region == "eu-central-1" && m.concurrency == 4 && m.timeoutSeconds == 30)
        #expect(all.buckets.isEmpty && all.region == "us-east-1" && all.concurrency == 8 && all.secretKey == .inline(Secret("s3cr3t")))
        #expect(p.sources[0].kind == SourceKind("s3"))
        #expect(p.sources[1].location == "https://s3.example.com (all buckets)")
        #expect(p.drill.s3Endpoint == "http://127.0.0.1:9100")
    }

    @Test func syntaxErrorNamesTheLine() {
        do {
            _ = try parse("repository:\n  path: /r\nsources:\n  redis: { kind: redis, url: \"redis://h\"\n")
            Issue.record("accepted")
        } catch {
            #expect(error.line != nil)
            #expect(error.problem.contains("YAML syntax error"))
        }
    }

    @Test func secretsNeverInErrors() {
        do {
            _ = try parse("repository: { path: /r }\nsources:\n  r: { kind: redis, url: \"redis://:hunter2@h:99999\" }\n")
            Issue.record("accepted")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("redis://:***@h:99999"))
        }
    }

    @Test func emptyFile() {
        #expect(throws: PolicyError.self) { try parse("") }
        #expect(throws: PolicyError.self) { try parse("# only a comment\n") }
    }
}

@Suite(.blockingThreads) struct RetentionPolicyParsingTests {
    let base = "repository: { path: /r }\nsources: { r: { kind: redis, url: \"redis://h\" } }\n"

    @Test func parsesRetention() throws {
        let p = try PolicyParser.parse(base + "retention: { daily: 10, weekly: 4, monthly: 6, keep_last: 2, pre_deploy: 5, failed_grace_hours: 24, timezone: Asia/Riyadh }\n",
                                       origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        #expect(p.retention == RetentionPolicy(daily: 10, weekly: 4, monthly: 6, keepLast: 2, preDeploy: 5, failedGraceHours: 24, timeZone: "Asia/Riyadh"))
        #expect(try PolicyParser.parse(base, origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable).retention == RetentionPolicy())
    }

    @Test(arguments: [
        ("retention: { timezone: Mars/Olympus }\n", "retention.timezone", "unknown time zone"),
        ("retention: { daily: -1 }\n", "retention.daily", "whole number"),
        ("retention: { hourly: 24 }\n", "retention.hourly", "unknown key"),
    ])
    func rejects(extra: String, keyPath: String, problem: String) {
        expectRejected(base + extra, keyPath: keyPath, problem: problem)
    }
}

@Suite(.blockingThreads) struct SchedulePolicyParsingTests {
    let base = "repository: { path: /r }\nsources: { redis: { kind: redis, url: \"redis://h\" } }\n"

    @Test func parsesSchedules() throws {
        let p = try PolicyParser.parse(base + """
        schedules:
          - { name: nightly, cron: "30 2 * * *", timezone: Asia/Riyadh, run: backup, tag: nightly }
          - { name: weekly-drill, cron: "0 4 * * SUN", run: drill, sources: [redis] }
        """, origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        #expect(p.schedules.map(\.name) == ["nightly", "weekly-drill"])
        #expect(p.schedules[0].timeZone == "Asia/Riyadh")
        #expect(p.schedules[0].tag == .nightly)
        #expect(p.schedules[1].run == .drill)
        #expect(p.schedules[1].sources == ["redis"])
        #expect(p.schedules[1].timeZone == "UTC")
    }

    @Test(arguments: [
        ("schedules:\n  - { name: a, cron: \"61 * * * *\" }\n", "schedules[0].cron", "minute 61 is out of range"),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", run: dance }\n", "schedules[0].run", "expected one of: backup, drill, rotate"),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", sources: [mongo] }\n", "schedules[0].sources", "no source named \"mongo\""),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", timezone: Nowhere/Land }\n", "schedules[0].timezone", "unknown time zone"),
        ("schedules:\n  - { name: a, cron: \"* * * * *\" }\n  - { name: a, cron: \"* * * * *\" }\n", "schedules[1]", "two schedules are named"),
        ("schedules: { name: a }\n", "schedules", "expected a list"),
        ("schedules:\n  - { cron: \"* * * * *\" }\n", "schedules[0]", "missing key \"name\""),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", refresh: { sources: [redis] } }\n", "schedules[0].refresh", "missing key \"from_host\""),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", refresh: { from_host: ../prod, sources: [redis] } }\n", "schedules[0].refresh.from_host", "may hold only"),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", refresh: { from_host: prod, sources: [mongo] } }\n", "schedules[0].refresh.sources", "no source named \"mongo\""),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", refresh: { from_host: prod, sources: [] } }\n", "schedules[0].refresh.sources", "at least one source"),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", run: backup, refresh: { from_host: prod, sources: [redis] } }\n", "schedules[0].run", "leave out run:"),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", run: refresh }\n", "schedules[0].run", "run: refresh needs refresh:"),
        ("schedules:\n  - { name: a, cron: \"* * * * *\", refresh: { from_host: prod, sources: [redis], to: x } }\n", "schedules[0].refresh.to", "unknown key"),
    ])
    func rejects(extra: String, keyPath: String, problem: String) {
        expectRejected(base + extra, keyPath: keyPath, problem: problem)
    }
}

/// The policy is refused, naming the key and the problem (the retention and schedule sections' rejection tests).
private func expectRejected(_ yaml: String, keyPath: String, problem: String) {
    do {
        _ = try PolicyParser.parse(yaml, origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        Issue.record("accepted")
    } catch {
        #expect(error.keyPath == keyPath)
        #expect(error.problem.contains(problem), "\(error.problem)")
    }
}
