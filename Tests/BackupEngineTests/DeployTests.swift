import BackupCatalog
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

@Suite(.blockingThreads) struct DeployHookTests {
    /// pre-deploy sets are pinned and outlive rotation until their release is confirmed and falls out of
    /// `pre_deploy`; rollback --restore-data brings Redis back to the restore point.
    @Test func hooksPinConfirmAndRollBack() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 3)
        let dir = TemporaryDirectory()
        let textfile = dir.file("m/kaleem_backup.prom")
        let policy = writeRedisPolicy(in: dir, url: redis.url,
                                      extra: "retention: { daily: 1, keep_last: 1, pre_deploy: 1 }\nmetrics: { textfile: \(textfile) }")

        let pre = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:1.4.2", "--policy", policy])
        #expect(pre.status == 0, "\(pre.stderr)")
        let setA = pre.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(setA.hasPrefix("run-") && !setA.contains("\n"))
        let again = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:1.4.2", "--policy", policy])
        #expect(again.stderr.contains("already had pre-deploy set \(setA)"))

        // Data written after the restore point.
        _ = try c.command("SET", "written-after-the-hook", "x")
        _ = try c.command("DEL", "str:0:1")

        // Nightly backups with keep_last 1 do not remove the pinned pre-deploy sets.
        for _ in 0..<2 { #expect(try runCLI(["backup", "--policy", policy]).status == 0) }
        let catalog = try Catalog(path: dir.file("repo/catalog.sqlite"))
        let pinnedA = try catalog.artifacts().filter { $0.release == "kaleem-api:1.4.2" }
        #expect(pinnedA.count == 2)
        #expect(pinnedA.allSatisfy { $0.pinned && $0.pinReason == "release kaleem-api:1.4.2" })
        let listed = try array(try runCLI(["list", "--policy", policy, "--json"]).stdout)
        #expect(listed.contains { $0["tag"] as? String == "pre-deploy" && $0["pinned"] as? Bool == true && $0["release"] as? String == "kaleem-api:1.4.2" })

        // Rollback with data: the keys written after the hook are gone, the deleted one is back.
        let rollback = try runCLI(["hook", "rollback", "--release", "kaleem-api:1.4.2", "--reason", "health-check-failed",
                                   "--restore-data", "--yes", "--policy", policy])
        #expect(rollback.status == 0, "\(rollback.stdout) \(rollback.stderr)")
        _ = try c.command("SELECT", "0")
        #expect(try c.command("EXISTS", "written-after-the-hook") == .integer(0))
        #expect(try c.command("EXISTS", "str:0:1") == .integer(1))
        // Without --restore-data it prints the exact commands.
        let dry = try runCLI(["hook", "rollback", "--release", "kaleem-api:1.4.2", "--reason", "manual", "--policy", policy])
        #expect(dry.stdout.contains("kaleem-backup restore redis --backup"))
        c.close()

        // Confirming 1.4.2, then 1.5.0: with pre_deploy 1 the older release is unpinned and rotation removes it.
        #expect(try runCLI(["hook", "post-deploy", "--release", "kaleem-api:1.4.2", "--outcome", "success", "--duration", "42", "--policy", policy]).status == 0)
        #expect(try catalog.artifacts().filter { $0.release == "kaleem-api:1.4.2" }.allSatisfy(\.pinned))
        #expect(try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:1.5.0", "--policy", policy]).status == 0)
        let post = try runCLI(["hook", "post-deploy", "--release", "kaleem-api:1.5.0", "--outcome", "success", "--duration", "65", "--policy", policy])
        #expect(post.stdout.contains("unpinned"))
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        #expect(try catalog.artifacts().filter { $0.release == "kaleem-api:1.4.2" }.isEmpty)
        #expect(try catalog.artifacts().contains { $0.release == "kaleem-api:1.5.0" && $0.pinned })

        // The stack's deployment metrics.
        let metrics = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(metrics.contains("deployment_success_total{environment=\"production\",service=\"api\"} 2"))
        #expect(metrics.contains("deployment_duration_seconds_count{environment=\"production\",service=\"api\",status=\"success\"} 2"))
        #expect(metrics.contains("rollback_total{environment=\"production\",service=\"api\",reason=\"health-check-failed\"} 1"))
        #expect(try runProcess("/bin/sh", ["-c", "promtool check metrics < \"$0\"", textfile]).status == 0)
    }

    /// With a bucket source too (the real local S3 server): the pre-deploy set holds a snapshot; a rollback
    /// restores buckets only with --include-buckets, and then the bucket is back at the restore point.
    @Test func rollbackRestoresBucketsOnlyWhenAsked() async throws {
        let redis = try RedisTestServer()
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("uploads")
        try await putAll(client, ["uploads": ["avatars/1.png": Array("one".utf8), "avatars/2.png": Array("two".utf8)]])
        let dir = TemporaryDirectory()
        writeS3Policy(in: dir, server: s3, buckets: ["uploads"])
        let policy = dir.file("both.yml")
        let text = try String(contentsOfFile: dir.file("policy.yml"), encoding: .utf8)
            + "  redis:\n    kind: redis\n    url: \"\(redis.url)\"\n"
        FileManager.default.createFile(atPath: policy, contents: Data(text.utf8))

        let pre = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:3.0.0", "--policy", policy, "--json"])
        #expect(pre.status == 0, "\(pre.stderr)")
        let artifacts = try #require(try object(pre.stdout)["artifacts"] as? [[String: Any]])
        #expect(Set(artifacts.compactMap { $0["source"] as? String }) == ["minio", "redis"])
        #expect(artifacts.allSatisfy { $0["pinned"] as? Bool == true && $0["status"] as? String == "ok" })

        // After the deploy: one upload added, one deleted.
        try await putAll(client, ["uploads": ["avatars/3.png": Array("three".utf8)]])
        try await client.deleteObject(bucket: "uploads", key: "avatars/1.png")

        let printed = try runCLI(["hook", "rollback", "--release", "kaleem-api:3.0.0", "--reason", "manual", "--policy", policy])
        #expect(printed.stdout.contains("kaleem-backup restore minio --backup"))
        #expect(printed.stdout.contains("--bucket uploads --delete-extra --yes"))

        let dataOnly = try runCLI(["hook", "rollback", "--release", "kaleem-api:3.0.0", "--reason", "health-check-failed",
                                   "--restore-data", "--yes", "--policy", policy])
        #expect(dataOnly.status == 0, "\(dataOnly.stdout) \(dataOnly.stderr)")
        #expect(try await client.listObjects(bucket: "uploads").map(\.key) == ["avatars/2.png", "avatars/3.png"])

        let withBuckets = try runCLI(["hook", "rollback", "--release", "kaleem-api:3.0.0", "--reason", "health-check-failed",
                                      "--restore-data", "--include-buckets", "--yes", "--policy", policy])
        #expect(withBuckets.status == 0, "\(withBuckets.stdout) \(withBuckets.stderr)")
        #expect(withBuckets.stdout.contains("restored minio bucket uploads"))
        #expect(try await readAll(client, bucket: "uploads") == ["avatars/1.png": Array("one".utf8), "avatars/2.png": Array("two".utf8)])
    }

    @Test func preDeployFailureExitsNonZero() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())")
        let r = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:2.0.0", "--policy", policy])
        #expect(r.status != 0)
        #expect(r.stderr.contains("pre-deploy backup of redis failed"))
        // A failed restore point is a failed deploy attempt: recorded, under the attempt's id when given (#35).
        let named = try runCLI(["hook", "pre-deploy", "--release", "kaleem-api:2.0.0", "--deploy-id", "deploy-7", "--policy", policy])
        #expect(named.status != 0)
        let events = try Catalog(path: dir.file("repo/catalog.sqlite")).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.failed, .failed], "\(events)")
        #expect(events.allSatisfy { $0.reason == "pre-deploy-backup-failed" && $0.release == "kaleem-api:2.0.0" })
        #expect(events.last?.deployID == "deploy-7" && events.first?.deployID?.hasPrefix("run-") == true, "\(events)")
    }

    /// deploy.sh when the restore point fails: nothing changed, the attempt recorded as failed under its id.
    @Test func aFailedRestorePointIsAFailedDeploy() throws {
        let run = try DeployScriptTests().deploy(redisURL: "redis://127.0.0.1:\(try FreePort.pick())", health: try HTTPRecorder(),
                                                 extraEnv: ["DEPLOY_ID": "deploy-rp"])
        #expect(run.result.status == 1, "\(run.result.stderr)")
        #expect(DeployScriptTests.steps(run) == ["pull", "pre-deploy"], "\(run.calls)")
        #expect(run.running == nil) // compose up never ran
        let events = try #require(run.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.failed] && events[0].deployID == "deploy-rp" && events[0].reason == "pre-deploy-backup-failed", "\(events)")
        // (and the failed backup's own `backup` event, notify.on: [failure])
        let deployEvents = run.webhook.filter { ($0["event"] as? String)?.hasPrefix("deploy") == true }
        #expect(deployEvents.map { $0["event"] as? String } == ["deploy_started", "deploy_failed"], "\(run.webhook)")
        #expect(deployEvents.allSatisfy { $0["deploy_id"] as? String == "deploy-rp" })
        let metrics = try String(contentsOfFile: run.directory.file("m/kaleem_backup.prom"), encoding: .utf8)
        #expect(metrics.contains("deployment_duration_seconds_count{environment=\"production\",service=\"api\",status=\"failed\"} 1"), "\(metrics)")
    }
}

