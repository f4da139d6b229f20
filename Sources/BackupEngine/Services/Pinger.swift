// Push monitoring: `notify.ping` (Healthchecks.io, Uptime Kuma, Cronitor...) around every backup run.

import AsyncHTTPClient
import BackupCore
import Foundation
import Logging
import NIOCore

/// Sends the start, success and fail pings of one backup run. A ping that fails (refused, timed out, not 2xx) is
/// logged as a warning and never changes the run's outcome or exit code. The URLs are never logged in full (a
/// ping URL's path is its token); the fail body says what failed, with secrets scrubbed like every error.
struct Pinger: Sendable {
    let policy: PingPolicy?
    let logger: Logger
    let host: String

    /// The longest body sent (Healthchecks keeps the first 100 kB; a page of text is plenty).
    static let maxBody = 2000

    func start(sources: [String], tag: RunTag) async {
        guard let url = policy?.start else { return }
        await ping(url, what: "start", body: "kaleem-backup on \(host): \(tag.rawValue) backup of \(sources.joined(separator: ", ")) started")
    }

    /// Success when every source of the run succeeded, fail otherwise (a partial run is a failure).
    func finished(_ result: BackupResult) async {
        if result.run.status == .ok {
            guard let url = policy?.success else { return }
            let sources = result.artifacts.map(\.source).joined(separator: ", ")
            await ping(url, what: "success", body: "kaleem-backup on \(host): run \(result.run.id) ok (\(sources))")
        } else {
            let lines = result.artifacts.filter { $0.status != .ok }
                .map { "\($0.source): \(KnownSecrets.scrub($0.detail ?? "failed"))" }
            await failed(reason: "run \(result.run.id) \(result.run.status.rawValue): " + lines.joined(separator: "; "))
        }
    }

    /// A run that failed as a whole (refused by its checks, the catalog could not be written...): `reason` is
    /// already scrubbed (the engine's `describe`).
    func failed(reason: String) async {
        guard let url = policy?.fail else { return }
        await ping(url, what: "fail", body: "kaleem-backup on \(host): backup failed: \(reason)")
    }

    private func ping(_ url: String, what: String, body: String) async {
        guard let policy else { return }
        var text = body
        if text.utf8.count > Self.maxBody {
            text = String(decoding: Array(text.utf8.prefix(Self.maxBody - 3)), as: UTF8.self) + "..."
        }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        request.headers.add(name: "User-Agent", value: "kaleem-backup")
        request.body = .bytes(ByteBuffer(string: text + "\n"))
        let problem: String
        do {
            let response = try await WebhookNotifier.http.execute(request, timeout: .milliseconds(Int64(policy.timeoutSeconds * 1000)))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            if (200..<300).contains(Int(response.status.code)) {
                logger.debug("ping sent", metadata: ["ping": "\(what)", "url": "\(Redaction.webhook(url))"])
                return
            }
            problem = "HTTP \(response.status.code)"
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            problem = "no answer within \(policy.timeoutSeconds) s"
        } catch {
            problem = Redaction.scrub("\(error)", secrets: [Secret(url)])
        }
        logger.warning("monitoring ping not delivered (the backup's outcome is unchanged)", metadata: [
            "ping": "\(what)", "url": "\(Redaction.webhook(url))", "problem": "\(problem)",
        ])
    }
}
