import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the policy's schedules, and serve the status page (/), /metrics and /healthz, until SIGTERM or SIGINT.",
        discussion: """
        One job at a time (the repository lock); a schedule missed while the daemon was down runs once at start; \
        on SIGTERM the running job finishes before the daemon exits. The address is --listen, else \
        daemon.listen of the policy, else 127.0.0.1:9464 (loopback only: the status page shows the stack's shape; \
        daemon.status_auth adds basic auth to it).
        """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "host:port for the status page, /metrics and /healthz (default: the policy's daemon.listen, else 127.0.0.1:9464).")
    var listen: String?

    @Option(help: .hidden)
    var testInterval: Double?

    func validate() throws {
        if let listen, DaemonListen.parse(listen) == nil { throw ValidationError("--listen must be host:port, e.g. 127.0.0.1:9464") }
        if let testInterval, testInterval <= 0 { throw ValidationError("--test-interval must be positive") }
    }

    func run() async throws {
        let policy = try options.loadPolicy()
        let environment = EngineEnvironment(logger: options.makeLogger(minimum: .info))
        var daemonOptions = DaemonOptions(listen: listen.flatMap(DaemonListen.parse) ?? policy.daemonListen)
        daemonOptions.testInterval = testInterval
        do {
            try await Daemon.run(policy: policy, environment: environment, options: daemonOptions)
        } catch let error as BackupFailure {
            // The daemon's own settings (daemon.status_auth's password file): said as they are, with their exit code.
            throw error
        } catch {
            throw BackupFailure("the daemon stopped: \(error)", hint: "check that \(daemonOptions.listen.host):\(daemonOptions.listen.port) is free")
        }
    }
}
