import BackupCore
import BackupEngine
import Foundation
import RedisBackup
import TestSupport
import Testing

/// #36 item 6: `notify.ping` push monitoring (Healthchecks.io / Uptime Kuma), against a local HTTP recorder on
/// 127.0.0.1, with a real redis-server and the real CLI.
@Suite(.blockingThreads) struct PingTests {
    /// A good run: start, then success (Healthchecks' `url:` form: `/start`, the URL itself), each once.
    @Test func aGoodRunPingsStartThenSuccess() throws {
        let recorder = try HTTPRecorder()
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "notify: { ping: { url: \"\(recorder.url)/ping/0f3c-uuid/\" } }")
        let r = try runCLI(["backup", "--policy", policy])
        #expect(r.status == 0, "\(r.stderr)")
        let requests = recorder.requests
        #expect(requests.map(\.path) == ["/ping/0f3c-uuid/start", "/ping/0f3c-uuid"], "\(requests.map(\.path))")
        #expect(requests.allSatisfy { $0.method == "POST" })
        let success = String(decoding: requests.last?.body ?? Data(), as: UTF8.self)
        #expect(success.contains(" ok (redis)"), "\(success)")
    }

    /// A failed run: start, then fail with a short body saying what failed, never the password of the URL;
    /// the explicit start/success/fail keys (Uptime Kuma style URLs with a query) are used as given.
    @Test func aFailedRunPingsStartThenFailWithoutSecrets() throws {
        let recorder = try HTTPRecorder()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://:Hunter2-secret@127.0.0.1:\(try FreePort.pick())", extra: """
        notify:
          ping:
            start: "\(recorder.url)/api/push/tok?status=up&msg=start"
            success: "\(recorder.url)/api/push/tok?status=up&msg=OK"
            fail: "\(recorder.url)/api/push/tok?status=down&msg=failed"
        """)
        let r = try runCLI(["backup", "--policy", policy])
        #expect(r.status == 1, "\(r.stderr)")
        let requests = recorder.requests
        #expect(requests.map(\.path) == ["/api/push/tok?status=up&msg=start", "/api/push/tok?status=down&msg=failed"], "\(requests.map(\.path))")
        let body = String(decoding: requests.last?.body ?? Data(), as: UTF8.self)
        #expect(body.contains("redis: ") && body.contains("cannot connect"), "\(body)")
        #expect(body.utf8.count <= 2001)
        #expect(!body.contains("Hunter2-secret"))
        #expect(!r.stderr.contains("Hunter2-secret"))
    }

    /// A run refused before it starts (an unknown source) sends fail only, with the reason.
    @Test func aRefusedRunPingsFail() throws {
        let recorder = try HTTPRecorder()
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "notify: { ping: { url: \"\(recorder.url)/hc\" } }")
        let r = try runCLI(["backup", "--policy", policy, "--source", "nope"])
        #expect(r.status != 0)
        #expect(recorder.requests.map(\.path) == ["/hc/fail"], "\(recorder.requests.map(\.path))")
        let body = String(decoding: recorder.requests.first?.body ?? Data(), as: UTF8.self)
        #expect(body.contains("nope"), "\(body)")
    }

    /// A ping URL nobody answers (a closed port, an HTTP 500) never changes the outcome: the good run exits 0,
    /// the failed one keeps its exit code; each undelivered ping is one warning that does not show the token.
    @Test func anUnreachablePingNeverChangesTheExitCode() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let closed = try FreePort.pick()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "notify: { ping: { url: \"http://127.0.0.1:\(closed)/secret-check-token\", timeout: 5s } }")
        let good = try runCLI(["backup", "--policy", policy])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stderr.components(separatedBy: "monitoring ping not delivered").count - 1 == 2, "\(good.stderr)")
        #expect(!good.stderr.contains("secret-check-token"))

        let failing = try HTTPRecorder(statuses: [500, 500, 500])
        let dir2 = TemporaryDirectory()
        let policy2 = writeRedisPolicy(in: dir2, url: "redis://127.0.0.1:\(try FreePort.pick())",
                                       extra: "notify: { ping: { url: \"\(failing.url)/hc\" } }")
        let failed = try runCLI(["backup", "--policy", policy2])
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(failing.requests.map(\.path) == ["/hc/start", "/hc/fail"])
        #expect(failed.stderr.contains("HTTP 500"))
    }

    /// The daemon's scheduled backups ping as the CLI's do.
    @Test func theDaemonsScheduledRunsPing() throws {
        let recorder = try HTTPRecorder()
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: """
        schedules:
          - { name: nightly, cron: "30 2 * * *", run: backup, tag: nightly }
        daemon: { listen: "127.0.0.1:\(try FreePort.pick())" }
        notify: { ping: { url: "\(recorder.url)/hc" } }
        """)
        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", policy, "--test-interval", "1"],
                                               environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, recorder.requests.count < 2 { usleep(100_000) }
        kill(process.processIdentifier, SIGTERM)
        #expect(wait().status == 0)
        let paths = recorder.requests.map(\.path)
        #expect(Array(paths.prefix(2)) == ["/hc/start", "/hc"], "\(paths)")
        let start = String(decoding: recorder.requests.first?.body ?? Data(), as: UTF8.self)
        #expect(start.hasPrefix("kaleem-backup on ") && start.contains("nightly backup of redis started"), "\(start)")
    }

    func parse(_ yaml: String) throws(PolicyError) -> Policy {
        try PolicyParser.parse(yaml, origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
    }

    static let base = "repository: { path: /r }\nsources:\n  cache: { kind: redis, url: \"redis://127.0.0.1:6379\" }\n"

    /// `notify` is valid with only `ping`; the `url:` form expands as Healthchecks does; explicit keys override.
    @Test func parsesPings() throws {
        let p = try parse(Self.base + "notify: { ping: { url: \"https://hc-ping.com/abc/\", fail: \"https://example.net/down\", timeout: 3s } }")
        let notify = try #require(p.notify)
        #expect(notify.webhook == nil)
        #expect(notify.ping == PingPolicy(start: "https://hc-ping.com/abc/start", success: "https://hc-ping.com/abc",
                                          fail: "https://example.net/down", timeoutSeconds: 3))
        let only = try parse(Self.base + "notify: { ping: { success: \"http://127.0.0.1:3001/api/push/x\" } }")
        #expect(only.notify?.ping == PingPolicy(success: "http://127.0.0.1:3001/api/push/x"))
        let both = try parse(Self.base + "notify: { webhook: \"http://n8n:5678/webhook/x\", ping: { url: \"https://hc/x\" } }")
        #expect(both.notify?.webhook == "http://n8n:5678/webhook/x" && both.notify?.ping?.fail == "https://hc/x/fail")
    }

    @Test(arguments: [
        ("notify: { ping: { fail: \"ftp://hc/x\" } }", "notify.ping.fail", "expected an http:// or https:// URL"),
        ("notify: { ping: { start: \"http://\" } }", "notify.ping.start", "is not a valid URL"),
        ("notify: { ping: { url: \"https://hc ping/x\" } }", "notify.ping.url", "is not a valid URL"),
        ("notify: { ping: { sucess: \"https://hc/x\" } }", "notify.ping.sucess", "sucess"),
        ("notify: { ping: { timeout: 3s } }", "notify.ping", "at least one of"),
        ("notify: { on: [failure] }", "notify", "missing key \"webhook\""),
        ("notify: { webhook: \"n8n/hook\" }", "notify.webhook", "expected an http:// or https:// URL"),
    ])
    func rejectsBadPings(extra: String, keyPath: String, problem: String) {
        do {
            _ = try parse(Self.base + extra)
            Issue.record("accepted: \(extra)")
        } catch {
            #expect(error.keyPath == keyPath, "\(error)")
            #expect(error.problem.contains(problem), "\(error.problem)")
            #expect(error.exitStatus == .usage)
        }
    }
}
