import BackupCatalog
import BackupCore
import BackupEngine
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RedisBackup
import TestSupport
import Testing

/// #36 item 3: the daemon's status page (`GET /`) on a real catalog (real backups of a real redis-server, a failed
/// run, a corrupt backup), checked in Debian's headless Chromium: screenshots at 1280 and 390 px, the DOM's
/// figures against the catalog, nothing wider than a phone, peer texts escaped; basic auth.
@Suite(.serialized, .blockingThreads) struct StatusPageTests {
    /// A failure text that would run as a script if the page did not escape it (a file name is what the files
    /// kind puts in its error).
    static let hostileName = "<script>alert(1)</script>.conf"

    @Test func thePageShowsTheCatalogInChromium() throws {
        let chromium = try #require(ExecutableLookup.find("chromium"), "Debian's chromium is not installed: apt-get install chromium")
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 3)
        c.close()
        let dir = TemporaryDirectory()
        let root = dir.file("stack")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let port = try FreePort.pick()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: """
          config: { kind: files, root: \(root), paths: ["\(Self.hostileName)"] }
        schedules:
          - { name: nightly, cron: "30 2 * * *", timezone: Asia/Riyadh, run: backup, tag: nightly }
          - { name: weekly-rotate, cron: "0 4 * * 0", run: rotate }
        daemon: { listen: "127.0.0.1:\(port)" }
        """)
        func cli(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }

        // Run 1: redis ok, config failed (its file does not exist). Run 2: redis ok, then damaged and verified.
        let first = try cli(["backup"])
        #expect(first.status != 0, "the config source should have failed: \(first.stdout)")
        let second = try cli(["backup", "--source", "redis", "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        let catalogPath = dir.file("repo/catalog.sqlite")
        let damaged = try #require(try Catalog(path: catalogPath).artifacts(source: "redis", status: .ok, limit: 1).first)
        var bytes = try #require(FileManager.default.contents(atPath: dir.file("repo/" + damaged.path)))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: dir.file("repo/" + damaged.path)))
        #expect(try cli(["verify", damaged.id]).status == 4)
        let status = try #require(try JSONSerialization.jsonObject(with: Data(try cli(["status", "--json"]).stdout.utf8)) as? [[String: Any]])
        let redisStatus = try #require(status.first { $0["source"] as? String == "redis" })
        let configStatus = try #require(status.first { $0["source"] as? String == "config" })
        let catalog = try Catalog(path: catalogPath)
        let newestGood = try #require(try catalog.artifacts(source: "redis", status: .ok, limit: 1).first)
        let failure = try #require(try catalog.artifacts(source: "config").first?.detail)
        #expect(failure.contains(Self.hostileName))
        let catalogBytes = try #require(FileManager.default.contents(atPath: catalogPath))

        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", policy], environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let url = "http://127.0.0.1:\(port)/"
        var page: (Int, String)?
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            page = httpGet(url)
            if page != nil { break }
            usleep(100_000)
        }
        let before = Date()
        let html = try #require(page)
        #expect(html.0 == 200, "\(html.1)")
        // Escaped where it is shown; no script anywhere in the page.
        #expect(!html.1.lowercased().contains("<script"))
        #expect(html.1.contains("&lt;script&gt;alert(1)&lt;/script&gt;.conf"))

        // Chromium: the DOM as the browser built it.
        let profile = dir.file("chromium-profile")
        func chrome(_ args: [String]) throws -> ProcessResult {
            try runProcess(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=\(profile)"] + args,
                           environment: cliEnvironment())
        }
        let dom = try chrome(["--window-size=1280,900", "--dump-dom", url])
        #expect(dom.status == 0, "\(dom.stderr)")
        let after = Date()
        let text = dom.stdout
        #expect(!text.lowercased().contains("<script"), "a failure text became markup")
        let redisCard = try #require(Self.element(text, "section", attribute: "data-source=\"redis\""), "\(text)")
        let configCard = try #require(Self.element(text, "section", attribute: "data-source=\"config\""))
        // The same figures as `status --json`, and as the catalog says.
        #expect(Self.attribute(redisCard, "data-id") == newestGood.id && newestGood.id == redisStatus["newest_good"] as? String)
        #expect(Self.attribute(redisCard, "data-created") == redisStatus["newest_good_at"] as? String)
        let ageSeconds = try #require(Self.attribute(redisCard, "data-seconds").flatMap(Int.init))
        #expect(Double(ageSeconds) >= before.timeIntervalSince(newestGood.createdAt).rounded(.down) - 1
                && Double(ageSeconds) <= after.timeIntervalSince(newestGood.createdAt) + 1, "age \(ageSeconds)")
        #expect(redisCard.contains("data-late=\"false\""))
        #expect(Self.attribute(redisCard, "data-count") == "\(redisStatus["corrupt"] as? Int ?? -1)" && redisStatus["corrupt"] as? Int == 1)
        #expect(redisCard.contains("1 CORRUPT"))
        #expect(redisCard.contains("data-field=\"verify\" data-ok=\"false\""))
        #expect(redisCard.contains("data-field=\"last-run\" data-ok=\"true\"") && redisStatus["last_run_ok"] as? Bool == true)
        #expect(configCard.contains("data-field=\"last-run\" data-ok=\"false\"") && configStatus["last_run_ok"] as? Bool == false)
        #expect(configCard.contains("data-field=\"newest-good\" class=\"bad\">none"))
        #expect(configCard.contains("data-field=\"drill\" class=\"warn\">never"))
        // The failed run with its failure text (escaped by the page, text again in the DOM).
        let runs = try catalog.runs(limit: 10)
        #expect(runs.count == 2)
        for run in runs { #expect(text.contains("data-run=\"\(run.id)\" data-status=\"\(run.status.rawValue)\"")) }
        #expect(text.contains("data-field=\"failure\">" + Self.escaped(failure)), "\(text)")
        // The schedules with their next runs.
        #expect(Self.element(text, "div", attribute: "data-schedule=\"nightly\"")?.contains("<time datetime=") == true)
        #expect(text.contains("data-schedule=\"weekly-rotate\""))
        #expect(text.contains("data-problems=\"3\""), "config: no good backup, a failed run; redis: a corrupt backup")

        // Screenshots: produced, non-trivial, and as wide as asked. 1280 px with Chromium's own --screenshot; 390 px
        // through the DevTools protocol (Tests/Tools/chromium_page.py): Chromium's windows are never narrower than
        // 500 px, and a 390 px --screenshot is a crop of a 500 px layout. There, nothing may be wider than the
        // viewport (the page's own scroll width, and every element's right edge).
        let wide = dir.file("status-1280.png")
        let shot = try chrome(["--window-size=1280,900", "--screenshot=\(wide)", url])
        #expect(shot.status == 0, "\(shot.stderr)")
        let narrow = dir.file("status-390.png")
        for (width, png) in [(1280, wide), (390, narrow)] {
            if width == 390 {
                let phone = try runProcess("/usr/bin/python3", [packageRoot + "/Tests/Tools/chromium_page.py", url, "390", "844", png])
                #expect(phone.status == 0, "\(phone.stderr)")
                let measured = try #require(try JSONSerialization.jsonObject(with: Data(phone.stdout.utf8)) as? [String: Any], "\(phone.stdout)")
                #expect(measured["innerWidth"] as? Int == 390)
                #expect(measured["scrollWidth"] as? Int == 390, "the page scrolls sideways on a phone: \(measured["scrollWidth"] ?? "?") px")
                #expect((measured["overflowing"] as? [String])?.isEmpty == true, "wider than the phone: \(measured["overflowing"] ?? "?")")
                // The phone sees the same figures.
                let phoneHTML = measured["html"] as? String ?? ""
                #expect(Self.attribute(phoneHTML, "data-id") == newestGood.id && phoneHTML.contains("1 CORRUPT"))
            }
            let data = try #require(FileManager.default.contents(atPath: png), "no screenshot at \(width) px")
            #expect(data.count > 10_000, "a \(data.count)-byte screenshot is blank")
            #expect(Self.pngSize(data)?.width == width, "\(String(describing: Self.pngSize(data)))")
        }

        // The page read the catalog without writing to it; /healthz is as before.
        #expect(FileManager.default.contents(atPath: catalogPath) == catalogBytes)
        #expect(httpGet("http://127.0.0.1:\(port)/healthz")?.0 == 200)
        kill(process.processIdentifier, SIGTERM)
        let result = wait()
        #expect(result.status == 0, "\(result.stderr)")
    }

    /// `daemon.status_auth`: 401 with a Basic challenge without or with wrong credentials, 200 with them;
    /// /healthz and /metrics stay open; the password is in no log line. Before any backup the page says so.
    @Test func basicAuthGuardsThePageOnly() throws {
        let dir = TemporaryDirectory()
        let port = try FreePort.pick()
        let passwordFile = dir.file("status-password")
        try "Sesame-0pen-42\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        chmod(passwordFile, 0o600)
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())", extra: """
        daemon: { listen: "127.0.0.1:\(port)", status_auth: { user: ops, password_file: \(passwordFile) } }
        """)
        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", policy], environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var health: (Int, String)?
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            health = httpGet("http://127.0.0.1:\(port)/healthz")
            if health != nil { break }
            usleep(100_000)
        }
        #expect(health?.0 == 200)
        let url = "http://127.0.0.1:\(port)/"
        let none = try #require(try Self.get(url, authorization: nil))
        #expect(none.status == 401 && none.challenge?.hasPrefix("Basic realm=") == true, "\(none)")
        #expect(!none.body.contains("kaleem-backup on"))
        #expect(try #require(try Self.get(url, authorization: Self.basic("ops", "wrong"))).status == 401)
        #expect(try #require(try Self.get(url, authorization: Self.basic("root", "Sesame-0pen-42"))).status == 401)
        #expect(try #require(try Self.get(url, authorization: "Basic !!!not-base64")).status == 401)
        let ok = try #require(try Self.get(url, authorization: Self.basic("ops", "Sesame-0pen-42")))
        #expect(ok.status == 200)
        #expect(ok.body.contains("no backup yet"), "\(ok.body)")
        #expect(ok.body.contains("data-source=\"redis\""))
        #expect(ok.body.contains("data-field=\"newest-good\" class=\"bad\">none"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("repo/catalog.sqlite")), "the page created the catalog")
        #expect(httpGet("http://127.0.0.1:\(port)/metrics")?.0 == 200)
        kill(process.processIdentifier, SIGTERM)
        let result = wait()
        #expect(result.status == 0)
        #expect(!result.stderr.contains("Sesame-0pen-42") && !result.stdout.contains("Sesame-0pen-42"))
    }

    /// A password file that is missing stops the daemon at once with a clear error (exit 2), not an open page.
    @Test func aMissingPasswordFileIsAClearError() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", extra: """
        daemon: { listen: "127.0.0.1:\(try FreePort.pick())", status_auth: { user: ops, password_file: \(dir.file("nope")) } }
        """)
        let r = try runCLI(["daemon", "--policy", policy])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("daemon.status_auth.password_file") && r.stderr.contains(dir.file("nope")), "\(r.stderr)")
    }

    /// The page reveals the stack's shape: by default the daemon listens on the loopback only; status_auth is
    /// checked like every key.
    @Test func loopbackByDefaultAndStatusAuthParsed() throws {
        let base = "repository: { path: /r }\nsources:\n  cache: { kind: redis, url: \"redis://127.0.0.1:6379\" }\n"
        func parse(_ extra: String) throws(PolicyError) -> Policy {
            try PolicyParser.parse(base + extra, origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        }
        #expect(try parse("").daemonListen == DaemonListen(host: "127.0.0.1", port: 9464))
        #expect(try parse("").statusAuth == nil)
        #expect(try parse("daemon: { status_auth: { user: ops, password_file: /etc/kb/pw } }").statusAuth
                == StatusAuth(user: "ops", passwordFile: "/etc/kb/pw"))
        for (extra, keyPath, problem) in [
            ("daemon: { status_auth: { password_file: /p } }", "daemon.status_auth", "missing key \"user\""),
            ("daemon: { status_auth: { user: ops } }", "daemon.status_auth", "missing key \"password_file\""),
            ("daemon: { status_auth: { user: \"a:b\", password_file: /p } }", "daemon.status_auth.user", "cannot contain"),
            ("daemon: { status_auth: { user: ops, password: x } }", "daemon.status_auth.password", "password"),
        ] {
            do {
                _ = try parse(extra)
                Issue.record("accepted: \(extra)")
            } catch {
                #expect(error.keyPath == keyPath, "\(error)")
                #expect(error.problem.contains(problem), "\(error.problem)")
            }
        }
    }

    // MARK: helpers

    static func basic(_ user: String, _ password: String) -> String { "Basic " + Data("\(user):\(password)".utf8).base64EncodedString() }

    /// One GET through Python's http.client (URLSession on Linux gives no response for a 401 with a challenge it
    /// cannot answer); the Authorization header goes through stdin.
    static func get(_ url: String, authorization: String?) throws -> (status: Int, body: String, challenge: String?)? {
        let script = """
        import http.client, json, sys, urllib.parse
        u = urllib.parse.urlsplit(sys.argv[1]); auth = sys.stdin.read()
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
        c.request("GET", u.path or "/", headers={"Authorization": auth} if auth else {})
        r = c.getresponse()
        print(json.dumps({"status": r.status, "body": r.read().decode(), "challenge": r.getheader("WWW-Authenticate")}))
        """
        let dir = TemporaryDirectory()
        try (authorization ?? "").write(toFile: dir.file("auth"), atomically: true, encoding: .utf8)
        let r = try runProcess("/bin/sh", ["-c", "exec /usr/bin/python3 -c \"$0\" \"$1\" < \"$2\"", script, url, dir.file("auth")])
        guard r.status == 0, let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let status = object["status"] as? Int else { return nil }
        return (status, object["body"] as? String ?? "", object["challenge"] as? String)
    }

    /// The first `<tag …attribute…>…</tag>` (not nested in itself).
    static func element(_ html: String, _ tag: String, attribute: String) -> String? {
        guard let start = html.range(of: "<\(tag) "),
              let at = html.range(of: attribute, range: start.lowerBound..<html.endIndex) else { return nil }
        guard let open = html.range(of: "<\(tag) ", options: .backwards, range: html.startIndex..<at.lowerBound),
              let close = html.range(of: "</\(tag)>", range: at.upperBound..<html.endIndex) else { return nil }
        return String(html[open.lowerBound..<close.upperBound])
    }

    static func attribute(_ html: String, _ name: String) -> String? {
        guard let r = html.range(of: " \(name)=\""), let end = html[r.upperBound...].firstIndex(of: "\"") else { return nil }
        return String(html[r.upperBound..<end])
    }

    /// How Chromium serializes text: `&`, `<`, `>` as entities (quotes stay).
    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Width and height from a PNG's IHDR.
    static func pngSize(_ data: Data) -> (width: Int, height: Int)? {
        let bytes = [UInt8](data.prefix(24))
        guard bytes.count == 24, bytes[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], String(decoding: bytes[12..<16], as: UTF8.self) == "IHDR" else { return nil }
        func be(_ i: Int) -> Int { bytes[i..<i + 4].reduce(0) { $0 << 8 | Int($1) } }
        return (be(16), be(20))
    }
}