/// scripts/deploy.sh with the stand-in docker (Tests/StandIns/docker: records every call, keeps what runs in a
/// state file, finds its project and reads the compose files the way Compose does), a real kaleem-backup and
/// Redis, and HTTP recorders for the health endpoint and the webhook. Calls of kaleem-backup are logged beside
/// docker's (a wrapper, with its working directory and COMPOSE_FILE), so the order of the whole flow is checked.
@Suite(.blockingThreads) struct DeployScriptTests {
    struct Run {
        let directory: TemporaryDirectory
        let result: ProcessResult
        /// Every call in order: docker's argv (compose's global options removed), or ["kaleem-backup", "hook", NAME].
        let calls: [[String]]
        /// Every docker call's whole argv, and the working directory of every call (docker's and kaleem-backup's).
        let rawCalls: [[String]]
        let cwds: [String]
        /// The COMPOSE_FILE kaleem-backup's hooks saw.
        let hookComposeFiles: [String]
        /// The image `compose up` saw in KALEEM_API_IMAGE, per up.
        let ups: [String]
        let running: String?
        let catalog: Catalog?
        let webhook: [[String: Any]]
    }

    /// The project name Compose gives a directory (compose-go NormalizeProjectName of its base name).
    static func projectName(_ directory: String) -> String {
        let base = URL(fileURLWithPath: directory).lastPathComponent.lowercased()
        let kept = String(base.unicodeScalars.filter { CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789_-").contains($0) })
        return String(kept.drop { $0 == "_" || $0 == "-" })
    }

    /// Runs the script. The stack lives in the run's directory; by default STACK_DIR names it and the script runs
    /// from there. `cwd` runs it from elsewhere (as cron and systemd do); `stackDir: false` leaves STACK_DIR unset.
    /// The stand-in's containers belong to the stack's project (DOCKER_PROJECT): a deploy that addresses another
    /// project sees nothing running and changes nothing.
    /// `stack`: run again in the stack of an earlier run (its catalog, state, release history and nginx files);
    /// `arguments`: the script's (`rollback --to R`).
    func deploy(redisURL: String, health: HTTPRecorder, psFormat: String = "lines", extraEnv: [String: String] = [:],
                files: [String: String] = [:], cwd: String? = nil, stackDir: Bool = true, stack: TemporaryDirectory? = nil,
                arguments: [String] = []) throws -> Run {
        let dir = stack ?? TemporaryDirectory()
        let webhook = try HTTPRecorder()
        let policy = writeRedisPolicy(in: dir, url: redisURL, extra: "notify: { webhook: \"\(webhook.url)/hook\", on: [failure, deploy], attempts: 1 }\nmetrics: { textfile: \(dir.file("m/kaleem_backup.prom")) }")
        let log = dir.file("calls.jsonl")
        try? FileManager.default.removeItem(atPath: log)
        let wrapper = dir.file("kb")
        try """
        #!/bin/sh
        printf '{"argv": ["kaleem-backup", "%s", "%s"], "cwd": "%s", "composeFile": "%s"}\\n' "$1" "$2" "$(pwd)" "${COMPOSE_FILE:-}" >> '\(log)'
        exec '\(try kaleemBinary())' "$@"
        """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        for (name, text) in files { try text.write(toFile: dir.file(name), atomically: true, encoding: .utf8) }
        var env = cliEnvironment([
            "PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "KALEEM_BACKUP_BIN": wrapper, "KALEEM_BACKUP_POLICY": policy, "KALEEM_API_IMAGE": "kaleem-api:2.0.0",
            "HEALTH_URL": health.url + "/api/health", "MAX_ATTEMPTS": "3", "SLEEP_SECONDS": "0.1",
            "DOCKER_LOG": log, "DOCKER_PS_FORMAT": psFormat, "DOCKER_PS_IMAGE": "kaleem-api:1.9.0", "DOCKER_STATE": dir.file("state.json"),
            "DOCKER_PROJECT": Self.projectName(dir.path),
        ])
        if stackDir { env["STACK_DIR"] = dir.path }
        env.merge(extraEnv.mapValues {
            $0.replacingOccurrences(of: "{stack}", with: dir.path)
                .replacingOccurrences(of: "{stackname}", with: URL(fileURLWithPath: dir.path).lastPathComponent)
        }) { $1 }
        if files["docker-compose.yml"] == nil && !FileManager.default.fileExists(atPath: dir.file("docker-compose.yml")) {
            try "services:\n  api:\n    image: kaleem-api:1.9.0\n  nginx:\n    image: nginx:1.25\n".write(toFile: dir.file("docker-compose.yml"), atomically: true, encoding: .utf8)
        }
        let result = try runProcess("/bin/bash", [packageRoot + "/scripts/deploy.sh"] + arguments, environment: env, currentDirectory: cwd ?? dir.path)
        let entries = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        var calls: [[String]] = [], raw: [[String]] = [], cwds: [String] = [], hookFiles: [String] = []
        var ups: [String] = []
        for e in entries {
            var argv = e["argv"] as? [String] ?? []
            raw.append(argv)
            cwds.append(e["cwd"] as? String ?? "?")
            if argv.first == "kaleem-backup" { hookFiles.append(e["composeFile"] as? String ?? "") }
            if argv.first == "compose" {
                var rest = Array(argv.dropFirst())
                while let first = rest.first, ["-f", "--file", "--project-directory", "-p"].contains(first) { rest.removeFirst(min(2, rest.count)) }
                argv = ["compose"] + rest
                if rest.first == "up" { ups.append(e["image"] as? String ?? "") }
            }
            calls.append(argv)
        }
        let state = (try? Data(contentsOf: URL(fileURLWithPath: dir.file("state.json")))).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: String] }
        let catalog = FileManager.default.fileExists(atPath: dir.file("repo/catalog.sqlite")) ? try Catalog(path: dir.file("repo/catalog.sqlite")) : nil
        let events = webhook.requests.compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }
        return Run(directory: dir, result: result, calls: calls, rawCalls: raw, cwds: cwds, hookComposeFiles: hookFiles, ups: ups,
                   running: state?["api"], catalog: catalog, webhook: events)
    }

    /// The compose files of the runs' `docker compose` calls (their -f values), each list once, and the
    /// --project-directory they named.
    static func composeFiles(_ run: Run) -> (files: [[String]], projectDirectories: Set<String>) {
        var lists: [[String]] = [], dirs: Set<String> = []
        for argv in run.rawCalls where argv.first == "compose" {
            var files: [String] = [], i = 1
            while i + 1 < argv.count, argv[i].hasPrefix("-") {
                if argv[i] == "-f" { files.append(argv[i + 1]) }
                if argv[i] == "--project-directory" { dirs.insert(argv[i + 1]) }
                i += 2
            }
            if !lists.contains(files) { lists.append(files) }
        }
        return (lists, dirs)
    }

    /// The steps of a run, short: "pull", "pre-deploy", "ps", "up", "nginx -t", …
    static func steps(_ run: Run) -> [String] {
        run.calls.map { argv in
            if argv.first == "kaleem-backup" { return argv.count > 2 ? argv[2] : "?" }
            if argv.first == "pull" { return "pull" }
            if argv.first == "inspect" { return "inspect" }
            if argv.starts(with: ["compose", "exec"]) { return argv.drop { $0 != "nginx" }.dropFirst().joined(separator: " ") }
            return argv.count > 1 ? argv[1] : "?"
        }
    }

    @Test(arguments: ["lines", "array"])
    func successPath(psFormat: String) throws {
        let redis = try RedisTestServer()
        let health = try HTTPRecorder()
        let run = try deploy(redisURL: redis.url, health: health, psFormat: psFormat)
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(Self.steps(run) == Self.successSteps, "\(run.calls)")
        #expect(run.ups == ["kaleem-api:2.0.0"])
        #expect(run.running == "kaleem-api:2.0.0")
        #expect(run.result.stderr.contains("running now: kaleem-api:1.9.0"))
        // The override file the document uses, written because it was missing.
        let override = try String(contentsOfFile: run.directory.file("docker-compose.image.override.yml"), encoding: .utf8)
        #expect(override == "services:\n  api:\n    image: ${KALEEM_API_IMAGE}\n")
        let events = try #require(run.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.success])
        #expect(try run.catalog!.artifacts().contains { $0.tag == .preDeploy && $0.pinned && $0.release == "kaleem-api:2.0.0" })
        #expect(run.webhook.map { $0["event"] as? String } == ["deploy_started", "deploy_succeeded"], "\(run.webhook)")
        #expect(run.webhook.allSatisfy { $0["release"] as? String == "kaleem-api:2.0.0" })
    }

    /// The document's compose files: the base file names `kaleem-api:${IMAGE_TAG}`; the override applies the image.
    @Test func theDocumentsComposeFilesGetTheNewImage() throws {
        let redis = try RedisTestServer()
        let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(),
                             extraEnv: ["COMPOSE_FILES": "docker-compose.yml docker-compose.prod.yml", "IMAGE_TAG": "1.9.0"],
                             files: ["docker-compose.yml": "services:\n  api:\n    image: kaleem-api:${IMAGE_TAG}\n  nginx:\n    image: nginx:1.25\n",
                                     "docker-compose.prod.yml": "services:\n  api:\n    restart: always\n"])
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(run.running == "kaleem-api:2.0.0")
    }

    /// The operations document's compose files: the base file has neither api nor nginx (redis, qdrant, ...), the
    /// production file has both, the api as `kaleem-api:${IMAGE_TAG:-latest}` with 3 replicas. Only both files
    /// make a deploy.
    static let documentFiles = [
        "docker-compose.yml": "version: '3.8'\nservices:\n  redis:\n    image: redis:6-alpine\n  qdrant:\n    image: qdrant/qdrant:latest\n",
        "docker-compose.prod.yml": """
            version: '3.8'
            services:
              nginx:
                image: nginx:alpine
              api:
                image: kaleem-api:${IMAGE_TAG:-latest}
                deploy:
                  replicas: 3

            """,
    ]

    static func both(_ run: Run) -> [String] {
        ["docker-compose.yml", "docker-compose.prod.yml", "docker-compose.image.override.yml"].map { run.directory.file($0) }
    }

    static let successSteps = ["pull", "pre-deploy", "ps", "up", "ps", "nginx -t", "nginx -s reload", "post-deploy"]

    /// Cron starts the deploy in $HOME, systemd in /: the stack's relative compose files are still found (in
    /// STACK_DIR, never the caller's directory), the override file is written there, Compose is told the project
    /// directory, and the pre-deploy hook runs there too, with COMPOSE_FILE naming the same files (a policy's
    /// `docker compose exec -T mongo mongodump` addresses the same project).
    @Test(arguments: ["/", "home"])
    func deploysFromAnyWorkingDirectory(from: String) throws {
        let redis = try RedisTestServer()
        let home = TemporaryDirectory("kb-home")
        let cwd = from == "/" ? "/" : home.path
        var env = ["COMPOSE_FILES": "docker-compose.yml docker-compose.prod.yml", "HOME": home.path]
        // A policy named relative to the caller's directory stays found after the script enters the stack's.
        if cwd != "/" { env["KALEEM_BACKUP_POLICY"] = "../{stackname}/policy.yml" }
        let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: env, files: Self.documentFiles, cwd: cwd)
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(Self.steps(run) == Self.successSteps, "\(run.calls)")
        #expect(run.running == "kaleem-api:2.0.0")
        #expect(run.result.stderr.contains("running now: kaleem-api:1.9.0"))
        let stack = run.directory.path
        let compose = Self.composeFiles(run)
        #expect(compose.files == [Self.both(run)])
        #expect(compose.projectDirectories == [stack])
        #expect(FileManager.default.fileExists(atPath: stack + "/docker-compose.image.override.yml"))
        if cwd != "/" { #expect(!FileManager.default.fileExists(atPath: cwd + "/docker-compose.image.override.yml")) }
        #expect(Set(run.cwds) == [stack], "\(run.cwds)")
        #expect(run.hookComposeFiles.count == 2, "\(run.hookComposeFiles)") // pre-deploy, post-deploy
        #expect(run.hookComposeFiles.allSatisfy { $0 == stack + "/docker-compose.yml:" + stack + "/docker-compose.prod.yml" }, "\(run.hookComposeFiles)")
    }

    /// Without STACK_DIR: the stack is KALEEM_ROOT (as /etc/kaleem-backup/env sets it), or the directory of the
    /// first compose file when that is absolute. A stack directory that does not exist is a set-up error that
    /// names STACK_DIR, before anything is done.
    @Test func theStackDirectoryDefaults() throws {
        let redis = try RedisTestServer()
        let home = TemporaryDirectory("kb-home")
        let root = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: ["KALEEM_ROOT": "{stack}"], cwd: home.path, stackDir: false)
        #expect(root.result.status == 0, "\(root.result.stderr)")
        #expect(root.running == "kaleem-api:2.0.0")
        #expect(Self.composeFiles(root).files == [["docker-compose.yml", "docker-compose.image.override.yml"].map { root.directory.file($0) }])

        let absolute = try deploy(redisURL: redis.url, health: try HTTPRecorder(),
                                  extraEnv: ["COMPOSE_FILE": "{stack}/docker-compose.yml:docker-compose.prod.yml"],
                                  files: Self.documentFiles, cwd: home.path, stackDir: false)
        #expect(absolute.result.status == 0, "\(absolute.result.stderr)")
        #expect(absolute.running == "kaleem-api:2.0.0")
        #expect(Self.composeFiles(absolute).projectDirectories == [absolute.directory.path])
        #expect(Self.composeFiles(absolute).files == [Self.both(absolute)])

        let missing = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: ["STACK_DIR": "{stack}/nowhere"], cwd: home.path)
        #expect(missing.result.status == 2)
        #expect(missing.result.stderr.contains("STACK_DIR"), "\(missing.result.stderr)")
        #expect(missing.calls.isEmpty)
        // A compose file that is not there: named, before anything is done.
        let typo = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: ["COMPOSE_FILES": "docker-compose.yml docker-compose.prod.yaml"],
                              files: Self.documentFiles, cwd: home.path)
        #expect(typo.result.status == 2)
        #expect(typo.result.stderr.contains("docker-compose.prod.yaml (from COMPOSE_FILES) not found"), "\(typo.result.stderr)")
        #expect(typo.calls.isEmpty)
    }

    /// Compose's own COMPOSE_FILE when COMPOSE_FILES is not set: from the environment, separated by ':' or by
    /// COMPOSE_PATH_SEPARATOR, or from the stack's .env (the environment wins); COMPOSE_FILES wins over it. The
    /// names are relative to the stack, the deploy runs from elsewhere.
    @Test func composeFileIsHonoured() throws {
        let redis = try RedisTestServer()
        let home = TemporaryDirectory("kb-home")
        var withDotEnv = Self.documentFiles
        withDotEnv[".env"] = "JWT_SECRET=abc\nexport COMPOSE_FILE=\"docker-compose.yml;docker-compose.prod.yml\" # production\nCOMPOSE_PATH_SEPARATOR=;\n"
        var dotEnvLoses = withDotEnv
        dotEnvLoses[".env"] = "COMPOSE_FILE=docker-compose.yml\n"
        let cases: [(String, [String: String], [String: String])] = [
            ("colon", ["COMPOSE_FILE": "docker-compose.yml:docker-compose.prod.yml"], Self.documentFiles),
            ("separator", ["COMPOSE_FILE": "docker-compose.yml,docker-compose.prod.yml", "COMPOSE_PATH_SEPARATOR": ","], Self.documentFiles),
            (".env", [:], withDotEnv),
            ("environment over .env", ["COMPOSE_FILE": "docker-compose.yml:docker-compose.prod.yml"], dotEnvLoses),
            ("COMPOSE_FILES first", ["COMPOSE_FILES": "docker-compose.yml docker-compose.prod.yml", "COMPOSE_FILE": "nowhere.yml"], Self.documentFiles),
        ]
        for (name, env, files) in cases {
            let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: env, files: files, cwd: home.path)
            #expect(run.result.status == 0, "\(name): \(run.result.stderr)")
            #expect(run.running == "kaleem-api:2.0.0", "\(name)")
            #expect(Self.composeFiles(run).files == [Self.both(run)], "\(name): \(run.rawCalls)")
        }
        // Without either, Compose's default file alone: the document's base file defines no nginx (the image
        // override alone makes an api), and the deploy is rolled back at nginx -t ("no such service: nginx"), as it
        // would be with real Compose.
        let baseOnly = try deploy(redisURL: redis.url, health: try HTTPRecorder(), files: Self.documentFiles, cwd: home.path)
        #expect(baseOnly.result.status == 1, "\(baseOnly.result.stderr)")
        #expect(baseOnly.result.stderr.contains("no such service: nginx"), "\(baseOnly.result.stderr)")
        #expect(try #require(baseOnly.catalog).deployments().first?.reason == "nginx-config-invalid")
    }

    /// Compose 2.14 and older print no Image in `ps --format json` (and always the array form; the line form is
    /// checked too): the script asks docker inspect. A good deploy is not rolled back; one whose image was not
    /// applied still is.
    @Test(arguments: ["array", "lines"])
    func composeWithoutImageInPs(psFormat: String) throws {
        let redis = try RedisTestServer()
        let good = try deploy(redisURL: redis.url, health: try HTTPRecorder(), psFormat: psFormat, extraEnv: ["DOCKER_PS_NO_IMAGE": "1"])
        #expect(good.result.status == 0, "\(good.result.stderr)")
        #expect(good.result.stderr.contains("running now: kaleem-api:1.9.0"), "\(good.result.stderr)")
        #expect(Self.steps(good) == ["pull", "pre-deploy", "ps", "inspect", "up", "ps", "inspect", "nginx -t", "nginx -s reload", "post-deploy"], "\(good.calls)")
        #expect(good.running == "kaleem-api:2.0.0")
        #expect(try #require(good.catalog).deployments().map(\.event) == [DeploymentOutcome.success])

        let bad = try deploy(redisURL: redis.url, health: try HTTPRecorder(), psFormat: psFormat, extraEnv: ["DOCKER_PS_NO_IMAGE": "1"],
                             files: ["docker-compose.image.override.yml": "services:\n  api:\n    restart: always\n"])
        #expect(bad.result.status == 1, "\(bad.result.stderr)")
        #expect(bad.result.stderr.contains("do not run kaleem-api:2.0.0"), "\(bad.result.stderr)")
        let events = try #require(bad.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.rollback, .failed])
        #expect(events.first?.reason == "image-not-applied")
        #expect(bad.running == "kaleem-api:1.9.0")

        // The document's production file: 3 replicas, each container's image asked of docker inspect.
        let replicas = try deploy(redisURL: redis.url, health: try HTTPRecorder(), psFormat: psFormat,
                                  extraEnv: ["DOCKER_PS_NO_IMAGE": "1", "COMPOSE_FILES": "docker-compose.yml docker-compose.prod.yml"],
                                  files: Self.documentFiles)
        #expect(replicas.result.status == 0, "\(replicas.result.stderr)")
        let inspect = Array(repeating: "inspect", count: 3)
        #expect(Self.steps(replicas) == ["pull", "pre-deploy", "ps"] + inspect + ["up", "ps"] + inspect + ["nginx -t", "nginx -s reload", "post-deploy"], "\(replicas.calls)")
        #expect(replicas.running == "kaleem-api:2.0.0")
    }

    /// The docker stand-in finds its project as Compose does and fails as Compose fails without one
    /// (Tests/StandIns/README.md names the upstream files).
    @Test func theDockerStandInFindsItsProjectLikeCompose() throws {
        let stack = TemporaryDirectory("kb-stack"), elsewhere = TemporaryDirectory("kb-home")
        try "services:\n  api:\n    image: kaleem-api:1.9.0\n  nginx:\n    image: nginx:1.25\n".write(toFile: stack.file("docker-compose.yml"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: stack.file("sub"), withIntermediateDirectories: false)
        func docker(_ args: [String], in dir: String, _ env: [String: String] = [:]) throws -> ProcessResult {
            try runProcess(packageRoot + "/Tests/StandIns/docker", args, environment: cliEnvironment(env), currentDirectory: dir)
        }
        let ps = ["compose", "ps", "--format", "json"]
        let none = try docker(ps, in: elsewhere.path)
        #expect(none.status == 1 && none.stderr == "no configuration file provided: not found\n", "\(none.stderr)")
        let relative = try docker(["compose", "-f", "docker-compose.yml"] + ps.dropFirst(), in: elsewhere.path)
        #expect(relative.status == 1 && relative.stderr.contains("open \(elsewhere.path)/docker-compose.yml: no such file or directory"), "\(relative.stderr)")
        let parent = try docker(ps + ["api"], in: stack.file("sub"))
        #expect(parent.status == 0 && parent.stdout.contains("\"Image\": \"kaleem-api:1.0.0\""), "\(parent.stdout) \(parent.stderr)")
        let name = URL(fileURLWithPath: stack.path).lastPathComponent
        let fromEnv = try docker(ps + ["api"], in: elsewhere.path, ["COMPOSE_FILE": "../\(name)/docker-compose.yml"])
        #expect(fromEnv.status == 0 && fromEnv.stdout.split(separator: "\n").count == 1, "\(fromEnv.stdout) \(fromEnv.stderr)")
        let separator = try docker(ps, in: elsewhere.path, ["COMPOSE_FILE": "../\(name)/docker-compose.yml|../\(name)/nowhere.yml", "COMPOSE_PATH_SEPARATOR": "|"])
        #expect(separator.status == 1 && separator.stderr.contains("stat \(stack.path)/nowhere.yml: no such file or directory"), "\(separator.stderr)")
        let service = try docker(ps + ["web"], in: stack.path)
        #expect(service.status == 1 && service.stderr == "no such service: web\n")
        // Compose 2.14: an array without Image; docker inspect answers by ID.
        let old = try docker(ps + ["api"], in: stack.path, ["DOCKER_PS_FORMAT": "array", "DOCKER_PS_NO_IMAGE": "1"])
        let items = try #require(try JSONSerialization.jsonObject(with: Data(old.stdout.utf8)) as? [[String: Any]])
        #expect(items.count == 1 && items[0]["Image"] == nil && items[0]["Service"] as? String == "api")
        let id = try #require(items[0]["ID"] as? String)
        let inspect = try docker(["inspect", "--format", "{{.Config.Image}}", id], in: "/")
        #expect(inspect.status == 0 && inspect.stdout == "kaleem-api:1.0.0\n")
        let unknown = try docker(["inspect", "--format", "{{.Config.Image}}", "nothing"], in: "/")
        #expect(unknown.status == 1 && unknown.stderr == "Error: No such object: nothing\n")
    }

    /// An override file of the operator's that does not set the image: the new image never runs; the script sees
    /// it, rolls back and fails (never reports success for an image that was not applied).
    @Test func anImageThatWasNotAppliedRollsBack() throws {
        let redis = try RedisTestServer()
        let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(),
                             files: ["docker-compose.image.override.yml": "services:\n  api:\n    restart: always\n"])
        #expect(run.result.status == 1, "\(run.result.stderr)")
        #expect(run.result.stderr.contains("do not run kaleem-api:2.0.0"), "\(run.result.stderr)")
        let events = try #require(run.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.rollback, .failed])
        #expect(events.first?.reason == "image-not-applied")
        #expect(run.running == "kaleem-api:1.9.0")
    }

    /// A failed pull is a failed deploy: nothing changed and no restore point taken, but recorded (the failed
    /// series goes up, so DeploymentFailed fires), notified, exit 1 (#35).
    @Test func aFailedPullIsAFailedDeploy() throws {
        let redis = try RedisTestServer()
        let health = try HTTPRecorder()
        let run = try deploy(redisURL: redis.url, health: health, extraEnv: ["DOCKER_PULL_FAIL": "1", "DEPLOY_ID": "deploy-pull-1"])
        #expect(run.result.status == 1)
        #expect(Self.steps(run) == ["pull", "post-deploy"], "\(run.calls)")
        #expect(run.result.stderr.contains("NOT deploying"))
        let catalog = try #require(run.catalog)
        #expect(try catalog.artifacts().isEmpty) // no restore point taken, nothing pinned
        let events = try catalog.deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.failed] && events[0].reason == "pull-failed" && events[0].deployID == "deploy-pull-1")
        #expect(health.requests.isEmpty)
        #expect(run.webhook.map { $0["event"] as? String } == ["deploy_failed"], "\(run.webhook)")
        #expect(run.webhook.first?["reason"] as? String == "pull-failed" && run.webhook.first?["deploy_id"] as? String == "deploy-pull-1")
        let metrics = try String(contentsOfFile: run.directory.file("m/kaleem_backup.prom"), encoding: .utf8)
        #expect(metrics.contains("deployment_duration_seconds_count{environment=\"production\",service=\"api\",status=\"failed\"} 1"), "\(metrics)")
        #expect(metrics.contains("deployment_success_total{environment=\"production\",service=\"api\"} 0"), "\(metrics)")
    }

    /// Each attempt is one event: the series exist at 0 from the first export (a nightly backup), a failed
    /// attempt, its retry and a redeploy of the same tag are three attempts, and the same attempt reported twice
    /// is counted once (#35).
    @Test func everyAttemptIsCounted() throws {
        let redis = try RedisTestServer()
        let stack = TemporaryDirectory()
        func metrics() throws -> String { try String(contentsOfFile: stack.file("m/kaleem_backup.prom"), encoding: .utf8) }
        func sample(_ name: String, _ status: String? = nil) throws -> String? {
            let labels = "environment=\"production\",service=\"api\"" + (status.map { ",status=\"\($0)\"" } ?? "")
            return try metrics().split(separator: "\n").first { $0.hasPrefix("\(name){\(labels)} ") }.map { String($0.split(separator: " ").last!) }
        }
        // The first export, before any deploy: both outcomes at 0.
        writeRedisPolicy(in: stack, url: redis.url, extra: "metrics: { textfile: \(stack.file("m/kaleem_backup.prom")) }")
        #expect(try runCLI(["backup", "--policy", stack.file("policy.yml")]).status == 0)
        #expect(try sample("deployment_duration_seconds_count", "failed") == "0")
        #expect(try sample("deployment_duration_seconds_count", "success") == "0")
        #expect(try sample("deployment_success_total") == "0")
        #expect(try runProcess("/bin/sh", ["-c", "promtool check metrics < \"$0\"", stack.file("m/kaleem_backup.prom")]).status == 0)

        let failed = try deploy(redisURL: redis.url, health: try HTTPRecorder(statuses: [500, 500, 500]), stack: stack)
        #expect(failed.result.status == 1, "\(failed.result.stderr)")
        #expect(try sample("deployment_duration_seconds_count", "failed") == "1")
        let retry = try deploy(redisURL: redis.url, health: try HTTPRecorder(), stack: stack)
        #expect(retry.result.status == 0, "\(retry.result.stderr)")
        let again = try deploy(redisURL: redis.url, health: try HTTPRecorder(), stack: stack)
        #expect(again.result.status == 0, "\(again.result.stderr)")
        #expect(try sample("deployment_duration_seconds_count", "failed") == "1")
        #expect(try sample("deployment_duration_seconds_count", "success") == "2")
        #expect(try sample("deployment_success_total") == "2")
        let events = try #require(again.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.rollback, .failed, .success, .success])
        #expect(Set(events.compactMap(\.deployID)).count == 3, "\(events)")
        // The same attempt reported again: counted once.
        let id = try #require(events.last?.deployID)
        let twice = try runCLI(["hook", "post-deploy", "--release", "kaleem-api:2.0.0", "--outcome", "success", "--deploy-id", id,
                                "--policy", stack.file("policy.yml")])
        #expect(twice.status == 0, "\(twice.stderr)")
        #expect(try sample("deployment_success_total") == "2")
        // A failure before any restore point needs its attempt named; a success never goes without one.
        let unnamed = try runCLI(["hook", "post-deploy", "--release", "kaleem-api:9.9.9", "--outcome", "failed", "--policy", stack.file("policy.yml")])
        #expect(unnamed.status == 2 && unnamed.stderr.contains("--deploy-id"), "\(unnamed.stderr)")
        let named = try runCLI(["hook", "post-deploy", "--release", "kaleem-api:9.9.9", "--outcome", "success", "--deploy-id", "deploy-x",
                                "--policy", stack.file("policy.yml")])
        #expect(named.status == 2, "\(named.stderr)")
        let bad = try runCLI(["hook", "post-deploy", "--release", "kaleem-api:2.0.0", "--outcome", "failed", "--deploy-id", "a b",
                              "--policy", stack.file("policy.yml")])
        #expect(bad.status == 2 && bad.stderr.contains("--deploy-id"), "\(bad.stderr)")
    }

    /// The new image is unhealthy, the previous one is healthy again: exit 1, the rollback recorded and notified.
    @Test func healthFailureRollsBack() throws {
        let redis = try RedisTestServer()
        let health = try HTTPRecorder(statuses: [500, 500, 500]) // three failed checks of the new image, then 200
        let run = try deploy(redisURL: redis.url, health: health)
        #expect(run.result.status == 1, "\(run.result.stderr)")
        #expect(run.ups == ["kaleem-api:2.0.0", "kaleem-api:1.9.0"])
        #expect(Self.steps(run) == ["pull", "pre-deploy", "ps", "up", "ps", "up", "ps", "rollback", "post-deploy"], "\(run.calls)")
        #expect(run.running == "kaleem-api:1.9.0")
        let events = try #require(run.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.rollback, .failed])
        #expect(events.first?.reason == "health-check-failed")
        #expect(run.result.stderr.contains("back and healthy"))
        #expect(run.webhook.map { $0["event"] as? String } == ["deploy_started", "rollback", "deploy_failed"], "\(run.webhook)")
        #expect(run.webhook[1]["reason"] as? String == "health-check-failed" && run.webhook[1]["data_restored"] as? Bool == false)
    }

    /// Neither image is healthy: exit 3, said loudly, and a critical rollback_failed notification.
    @Test func aRollbackThatDoesNotComeBackExits3() throws {
        let redis = try RedisTestServer()
        let health = try HTTPRecorder(statuses: Array(repeating: 503, count: 100))
        let run = try deploy(redisURL: redis.url, health: health)
        #expect(run.result.status == 3, "\(run.result.stderr)")
        #expect(run.result.stderr.contains("CRITICAL") && run.result.stderr.contains("THE SERVICE IS DOWN"))
        #expect(try #require(run.catalog).deployments().map(\.event) == [DeploymentOutcome.rollback, .failed])
        #expect(run.webhook.map { $0["event"] as? String } == ["deploy_started", "rollback", "rollback_failed"], "\(run.webhook)")
        #expect(run.webhook.last?["severity"] as? String == "critical")
    }

    /// compose up itself fails (for the new image and then for the previous one): the reason says so, exit 3.
    @Test func aComposeUpThatFailsIsRolledBackAndSaid() throws {
        let redis = try RedisTestServer()
        let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: ["DOCKER_UP_FAIL": "1"])
        #expect(run.result.status == 3, "\(run.result.stderr)")
        #expect(run.result.stderr.contains("docker compose up failed for kaleem-api:2.0.0"))
        #expect(try #require(run.catalog).deployments().first?.reason == "compose-up-failed")
    }

    /// nginx -t fails and no good configuration is kept yet: the API, healthy, stays; nginx is not reloaded;
    /// the deploy is recorded failed and the notification says both (#35). NGINX_RELOAD=0 skips nginx.
    @Test func aFailingNginxTestKeepsAHealthyAPI() throws {
        let redis = try RedisTestServer()
        let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: ["DOCKER_NGINX_TEST": "fail"])
        #expect(run.result.status == 1, "\(run.result.stderr)")
        #expect(!Self.steps(run).contains("nginx -s reload"))
        let events = try #require(run.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.failed] && events[0].reason == "nginx-config-invalid", "\(events)")
        #expect(run.running == "kaleem-api:2.0.0")
        let failed = try #require(run.webhook.last)
        #expect(failed["event"] as? String == "deploy_failed" && failed["reason"] as? String == "nginx-config-invalid")
        let detail = try #require(failed["detail"] as? String)
        #expect(detail.contains("nginx -t failed") && detail.contains("unknown directive") && detail.contains("not reloaded"), "\(detail)")
        #expect(detail.contains("api: kaleem-api:2.0.0 healthy, kept"), "\(detail)")
        // NGINX_RELOAD=0 skips nginx altogether.
        let skipped = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: ["DOCKER_NGINX_TEST": "fail", "NGINX_RELOAD": "0"])
        #expect(skipped.result.status == 0, "\(skipped.result.stderr)")
        #expect(!Self.steps(skipped).contains { $0.hasPrefix("nginx") })
    }

    /// nginx -t fails and then the API's own health fails too: the API is rolled back (its health, not nginx's
    /// failure, decides).
    @Test func theAPIIsRolledBackOnlyWhenItsOwnHealthFails() throws {
        let redis = try RedisTestServer()
        // The new image healthy at once, then unhealthy for the check after nginx; the previous image healthy.
        let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(statuses: [200, 500, 500, 500]), extraEnv: ["DOCKER_NGINX_TEST": "fail"])
        #expect(run.result.status == 1, "\(run.result.stderr)")
        #expect(run.running == "kaleem-api:1.9.0")
        let events = try #require(run.catalog).deployments()
        #expect(events.map(\.event) == [DeploymentOutcome.rollback, .failed] && events[0].reason == "nginx-config-invalid", "\(events)")
        let rollback = try #require(run.webhook.first { $0["event"] as? String == "rollback" })
        let detail = try #require(rollback["detail"] as? String)
        #expect(detail.contains("nginx -t failed") && detail.contains("api: rolled back to kaleem-api:1.9.0 (healthy)"), "\(detail)")
    }

    static let goodNginx = "worker_processes auto;\nevents { worker_connections 1024; }\nhttp {\n  upstream api_upstream {\n    server api:3000;\n  }\n}\n"

    /// nginx rolled back with its own configuration: a deploy whose nginx check passes keeps the configuration;
    /// the next one, whose nginx.conf fails nginx -t, gets it back (tested again, reloaded), the failing files
    /// kept aside; the healthy API stays; exit 4, and the notification says both (#35).
    @Test func nginxIsRolledBackWithItsOwnConfiguration() throws {
        let redis = try RedisTestServer()
        let stack = TemporaryDirectory()
        var files = Self.documentFiles
        files["nginx.conf"] = Self.goodNginx
        let env = ["DOCKER_NGINX_TEST": "config", "COMPOSE_FILES": "docker-compose.yml docker-compose.prod.yml"]
        let first = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: env, files: files, stack: stack)
        #expect(first.result.status == 0, "\(first.result.stderr)")
        #expect(try String(contentsOfFile: stack.file(".kaleem-deploy/nginx-good/nginx.conf"), encoding: .utf8) == Self.goodNginx)
        var attributes = try FileManager.default.attributesOfItem(atPath: stack.file(".kaleem-deploy"))
        #expect((attributes[.posixPermissions] as? Int) == 0o700)

        let broken = Self.goodNginx.replacingOccurrences(of: "    server api:3000;", with: "    sever api:3000;")
        try broken.write(toFile: stack.file("nginx.conf"), atomically: true, encoding: .utf8)
        let second = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: env.merging(["KALEEM_API_IMAGE": "kaleem-api:2.1.0", "DEPLOY_ID": "deploy-two"]) { $1 },
                                stack: stack)
        #expect(second.result.status == 4, "\(second.result.stderr)")
        #expect(second.result.stderr.contains("unknown directive \"sever\" in /etc/nginx/nginx.conf:5"), "\(second.result.stderr)")
        #expect(Self.steps(second) == ["pull", "pre-deploy", "ps", "up", "ps", "nginx -t", "nginx -t", "nginx -s reload", "rollback", "post-deploy"], "\(second.calls)")
        #expect(second.running == "kaleem-api:2.1.0")
        #expect(try String(contentsOfFile: stack.file("nginx.conf"), encoding: .utf8) == Self.goodNginx)
        #expect(try String(contentsOfFile: stack.file(".kaleem-deploy/nginx-failed-deploy-two/nginx.conf"), encoding: .utf8) == broken)
        attributes = try FileManager.default.attributesOfItem(atPath: stack.file(".kaleem-deploy/nginx-failed-deploy-two"))
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        let events = try #require(second.catalog).deployments().filter { $0.deployID == "deploy-two" }
        #expect(events.map(\.event) == [DeploymentOutcome.rollback, .success] && events[0].reason == "nginx-config-restored", "\(events)")
        #expect(second.webhook.map { $0["event"] as? String } == ["deploy_started", "rollback", "deploy_succeeded"], "\(second.webhook)")
        let detail = try #require(second.webhook[1]["detail"] as? String)
        #expect(detail.contains("last good configuration was put back") && detail.contains("api: kaleem-api:2.1.0 healthy, kept"), "\(detail)")
        #expect(second.webhook[1]["data_restored"] as? Bool == false)
        let releases = try String(contentsOfFile: stack.file(".kaleem-deploy/releases"), encoding: .utf8)
        #expect(releases.split(separator: "\n").map { $0.split(separator: "\t").dropFirst(2).joined(separator: " ") }
                == ["kaleem-api:2.0.0 deployed kaleem-api:1.9.0", "kaleem-api:2.1.0 deployed kaleem-api:2.0.0"], "\(releases)")
    }

    /// The document's nginx_status check (§5.5.2) after the reload, when NGINX_STATUS_URL is set: stub_status's
    /// answer passes; anything else fails nginx's check (no good configuration kept yet: the API stays, exit 1).
    @Test func nginxStatusIsChecked() throws {
        let redis = try RedisTestServer()
        let stub = try HTTPRecorder { _ in (200, ["Content-Type": "text/plain"], "Active connections: 3 \nserver accepts handled requests\n 16 16 31 \nReading: 0 Writing: 1 Waiting: 2 \n") }
        let ok = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: ["NGINX_STATUS_URL": stub.url + "/nginx_status"])
        #expect(ok.result.status == 0, "\(ok.result.stderr)")
        #expect(stub.requests.map(\.path) == ["/nginx_status"])
        #expect(ok.result.stderr.contains("nginx_status: Active connections: 3"), "\(ok.result.stderr)")

        let wrong = try HTTPRecorder { _ in (404, [:], "404 Not Found") }
        let bad = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: ["NGINX_STATUS_URL": wrong.url + "/nginx_status", "SLEEP_SECONDS": "0"])
        #expect(bad.result.status == 1, "\(bad.result.stderr)")
        #expect(wrong.requests.count == 3)
        #expect(bad.running == "kaleem-api:2.0.0")
        let detail = try #require(bad.webhook.last?["detail"] as? String)
        #expect(detail.contains("nginx_status (\(wrong.url)/nginx_status) did not answer"), "\(detail)")
    }

    /// Prometheus's `GET /api/v1/alerts`, as Prometheus 2.42 answered it with policies/alerts/backup.rules.yml
    /// loaded (Tests/Fixtures/prometheus/alerts.json: BackupCorrupt firing for redis, APIHighErrorRate firing,
    /// BackupLastRunFailed and BackupMetricsMissing pending); any other path: Prometheus's 404.
    static func prometheus() throws -> HTTPRecorder {
        let alerts = try String(contentsOfFile: packageRoot + "/Tests/Fixtures/prometheus/alerts.json", encoding: .utf8)
        return try HTTPRecorder { request in
            request.path == "/api/v1/alerts" ? (200, ["Content-Type": "application/json"], alerts) : (404, ["Content-Type": "text/plain; charset=utf-8"], "404 page not found\n")
        }
    }

    /// kaleem-backup's calls of a run by subcommand ("hook rollback", "list", "backup", "diff").
    static func kbCalls(_ run: Run) -> [String] {
        run.calls.filter { $0.first == "kaleem-backup" }.map { $0[1] == "hook" ? "hook " + $0[2] : $0[1] }
    }

    /// §3 on demand: `deploy.sh rollback` puts back the release that ran before the running one, through the same
    /// compose files and override file; nginx checked and reloaded; the data of the running release's restore
    /// point compared with the live source (a backup now, then diff); the alerts listed when PROMETHEUS_URL is
    /// set; the notification says all of it; a final health check. A second rollback has no release before
    /// 1.9.0 to go to: exit 2, nothing changed (#35).
    @Test func rollbackOnDemandToThePreviousRelease() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        defer { c.close() }
        try SampleData.fill(c, databases: [0], keysPerType: 2)
        let stack = TemporaryDirectory()
        let env = ["COMPOSE_FILES": "docker-compose.yml docker-compose.prod.yml"]
        let deployed = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: env, files: Self.documentFiles, stack: stack)
        #expect(deployed.result.status == 0, "\(deployed.result.stderr)")
        _ = try c.command("SET", "written-by-2.0.0", "x")

        let prometheus = try Self.prometheus()
        let health = try HTTPRecorder()
        let run = try deploy(redisURL: redis.url, health: health, extraEnv: env.merging(["PROMETHEUS_URL": prometheus.url + "/"]) { $1 },
                             stack: stack, arguments: ["rollback"])
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(run.running == "kaleem-api:1.9.0")
        #expect(run.ups == ["kaleem-api:1.9.0"])
        #expect(Self.composeFiles(run).files == Self.composeFiles(deployed).files, "\(run.rawCalls)")
        #expect(Self.steps(run).enumerated().filter { run.calls[$0.offset].first != "kaleem-backup" }.map(\.element)
                == ["ps", "up", "ps", "nginx -t", "nginx -s reload"], "\(run.calls)")
        #expect(Self.kbCalls(run) == ["list", "backup", "diff", "hook rollback"], "\(run.calls)")
        #expect(prometheus.requests.map(\.path) == ["/api/v1/alerts"])
        #expect(health.requests.count == 2) // the image's check, the final one
        let stderr = run.result.stderr
        #expect(stderr.contains("rolling api back from kaleem-api:2.0.0 to kaleem-api:1.9.0"), "\(stderr)")
        #expect(stderr.contains("data: redis since the restore point") && stderr.contains("1 added, 0 changed, 0 removed"), "\(stderr)")
        #expect(stderr.contains("alerts: BackupCorrupt{instance=127.0.0.1:19111,job=node,source=redis} (critical); 1 other alert(s) firing"), "\(stderr)")
        // The catalog: the rollback of 2.0.0, under this rollback's id; a pre-rollback backup of the live state.
        let catalog = try #require(run.catalog)
        let rollback = try #require(try catalog.deployments().last)
        #expect(rollback.event == .rollback && rollback.release == "kaleem-api:2.0.0" && rollback.reason == "manual")
        #expect(rollback.deployID?.hasPrefix("rollback-") == true)
        #expect(try catalog.artifacts().contains { $0.tag.rawValue == "pre-rollback" && $0.release == "kaleem-api:2.0.0" })
        // The data was compared, not restored.
        _ = try c.command("SELECT", "0")
        #expect(try c.command("EXISTS", "written-by-2.0.0") == .integer(1))
        // One notification, saying everything.
        #expect(run.webhook.map { $0["event"] as? String } == ["rollback"], "\(run.webhook)")
        let detail = try #require(run.webhook.first?["detail"] as? String)
        for part in ["api: rolled back from kaleem-api:2.0.0 to kaleem-api:1.9.0 (healthy)", "nginx: configuration tested and reloaded",
                     "redis: 1 added", "alerts: BackupCorrupt"] {
            #expect(detail.contains(part), "\(part): \(detail)")
        }
        #expect(run.webhook.first?["data_restored"] as? Bool == false)

        let again = try deploy(redisURL: redis.url, health: try HTTPRecorder(), extraEnv: env, stack: stack, arguments: ["rollback"])
        #expect(again.result.status == 2, "\(again.result.stderr)")
        #expect(again.result.stderr.contains("no release deployed before kaleem-api:1.9.0 is known") && again.result.stderr.contains("--to RELEASE"), "\(again.result.stderr)")
        #expect(again.ups.isEmpty && again.running == "kaleem-api:1.9.0")
    }

    /// `rollback --to RELEASE --restore-data`: the named image, the running release's restore point restored into
    /// Redis; Prometheus unreachable is said, not fatal. The same target again: exit 2.
    @Test func rollbackToANamedReleaseWithItsData() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        defer { c.close() }
        try SampleData.fill(c, databases: [0], keysPerType: 2)
        let stack = TemporaryDirectory()
        #expect(try deploy(redisURL: redis.url, health: try HTTPRecorder(), stack: stack).result.status == 0)
        _ = try c.command("SET", "written-by-2.0.0", "x")
        let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(),
                             extraEnv: ["PROMETHEUS_URL": "http://kb:s3cret-word@127.0.0.1:\(try FreePort.pick())"], stack: stack,
                             arguments: ["rollback", "--to", "kaleem-api:1.8.0", "--restore-data", "--reason", "bad-migration"])
        #expect(run.result.status == 0, "\(run.result.stderr)")
        #expect(run.running == "kaleem-api:1.8.0")
        _ = try c.command("SELECT", "0")
        #expect(try c.command("EXISTS", "written-by-2.0.0") == .integer(0))
        let event = try #require(run.webhook.first)
        #expect(event["event"] as? String == "rollback" && event["reason"] as? String == "bad-migration" && event["data_restored"] as? Bool == true, "\(event)")
        #expect((event["detail"] as? String)?.contains("alerts: not checked: http://***@127.0.0.1") == true, "\(event)")
        // The URL's credentials reach neither the log nor the notification.
        #expect(!run.result.stderr.contains("s3cret-word") && !run.result.stdout.contains("s3cret-word"))
        #expect(!(event["detail"] as? String ?? "").contains("s3cret-word"))
        let same = try deploy(redisURL: redis.url, health: try HTTPRecorder(), stack: stack, arguments: ["rollback", "--to", "kaleem-api:1.8.0"])
        #expect(same.result.status == 2 && same.result.stderr.contains("already runs"), "\(same.result.stderr)")
        for bad in [["rollback", "--to"], ["rollback", "--bogus"], ["rollback", "--reason", "Two Words"], ["redeploy"]] {
            let r = try deploy(redisURL: redis.url, health: try HTTPRecorder(), stack: stack, arguments: bad)
            #expect(r.result.status == 2 && r.calls.isEmpty, "\(bad): \(r.result.stderr)")
        }
    }

    /// A rollback that does not come back: exit 3 and a critical notification.
    @Test func aRollbackOnDemandThatDoesNotComeBackExits3() throws {
        let redis = try RedisTestServer()
        let stack = TemporaryDirectory()
        #expect(try deploy(redisURL: redis.url, health: try HTTPRecorder(), stack: stack).result.status == 0)
        let run = try deploy(redisURL: redis.url, health: try HTTPRecorder(statuses: Array(repeating: 503, count: 100)), stack: stack, arguments: ["rollback"])
        #expect(run.result.status == 3, "\(run.result.stderr)")
        #expect(run.result.stderr.contains("THE SERVICE IS DOWN"))
        #expect(run.webhook.map { $0["event"] as? String } == ["rollback_failed"], "\(run.webhook)")
        #expect(run.webhook.first?["severity"] as? String == "critical")
        #expect(try #require(run.catalog).deployments().last?.reason == "rollback-manual")
    }

    @Test func missingVariablesAreNamed() throws {
        let r = try runProcess("/bin/bash", [packageRoot + "/scripts/deploy.sh"], environment: cliEnvironment())
        #expect(r.status == 2)
        #expect(r.stderr.contains("KALEEM_API_IMAGE"))
    }

    /// Every script of the repository (deploy, test, package, benchmarks, checks) and the CI entry point, with
    /// the files they source (scripts/lib/bench.sh) followed (-x).
    @Test func shellcheckClean() throws {
        let scripts = try FileManager.default.contentsOfDirectory(atPath: packageRoot + "/scripts").filter { $0.hasSuffix(".sh") }.sorted()
        #expect(scripts.contains("deploy.sh") && scripts.contains("package-deb.sh") && scripts.contains("bench-bucket-scale.sh"))
        let r = try runProcess("shellcheck", ["-x"] + scripts.map { packageRoot + "/scripts/" + $0 } + [packageRoot + "/.ci/run"])
        #expect(r.status == 0, "\(r.stdout)")
    }
}

