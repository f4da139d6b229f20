import BackupCore
import BackupEngine
import Foundation
import TestSupport
import Testing

@Suite(.blockingThreads) struct ScheduleCommandTests {
    @Test func printsTheNextRunTimesWithOffsets() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", extra: """
        schedules:
          - { name: nightly, cron: "30 2 * * *", timezone: Asia/Riyadh, run: backup }
          - { name: berlin, cron: "30 2 * * *", timezone: Europe/Berlin }
        """)
        let r = try runCLI(["schedule", "--policy", policy, "--json", "--count", "3", "--after", "2026-10-24T12:00:00Z"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try array(r.stdout)
        #expect(rows.map { $0["name"] as? String } == ["nightly", "berlin"])
        #expect(rows[0]["next"] as? [String] == ["2026-10-25T02:30:00+03:00", "2026-10-26T02:30:00+03:00", "2026-10-27T02:30:00+03:00"])
        // The fall-back night fires once, at the first 02:30 (CEST), then at 02:30 CET.
        #expect(rows[1]["next"] as? [String] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"])
        let text = try runCLI(["schedule", "--policy", policy, "--count", "1"])
        #expect(text.stdout.contains("nightly: backup all sources at \"30 2 * * *\" (Asia/Riyadh)"))
    }

    /// The shipped cron file's schedules are valid cron lines.
    @Test func shippedCronFileParses() throws {
        let text = try String(contentsOfFile: packageRoot + "/cron/kaleem-backup.cron", encoding: .utf8)
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains(" root ") }
        #expect(lines.count >= 3)
        for line in lines {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).prefix(5).joined(separator: " ")
            _ = try CronSchedule(fields)
            #expect(line.contains("flock -n"))
            #expect(line.contains("set -a; . /etc/kaleem-backup/env; set +a;"), "\(line)") // the policy's variables
        }
        #expect(lines.contains { $0.contains("kaleem-backup backup --tag nightly") })
        #expect(lines.contains { $0.contains("kaleem-backup drill") })
        #expect(lines.contains { $0.contains("kaleem-backup verify --all") })
    }

    /// The environment file the jobs load sets every variable production.yml needs, in a form both `sh` and
    /// systemd's EnvironmentFile= read; the systemd units load it; a drill unit and timer exist.
    @Test func shippedEnvironmentFileCoversTheProductionPolicy() throws {
        let text = try String(contentsOfFile: packageRoot + "/cron/kaleem-backup.env", encoding: .utf8)
        var environment: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            #expect(parts.count == 2 && parts[0].allSatisfy { $0.isUppercase || $0.isNumber || $0 == "_" }, "\(line)")
            if parts.count == 2 { environment[parts[0]] = parts[1] }
        }
        #expect(PolicyLoader.missingVariables(path: packageRoot + "/policies/production.yml", environment: environment) == [])
        #expect(environment["KALEEM_BACKUP_POLICY"] == "/etc/kaleem-backup/policy.yml")
        // The jobs' Compose project (cron starts them in $HOME, systemd in /): the policy's compose: from KALEEM_ROOT.
        let loaded = try PolicyLoader.load(path: packageRoot + "/policies/production.yml", environment: environment)
        #expect(loaded.compose?.projectDirectory == environment["KALEEM_ROOT"])
        #expect(loaded.compose?.files == ["/opt/kaleem/docker-compose.yml", "/opt/kaleem/docker-compose.prod.yml"])
        // sh reads it the same way (what the cron lines do).
        let sourced = try runProcess("/bin/sh", ["-c", "set -a; . \"$0\"; set +a; printf %s \"$REDIS_URL\"", packageRoot + "/cron/kaleem-backup.env"])
        #expect(sourced.status == 0 && sourced.stdout == environment["REDIS_URL"])
        for unit in ["kaleem-backup.service", "kaleem-backup-drill.service"] {
            let service = try String(contentsOfFile: packageRoot + "/cron/" + unit, encoding: .utf8)
            #expect(service.contains("EnvironmentFile=/etc/kaleem-backup/env"), "\(unit)")
            #expect(service.contains("ReadWritePaths=/opt/kaleem/backups /var/lib/prometheus/node-exporter"), "\(unit)")
        }
        #expect(try String(contentsOfFile: packageRoot + "/cron/kaleem-backup-drill.service", encoding: .utf8).contains("ExecStart=/usr/local/bin/kaleem-backup drill"))
        #expect(try String(contentsOfFile: packageRoot + "/cron/kaleem-backup-drill.timer", encoding: .utf8).contains("OnCalendar="))
        #expect(try String(contentsOfFile: packageRoot + "/cron/kaleem-backup.logrotate", encoding: .utf8).contains("/var/log/kaleem-backup/*.log"))
    }
}
