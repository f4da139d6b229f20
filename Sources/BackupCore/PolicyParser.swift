import Foundation
import Yams

/// Reads a policy from YAML text. Pure: the caller passes the text, where it came from and the environment.
///
/// Unknown keys are errors (a typo must not silently disable a backup); `${VAR}` forms are expanded in every
/// string value; `*_file` keys name files holding secrets, read later by the engine.
public enum PolicyParser {
    public static func parse(_ text: String, origin: String, environment: [String: String],
                             sourceKinds: SourceKindTable) throws(PolicyError) -> Policy {
        try checkShape(text, origin: origin)
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw PolicyError(origin: origin, keyPath: "", problem: "the file is empty; expected a mapping with repository and sources")
            }
            root = node
        } catch let error as PolicyError {
            throw error
        } catch let error as YamlError {
            throw syntaxError(error, origin: origin, text: text)
        } catch {
            throw PolicyError(origin: origin, keyPath: "", problem: "cannot read YAML: \(error)")
        }
        let reader = PolicyNode(node: root, path: "", origin: origin, environment: environment)
        let top = try reader.mapping(allowed: ["repository", "sources", "compression", "retention", "schedules", "metrics", "notify", "daemon", "drill", "restore", "encryption", "compose", "deploy", "host"])

        guard let repoNode = top["repository"] else { throw reader.error("missing key \"repository\" (expected repository: { path: DIR })") }
        let repoMap = try repoNode.mapping(allowed: ["path", "catalog", "offsite"])
        guard let pathNode = repoMap["path"] else { throw repoNode.error("missing key \"path\" (the backup directory)") }
        var repository = RepositoryPolicy(path: try pathNode.nonEmptyString(), catalog: try repoMap["catalog"]?.nonEmptyString())
        if let o = repoMap["offsite"] { repository.offsite = try parseOffsite(o) }

        var compression = CompressionPolicy()
        if let c = top["compression"] {
            let map = try c.mapping(allowed: ["level", "workers", "store_incompressible"])
            if let l = map["level"] { compression.level = try l.int(in: 1...9) }
            if let w = map["workers"] { compression.workers = try w.int(in: 1...64) }
            if let i = map["store_incompressible"] { compression.storeIncompressible = try i.bool() }
        }

        var retention = RetentionPolicy()
        if let r = top["retention"] {
            let map = try r.mapping(allowed: ["daily", "weekly", "monthly", "keep_last", "pre_deploy", "failed_grace_hours", "max_gap_hours", "timezone"])
            if let v = map["daily"] { retention.daily = try v.int(in: 0...3660) }
            if let v = map["weekly"] { retention.weekly = try v.int(in: 0...520) }
            if let v = map["monthly"] { retention.monthly = try v.int(in: 0...1200) }
            if let v = map["keep_last"] { retention.keepLast = try v.int(in: 0...100_000) }
            if let v = map["pre_deploy"] { retention.preDeploy = try v.int(in: 0...1000) }
            if let v = map["failed_grace_hours"] { retention.failedGraceHours = try v.int(in: 0...87_600) }
            if let v = map["max_gap_hours"] { retention.maxGapHours = try v.int(in: 0...87_600) }
            if let v = map["timezone"] {
                let name = try v.nonEmptyString()
                guard TimeZone(identifier: name) != nil else {
                    throw v.error("unknown time zone \"\(name)\"; expected an IANA name such as Asia/Riyadh or UTC")
                }
                retention.timeZone = name
            }
        }

        guard let sourcesNode = top["sources"] else { throw reader.error("missing key \"sources\" (expected at least one source)") }
        let entries = try sourcesNode.orderedMapping()
        if entries.isEmpty { throw sourcesNode.error("expected at least one source") }
        var sources: [SourcePolicy] = []
        for (name, node) in entries {
            guard isValidSourceName(name) else {
                throw node.error("source name \"\(name)\" must be 1-64 letters, digits, '-' or '_' (it becomes a directory name)")
            }
            guard !RepositoryLayout.reservedNames.contains(name) else {
                throw node.error("source name \"\(name)\" is reserved: the repository uses a directory of that name (\(RepositoryLayout.reservedNames.sorted().joined(separator: ", ")))")
            }
            sources.append(try parseSource(name: name, node: node, kinds: sourceKinds))
        }
        var schedules: [ScheduleEntry] = []
        if let list = top["schedules"] {
            for item in try list.sequence() {
                let entry = try parseSchedule(item, sources: sources)
                if schedules.contains(where: { $0.name == entry.name }) {
                    throw item.error("two schedules are named \"\(entry.name)\"")
                }
                schedules.append(entry)
            }
        }
        var policy = Policy(origin: origin, repository: repository, sources: sources, compression: compression,
                            retention: retention, schedules: schedules)
        if let m = top["metrics"] {
            let map = try m.mapping(allowed: ["textfile"])
            if let t = map["textfile"] {
                let path = try t.nonEmptyString()
                guard path.hasSuffix(".prom") else {
                    throw t.error("node_exporter's textfile collector reads only *.prom files; found \"\(path)\"")
                }
                policy.metricsTextfile = path
            }
        }
        if let d = top["drill"] {
            policy.drill = try sourceKinds.parse(.drill, try d.mapping(allowed: sourceKinds.drillKeys))
        }
        if let c = top["compose"] {
            let project = try parseCompose(c)
            policy.compose = project
            policy.drill = policy.drill.applying(project)
            policy.restore = policy.restore.applying(project)
            for i in policy.sources.indices {
                if let settings = policy.sources[i].settings as? any ComposeCommands {
                    policy.sources[i].settings = settings.applying(project)
                }
            }
        }
        if let h = top["host"] {
            let name = try h.nonEmptyString()
            if let problem = HostName.problem(name) { throw h.error("host \"\(name)\" \(problem)") }
            policy.host = name
            if let same = schedules.first(where: { $0.refresh?.fromHost == name }) {
                throw h.error("schedule \"\(same.name)\" refreshes this host from itself (refresh.from_host is this policy's host: \(name)); a refresh restores ANOTHER host's backups here")
            }
        }
        if (policy.repository.offsite == nil), let refresh = schedules.first(where: { $0.refresh != nil }) {
            throw reader.error("schedule \"\(refresh.name)\" refreshes from host \(refresh.refresh!.fromHost), whose backups are read from the shared off-site bucket, and there is no repository.offsite")
        }
        if let d = top["deploy"] {
            let map = try d.mapping(allowed: ["pre_deploy_sources"])
            if let s = map["pre_deploy_sources"] {
                let names = try s.stringList()
                guard !names.isEmpty else { throw s.error("expected at least one source name (or leave the key out for all sources)") }
                for name in names where policy.source(named: name) == nil {
                    throw s.error("no source named \"\(name)\"; the sources are: \(sources.map(\.name).joined(separator: ", "))")
                }
                var unique: [String] = []
                for name in names where !unique.contains(name) { unique.append(name) }
                policy.preDeploySources = unique
            }
        }
        if let r = top["restore"] {
            policy.restore = try sourceKinds.parse(.restore, try r.mapping(allowed: sourceKinds.restoreKeys))
        }
        if let e = top["encryption"] {
            let map = try e.mapping(allowed: ["recipients", "identity_file"])
            guard let r = map["recipients"] else { throw e.error("missing key \"recipients\" (age public keys, age1…)") }
            let recipients = try r.stringList()
            guard !recipients.isEmpty else { throw r.error("expected at least one recipient (age1…)") }
            for recipient in recipients where !recipient.hasPrefix("age1") {
                throw r.error("\"\(recipient)\" is not an age recipient (age1…, as age-keygen prints it)")
            }
            policy.encryption = EncryptionPolicy(recipients: recipients, identityFile: try map["identity_file"]?.nonEmptyString())
        }
        if let d = top["daemon"] {
            let map = try d.mapping(allowed: ["listen", "status_auth", "fleet"])
            if let a = map["status_auth"] {
                let auth = try a.mapping(allowed: ["user", "password_file"])
                guard let u = auth["user"] else { throw a.error("missing key \"user\" (the basic-auth user name of the status page)") }
                guard let f = auth["password_file"] else { throw a.error("missing key \"password_file\" (a file whose first line is the password; 0600)") }
                let user = try u.nonEmptyString()
                guard !user.contains(":") else { throw u.error("a basic-auth user name cannot contain \":\"") }
                policy.statusAuth = StatusAuth(user: user, passwordFile: try f.nonEmptyString())
            }
            if let f = map["fleet"] {
                policy.daemonFleet = try f.bool()
                if policy.daemonFleet && policy.repository.offsite == nil {
                    throw f.error("fleet: true reads the hosts' catalog copies from the off-site bucket: add repository.offsite")
                }
            }
            if let l = map["listen"] {
                let text = try l.nonEmptyString()
                guard let listen = DaemonListen.parse(text) else { throw l.error("expected host:port such as 127.0.0.1:9464, found \"\(text)\"") }
                policy.daemonListen = listen
            }
        }
        if let n = top["notify"] {
            let map = try n.mapping(allowed: ["webhook", "on", "attempts", "timeout", "ping"])
            guard map["webhook"] != nil || map["ping"] != nil else {
                throw n.error("missing key \"webhook\" (the URL events are POSTed to) or \"ping\" (push-monitoring URLs: start, success, fail)")
            }
            var webhook: String?
            if let w = map["webhook"] { webhook = try Self.httpURL(w) }
            var notify = NotifyPolicy(webhook: webhook)
            if let on = map["on"] {
                let events = try on.stringList()
                for e in events where NotifyEvent(rawValue: e) == nil {
                    throw on.error("unknown event \"\(e)\"; expected: \(NotifyEvent.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                notify.on = Set(events)
            }
            if let a = map["attempts"] { notify.attempts = try a.int(in: 1...20) }
            if let t = map["timeout"] { notify.timeoutSeconds = try t.duration() }
            if let p = map["ping"] {
                let ping = try p.mapping(allowed: ["url", "start", "success", "fail", "timeout"])
                var pings = PingPolicy()
                if let u = ping["url"] { pings = PingPolicy(healthchecks: try Self.httpURL(u)) }
                if let v = ping["start"] { pings.start = try Self.httpURL(v) }
                if let v = ping["success"] { pings.success = try Self.httpURL(v) }
                if let v = ping["fail"] { pings.fail = try Self.httpURL(v) }
                if let t = ping["timeout"] { pings.timeoutSeconds = try t.duration() }
                guard pings.start != nil || pings.success != nil || pings.fail != nil else {
                    throw p.error("expected at least one of \"url\", \"start\", \"success\", \"fail\" (http:// or https:// URLs)")
                }
                notify.ping = pings
            }
            policy.notify = notify
        }
        return policy
    }

    /// The largest policy file read, and the deepest nesting: Yams parses recursively, and 10,000 nested `[`
    /// overflow the stack (SIGSEGV). Both are refused before parsing.
    public static let maxPolicyBytes = 1 << 20
    public static let maxNesting = 64

    static func checkShape(_ text: String, origin: String) throws(PolicyError) {
        if text.utf8.count > maxPolicyBytes {
            throw PolicyError(origin: origin, keyPath: "", problem: "the file is \(text.utf8.count) bytes; a policy is at most \(maxPolicyBytes) bytes")
        }
        // A scan that may over-count nesting, never under-count it: a quote opens a quoted scalar only where a
        // scalar can start (first on its line, or after `: `, `- `, `? `, `[`, `{`, `,`); `#` starts a comment only
        // after a blank; `- ` and `? ` at the start of a line each open a level (`? ? ? x` nests mappings as
        // `- - - x` nests sequences). A `'` inside a plain scalar (`don't`) or a `#` glued to one (`a#b`) no longer
        // hides the brackets after it.
        let bytes = Array(text.utf8)
        var line = 1
        var flow = 0
        var quote: UInt8?
        var atLineStart = true
        var indent = 0
        var levels = 0
        var comment = false
        var previous: UInt8 = 10 // the last byte outside blanks on this line (10: none yet)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            if b == 10 { line += 1; atLineStart = true; indent = 0; levels = 0; comment = false; quote = nil; previous = 10; continue }
            if comment { continue }
            if let q = quote {
                if q == 34 && b == 92 { i += 1; continue } // \" and \\ in a double-quoted scalar
                if b == q {
                    if q == 39 && i < bytes.count && bytes[i] == 39 { i += 1; continue } // '' in a single-quoted one
                    quote = nil
                    previous = b
                }
                continue
            }
            if atLineStart {
                if b == 32 || b == 9 { indent += 1; continue }
                if (b == 45 || b == 63) && (i == bytes.count || bytes[i] == 32 || bytes[i] == 10) { levels += 1; continue } // "- " / "? "
                atLineStart = false
                if indent / 2 + levels > maxNesting * 4 {
                    throw PolicyError(origin: origin, keyPath: "", line: line, problem: "nested too deeply (more than \(maxNesting * 4) levels of indentation)")
                }
            }
            let blankBefore = i >= 2 && (bytes[i - 2] == 32 || bytes[i - 2] == 9)
            switch b {
            case 34, 39:
                if [10, 58, 45, 63, 91, 123, 44].contains(previous) { quote = b }
            case 35:
                if blankBefore || previous == 10 { comment = true; continue }
            case 91, 123:
                flow += 1
                if flow > maxNesting {
                    throw PolicyError(origin: origin, keyPath: "", line: line, problem: "nested too deeply (more than \(maxNesting) levels of [ or {)")
                }
            case 93, 125: flow = max(0, flow - 1)
            default: break
            }
            if b != 32 && b != 9 { previous = b }
        }
    }

    /// An http:// or https:// URL with a host (a webhook, a ping). The error shows it without its path and
    /// credentials: a ping URL's path is its token.
    static func httpURL(_ node: PolicyNode) throws(PolicyError) -> String {
        let url = try node.nonEmptyString()
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw node.error("expected an http:// or https:// URL, found \"\(Redaction.webhook(url))\"")
        }
        guard let parsed = URL(string: url), let host = parsed.host, !host.isEmpty else {
            throw node.error("\"\(Redaction.webhook(url))\" is not a valid URL (no host, or a space or character that must be percent-encoded)")
        }
        return url
    }

    static func isValidSourceName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.first != "-"
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    private static func parseSource(name: String, node: PolicyNode, kinds: SourceKindTable) throws(PolicyError) -> SourcePolicy {
        let kindNode = try node.mapping(allowed: nil)["kind"]
        guard let kindNode else { throw node.error("missing key \"kind\" (one of: \(kinds.names))") }
        let kind = SourceKind(try kindNode.string())
        guard let parser = kinds.parsers[kind] else {
            throw kindNode.error("unknown source kind \"\(kind.rawValue)\"; expected one of: \(kinds.names)")
        }
        var source = SourcePolicy(name: name, kind: kind, settings: try parser.parseSettings(node))
        let common = try node.mapping(allowed: nil)
        if let d = common["deadline"] {
            source.deadlineSeconds = try d.duration()
            source.deadlineExplicit = true
        }
        if let r = common["min_rate"] { source.minimumRate = try r.byteSize(in: 0...(1 << 30), example: "1KiB (a second; 0 turns it off)") }
        if let w = common["min_rate_window"] { source.rateWindowSeconds = try w.duration(in: 5...86_400) }
        return source
    }

    private static func parseSchedule(_ node: PolicyNode, sources: [SourcePolicy]) throws(PolicyError) -> ScheduleEntry {
        let map = try node.mapping(allowed: ["name", "cron", "timezone", "run", "sources", "tag", "refresh"])
        guard let nameNode = map["name"] else { throw node.error("missing key \"name\"") }
        guard let cronNode = map["cron"] else { throw node.error("missing key \"cron\" (e.g. \"30 2 * * *\")") }
        let name = try nameNode.nonEmptyString()
        let cron: CronSchedule
        do {
            cron = try CronSchedule(try cronNode.nonEmptyString())
        } catch let error as CronSchedule.ParseError {
            throw cronNode.error("not a valid cron expression: \(error.problem)")
        } catch let error as PolicyError {
            throw error
        } catch {
            throw cronNode.error("not a valid cron expression")
        }
        var entry = ScheduleEntry(name: name, cron: cron)
        if let t = map["timezone"] {
            let zone = try t.nonEmptyString()
            guard TimeZone(identifier: zone) != nil else {
                throw t.error("unknown time zone \"\(zone)\"; expected an IANA name such as Asia/Riyadh or UTC")
            }
            entry.timeZone = zone
        }
        if let r = map["run"] {
            let text = try r.string()
            guard let job = ScheduledJob(rawValue: text) else {
                throw r.error("expected one of: \(ScheduledJob.allCases.map(\.rawValue).joined(separator: ", ")), found \"\(text)\"")
            }
            entry.run = job
        }
        if let s = map["sources"] {
            entry.sources = try s.stringList()
            for name in entry.sources where !sources.contains(where: { $0.name == name }) {
                throw s.error("no source named \"\(name)\" (the sources are: \(sources.map(\.name).joined(separator: ", ")))")
            }
        }
        if let t = map["tag"] {
            let text = try t.string()
            guard let tag = RunTag(rawValue: text) else {
                throw t.error("expected \(RunTag.rule), found \"\(text)\"")
            }
            entry.tag = tag
        }
        if let r = map["refresh"] {
            if let run = map["run"], entry.run != .refresh {
                throw run.error("a schedule with refresh: runs a refresh; leave out run: (or write run: refresh), found \"\(entry.run.rawValue)\"")
            }
            if let s = map["sources"] { throw s.error("a refresh names its sources in refresh.sources, not in sources:") }
            if let t = map["tag"] { throw t.error("a refresh makes no backup, so it takes no tag:") }
            entry.run = .refresh
            entry.refresh = try parseRefresh(r, sources: sources)
        } else if entry.run == .refresh, let run = map["run"] {
            throw run.error("run: refresh needs refresh: { from_host: HOST, sources: [SOURCE, …] }")
        }
        return entry
    }

    /// `refresh: { from_host: prod, sources: [mongo, redis] }`.
    private static func parseRefresh(_ node: PolicyNode, sources: [SourcePolicy]) throws(PolicyError) -> RefreshSpec {
        let map = try node.mapping(allowed: ["from_host", "sources", "scrub"])
        guard let hostNode = map["from_host"] else { throw node.error("missing key \"from_host\" (the host whose backups are restored here, e.g. from_host: prod)") }
        let host = try hostNode.nonEmptyString()
        if let problem = HostName.problem(host) { throw hostNode.error("the host name \"\(host)\" \(problem)") }
        guard let sourcesNode = map["sources"] else { throw node.error("missing key \"sources\" (the sources to refresh, e.g. sources: [redis, mongo])") }
        let names = try sourcesNode.stringList()
        guard !names.isEmpty else { throw sourcesNode.error("expected at least one source to refresh") }
        var seen: Set<String> = []
        for name in names {
            guard sources.contains(where: { $0.name == name }) else {
                throw sourcesNode.error("no source named \"\(name)\" (the sources are: \(sources.map(\.name).joined(separator: ", ")))")
            }
            guard seen.insert(name).inserted else { throw sourcesNode.error("\"\(name)\" is named twice") }
        }
        var spec = RefreshSpec(fromHost: host, sources: names)
        if let scrubNode = map["scrub"] {
            for (name, entry) in try scrubNode.orderedMapping() {
                guard names.contains(name) else {
                    throw entry.error("scrub names \"\(name)\", which this refresh does not refresh (its sources: \(names.joined(separator: ", ")))")
                }
                let keys = try entry.mapping(allowed: ["command", "timeout"])
                guard let commandNode = keys["command"] else {
                    throw entry.error("missing key \"command\" (the program and its arguments, a list: no shell, e.g. [/usr/local/bin/mask-redis, \"{port}\"])")
                }
                let argv = try commandNode.stringList()
                guard let program = argv.first, program.hasPrefix("/") else {
                    throw commandNode.error("expected a list whose first item is the program's absolute path (no shell runs it), found \(argv.first.map { "\"\($0)\"" } ?? "an empty list")")
                }
                var scrub = ScrubCommand(command: argv)
                if let t = keys["timeout"] { scrub.timeoutSeconds = try t.duration(in: 1...86_400) }
                spec.scrub[name] = scrub
            }
        }
        return spec
    }

    /// `compose: { project_directory: /opt/kaleem, files: [docker-compose.yml, docker-compose.prod.yml], project_name: kaleem }`.
    private static func parseCompose(_ node: PolicyNode) throws(PolicyError) -> ComposeProject {
        let map = try node.mapping(allowed: ["project_directory", "files", "project_name"])
        var project = ComposeProject()
        if let d = map["project_directory"] {
            let dir = try d.nonEmptyString()
            guard dir.hasPrefix("/") else {
                throw d.error("project_directory must be an absolute directory (cron and systemd run jobs in $HOME and /), found \"\(dir)\"")
            }
            project.projectDirectory = dir.count > 1 && dir.hasSuffix("/") ? String(dir.dropLast()) : dir
        }
        if let f = map["files"] {
            let files = try f.stringList()
            guard !files.isEmpty else { throw f.error("expected at least one Compose file") }
            for file in files {
                if file.hasPrefix("/") {
                    project.files.append(file)
                } else if let dir = project.projectDirectory {
                    project.files.append(dir == "/" ? "/" + file : dir + "/" + file)
                } else {
                    throw f.error("\"\(file)\" is relative: give project_directory (the files are relative to it) or an absolute path")
                }
            }
        }
        if let n = map["project_name"] {
            let name = try n.nonEmptyString()
            // compose-go loader/loader.go: a project name is lowercase letters, digits, '-' and '_', starting with a letter or digit.
            let ok = name.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 95 }
            guard ok, let first = name.utf8.first, first != 45, first != 95 else {
                throw n.error("\"\(name)\" is not a Compose project name: lowercase letters, digits, '-' and '_', starting with a letter or digit")
            }
            project.projectName = name
        }
        guard project.projectDirectory != nil || !project.files.isEmpty else {
            throw node.error("give project_directory (and files), e.g. compose: { project_directory: /opt/kaleem, files: [docker-compose.yml, docker-compose.prod.yml] }")
        }
        return project
    }

    private static func parseOffsite(_ node: PolicyNode) throws(PolicyError) -> OffsitePolicy {
        let map = try node.mapping(allowed: ["endpoint", "bucket", "prefix", "region", "access_key", "secret_key", "secret_key_file", "timeout"])
        guard let e = map["endpoint"] else { throw node.error("missing key \"endpoint\" (e.g. https://s3.eu-central-1.amazonaws.com)") }
        guard let b = map["bucket"] else { throw node.error("missing key \"bucket\"") }
        guard let a = map["access_key"] else { throw node.error("missing key \"access_key\"") }
        let bucket = try b.nonEmptyString()
        guard BucketName.isValid(bucket) else {
            throw b.error("\"\(bucket)\" is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)")
        }
        let secret = try secretKey(map, in: node)
        var policy = OffsitePolicy(endpoint: try parseS3Endpoint(e), bucket: bucket, accessKey: try a.nonEmptyString(), secretKey: secret)
        if let p = map["prefix"] {
            var prefix = try p.string()
            while prefix.hasPrefix("/") { prefix.removeFirst() }
            if !prefix.isEmpty && !prefix.hasSuffix("/") { prefix += "/" }
            policy.prefix = prefix
        }
        if let r = map["region"] { policy.region = try r.nonEmptyString() }
        if let t = map["timeout"] { policy.timeoutSeconds = try t.duration() }
        return policy
    }

    /// `secret_key` (inline, after `${VAR}` expansion) or `secret_key_file`: exactly one of them.
    public static func secretKey(_ map: [String: PolicyNode], in node: PolicyNode) throws(PolicyError) -> SecretReference {
        switch (map["secret_key"], map["secret_key_file"]) {
        case (let k?, nil): return .inline(Secret(try k.string(secret: true)))
        case (nil, let f?): return .file(try f.nonEmptyString())
        case (_?, let f?): throw f.error("give either secret_key or secret_key_file, not both")
        case (nil, nil): throw node.error("missing key \"secret_key_file\" (or secret_key)")
        }
    }

    public static func parseS3Endpoint(_ e: PolicyNode) throws(PolicyError) -> String {
        let endpoint = try e.nonEmptyString()
        guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
            throw e.error("expected an http:// or https:// URL, found \"\(Redaction.url(endpoint))\"")
        }
        guard Redaction.url(endpoint) == endpoint else {
            throw e.error("the endpoint must not hold credentials; give access_key and secret_key_file")
        }
        return endpoint
    }

    private static func syntaxError(_ error: YamlError, origin: String, text: String) -> PolicyError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            // `{ url: ${REDIS_URL} }`: in a flow mapping the braces of an unquoted ${VAR} end the mapping.
            // Lines as YAML counts them (CR, CRLF, LF, NEL, LS, PS; "\r\n" is one Character), and the mark clamped:
            // a line past the end (CR line ends split on "\n" alone) made an empty-or-reversed range trap.
            let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            let upper = min(lines.count, max(0, mark.line + 1))
            let nearby = lines[min(max(0, mark.line - 2), upper)..<upper]
            let unquoted = nearby.contains { line in
                guard let r = line.range(of: "${") else { return false }
                let before = line[..<r.lowerBound].last
                return before != "\"" && before != "'"
            }
            let hint = unquoted ? " (a ${VAR} inside { } or [ ] must be quoted: url: \"${REDIS_URL}\")" : ""
            return PolicyError(origin: origin, keyPath: "", line: mark.line, problem: "YAML syntax error at column \(mark.column): \(problem)\(hint)")
        default:
            return PolicyError(origin: origin, keyPath: "", problem: "YAML error: \(error)")
        }
    }
}

