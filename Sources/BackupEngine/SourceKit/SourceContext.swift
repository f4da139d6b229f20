// What an adapter may use of the engine: the run's policy, clock and logger, the catalog, the repository,
// secrets, verification, the restore record, the off-site copy. Adapters reach the engine only through this.
import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import Logging
import S3Client

struct SourceContext: Sendable {
    fileprivate let engine: EngineCore

    init(engine: EngineCore) { self.engine = engine }

    var policy: Policy { engine.policy }
    var logger: Logger { engine.logger }
    var host: String { engine.environment.host }
    func now() -> Date { engine.environment.clock() }
    /// Where long work says how far it got (nil: nobody is watching).
    var progress: ProgressMeter? { engine.environment.progress }

    func catalog() throws -> Catalog { try engine.catalog() }
    func secrets(for source: String) -> SecretResolver { engine.secretResolver(for: source) }
    /// A repository-relative path made absolute.
    func absolute(_ relative: String) -> String { engine.repository.absolute(relative) }
    /// The local repository (the storage seam's local side: `fetchIfMissing(_:sha256:from:)` with `offsite()`).
    var repository: LocalRepository { engine.repository }
    /// One sentence for a catalog row or a log line.
    func describe(_ error: Error) -> String { engine.describe(error) }
    /// During a refresh (#38): the source's scrubbing hook, which a kind that restores through a scratch target
    /// runs against it (`run(host:port:input:)`) before the live store takes the data; nil otherwise.
    var scrubHook: ScrubHook? { ScrubHook.current }
    /// During a refresh (#38), hook or not: a kind that can restore through scratch namespaces and swap them into
    /// place (MongoDB) does so instead of restoring over the live data.
    var refreshing: Bool { ScrubHook.refreshing }

    // MARK: artifacts

    /// The stored artifact, hashed as stored, decrypted when encrypted, inflated (fetched from off-site if missing).
    /// Under `ls`, `diff` and `find` (`progressLabel` set by the browser) the read is drawn as that label's.
    func reader(_ artifact: ArtifactInfo) async throws -> GzipReader {
        if let label = Self.progressLabel { return try await reader(artifact, progress: label) }
        return try await engine.artifactReader(artifact)
    }

    /// Set by the browser around `ls`, `diff` and `find`: the label their reads are drawn with (`ls`, `diff 1/2`,
    /// `find 3/12`), so that a long listing is not silent. Nil elsewhere (a verify or a drill draws its own).
    @TaskLocal static var progressLabel: String?
    /// The same, drawing progress on a terminal as `label` (bytes against the recorded raw size): for the reads a
    /// person waits on (a restore, a drill's restore). The meter ends with the next `begin` or the command.
    func reader(_ artifact: ArtifactInfo, progress label: String) async throws -> GzipReader {
        let reader = try await engine.artifactReader(artifact)
        if let meter = progress {
            meter.begin("\(label) \(artifact.id)", totalBytes: artifact.bytesRaw)
            reader.onRead = { meter.add(bytes: Int64($0)) }
        }
        return reader
    }
    /// Where the artifact's file is on this host (fetched from the off-site copy when missing here).
    func localPath(_ artifact: ArtifactInfo) async throws -> String { try await engine.localArtifactPath(artifact) }
    /// The full verification; `copy` receives every decompressed byte (stream layouts).
    func verify(_ artifact: ArtifactInfo, copy: ((UnsafeRawBufferPointer) throws -> Void)?) async -> VerifyResult {
        await engine.verifier.verifyOne(artifact, copy: copy)
    }
    /// A restore through the restorer's lifecycle (verify, plan, record), the plan printed nowhere: what
    /// `hook rollback --restore-data` runs. `target` is the kind's own (`restoreTarget` skipped: built in code).
    func restore<A: SourceAdapter>(_ adapter: A, _ source: TypedSource<A.Settings>, into target: A.RestoreTarget,
                                   _ request: RestoreRequest) async throws -> RestoreOutcome {
        try await engine.restorer.perform(adapter, source, into: target, request) { _ in }
    }

    // MARK: encryption, S3, off-site

    func encryptionRecipients() throws -> [AgeRecipient] { try engine.encryptionRecipients() }
    func s3Options(timeout: Double) -> S3ClientOptions { engine.s3Options(timeout: timeout) }
    /// A client of the off-site bucket (shut it down when done), or nil when none is configured.
    func offsite() throws -> (any Repository)? { try engine.offsiteRepository() }

    // MARK: helpers

    /// A fresh 0700 directory under the temp directory (remove it when done).
    func temporaryDirectory(prefix: String) throws -> String { try EngineCore.privateTemporaryDirectory(prefix: prefix) }

    static func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
}
