// The daemon's status page (`GET /`): one server-rendered HTML page, no external asset, no script, readable on a
// phone. The figures are `status`'s (StatusReport.status), read from the catalog opened read-only.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

/// What the page shows of the catalog, read when the catalog changed (not per request).
struct StatusSnapshot: Sendable {
    struct Run: Sendable {
        var run: RunInfo
        var artifacts: [ArtifactInfo]
    }
    var sources: [SourceStatus] = []
    var runs: [Run] = []
    /// Why the catalog could not be read (none yet, unreadable); the page says it instead of the figures.
    var problem: String?
}

/// A schedule as the daemon's scheduler knows it.
struct StatusPageSchedule: Sendable {
    var name: String
    var run: String
    var sources: [String]
    var next: Date?
    var lastRun: Date?
    var zone: TimeZone
}

enum StatusPage {
    /// The RPO limit the page colours against: the BackupTooOld alert's, /healthz's and `status --check`'s default.
    static let maxRPO: Double = 26 * 3600
    /// The DrillOverdue alert's limit (`status --check --max-drill-age` default).
    static let maxDrillAge: Double = 8 * 86_400
    /// How many runs the page lists.
    static let runCount = 10

    /// Reads the catalog without creating or migrating anything.
    static func snapshot(policy: Policy, repository: LocalRepository, catalogPath: String, now: Date) -> StatusSnapshot {
        // Without a catalog every source of the policy is shown with nothing yet.
        let empty = policy.sources.map {
            SourceStatus(source: $0.name, kind: $0.kind, newestGood: nil, rpoSeconds: nil, lastRunOK: nil, lastDrill: nil, lastVerify: nil, lastVerifyOK: nil)
        }
        guard FileManager.default.fileExists(atPath: catalogPath) else {
            return StatusSnapshot(sources: empty, problem: "no backup yet: the catalog \(catalogPath) does not exist (the first job creates it)")
        }
        do {
            let catalog = try Catalog(readingOnly: catalogPath)
            defer { try? catalog.close() }
            let sources = try StatusReport.status(catalog: catalog, policy: policy, repository: repository, now: now)
            let runs = try catalog.runs(limit: runCount).map { StatusSnapshot.Run(run: $0, artifacts: try catalog.artifacts(runID: $0.id)) }
            return StatusSnapshot(sources: sources, runs: runs)
        } catch {
            return StatusSnapshot(sources: empty, problem: "the catalog cannot be read: \(KnownSecrets.scrub("\(error)"))")
        }
    }