/// A node of the policy document with its key path, for typed reads that fail with a precise `PolicyError`.
public struct PolicyNode {
    let node: Node
    public let path: String
    let origin: String
    let environment: [String: String]

    public func error(_ problem: String) -> PolicyError {
        PolicyError(origin: origin, keyPath: path, line: node.mark?.line, problem: problem)
    }

    private func child(_ key: String, _ node: Node) -> PolicyNode {
        PolicyNode(node: node, path: path.isEmpty ? key : path + "." + key, origin: origin, environment: environment)
    }

    /// The mapping's entries in file order; keys must be strings and unique.
    public func orderedMapping() throws(PolicyError) -> [(String, PolicyNode)] {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping (key: value lines), found \(kindName)") }
        var seen = Set<String>()
        var out: [(String, PolicyNode)] = []
        for (k, v) in mapping {
            guard case .scalar(let s) = k else { throw error("expected plain keys") }
            guard seen.insert(s.string).inserted else { throw child(s.string, v).error("duplicate key \"\(s.string)\"") }
            out.append((s.string, child(s.string, v)))
        }
        return out
    }

    /// The mapping as a dictionary; a key outside `allowed` (when given) is an error naming the allowed keys.
    public func mapping(allowed: Set<String>?) throws(PolicyError) -> [String: PolicyNode] {
        var out: [String: PolicyNode] = [:]
        for (key, value) in try orderedMapping() {
            if let allowed, !allowed.contains(key) {
                throw value.error("unknown key \"\(key)\"; expected one of: \(allowed.sorted().joined(separator: ", "))")
            }
            out[key] = value
        }
        return out
    }

