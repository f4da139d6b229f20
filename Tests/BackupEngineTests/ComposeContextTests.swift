@testable import BackupEngine
import BackupCore
import Foundation
import TestSupport
import Testing

/// The stack's Compose project reaches every `docker compose` call kaleem-backup makes (issue #35): cron starts
/// jobs in $HOME and systemd in /, where Compose (and the strict docker stand-in) finds no project.
@Suite(.serialized, .blockingThreads) struct ComposeContextTests {
    /// A stack with MongoDB as a Compose service, its tools run through `docker compose exec -T mongo`.
    struct Stack {
        let dir: String
        init(compose: Bool) throws {
            // Outside /tmp: the docker stand-in hides /tmp from what it runs "in a container".
            dir = "/var/tmp/kb-compose-\(UUID().uuidString.prefix(8))"
            for d in ["stack", "home", "tmp"] { try FileManager.default.createDirectory(atPath: dir + "/" + d, withIntermediateDirectories: true) }
            FileManager.default.createFile(atPath: dir + "/stack/docker-compose.yml", contents: Data("services:\n  api:\n    image: kaleem-api:1.0.0\n".utf8))
            FileManager.default.createFile(atPath: dir + "/stack/docker-compose.prod.yml", contents: Data("services:\n  mongo:\n    image: mongo:7\n".utf8))
            let project = compose ? "compose: { project_directory: \(dir)/stack, files: [docker-compose.yml, docker-compose.prod.yml], project_name: kaleem }" : ""
            FileManager.default.createFile(atPath: dir + "/policy.yml", contents: Data("""
            repository: { path: \(dir)/repo }
            sources:
              mongo:
                kind: mongodb
                uri: "mongodb://backup:pw@127.0.0.1:27017/?authSource=admin"
                mongodump: [docker, compose, exec, -T, mongo, mongodump]
                mongorestore: [docker, compose, exec, -T, mongo, mongorestore]
                timeout: 20s
            drill:
              mongo_uri: "mongodb://drill:pw@127.0.0.1:27018/"
              mongosh: [docker, compose, exec, -T, mongo, mongosh]
            \(project)
            """.utf8))
        }

        var home: String { dir + "/home" }
        var policy: [String] { ["--policy", dir + "/policy.yml"] }
        var env: [String: String] {
            ["PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
             "HOME": home, "TMPDIR": dir + "/tmp", "STANDIN_LOG": dir + "/standin.jsonl", "DOCKER_LOG": dir + "/docker.jsonl"]
        }