/// The hooks refuse the mistakes a person on call makes: a typo in a release, a second confirmation, a rehearsal.
@Suite(.blockingThreads) struct HookMistakeTests {
    @Test func hooksRefuseUnknownReleasesAndRehearsalsRecordNothing() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: "retention: { keep_last: 1, daily: 0, pre_deploy: 1 }")
        #expect(try runCLI(["hook", "pre-deploy", "--release", "api:1.0", "--policy", policy]).status == 0)
        #expect(try runCLI(["hook", "post-deploy", "--release", "api:1.0", "--outcome", "success", "--policy", policy]).status == 0)
        let catalog = try Catalog(path: dir.file("repo/catalog.sqlite"))
        #expect(try catalog.artifacts().filter { $0.release == "api:1.0" }.allSatisfy(\.pinned))

        // A typo: refused, nothing recorded, the real restore point stays pinned.
        let typo = try runCLI(["hook", "post-deploy", "--release", "api:1.O", "--outcome", "success", "--policy", policy])
        #expect(typo.status == 2 && typo.stderr.contains("api:1.0"), "\(typo.stderr)")
        #expect(try catalog.artifacts().filter { $0.release == "api:1.0" }.allSatisfy(\.pinned))
        #expect(try catalog.deployments().count == 1)
        // Twice for the same release: counted once.
        #expect(try runCLI(["hook", "post-deploy", "--release", "api:1.0", "--outcome", "success", "--policy", policy]).status == 0)
        #expect(try catalog.deployments().count == 1)

        // A rollback with data of a release without restore point: refused, naming those that have one.
        let rollback = try runCLI(["hook", "rollback", "--release", "api:9.9", "--reason", "health", "--restore-data", "--yes", "--policy", policy])
        #expect(rollback.status == 2 && rollback.stderr.contains("the releases with a restore point are: api:1.0"), "\(rollback.stderr)")
        #expect(try catalog.deployments().count == 1)
        // A rehearsal says what it would restore and records nothing.
        let dry = try runCLI(["hook", "rollback", "--release", "api:1.0", "--reason", "drill", "--restore-data", "--dry-run", "--policy", policy])
        #expect(dry.status == 0 && dry.stdout.contains("would restore redis from"), "\(dry.stdout) \(dry.stderr)")
        #expect(try catalog.deployments().count == 1)
        #expect(try catalog.restores(source: "redis").isEmpty)
    }
}

