import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

@Suite(.blockingThreads) struct NotificationTests {
    /// A failing backup produces exactly one failure event, retried through server errors, with no secret in it.
    @Test func failureEventIsDeliveredOnceWithoutSecrets() throws {
        let hook = try HTTPRecorder(statuses: [500, 503])
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://:Hunter2-secret@127.0.0.1:\(try FreePort.pick())",
                                      extra: "notify: { webhook: \"\(hook.url)/webhook/backup-events\", on: [failure], attempts: 4 }")
        let r = try runCLI(["backup", "--policy", policy], environment: ["KALEEM_BACKUP_NOTIFY_BACKOFF": "0.05"])
        #expect(r.status == 1)
        let requests = hook.requests
        #expect(requests.count == 3) // two 500s, then delivered
        let delivered = try #require(requests.last)
        #expect(delivered.method == "POST")
        #expect(delivered.path == "/webhook/backup-events")
        let event = try #require(try JSONSerialization.jsonObject(with: delivered.body) as? [String: Any])
        #expect(event["status"] as? String == "failed")
        #expect(event["source"] as? String == "redis")
        #expect(event["run_id"] as? String != nil)
        #expect(event["host"] as? String != nil)
        #expect((event["error"] as? String)?.contains("cannot connect") == true)
        #expect(!String(decoding: delivered.body, as: UTF8.self).contains("Hunter2-secret"))
    }

    @Test func successIsSentOnlyWhenAskedAndAFailingWebhookNeverFailsTheBackup() throws {
        let redis = try RedisTestServer()
        let quiet = try HTTPRecorder()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "notify: { webhook: \"\(quiet.url)/x\" }")
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        #expect(quiet.requests.isEmpty) // on: [failure] by default

        let broken = try HTTPRecorder(statuses: Array(repeating: 500, count: 10))
        let loud = writeRedisPolicy(in: dir, url: redis.url, extra: "notify: { webhook: \"\(broken.url)/x\", on: [success, failure], attempts: 2 }",
                                    name: "loud.yml")
        let r = try runCLI(["backup", "--policy", loud], environment: ["KALEEM_BACKUP_NOTIFY_BACKOFF": "0.01"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(broken.requests.count == 2)
        #expect(r.stderr.contains("webhook notification not delivered"))
        // Nobody listening at all: still a good backup.
        let port = try FreePort.pick()
        let nobody = writeRedisPolicy(in: dir, url: redis.url, extra: "notify: { webhook: \"http://127.0.0.1:\(port)/x\", on: [success], attempts: 1 }",
                                      name: "nobody.yml")
        #expect(try runCLI(["backup", "--policy", nobody]).status == 0)
    }
}
