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
        var environment = ProcessInfo.processInfo.environment
        var server: DemoRedis?
        defer { server?.stop() }
        if (environment["REDIS_URL"] ?? "").isEmpty {
            let demo = try DemoRedis()
            server = demo
            environment["REDIS_URL"] = demo.url
            print("started a scratch redis-server on 127.0.0.1:\(demo.port) with \(demo.keys) sample keys")
        }
        let policy = try PolicyLoader.load(path: options.policy, environment: environment)
        let engine = BackupEngine(policy: policy, environment: EngineEnvironment(variables: environment, logger: options.makeLogger()))
        print("policy: \(policy.origin); repository: \(engine.repository.root)")
        let result = try await engine.backup(tag: .manual)
        print("\nbackup run \(result.run.id): \(result.run.status.rawValue)")
        Output.artifactTable(result.artifacts)
        let verified = try await engine.verify(ids: result.artifacts.filter { $0.status == .ok }.map(\.id), all: false)
        print("\nverify:")
        for r in verified { print("  \(r.ok ? "ok" : "FAILED") \(r.id): \(r.detail)") }
        print("\ncatalog (\(engine.catalogPath)), newest first:")
        Output.artifactTable(try engine.list(source: nil, limit: 10))
        if result.exitStatus != .ok { throw CommandExit(status: result.exitStatus) }
        if verified.contains(where: { !$0.ok }) { throw CommandExit(status: .integrity) }
    }
}