/// runbooks/deploy-and-rollback.md, every command of its `sh` blocks run in order, as written, on a stack laid out
/// as the operations document's host (its compose files, nginx.conf) with the stand-in docker, a real kaleem-backup
/// and Redis, and HTTP stand-ins for the health URL, nginx_status and Prometheus; only the host's paths and URLs
/// are replaced by the test's. A command expects exit 0 unless it says `# exit N` (#35).
@Suite(.blockingThreads) struct DeployRunbookTests {
    /// The commands of the `sh` blocks (`\` continuations joined), each with the exit status it expects.
    static func commands(_ path: String) throws -> [(command: String, status: Int32)] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var commands: [(String, Int32)] = [], inBlock = false, pending = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inBlock = !inBlock && line == "```sh"; continue }
            guard inBlock else { continue }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty && (trimmed.isEmpty || trimmed.hasPrefix("#")) { continue }
            if trimmed.hasSuffix("\\") { pending += String(trimmed.dropLast()) + " "; continue }
            let command = pending + trimmed
            pending = ""
            var status: Int32 = 0
            if let r = command.range(of: "# exit "), let n = Int32(command[r.upperBound...].prefix { $0.isNumber }) { status = n }
            commands.append((command, status))
        }
        return commands
    }

    @Test func everyCommandOfTheDeployRunbookRuns() throws {
        let commands = try Self.commands(packageRoot + "/runbooks/deploy-and-rollback.md")
        #expect(commands.count >= 12, "\(commands)")
        #expect(commands.contains { $0.command.contains("deploy.sh rollback --to") && $0.command.contains("--restore-data") })

        let redis = try RedisTestServer()
        let c = try redis.connect()
        defer { c.close() }
        try SampleData.fill(c, databases: [0], keysPerType: 2)
        let stack = TemporaryDirectory("kb-opt-kaleem"), etc = TemporaryDirectory(), home = TemporaryDirectory("kb-home")
        var files = DeployScriptTests.documentFiles
        files["nginx.conf"] = DeployScriptTests.goodNginx
        for (name, text) in files { try text.write(toFile: stack.file(name), atomically: true, encoding: .utf8) }
        try FileManager.default.createDirectory(atPath: stack.file("scripts"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: stack.file("scripts/deploy.sh"), withDestinationPath: packageRoot + "/scripts/deploy.sh")
        try FileManager.default.createDirectory(atPath: home.file("bin"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: home.file("bin/kaleem-backup"), withDestinationPath: try kaleemBinary())
        let webhook = try HTTPRecorder()
        let policy = writeRedisPolicy(in: etc, url: redis.url, extra: "notify: { webhook: \"\(webhook.url)/hook\", on: [failure, deploy], attempts: 1 }\nmetrics: { textfile: \(etc.file("m/kaleem_backup.prom")) }")
        let health = try HTTPRecorder()
        let stub = try HTTPRecorder { _ in (200, [:], "Active connections: 1 \nserver accepts handled requests\n 1 1 1 \nReading: 0 Writing: 1 Waiting: 0 \n") }
        let prometheus = try DeployScriptTests.prometheus()
        func host(_ command: String) -> String {
            command.replacingOccurrences(of: "/etc/kaleem-backup/policy.yml", with: policy)
                .replacingOccurrences(of: "/opt/kaleem", with: stack.path)
                .replacingOccurrences(of: "http://localhost:8088/api/health", with: health.url + "/api/health")
                .replacingOccurrences(of: "http://localhost/nginx_status", with: stub.url + "/nginx_status")
                .replacingOccurrences(of: "http://localhost:9090", with: prometheus.url)
        }
        let env = cliEnvironment([
            "PATH": home.file("bin") + ":" + packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "HOME": home.path, "MAX_ATTEMPTS": "3", "SLEEP_SECONDS": "0.1",
            "DOCKER_PS_IMAGE": "registry.example/kaleem-api:1.4.0", "DOCKER_STATE": stack.file("state.json"),
            "DOCKER_PROJECT": DeployScriptTests.projectName(stack.path), "DOCKER_NGINX_TEST": "config",
        ])
        /// Runs the commands in one shell, in order (exports carry over), from $HOME; the status of each.
        func run(_ list: [String]) throws -> (statuses: [Int32], result: ProcessResult) {
            let statusFile = home.file("statuses")
            try? FileManager.default.removeItem(atPath: statusFile)
            let script = "set +e\n" + list.map { host($0) + "\necho $? >> '\(statusFile)'\n" }.joined()
            let result = try runProcess("/bin/bash", ["-c", script], environment: env, currentDirectory: home.path)
            let statuses = ((try? String(contentsOfFile: statusFile, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
            return (statuses, result)
        }

        // Before the runbook: 1.4.1 deployed over 1.4.0 with the same settings; then data written by 1.4.1.
        let exports = commands.prefix { $0.command.hasPrefix("export ") }.map(\.command)
        #expect(exports.count == 6)
        let before = try run(exports + ["KALEEM_API_IMAGE=registry.example/kaleem-api:1.4.1 /opt/kaleem/scripts/deploy.sh"])
        #expect(before.statuses.last == 0, "\(before.result.stderr)")
        _ = try c.command("SET", "written-by-1.4.1", "x")

        let runbook = try run(commands.map(\.command))
        #expect(runbook.statuses.count == commands.count, "\(runbook.result.stderr)")
        for (i, expected) in commands.enumerated() where i < runbook.statuses.count {
            #expect(runbook.statuses[i] == expected.status, "\(expected.command) exited \(runbook.statuses[i]): \(runbook.result.stderr)")
        }
        // Where it ends: 1.4.0 runs, the data of 1.4.1's restore point is back, everything was said.
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stack.file("state.json")))) as? [String: String]
        #expect(state?["api"] == "registry.example/kaleem-api:1.4.0")
        _ = try c.command("SELECT", "0")
        #expect(try c.command("EXISTS", "written-by-1.4.1") == .integer(0))
        #expect(runbook.result.stdout.contains("registry.example/kaleem-api:1.4.2\tdeployed\tregistry.example/kaleem-api:1.4.1"), "\(runbook.result.stdout)")
        #expect(runbook.result.stdout.contains("would restore redis from"), "\(runbook.result.stdout)")
        #expect(runbook.result.stderr.contains("alerts: BackupCorrupt"), "\(runbook.result.stderr)")
        #expect(!stub.requests.isEmpty && prometheus.requests.count == 2 && !health.requests.isEmpty)
        let events = webhook.requests.compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }.map { $0["event"] as? String ?? "?" }
        #expect(events == ["deploy_started", "deploy_succeeded", "deploy_started", "deploy_succeeded", "rollback", "rollback"], "\(events)")
    }
}
