import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct HookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hook",
        abstract: "Deploy integration: a pinned restore point before a release, the outcome after it, rollback.",
        subcommands: [PreDeployHook.self, PostDeployHook.self, RollbackHook.self]
    )
}

/// Labels of the deployment metrics.
struct DeployLabels: ParsableArguments {
    @Option(help: "Deployment environment label (default: $KALEEM_ENVIRONMENT, else production).")
    var environment = ProcessInfo.processInfo.environment["KALEEM_ENVIRONMENT"] ?? "production"

    @Option(help: "Service label (default: $KALEEM_SERVICE, else api).")
    var service = ProcessInfo.processInfo.environment["KALEEM_SERVICE"] ?? "api"
}

struct PreDeployHook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pre-deploy",
        abstract: "Back up the policy's pre-deploy sources (deploy.pre_deploy_sources; all when unset) or the named ones as one pinned set for the release; print the set id. Non-zero exit: do not deploy."
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "The release (image) about to go out, e.g. kaleem-api:1.4.2.")
    var release: String

    @Option(name: .customLong("source"), help: "Only this source (repeatable); default: the policy's deploy.pre_deploy_sources, else all.")
    var sources: [String] = []

    @OptionGroup var labels: DeployLabels

    @Option(help: ArgumentHelp("The deploy attempt (the deploy script's id): a restore point that fails is recorded as this attempt's failure (default: the failed run's id).", valueName: "id"))
    var deployId: String?

    func validate() throws {
        try validateDeployID(deployId)
        try validateRelease(release)
    }

    func run() async throws {
        let (result, previous) = try await options.makeEngine().preDeploy(release: release, sources: sources, deployID: deployId,
                                                                          environmentName: labels.environment, service: labels.service)
        if let last = previous.first {
            options.say(.notice, "note: ", "release \(release) already had pre-deploy set \(last.id); a new set was taken")
        }
        if options.json {
            try Output.json(BackupResultJSON(result))
        } else {
            print(result.run.id) // only the id, for $(...)
        }
        if result.exitStatus != .ok {
            for a in result.artifacts where a.status != .ok {
                options.say(.error, "error: ", "pre-deploy backup of \(a.source) failed: \(a.detail ?? "")", ["source": "\(a.source)"])
            }
            BackupCommand.sayHints(result, options: options)
            throw CommandExit(status: result.exitStatus)
        }
    }
}

struct PostDeployHook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "post-deploy",
        abstract: "Record how the release went; on success confirm it and unpin restore points beyond retention.pre_deploy."
    )

    /// `rollback-failed`: the deploy failed and the rollback did not bring the service back either (recorded as
    /// failed; the webhook gets a critical `rollback_failed`).
    enum Outcome: String, ExpressibleByArgument { case success, failed, rollbackFailed = "rollback-failed" }

    @OptionGroup var options: GlobalOptions
    @OptionGroup var labels: DeployLabels

    @Option(help: "The release (image).")
    var release: String

    @Option(help: "success, failed, or rollback-failed (failed, and the rollback did not bring the service back: a critical notification).")
    var outcome: Outcome

    @Option(help: "How long the deployment took, in seconds.")
    var duration: Double?

    @Option(help: ArgumentHelp("The deploy attempt (the deploy script's id). Each attempt is counted once: a retry or a redeploy of the same tag is another attempt. Default: the release's newest pre-deploy set. Needed for a failure before the restore point (a failed docker pull).", valueName: "id"))
    var deployId: String?

    @Option(help: "Why it failed (a short word, e.g. pull-failed), recorded and sent with the notification.")
    var reason: String?

    @Option(help: "What happened, in a sentence, sent with the notification (e.g. what was rolled back).")
    var detail: String?

    func validate() throws {
        if let duration, !(duration.isFinite && duration >= 0 && duration <= 7 * 86_400) {
            throw ValidationError("--duration must be a number of seconds from 0 to 604800, found \(duration)")
        }
        try validateDeployID(deployId)
        try validateRelease(release)
        try validateReason(reason)
        try validateReason(detail, option: "--detail")
    }

    func run() async throws {
        let unpinned = try await options.makeEngine().postDeploy(release: release, success: outcome == .success,
                                                                 rollbackFailed: outcome == .rollbackFailed, durationSeconds: duration,
                                                                 environmentName: labels.environment, service: labels.service,
                                                                 deployID: deployId, reason: reason, detail: detail)
        if options.json {
            try Output.json(["release": release, "outcome": outcome.rawValue, "unpinned": unpinned.joined(separator: ",")])
        } else {
            print("recorded: \(release) \(outcome.rawValue)" + (unpinned.isEmpty ? "" : "; unpinned older restore points: \(unpinned.joined(separator: ", "))"))
        }
    }
}