    private var kindName: String {
        switch node {
        case .scalar(let s): return "\"\(s.string)\""
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    /// The scalar's text with `${VAR}` forms expanded. `secret` keeps the value out of any message.
    public func string(secret: Bool = false) throws(PolicyError) -> String {
        guard case .scalar(let s) = node else { throw error("expected a text value, found \(secret ? "a non-text value" : kindName)") }
        do {
            return try EnvironmentExpansion.expand(s.string, environment: environment)
        } catch {
            switch error {
            case .unset(let v):
                throw self.error("environment variable \(v) is not set (write ${\(v):-default} for a default)")
            case .required(let v, let message):
                throw self.error("environment variable \(v) is required: \(message.isEmpty ? "not set" : message)")
            case .malformed(let what):
                throw self.error("bad variable reference: \(what)")
            }
        }
    }

    public func nonEmptyString() throws(PolicyError) -> String {
        let s = try string()
        if s.isEmpty { throw error("expected a non-empty value") }
        return s
    }

    public func bool() throws(PolicyError) -> Bool {
        switch try string().lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        case let other: throw error("expected true or false, found \"\(other)\"")
        }
    }

    /// The items of a list.
    public func sequence() throws(PolicyError) -> [PolicyNode] {
        guard case .sequence(let seq) = node else { throw error("expected a list (- item lines), found \(kindName)") }
        return seq.enumerated().map { PolicyNode(node: $1, path: path + "[\($0)]", origin: origin, environment: environment) }
    }

    /// A list of text values (a one-item list may be written as a plain value).
    public func stringList() throws(PolicyError) -> [String] {
        switch node {
        case .scalar: return [try nonEmptyString()]
        case .sequence(let seq):
            var out: [String] = []
            for (i, item) in seq.enumerated() {
                out.append(try PolicyNode(node: item, path: path + "[\(i)]", origin: origin, environment: environment).nonEmptyString())
            }
            return out
        default: throw error("expected a list, found \(kindName)")
        }
    }

    /// A command: a program name or path, or a list (program and its arguments, e.g. a `docker run` wrapper).
    public func command() throws(PolicyError) -> [String] {
        let parts = try stringList()
        if parts.isEmpty { throw error("expected a command (a program, or a list: program and arguments)") }
        return parts
    }

    public func int(in range: ClosedRange<Int>) throws(PolicyError) -> Int {
        let s = try string()
        guard let v = Int(s), range.contains(v) else {
            throw error("expected a whole number from \(range.lowerBound) to \(range.upperBound), found \"\(s)\"")
        }
        return v
    }

    /// Bytes, as a number or with a unit (`512`, `64KiB`, `1MiB`, `2GiB`; K, M, G are the same binary units).
    public func byteSize(in range: ClosedRange<Int64>, example: String) throws(PolicyError) -> Int64 {
        let s = try string()
        let units: [(String, Int64)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
        var value: Int64?
        if let plain = Int64(s) {
            value = plain
        } else {
            for (suffix, factor) in units where s.hasSuffix(suffix) {
                if let n = Int64(s.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), n >= 0, n <= Int64.max / factor { value = n * factor }
                break
            }
        }
        guard let value, range.contains(value) else {
            throw error("expected a size from \(range.lowerBound) to \(range.upperBound) bytes such as \(example), found \"\(s)\"")
        }
        return value
    }

    /// The range of every duration in a policy: a timeout of 0 would mean "none" to a socket, and a huge one
    /// overflows the conversions to nanoseconds.
    public static let durationRange: ClosedRange<Double> = 1...(7 * 86_400)

    /// Seconds, as a number (`30`, `2.5`) or with a unit (`30s`, `5m`, `1h`, `2d`), from 1 s to 7 days.
    public func duration(in range: ClosedRange<Double> = PolicyNode.durationRange) throws(PolicyError) -> Double {
        let s = try string()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        var number = Substring(s)
        var factor = 1.0
        for (suffix, f) in units where s.hasSuffix(suffix) && Double(s.dropLast(suffix.count)) != nil {
            number = s.dropLast(suffix.count)
            factor = f
            break
        }
        guard let v = Double(number), v > 0, v.isFinite else {
            throw error("expected a duration such as 30, 30s, 5m or 1h, found \"\(s)\"")
        }
        let seconds = v * factor
        guard range.contains(seconds) else {
            throw error("\"\(s)\" is out of range: a duration here is from \(Int(range.lowerBound)) s to \(Int(range.upperBound / 86_400)) days")
        }
        return seconds
    }
}
