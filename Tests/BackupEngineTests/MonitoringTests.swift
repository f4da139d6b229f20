import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The monitoring of a stock Debian host, with real parts only (#36): kaleem-backup writes its textfile after a
/// real run (backup of a real Redis with an off-site copy to moto, verify, drill, deploy hooks); Debian's
/// `prometheus-node-exporter` reads it as another user (`nobody`), the daemon serves its own series, and a real
/// `prometheus` scrapes both every second with the shipped alert rules loaded. Then: the series arrive, nothing is
/// doubled, and every PromQL query of `dashboards/kaleem-backup.json` returns series.
@Suite(.blockingThreads) struct MonitoringTests {
    /// A long-running child (node_exporter, prometheus, the daemon), killed when the test ends.
    final class Server {
        let process: Process
        let wait: () -> ProcessResult
        let name: String
        init(_ name: String, _ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
            self.name = name
            (process, wait) = try startProcess(executable, arguments, environment: environment)
        }
        /// What it printed (after it is stopped), for a failure's message.
        func stop() -> String {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            let r = wait()
            return "\(name): exit \(r.status)\n\(r.stderr.suffix(3000))"
        }
    }

    /// `GET url` until `ready` says yes, or the deadline: a server that does not come up fails the test.
    func waitFor(_ what: String, deadline: Date, servers: [Server], _ ready: () -> Bool) throws {
        while Date() < deadline {
            if ready() { return }
            if let dead = servers.first(where: { !$0.process.isRunning }) {
                throw BackupFailure("\(what): \(dead.stop())")
            }
            usleep(200_000)
        }
        throw BackupFailure("\(what): not before the deadline")
    }

    /// The result of an instant query: one `(labels, value)` per series; nil when the API did not answer.
    func query(_ prometheus: Int, _ expr: String) -> [([String: String], String)]? {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let encoded = expr.addingPercentEncoding(withAllowedCharacters: allowed)!
        guard let (status, body) = httpGet("http://127.0.0.1:\(prometheus)/api/v1/query?query=\(encoded)"), status == 200,
              let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else { return nil }
        return result.map { series in
            let labels = series["metric"] as? [String: String] ?? [:]
            let value = (series["value"] as? [Any])?.last as? String ?? ""
            return (labels, value)
        }
    }

    /// Every `targets[].expr` of the dashboard's panels (rows' nested panels too), with its panel's title.
    static func dashboardQueries() throws -> [(panel: String, expr: String)] {
        let data = try Data(contentsOf: URL(fileURLWithPath: packageRoot + "/dashboards/kaleem-backup.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var out: [(String, String)] = []
        func walk(_ panels: [[String: Any]]) {
            for p in panels {
                for t in p["targets"] as? [[String: Any]] ?? [] {
                    if let e = t["expr"] as? String { out.append((p["title"] as? String ?? "?", e)) }
                }
                walk(p["panels"] as? [[String: Any]] ?? [])
            }
        }
        walk(dashboard["panels"] as? [[String: Any]] ?? [])
        return out
    }

    /// The dashboard names no datasource by uid (an import on another Grafana would find none): every panel and
    /// target uses the `datasource` variable; the `source` variable lists the sources.
    @Test func dashboardHasNoHardcodedDatasource() throws {
        let text = try String(contentsOfFile: packageRoot + "/dashboards/kaleem-backup.json", encoding: .utf8)
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        /// The `uid` of every `datasource` object, however deep.
        func uids(_ value: Any) -> [String] {
            if let d = value as? [String: Any] {
                let own = (d["datasource"] as? [String: Any]).map { [$0["uid"] as? String ?? "(none)"] } ?? []
                return own + d.values.flatMap(uids)
            }
            if let a = value as? [Any] { return a.flatMap(uids) }
            return []
        }
        let datasourceUIDs = Set(uids(dashboard["panels"] as Any) + uids(dashboard["templating"] as Any))
        #expect(datasourceUIDs == ["${datasource}"], "\(datasourceUIDs)")
        let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        #expect(variables.contains { $0["name"] as? String == "datasource" && $0["type"] as? String == "datasource" && $0["query"] as? String == "prometheus" })
        #expect(variables.contains { $0["name"] as? String == "source" && $0["type"] as? String == "query" })
        let queries = try Self.dashboardQueries()
        #expect(queries.count >= 15)
        // The provisioning examples are there and point at the dashboard's directory.
        let provider = try String(contentsOfFile: packageRoot + "/dashboards/provisioning/dashboards/kaleem-backup.yml", encoding: .utf8)
        #expect(provider.contains("type: file") && provider.contains("path: /var/lib/grafana/dashboards/kaleem-backup"))
        let datasource = try String(contentsOfFile: packageRoot + "/dashboards/provisioning/datasources/prometheus.yml", encoding: .utf8)
        #expect(datasource.contains("type: prometheus") && !datasource.contains("uid:"))
    }

    @Test func nodeExporterAndPrometheusReadARealRun() async throws {
        #expect(getuid() == 0, "this test starts node_exporter as nobody (setpriv): run the suite as root, as CI does")
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 4)
        c.close()
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("offsite-copy")

        let dir = TemporaryDirectory("kb-monitor")
        // node_exporter (nobody) must reach <dir>/textfile/: the test's own directory lets others traverse it but
        // not list it (stricter than Debian's 0755 /var/lib/prometheus); kaleem-backup makes textfile/ itself.
        chmod(dir.path, 0o711)
        let textfileDir = dir.file("textfile")
        let daemonPort = try FreePort.pick()
        FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(s3.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        let policy = dir.file("policy.yml")
        FileManager.default.createFile(atPath: policy, contents: Data("""
        repository:
          path: \(dir.file("repo"))
          offsite: { endpoint: "\(s3.endpoint)", bucket: offsite-copy, prefix: kb, access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        sources:
          redis: { kind: redis, url: "\(redis.url)", timeout: 20s }
          down: { kind: redis, url: "redis://127.0.0.1:\(try FreePort.pick())", timeout: 5s }
        metrics: { textfile: \(textfileDir)/kaleem_backup.prom }
        schedules:
          - { name: nightly, cron: "30 2 * * *", run: backup }
        daemon: { listen: "127.0.0.1:\(daemonPort)" }
        """.utf8))

        // A real run: backups (redis good with its off-site copy, down failed), a verify, a drill, a deploy and a
        // rollback through the deploy hooks.
        let backup = try runCLI(["backup", "--policy", policy])
        #expect(backup.status == 3, "\(backup.stdout) \(backup.stderr)")
        let verify = try runCLI(["verify", "--all", "--policy", policy])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        let drill = try runCLI(["drill", "--source", "redis", "--policy", policy])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        let pre = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:1.0.0", "--source", "redis", "--policy", policy])
        #expect(pre.status == 0, "\(pre.stderr)")
        #expect(try runCLI(["hook", "post-deploy", "--release", "kaleem-api:1.0.0", "--outcome", "success", "--duration", "42", "--policy", policy]).status == 0)
        let rollback = try runCLI(["hook", "rollback", "--release", "kaleem-api:1.0.0", "--reason", "health-check-failed", "--policy", policy])
        #expect(rollback.status == 0, "\(rollback.stdout) \(rollback.stderr)")
        // What node_exporter will read: a 0644 file in a 0755 directory.
        let attributes = try FileManager.default.attributesOfItem(atPath: textfileDir + "/kaleem_backup.prom")
        #expect((attributes[.posixPermissions] as? Int) == 0o644)
        #expect((try FileManager.default.attributesOfItem(atPath: textfileDir)[.posixPermissions] as? Int) == 0o755)

        // Debian's node_exporter, textfile collector only, as nobody.
        let nodePort = try FreePort.pick()
        let node = try Server("prometheus-node-exporter", "/usr/bin/setpriv", [
            "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/usr/bin/prometheus-node-exporter",
            "--web.listen-address=127.0.0.1:\(nodePort)", "--collector.disable-defaults", "--collector.textfile",
            "--collector.textfile.directory=\(textfileDir)"])
        // The daemon (a schedule every 2 s, so its job counter exists).
        let daemon = try Server("kaleem-backup daemon", try kaleemBinary(), ["daemon", "--policy", policy, "--test-interval", "2"],
                                environment: cliEnvironment())
        // A second daemon on the same repository whose policy names no textfile (no schedule): its /metrics
        // serves the catalog's series too, as a host would after dropping metrics.textfile with the old file
        // left behind. Scraped as its own job: the rules must still fire once.
        let legacyPort = try FreePort.pick()
        let legacyPolicy = dir.file("policy-no-textfile.yml")
        try String(contentsOfFile: policy, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("metrics:") && !$0.hasPrefix("schedules:") && !$0.contains("name: nightly") && !$0.hasPrefix("daemon:") }
            .joined(separator: "\n").appending("\ndaemon: { listen: \"127.0.0.1:\(legacyPort)\" }\n")
            .write(toFile: legacyPolicy, atomically: true, encoding: .utf8)
        let legacy = try Server("kaleem-backup daemon (no textfile)", try kaleemBinary(), ["daemon", "--policy", legacyPolicy],
                                environment: cliEnvironment())
        // Prometheus: both scraped every second, the shipped rules evaluated every second.
        let promPort = try FreePort.pick()
        let config = dir.file("prometheus.yml")
        try """
        global: { scrape_interval: 1s, evaluation_interval: 1s }
        rule_files: ["\(packageRoot)/policies/alerts/backup.rules.yml"]
        scrape_configs:
          - job_name: node
            static_configs: [{ targets: ["127.0.0.1:\(nodePort)"] }]
          - job_name: kaleem-backup-daemon
            static_configs: [{ targets: ["127.0.0.1:\(daemonPort)"] }]
          - job_name: kaleem-backup-legacy
            static_configs: [{ targets: ["127.0.0.1:\(legacyPort)"] }]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let prometheus = try Server("prometheus", "/usr/bin/prometheus", [
            "--config.file=\(config)", "--storage.tsdb.path=\(dir.file("tsdb"))", "--web.listen-address=127.0.0.1:\(promPort)"])
        let servers = [node, daemon, legacy, prometheus]
        var logs: [String] = []
        defer {
            let printed = servers.map { $0.stop() }
            if !logs.isEmpty { print(printed.joined(separator: "\n")) }
        }
        let deadline = Date().addingTimeInterval(120)

        // node_exporter runs as nobody, and reads the file (no scrape error).
        try waitFor("node_exporter answers", deadline: deadline, servers: servers) { httpGet("http://127.0.0.1:\(nodePort)/metrics")?.0 == 200 }
        let status = try String(contentsOfFile: "/proc/\(node.process.processIdentifier)/status", encoding: .utf8)
        #expect(status.split(separator: "\n").contains { $0.hasPrefix("Uid:") && $0.split(whereSeparator: \.isWhitespace).dropFirst().allSatisfy { $0 == "65534" } }, "\(status)")
        let exported = httpGet("http://127.0.0.1:\(nodePort)/metrics")?.1 ?? ""
        #expect(exported.contains("node_textfile_scrape_error 0"), "\(exported.suffix(2000))")
        #expect(exported.contains("kaleem_backup_last_success_timestamp_seconds{source=\"redis\"}"))

        // The daemon's /metrics: its own series only (the backup series are the textfile's).
        try waitFor("the daemon counts a job", deadline: deadline, servers: servers) {
            httpGet("http://127.0.0.1:\(daemonPort)/metrics")?.1.contains("kaleem_backup_daemon_jobs_total{") == true
        }
        let daemonMetrics = httpGet("http://127.0.0.1:\(daemonPort)/metrics")?.1 ?? ""
        #expect(daemonMetrics.contains("kaleem_backup_daemon_last_tick_timestamp_seconds"))
        #expect(!daemonMetrics.contains("kaleem_backup_last_success_timestamp_seconds") && !daemonMetrics.contains("deployment_duration_seconds"),
                "\(daemonMetrics)")

        // Prometheus has both targets up and the backup series, once each.
        try waitFor("Prometheus scrapes both targets", deadline: deadline, servers: servers) {
            let up = query(promPort, "up == 1") ?? []
            return Set(up.compactMap { $0.0["job"] }) == ["node", "kaleem-backup-daemon", "kaleem-backup-legacy"]
        }
        try waitFor("the backup series reach Prometheus", deadline: deadline, servers: servers) {
            query(promPort, "kaleem_backup_last_success_timestamp_seconds{source=\"redis\"}")?.isEmpty == false
        }
        // Each backup and deployment series once from node_exporter and the daemon with a textfile, whatever job
        // scraped it (the name copied to a label: an aggregation drops it); the daemon without one doubles them.
        let selector = "{__name__=~\"kaleem_backup_.+|deployment_.+|rollback_total\", job!=\"kaleem-backup-legacy\"}"
        let counted = query(promPort, "count without (instance, job) (label_replace(\(selector), \"name\", \"$1\", \"__name__\", \"(.+)\"))") ?? []
        #expect(!counted.isEmpty)
        for (labels, value) in counted {
            #expect(value == "1", "doubled: \(labels) is \(value) series")
        }
        try waitFor("the daemon without a textfile exports the backup series", deadline: deadline, servers: servers) {
            query(promPort, "count(kaleem_backup_last_run_success{source=\"down\"})")?.first?.1 == "2"
        }
        #expect(query(promPort, "kaleem_backup_last_run_success{job=\"kaleem-backup-daemon\"}")?.isEmpty == true)
        #expect(query(promPort, "node_textfile_scrape_error")?.first?.1 == "0")

        // The shipped rule's expression, evaluated now that two jobs export the series: one series, not two.
        let rulesText = try String(contentsOfFile: packageRoot + "/policies/alerts/backup.rules.yml", encoding: .utf8)
        let ruleLines = rulesText.components(separatedBy: "- alert: BackupLastRunFailed").dropFirst().first?.split(separator: "\n") ?? []
        let ruleExpr = try #require(ruleLines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("expr: ") })
            .trimmingCharacters(in: .whitespaces).dropFirst("expr: ".count)
        let firing = query(promPort, String(ruleExpr)) ?? []
        #expect(firing.count == 1 && firing.first?.0["source"] == "down", "\(ruleExpr): \(firing)")
        #expect(query(promPort, "kaleem_backup_last_run_success == 0")?.count == 2)
        // The rules load in the real Prometheus, and the failing source's alert is there once (pending: for 5m).
        try waitFor("BackupLastRunFailed is pending", deadline: deadline, servers: servers) {
            query(promPort, "ALERTS{alertname=\"BackupLastRunFailed\"}")?.isEmpty == false
        }
        let alerts = query(promPort, "ALERTS{alertname=\"BackupLastRunFailed\"}") ?? []
        #expect(alerts.count == 1 && alerts.first?.0["source"] == "down", "\(alerts)")
        let rules = httpGet("http://127.0.0.1:\(promPort)/api/v1/rules")?.1 ?? ""
        #expect(rules.contains("\"health\":\"ok\"") && !rules.contains("\"health\":\"err\""), "\(rules.prefix(3000))")

        // Every panel of the dashboard returns at least one series, with numbers (not NaN) in it.
        var failures: [String] = []
        for (panel, expr) in try Self.dashboardQueries() {
            let concrete = expr.replacingOccurrences(of: "$source", with: ".*")
            var last: [([String: String], String)]?
            while Date() < deadline {
                last = query(promPort, concrete)
                if let r = last, !r.isEmpty, r.allSatisfy({ Double($0.1)?.isFinite == true }) { break }
                usleep(300_000)
            }
            if let r = last, !r.isEmpty, r.allSatisfy({ Double($0.1)?.isFinite == true }) { continue }
            failures.append("\(panel): \(concrete) → \(last.map { "\($0)" } ?? "no answer")")
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        if !failures.isEmpty { logs = failures }
    }
}