struct RollbackHook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Record a rollback; with --restore-data --yes restore the release's pre-deploy set into the live sources."
    )

    @OptionGroup var options: GlobalOptions
    @OptionGroup var labels: DeployLabels

    @Option(help: "The release being rolled back.")
    var release: String

    @Option(help: "Why (a metric label: keep it short, e.g. health-check-failed).")
    var reason: String

    @Flag(help: "Restore the data of the release's pre-deploy set (MongoDB with --drop, Redis online).")
    var restoreData = false

    @Flag(help: "The same as --include s3: also restore the bucket snapshots (uploads after a deploy are users' data).")
    var includeBuckets = false

    @Option(name: .customLong("include"), help: ArgumentHelp("With --restore-data: also restore this source, or every source of this kind (s3, qdrant, files: not restored by default) (repeatable).", valueName: "kind|source"))
    var include: [String] = []

    @Flag(help: "Confirm --restore-data (it replaces live data).")
    var yes = false

    @Flag(help: "Say what would be restored, and from which backups; record and change nothing.")
    var dryRun = false

    @Option(help: ArgumentHelp("The deploy attempt this rollback belongs to (the deploy script's id).", valueName: "id"))
    var deployId: String?

    @Option(help: "What happened, in a sentence, sent with the notification (nginx, the API, the data and alerts checks).")
    var detail: String?

    func validate() throws {
        if restoreData && !yes && !dryRun { throw ValidationError("--restore-data replaces live data: add --yes") }
        try validateDeployID(deployId)
        try validateRelease(release)
        try validateReason(reason)
        try validateReason(detail, option: "--detail")
    }

    func run() async throws {
        let result = try await options.makeEngine().rollback(release: release, reason: reason, restoreData: restoreData,
                                                       include: include + (includeBuckets ? ["s3"] : []), dryRun: dryRun,
                                                       environmentName: labels.environment, service: labels.service,
                                                       deployID: deployId, detail: detail)
        if options.json {
            try Output.json(["release": result.release, "set": result.set?.id ?? "", "lines": result.lines.joined(separator: "\n")])
        } else if dryRun {
            print("rollback of \(release), dry run: nothing recorded, nothing restored")
            if let set = result.set { print("from the pre-deploy set \(set.id):") }
            for line in result.lines { print("  \(line)") }
        } else {
            print("rollback of \(release) recorded (\(reason))")
            if let set = result.set { print(restoreData ? "restored the pre-deploy set \(set.id):" : "to restore the data of pre-deploy set \(set.id), run:") }
            for line in result.lines { print("  \(line)") }
        }
    }
}

/// A release names an image: letters, digits and `._:+@/-` (`kaleem-api:1.4.2`, `registry/app@sha256:…`), at most
/// 128. It is a label of the catalog, the metrics and the notifications: no control character, no space.
func validateRelease(_ release: String?) throws {
    guard let release, !isLabel(release, punctuation: "._:+@/-") else { return }
    throw ValidationError("--release must be 1 to 128 letters, digits, '.', '_', ':', '+', '@', '/' or '-' (an image tag), found \(PeerText.escape(String(reflecting: String(release.prefix(140)))))")
}

/// 1 to 128 ASCII letters, digits and the given punctuation: a label of the catalog, the metrics, a notification.
func isLabel(_ value: String, punctuation: String) -> Bool {
    let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + punctuation)
    return !value.isEmpty && value.count <= 128 && value.unicodeScalars.allSatisfy(allowed.contains)
}

/// A reason (pin, forget, rollback, post-deploy) is free text for a person, kept in the catalog: one line, no
/// control character or bidi override (they would act on the terminal of whoever lists it), at most 500.
func validateReason(_ reason: String?, option: String = "--reason") throws {
    guard let reason else { return }
    if reason.count > 500 || PeerText.escape(reason) != reason {
        throw ValidationError("\(option) must be one line of at most 500 characters without control characters, found \(PeerText.clean(String(reflecting: reason), limit: 200))")
    }
}

/// A deploy id is a label of the catalog and the notification, not free text: letters, digits and `._:-`, at most 128.
func validateDeployID(_ id: String?) throws {
    guard let id, !isLabel(id, punctuation: "._:-") else { return }
    throw ValidationError("--deploy-id must be 1 to 128 letters, digits, '.', '_', ':' or '-', found \(String(reflecting: id))")
}