        func dockerCalls() -> [(argv: [String], cwd: String)] {
            let text = (try? String(contentsOfFile: dir + "/docker.jsonl", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap {
                guard let o = try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] else { return nil }
                return ((o["argv"] as? [String]) ?? [], (o["cwd"] as? String) ?? "")
            }
        }

        func cleanup() { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// With `compose:` set, backup (from $HOME), restore and drill (from /) reach the project: every compose call
    /// carries --project-directory, the files and the name.
    @Test func backupRestoreAndDrillFromHomeAndRoot() throws {
        let s = try Stack(compose: true)
        defer { s.cleanup() }
        let backup = try runCLI(["backup", "--json"] + s.policy, environment: s.env, in: s.home)
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        let fromRoot = try runCLI(["backup", "--json"] + s.policy, environment: s.env, in: "/")
        #expect(fromRoot.status == 0, "\(fromRoot.stdout) \(fromRoot.stderr)")
        let restore = try runCLI(["restore", "mongo", "--latest", "--yes"] + s.policy, environment: s.env, in: "/")
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        let drill = try runCLI(["drill", "--json"] + s.policy, environment: s.env, in: "/")
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        #expect((try array(drill.stdout).first?["result"] as? String) == "passed", "\(drill.stdout)")

        let calls = s.dockerCalls()
        #expect(calls.count >= 5)
        let expected = ["compose", "--project-directory", s.dir + "/stack", "-f", s.dir + "/stack/docker-compose.yml",
                        "-f", s.dir + "/stack/docker-compose.prod.yml", "-p", "kaleem", "exec"]
        for call in calls { #expect(Array(call.argv.prefix(expected.count)) == expected, "\(call.argv)") }
        #expect(Set(calls.map(\.cwd)) == [s.home, "/"])

        let check = try runCLI(["policy", "check", "--connect"] + s.policy, environment: s.env, in: "/")
        #expect((check.stdout + check.stderr).contains("sources.mongo.mongodump: Compose project"), "\(check.stdout) \(check.stderr)")
        #expect(!(check.stdout + check.stderr).contains("no configuration file provided"), "\(check.stdout) \(check.stderr)")
    }

    /// Without `compose:` (and without COMPOSE_FILE), Compose finds no project in $HOME: the backup fails with
    /// Compose's own message, and `policy check --connect` says so before any night does.
    @Test func withoutAProjectComposeFailsAsItWould() throws {
        let s = try Stack(compose: false)
        defer { s.cleanup() }
        let backup = try runCLI(["backup", "--json"] + s.policy, environment: s.env, in: s.home)
        #expect(backup.status != 0)
        #expect((backup.stdout + backup.stderr).contains("no configuration file provided: not found"), "\(backup.stdout) \(backup.stderr)")

        let check = try runCLI(["policy", "check", "--connect"] + s.policy, environment: s.env, in: s.home)
        #expect(check.status != 0)
        let text = check.stdout + check.stderr
        #expect(text.contains("sources.mongo.mongodump: Compose project"), "\(text)")
        #expect(text.contains("no configuration file provided: not found"), "\(text)")
        #expect(text.contains("drill.mongosh: Compose project"), "\(text)")

        // COMPOSE_FILE (cron/kaleem-backup.env) is Compose's own way and works as well.
        var env = s.env
        env["COMPOSE_FILE"] = s.dir + "/stack/docker-compose.yml:" + s.dir + "/stack/docker-compose.prod.yml"
        let withVariable = try runCLI(["backup"] + s.policy, environment: env, in: s.home)
        #expect(withVariable.status == 0, "\(withVariable.stderr)")
        // A project without the service is named as such.
        env["COMPOSE_FILE"] = s.dir + "/stack/docker-compose.yml"
        let noService = try runCLI(["policy", "check", "--connect"] + s.policy, environment: env, in: "/")
        #expect((noService.stdout + noService.stderr).contains("no service \"mongo\""), "\(noService.stdout) \(noService.stderr)")
    }

    /// The docker stand-in is strict like Compose: no -f, no COMPOSE_FILE and no compose file in the working
    /// directory or its parents is "no configuration file provided: not found", exit 1.
    @Test(arguments: ["home", "/"]) func dockerStandInWithoutAProject(cwd: String) throws {
        let s = try Stack(compose: false)
        defer { s.cleanup() }
        let r = try runProcess(packageRoot + "/Tests/StandIns/docker", ["compose", "exec", "-T", "mongo", "true"],
                               environment: s.env, currentDirectory: cwd == "home" ? s.home : cwd)
        #expect(r.status == 1)
        #expect(r.stderr.contains("no configuration file provided: not found"), "\(r.stderr)")
        let services = try runProcess(packageRoot + "/Tests/StandIns/docker", ["compose", "--project-directory", s.dir + "/stack", "config", "--services"],
                                      environment: s.env, currentDirectory: "/")
        #expect(services.status == 0 && services.stdout == "api\n", "\(services.stdout) \(services.stderr)")
    }

    /// `compose:` is inserted after `compose` of Compose commands only, and never over a command's own -f.
    @Test func composeOptionsGoWhereComposeReadsThem() {
        let p = ComposeProject(projectDirectory: "/opt/kaleem", files: ["/opt/kaleem/docker-compose.yml"], projectName: "kaleem")
        #expect(p.apply(to: ["docker", "compose", "exec", "-T", "mongo", "mongodump"])
            == ["docker", "compose", "--project-directory", "/opt/kaleem", "-f", "/opt/kaleem/docker-compose.yml", "-p", "kaleem", "exec", "-T", "mongo", "mongodump"])
        #expect(p.apply(to: ["/usr/bin/docker-compose", "exec", "mongo", "mongosh"])
            == ["/usr/bin/docker-compose", "--project-directory", "/opt/kaleem", "-f", "/opt/kaleem/docker-compose.yml", "-p", "kaleem", "exec", "mongo", "mongosh"])
        let own = ["docker", "compose", "-f", "/srv/other.yml", "exec", "-T", "mongo", "mongodump"]
        #expect(p.apply(to: own) == own)
        let run = ["docker", "run", "--rm", "-i", "mongo:7", "mongodump"]
        #expect(p.apply(to: run) == run)
        #expect(p.apply(to: ["mongodump"]) == ["mongodump"])
    }

    static let base = """
    repository: { path: /var/backups/kb }
    sources:
      mongo: { kind: mongodb, uri: "mongodb://h:27017/", mongodump: [docker, compose, exec, -T, mongo, mongodump] }
      redis: { kind: redis, url: "redis://127.0.0.1:6379" }

    """

    @Test(arguments: [
        ("compose: { project_directory: opt/kaleem }", "project_directory must be an absolute directory"),
        ("compose: { files: [docker-compose.yml] }", "is relative: give project_directory"),
        ("compose: { project_directory: /opt/kaleem, project_name: Kaleem }", "is not a Compose project name"),
        ("compose: { project_name: kaleem }", "give project_directory"),
        ("compose: { project_directory: /opt/kaleem, file: [a.yml] }", "file"),
        ("deploy: { pre_deploy_sources: [mongo, minio] }", "no source named \"minio\""),
        ("deploy: { pre_deploy_sources: [] }", "expected at least one source name"),
    ])
    func badComposeAndDeploySettingsAreRefused(extra: String, expected: String) {
        do {
            _ = try PolicyParser.parse(Self.base + extra + "\n", origin: "p.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
            Issue.record("accepted: \(extra)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func composeAndPreDeploySourcesAreRead() throws {
        let p = try PolicyParser.parse(Self.base + "compose: { project_directory: /opt/kaleem/, files: [docker-compose.yml, /etc/extra.yml] }\ndeploy: { pre_deploy_sources: [mongo, mongo] }\n",
                                       origin: "p.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        #expect(p.compose == ComposeProject(projectDirectory: "/opt/kaleem", files: ["/opt/kaleem/docker-compose.yml", "/etc/extra.yml"]))
        #expect(p.preDeploySources == ["mongo"])
        let mongo = try #require(p.source(named: "mongo")?.settings as? MongoSourcePolicy)
        #expect(mongo.mongodump == ["docker", "compose", "--project-directory", "/opt/kaleem", "-f", "/opt/kaleem/docker-compose.yml",
                                    "-f", "/etc/extra.yml", "exec", "-T", "mongo", "mongodump"])
        #expect(mongo.mongorestore == ["mongorestore"])
        // drill.mongosh's default is not a Compose command: left alone.
        #expect(p.drill.mongosh == ["mongosh"])
    }

    /// `hook pre-deploy` takes the policy's pre-deploy sources; `--source` overrides them for one run.
    @Test func preDeployTakesThePolicysSources() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("etc"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir.file("etc/app.conf"), contents: Data("x=1\n".utf8))
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: """
              config: { kind: files, root: \(dir.file("etc")), paths: [app.conf] }
            deploy:
              pre_deploy_sources: [config]
            """)
        let r = try runCLI(["hook", "pre-deploy", "--release", "r1", "--json", "--policy", policy])
        #expect(r.status == 0, "\(r.stderr)")
        #expect((try object(r.stdout)["artifacts"] as? [[String: Any]])?.compactMap { $0["source"] as? String } == ["config"])
        let named = try runCLI(["hook", "pre-deploy", "--release", "r2", "--source", "redis", "--json", "--policy", policy])
        #expect(named.status == 0, "\(named.stderr)")
        #expect((try object(named.stdout)["artifacts"] as? [[String: Any]])?.compactMap { $0["source"] as? String } == ["redis"])
    }
}
