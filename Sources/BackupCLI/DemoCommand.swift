import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job on the embedded defaults: back up Redis into ./backups, verify it, list the catalog.",
        discussion: """
        When REDIS_URL is not set, a scratch redis-server is started on a free 127.0.0.1 port, filled with \
        sample data (several databases, every value type, keys with expiries) and stopped afterwards.
        """
    )

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let json = options.json
        func say(_ line: String) { if !json { print(line) } }
        var environment = ProcessInfo.processInfo.environment
        var server: DemoRedis?
        defer { server?.stop() }
        if (environment["REDIS_URL"] ?? "").isEmpty {
            let demo = try DemoRedis()
            server = demo
            environment["REDIS_URL"] = demo.url
            say("started a scratch redis-server on 127.0.0.1:\(demo.port) with \(demo.keys) sample keys")
        }
        let policy = try PolicyLoader.load(path: options.policy, environment: environment, embeddedFallback: true)
        let engine = BackupEngine(policy: policy, environment: EngineEnvironment(variables: environment, logger: options.makeLogger()))
        say("policy: \(policy.origin); repository: \(engine.repository.root)")
        let result = try await engine.backup(tag: .manual)
        let verified = try await engine.verify(ids: result.artifacts.filter { $0.status == .ok }.map(\.id), all: false)
        let catalog = try engine.list(source: nil, limit: 10)
        if json {
            try Output.json(DemoJSON(scratch_redis: server.map { DemoJSON.Scratch(port: Int($0.port), keys: $0.keys) },
                                     policy: policy.origin, repository: engine.repository.root, catalog: engine.catalogPath,
                                     backup: BackupResultJSON(result), verify: verified, newest: catalog.map(ArtifactJSON.init)))
        } else {
            print("\nbackup run \(result.run.id): \(result.run.status.rawValue)")
            Output.artifactTable(result.artifacts)
            print("\nverify:")
            for r in verified { print("  \(r.ok ? "ok" : "FAILED") \(r.id): \(r.detail)") }
            print("\ncatalog (\(engine.catalogPath)), newest first:")
            Output.artifactTable(catalog)
        }
        if result.exitStatus != .ok { throw CommandExit(status: result.exitStatus) }
        if verified.contains(where: { !$0.ok }) { throw CommandExit(status: .integrity) }
    }
}

/// `demo --json`: what the demo did, as `backup --json`, `verify --json` and `list --json` print each part.
struct DemoJSON: Encodable {
    struct Scratch: Encodable { var port: Int; var keys: Int }
    /// The scratch redis-server the demo started (null when REDIS_URL named one).
    var scratch_redis: Scratch?
    var policy: String
    var repository: String
    var catalog: String
    var backup: BackupResultJSON
    var verify: [VerifyResult]
    /// The catalog's ten newest artifacts.
    var newest: [ArtifactJSON]
}
