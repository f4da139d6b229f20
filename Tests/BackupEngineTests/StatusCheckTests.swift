import BackupCore
import Foundation
import TestSupport
import Testing

/// `status --check` for probes: exit 1 on a stale or failed source, 4 on a corrupt backup, 0 when all is well.
@Suite(.blockingThreads) struct StatusCheckTests {
    @Test func probesSeeWhatTheAlertsSee() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        let empty = try runCLI(["status", "--check", "--policy", policy])
        #expect(empty.status == 1, "\(empty.stderr)")
        #expect(empty.stderr.contains("CHECK: redis: no good backup") && empty.stderr.contains("never drilled"), "\(empty.stderr)")

        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        #expect(try runCLI(["drill", "--policy", policy]).status == 0)
        let fine = try runCLI(["status", "--check", "--json", "--policy", policy])
        #expect(fine.status == 0, "\(fine.stderr)")
        #expect(try array(fine.stdout).count == 1) // the ordinary output is still there

        sleep(2)
        let stale = try runCLI(["status", "--check", "--max-rpo", "1s", "--policy", policy])
        #expect(stale.status == 1 && stale.stderr.contains("more than"), "\(stale.stderr)")

        // A backup damaged on disk and found by verify: exit 4.
        let artifact = try #require(try array(try runCLI(["list", "--json", "--policy", policy]).stdout).first)
        let path = dir.file("repo/") + (artifact["path"] as? String ?? "")
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        handle.seek(toFileOffset: 40)
        handle.write(Data([0xAA, 0xBB, 0xCC]))
        handle.closeFile()
        _ = try runCLI(["verify", "--all", "--policy", policy])
        let corrupt = try runCLI(["status", "--check", "--policy", policy])
        #expect(corrupt.status == 4 && corrupt.stderr.contains("corrupt"), "\(corrupt.status) \(corrupt.stderr)")

        let bad = try runCLI(["status", "--check", "--max-rpo", "soon", "--policy", policy])
        #expect(bad.status == 2)
    }

    /// `backup --quiet` (cron's): nothing on stdout or stderr when all went well; the table when not.
    @Test func quietBackupSaysNothingOnSuccess() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        let ok = try runCLI(["backup", "--quiet", "--policy", policy])
        #expect(ok.status == 0 && ok.stdout.isEmpty && ok.stderr.isEmpty, "\(ok.stdout) \(ok.stderr)")
        let down = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", name: "down.yml")
        let failed = try runCLI(["backup", "--quiet", "--policy", down])
        #expect(failed.status == 1 && failed.stdout.contains("failed"), "\(failed.stdout) \(failed.stderr)")
    }

    /// `--json` and an error: one JSON object on stdout with the reason, the exit code and what to try.
    @Test func jsonErrorsAreJSON() throws {
        let dir = TemporaryDirectory()
        let r = try runCLI(["list", "--json", "--policy", dir.file("missing.yml")])
        #expect(r.status == 2)
        let error = try object(r.stdout)
        #expect((error["error"] as? String)?.contains("does not exist") == true, "\(r.stdout)")
        #expect(error["exit_code"] as? Int == 2)
        #expect(error["try"] as? String != nil)
        let usage = try runCLI(["rotate", "--json", "--now", "tomorrow"])
        #expect(usage.status == 2)
        #expect(try object(usage.stdout)["exit_code"] as? Int == 2, "\(usage.stdout)")
        // Without --json, stdout stays empty.
        #expect(try runCLI(["list", "--policy", dir.file("missing.yml")]).stdout.isEmpty)
    }

    /// The metrics directory node_exporter (another user) reads: created 0755 with its parents despite the umask
    /// 077, the file 0644; an existing one node_exporter cannot list is said by `policy check`.
    @Test func theMetricsDirectoryIsReadableByNodeExporter() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        chmod(dir.path, 0o755)
        let textfile = dir.file("prometheus/node-exporter/kaleem_backup.prom")
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "metrics: { textfile: \(textfile) }")
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        func mode(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1 }
        #expect(mode(dir.file("prometheus")) == 0o755 && mode(dir.file("prometheus/node-exporter")) == 0o755)
        #expect(mode(textfile) == 0o644)
        let ok = try runCLI(["policy", "check", "--json", "--policy", policy])
        let check = try #require((try object(ok.stdout)["checks"] as? [[String: Any]])?.first { $0["check"] as? String == "metrics directory readable by node_exporter" })
        #expect(check["ok"] as? Bool == true)
        chmod(dir.file("prometheus/node-exporter"), 0o700)
        let bad = try runCLI(["policy", "check", "--json", "--policy", policy])
        #expect(bad.status == 2)
        let failing = try #require((try object(bad.stdout)["checks"] as? [[String: Any]])?.first { $0["check"] as? String == "metrics directory readable by node_exporter" })
        #expect(failing["ok"] as? Bool == false && (failing["detail"] as? String)?.contains("chmod o+rx") == true, "\(failing)")
    }
}