    /// `<`, `>`, `&`, `"` and `'` as entities: source names, ids and error texts (which come from peers: a Redis
    /// reply, an S3 error) never become markup.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters (but tab and newline) are not text a page should carry.
                if c.value < 0x20 && c != "\n" && c != "\t" || c.value == 0x7f { out += "\u{FFFD}" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    static func age(_ seconds: Double) -> String {
        let s = max(0, seconds)
        if s < 3600 { return "\(Int(s / 60)) min" }
        if s < 172_800 { return String(format: "%.1f h", s / 3600) }
        return String(format: "%.1f days", s / 86400)
    }

    static func iso(_ date: Date) -> String { Timestamps.iso8601(date) }

    /// `<time>` with the UTC timestamp, shown as `YYYY-MM-DD HH:MM UTC`.
    static func time(_ date: Date) -> String {
        let text = iso(date)
        let shown = text.prefix(16).replacingOccurrences(of: "T", with: " ") + " UTC"
        return "<time datetime=\"\(escape(text))\">\(escape(shown))</time>"
    }

    static let css = """
    :root{color-scheme:light dark;--ok:#1a7f37;--bad:#c62828;--warn:#b26a00;--mute:#667;--card:#f6f7f9;--line:#dde}
    @media (prefers-color-scheme:dark){:root{--card:#1c1f24;--line:#333a44;--mute:#9aa}}
    *{box-sizing:border-box}
    body{margin:0;padding:1rem;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:75rem;margin-inline:auto}
    h1{font-size:1.3rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
    .meta{color:var(--mute);margin:0 0 1rem}
    .badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-weight:600;font-size:.85rem}
    .ok{color:var(--ok)}.bad{color:var(--bad);font-weight:600}.warn{color:var(--warn)}.mute{color:var(--mute)}
    .badge.ok{background:#e6f4ea}.badge.bad{background:#fde8e8}
    .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,21rem),1fr));gap:.75rem}
    .card{background:var(--card);border:1px solid var(--line);border-radius:.6rem;padding:.75rem 1rem;min-width:0}
    .card h3{margin:0 0 .5rem;font-size:1.05rem;overflow-wrap:anywhere}
    .card h3 small{color:var(--mute);font-weight:400}
    dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.2rem .75rem;margin:0}
    dt{color:var(--mute)}dd{margin:0;overflow-wrap:anywhere;min-width:0}
    ul{margin:0;padding-left:1.1rem}li{margin:.15rem 0;overflow-wrap:anywhere}
    .runs .card{margin-bottom:.5rem}
    code,.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em;overflow-wrap:anywhere}
    .failure{white-space:pre-wrap;overflow-wrap:anywhere;margin:.25rem 0 0;padding:.4rem .6rem;border-left:3px solid var(--bad);background:rgba(198,40,40,.07)}
    .problems{margin:0 0 1rem}
    footer{margin-top:2rem;color:var(--mute);font-size:.85rem}
    """

    /// `daemon: { fleet: true }` (#38): every host of the shared off-site bucket, as `fleet status` reads them.
    struct Fleet: Sendable {
        var hosts: [FleetHostStatus]
        /// Why the bucket could not be read (then no host is shown).
        var problem: String?
        var readAt: Date?
    }

    /// What /healthz and the page name for one source, one line each: past the RPO limit (`age` says how old) or
    /// no good backup, a failed last run, corrupt backups. Drills are not judged here (`status --check` does).
    static func healthProblems(_ s: SourceStatus, rpoSeconds: Double?, now: Date, age: (Double) -> String) -> [String] {
        SourceProblem.find(rpoSeconds: rpoSeconds, lastRunOK: s.lastRunOK, lastDrill: nil, corrupt: s.corrupt, maxRPO: maxRPO, drills: .ignored, now: now)
            .compactMap { problem in
                switch problem {
                case .stale(let rpo, _): return "\(s.source): newest good backup is \(age(rpo)) old"
                case .noGoodBackup: return "\(s.source): no good backup"
                case .lastRunFailed: return "\(s.source): last backup failed"
                case .corrupt(let n): return "\(s.source): \(n) corrupt backup(s)"
                case .drillFailed, .drillOverdue, .neverDrilled, .interruptedRestore: return nil // not judged here
                }
            }
    }

    /// The whole page. `now` is the time the ages are computed against.
    static func render(_ snapshot: StatusSnapshot, schedules: [StatusPageSchedule], running: String?, host: String, now: Date,
                       fleet: Fleet? = nil) -> String {
        let e = escape
        // The problems /healthz names (a source past the RPO limit or with no good backup, a failed last run, a
        // corrupt backup), and a catalog that cannot be read.
        var problems: [String] = snapshot.problem.map { [$0] } ?? []
        for s in snapshot.sources { problems += healthProblems(s, rpoSeconds: s.rpoSeconds, now: now, age: age) }
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width,initial-scale=1">
        <meta name="robots" content="noindex">
        <meta http-equiv="refresh" content="60">
        <title>kaleem-backup on \(e(host))</title>
        <style>\(css)</style></head>
        <body>
        <header><h1>kaleem-backup <span class="mute">on \(e(host))</span></h1>
        <p class="meta">Generated \(time(now)) · <span id="overall" class="badge \(problems.isEmpty ? "ok" : "bad")" data-problems="\(problems.count)">\(problems.isEmpty ? "all good" : "\(problems.count) problem\(problems.count == 1 ? "" : "s")")</span>\(running.map { " · running: <b>\(e($0))</b>" } ?? "")</p></header>

        """
        if !problems.isEmpty {
            h += "<ul class=\"bad problems\" id=\"problems\">" + problems.map { "<li>\(e($0))</li>" }.joined() + "</ul>\n"
        }

        h += "<h2>Sources</h2>\n<div class=\"grid\" id=\"sources\">\n"
        for s in snapshot.sources { h += sourceCard(s, now: now) }
        h += "</div>\n"

        h += "<h2>Next scheduled runs</h2>\n"
        if schedules.isEmpty {
            h += "<p class=\"mute\">No schedule in the policy.</p>\n"
        } else {
            h += "<div class=\"grid\" id=\"schedules\">\n"
            for sc in schedules.sorted(by: { ($0.next ?? .distantFuture) < ($1.next ?? .distantFuture) }) {
                h += """
                <div class="card schedule" data-schedule="\(e(sc.name))"><h3>\(e(sc.name)) <small>\(e(sc.run))</small></h3><dl>
                <dt>Next</dt><dd data-field="next">\(sc.next.map { time($0) + " <span class=\"mute\">(in \(age($0.timeIntervalSince(now))))</span>" } ?? "—")</dd>
                <dt>Last run</dt><dd>\(sc.lastRun.map(time) ?? "never")</dd>
                <dt>Sources</dt><dd>\(sc.sources.isEmpty ? "all" : e(sc.sources.joined(separator: ", ")))</dd>
                <dt>Time zone</dt><dd>\(e(sc.zone.identifier))</dd>
                </dl></div>

                """
            }
            h += "</div>\n"
        }

        if let fleet { h += fleetPanel(fleet, now: now) }

        h += "<h2>Last runs</h2>\n<div class=\"runs\" id=\"runs\">\n"
        if snapshot.runs.isEmpty { h += "<p class=\"mute\">No run yet.</p>\n" }
        for r in snapshot.runs { h += runCard(r) }
        h += "</div>\n"
        h += """
        <footer>Ages are against 26 h (the BackupTooOld alert's limit, as /healthz); drills against 8 days (DrillOverdue's). Refreshes every minute. The same figures as <code>kaleem-backup status</code>; machine-readable: <code>/healthz</code>, <code>/metrics</code>.</footer>
        </body></html>

        """
        return h
    }

    static func sourceCard(_ s: SourceStatus, now: Date) -> String {
        let e = escape
        var d = ""
        // Newest good backup and its age against the RPO limit.
        if let good = s.newestGood, let rpo = s.rpoSeconds {
            let late = rpo > maxRPO
            d += "<dt>Last good backup</dt><dd data-field=\"newest-good\" data-id=\"\(e(good.id))\" data-created=\"\(e(iso(good.createdAt)))\">\(time(good.createdAt))<br><span class=\"id\">\(e(good.id))</span></dd>\n"
            d += "<dt>Age (RPO)</dt><dd data-field=\"age\" data-seconds=\"\(Int(rpo))\" data-late=\"\(late)\" class=\"\(late ? "bad" : "ok")\">\(age(rpo))\(late ? " — past \(age(maxRPO))" : "")</dd>\n"
        } else {
            d += "<dt>Last good backup</dt><dd data-field=\"newest-good\" class=\"bad\">none</dd>\n"
            d += "<dt>Age (RPO)</dt><dd data-field=\"age\" data-late=\"true\" class=\"bad\">no good backup</dd>\n"
        }
        switch s.lastRunOK {
        case true?: d += "<dt>Last run</dt><dd data-field=\"last-run\" data-ok=\"true\" class=\"ok\">ok</dd>\n"
        case false?: d += "<dt>Last run</dt><dd data-field=\"last-run\" data-ok=\"false\" class=\"bad\">FAILED</dd>\n"
        case nil: d += "<dt>Last run</dt><dd data-field=\"last-run\" class=\"mute\">—</dd>\n"
        }
        if let drill = s.lastDrill {
            let bad = drill.result == .failed || drill.result == .error
            let overdue = now.timeIntervalSince(drill.startedAt) > maxDrillAge
            let rto = drill.result == .archiveOnly ? "archive verified (no RTO)" : String(format: "%.1f s", drill.durationSeconds)
            d += "<dt>Last drill</dt><dd data-field=\"drill\" data-result=\"\(e(drill.result.rawValue))\" class=\"\(bad || overdue ? "bad" : "ok")\">\(e(drill.result.rawValue)) \(time(drill.startedAt))\(overdue ? " — overdue" : "")</dd>\n"
            d += "<dt>RTO</dt><dd data-field=\"rto\">\(e(rto))</dd>\n"
        } else {
            d += "<dt>Last drill</dt><dd data-field=\"drill\" class=\"warn\">never</dd>\n"
        }
        if let verify = s.lastVerify {
            d += "<dt>Last verify</dt><dd data-field=\"verify\" data-ok=\"\(s.lastVerifyOK == true)\" class=\"\(s.lastVerifyOK == true ? "ok" : "bad")\">\(s.lastVerifyOK == true ? "ok" : "FAILED") \(time(verify))</dd>\n"
        } else {
            d += "<dt>Last verify</dt><dd data-field=\"verify\" class=\"mute\">never</dd>\n"
        }
        d += "<dt>Corrupt</dt><dd data-field=\"corrupt\" data-count=\"\(s.corrupt)\" class=\"\(s.corrupt > 0 ? "bad" : "ok")\">\(s.corrupt == 0 ? "none" : "\(s.corrupt) CORRUPT")</dd>\n"
        let offsite: String
        switch (s.newestGood?.offsite, s.offsiteFailed) {
        case (nil, 0): offsite = "<span class=\"mute\">none</span>"
        case (.ok?, 0): offsite = "<span class=\"ok\">newest copied</span>"
        case (let state, let failed):
            var parts: [String] = []
            if let state { parts.append("newest \(e(state.rawValue))") }
            if failed > 0 { parts.append("\(failed) failed (retried next run)") }
            offsite = "<span class=\"\(failed > 0 || state == .failed ? "bad" : "ok")\">\(parts.joined(separator: ", "))</span>"
        }
        d += "<dt>Off-site</dt><dd data-field=\"offsite\" data-failed=\"\(s.offsiteFailed)\" data-state=\"\(e(s.newestGood?.offsite?.rawValue ?? "none"))\">\(offsite)</dd>\n"
        for k in s.interruptedRestores {
            d += "<dt>Restore</dt><dd class=\"bad\">interrupted into \(e(k.target)) (backup \(e(k.backup)), started \(e(k.started_at)))</dd>\n"
        }
        if let r = s.refreshedElsewhere {
            // Another host's word (its receipt), shown as such: the host and receipt names came from the bucket.
            d += "<dt>Refreshed elsewhere</dt><dd data-field=\"refreshed-elsewhere\" data-by=\"\(e(r.byHost))\" class=\"\(r.result == .passed ? "ok" : "bad")\">into \(e(r.byHost)): \(e(r.result.rawValue)) \(time(r.refreshedAt)) in \(String(format: "%.1f s", r.durationSeconds))</dd>\n"
        }
        return """
        <section class="card source" data-source="\(e(s.source))"><h3>\(e(s.source)) <small>\(e(s.kind.rawValue))</small></h3><dl>
        \(d)</dl></section>

        """
    }

    /// The fleet panel: per host, its catalog copy's age (stale past 26 h: FleetHostCopyStale's limit), and per
    /// source the newest good backup's age, the last drill and its RTO, corrupt backups, the last refresh of it
    /// done by another host. Every text from the bucket (host and source names, errors) escaped.
    static func fleetPanel(_ fleet: Fleet, now: Date) -> String {
        let e = escape
        var h = "<h2>Fleet</h2>\n"
        if let problem = fleet.problem {
            return h + "<p class=\"bad\" id=\"fleet\" data-readable=\"false\">The off-site bucket could not be read: \(e(problem))</p>\n"
        }
        if fleet.hosts.isEmpty { return h + "<p class=\"mute\" id=\"fleet\">No host has a catalog copy in the off-site bucket yet.</p>\n" }
        h += "<div class=\"grid\" id=\"fleet\">\n"
        for host in fleet.hosts {
            var d = ""
            if let error = host.copyError {
                d += "<dt>Catalog copy</dt><dd data-field=\"copy\" data-readable=\"false\" class=\"bad\">unreadable: \(e(error))</dd>\n"
            } else if let copyAge = host.copyAgeSeconds {
                let stale = copyAge > maxRPO
                d += "<dt>Catalog copy</dt><dd data-field=\"copy\" data-stale=\"\(stale)\" class=\"\(stale ? "bad" : "ok")\">\(age(copyAge)) old\(stale ? " — STALE: the host stopped copying" : "")</dd>\n"
            }
            for s in host.sources {
                var parts: [String] = []
                if let rpo = s.rpoSeconds {
                    parts.append("<span data-field=\"age\" data-late=\"\(rpo > maxRPO)\" class=\"\(rpo > maxRPO ? "bad" : "ok")\">good backup \(age(rpo)) old</span>")
                } else {
                    parts.append("<span data-field=\"age\" data-late=\"true\" class=\"bad\">no good backup</span>")
                }
                if let drill = s.lastDrill {
                    let passed = s.lastDrillPassed != false
                    parts.append("<span data-field=\"drill\" data-passed=\"\(passed)\" class=\"\(passed ? "ok" : "bad")\">drill \(passed ? "passed" : "FAILED") \(time(drill))\(s.rtoSeconds.map { String(format: " (RTO %.1f s)", $0) } ?? "")</span>")
                } else {
                    parts.append("<span data-field=\"drill\" class=\"warn\">never drilled</span>")
                }
                if s.corrupt > 0 { parts.append("<span data-field=\"corrupt\" class=\"bad\">\(s.corrupt) CORRUPT</span>") }
                for r in host.refreshedBy {
                    guard let refresh = r.refresh, let row = refresh.sources.first(where: { $0.source == s.source }) else { continue }
                    let passed = row.result == DrillResult.passed.rawValue
                    let at = Timestamps.parseISO8601(refresh.finished_at).map(time) ?? e(refresh.finished_at)
                    parts.append("<span data-field=\"refresh\" data-by=\"\(e(r.by))\" class=\"\(passed ? "ok" : "bad")\">refreshed into \(e(r.by)): \(e(row.result)) \(at) (\(String(format: "%.1f s", row.duration_seconds)))</span>")
                }
                d += "<dt>\(e(s.source))</dt><dd data-source=\"\(e(s.source))\">\(parts.joined(separator: "<br>"))</dd>\n"
            }
            h += """
            <section class="card fleet-host" data-host="\(e(host.host))"><h3>\(e(host.host))\(host.isSelf ? " <small>this host</small>" : "")</h3><dl>
            \(d)</dl></section>

            """
        }
        h += "</div>\n"
        if let at = fleet.readAt { h += "<p class=\"mute\">Read from the off-site bucket \(time(at)) (at most every 5 minutes).</p>\n" }
        return h
    }

    static func runCard(_ r: StatusSnapshot.Run) -> String {
        let e = escape
        let status = r.run.status.rawValue
        let cls = r.run.status == .ok ? "ok" : (r.run.status == .running ? "warn" : "bad")
        var h = "<div class=\"card run\" data-run=\"\(e(r.run.id))\" data-status=\"\(e(status))\"><h3><span class=\"\(cls)\">\(e(status))</span> <small>\(e(r.run.tag.rawValue))\(r.run.release.map { " · release " + e($0) } ?? "") · \(time(r.run.startedAt))</small></h3>\n<ul>\n"
        for a in r.artifacts {
            h += "<li data-artifact=\"\(e(a.id))\" data-source=\"\(e(a.source))\" data-status=\"\(e(a.status.rawValue))\"><b>\(e(a.source))</b> <span class=\"\(a.status == .ok ? "ok" : "bad")\">\(e(a.status.rawValue))</span> <span class=\"id\">\(e(a.id))</span>"
            if a.status != .ok, let detail = a.detail, !detail.isEmpty {
                h += "<div class=\"failure\" data-field=\"failure\">\(e(KnownSecrets.scrub(detail)))</div>"
            }
            if a.offsite == .failed, let detail = a.offsiteDetail {
                h += "<div class=\"failure\" data-field=\"offsite-failure\">off-site copy failed: \(e(KnownSecrets.scrub(detail)))</div>"
            }
            h += "</li>\n"
        }
        h += "</ul></div>\n"
        return h
    }
}
