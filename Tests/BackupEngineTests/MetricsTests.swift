import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

@Suite(.blockingThreads) struct MetricsTests {
    /// Every command writes the textfile; values of sources it did not touch come back from the catalog.
    @Test func textfileAfterEachCommandKeepsOtherSources() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let textfile = dir.file("textfile/kaleem_backup.prom")
        let policy = dir.file("p.yml")
        _ = FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          cache: { kind: redis, url: "\(redis.url)" }
          down: { kind: redis, url: "redis://127.0.0.1:\(try FreePort.pick())" }
        metrics: { textfile: \(textfile) }
        """.utf8))
        #expect(try runCLI(["backup", "--policy", policy]).status == 3) // one good, one failed: partial
        #expect(try runCLI(["backup", "--policy", policy, "--source", "down"]).status == 1)
        let text = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(text.contains("kaleem_backup_last_run_success{source=\"cache\"} 1"))
        #expect(text.contains("kaleem_backup_last_run_success{source=\"down\"} 0"))
        #expect(text.contains("kaleem_backup_last_success_timestamp_seconds{source=\"cache\"}"))
        #expect(!text.contains("kaleem_backup_last_success_timestamp_seconds{source=\"down\"}"))
        #expect(text.contains("kaleem_backup_runs_total{source=\"down\",status=\"failed\"} 2"))
        #expect(text.contains("kaleem_backup_runs_total{source=\"cache\",status=\"ok\"} 1"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("textfile")) == ["kaleem_backup.prom"])
        let check = try runProcess("/bin/sh", ["-c", "promtool check metrics < \"$0\"", textfile])
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        // No timestamps on samples (node_exporter would skip the whole file).
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.split(separator: " ").count == 2, "\(line)")
        }
    }

    @Test func alertRulesPassPromtool() throws {
        let dir = packageRoot + "/policies/alerts"
        let check = try runProcess("promtool", ["check", "rules", dir + "/backup.rules.yml"])
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        // The week-long groups in a file of their own, evaluated every 10 minutes (36 s of promtool became 15 s).
        let test = try runProcess("promtool", ["test", "rules", dir + "/backup.rules.test.yml", dir + "/backup.rules.weekly.test.yml"])
        #expect(test.status == 0, "\(test.stdout) \(test.stderr)")
        let rules = try String(contentsOfFile: dir + "/backup.rules.yml", encoding: .utf8)
        for alert in ["BackupTooOld", "BackupLastRunFailed", "BackupDrillFailing", "BackupDrillTooOld", "BackupMetricsFileStale",
                      "DeploymentFailed", "LongDeploymentTime", "FleetHostCopyStale"] {
            #expect(rules.contains("alert: \(alert)"))
        }
    }

    /// Each alert: an Arabic summary (the operations document's own for its two), an English description, and a
    /// runbook_url naming a runbook of runbooks/ under the base; install-alert-rules.sh puts another base in its
    /// place and the result still passes promtool (#35).
    @Test func alertAnnotationsAndRunbookURLs() throws {
        let rules = try String(contentsOfFile: packageRoot + "/policies/alerts/backup.rules.yml", encoding: .utf8)
        let alerts = rules.components(separatedBy: "- alert: ").dropFirst()
        #expect(alerts.count == 13)
        for alert in alerts {
            let name = String(alert.prefix { !$0.isWhitespace })
            func annotation(_ key: String) -> String? {
                alert.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + ": ") }
                    .map { String($0.trimmingCharacters(in: .whitespaces).dropFirst(key.count + 2)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
            let summary = try #require(annotation("summary"), "\(name)")
            #expect(summary.unicodeScalars.contains { (0x0600...0x06FF).contains($0.value) }, "\(name): \(summary)")
            #expect(annotation("description")?.unicodeScalars.allSatisfy(\.isASCII) == true, "\(name)")
            let url = try #require(annotation("runbook_url"), "\(name)")
            #expect(url.hasPrefix("https://kb.kaleem-ai.com/runbooks/"), "\(name): \(url)")
            let runbook = url.replacingOccurrences(of: "https://kb.kaleem-ai.com/runbooks/", with: "")
            #expect(FileManager.default.fileExists(atPath: packageRoot + "/runbooks/\(runbook).md"), "\(name): \(url)")
        }
        #expect(rules.contains("summary: \"فشل في النشر\"") && rules.contains("summary: \"زمن النشر طويل\""))

        let dest = TemporaryDirectory()
        let r = try runProcess(packageRoot + "/scripts/install-alert-rules.sh", ["--runbook-base", "https://wiki.example/ops/runbooks/", dest.path])
        #expect(r.status == 0, "\(r.stderr)")
        let installed = try String(contentsOfFile: dest.file("kaleem-backup.rules.yml"), encoding: .utf8)
        #expect(!installed.contains("runbook_url: \"https://kb.kaleem-ai.com") && installed.contains("runbook_url: \"https://wiki.example/ops/runbooks/deploy-and-rollback\""))
        #expect(installed.components(separatedBy: "runbook_url: \"https://wiki.example/ops/runbooks/").count == 14)
        #expect(try runProcess("promtool", ["check", "rules", dest.file("kaleem-backup.rules.yml")]).status == 0)
        let bad = try runProcess(packageRoot + "/scripts/install-alert-rules.sh", ["--runbook-base", "kb.example", dest.path])
        #expect(bad.status == 2 && bad.stderr.contains("--runbook-base must be an http"), "\(bad.stderr)")
    }

    @Test func textfileMustBeAProm() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://h", extra: "metrics: { textfile: /tmp/x.txt }")
        let r = try runCLI(["policy", "check", "--policy", policy])
        #expect(r.status == 2)
        #expect(r.stderr.contains("metrics.textfile"))
    }
}
