// Preflight: what `policy check` reports, every problem at once. Without --connect: secret files readable, what
// each kind refuses, the age identity matching a recipient. With --connect: the repository and the metrics
// directory writable, each source as a backup would connect (its adapter's `preflight`), the off-site bucket
// writable (a probe put and deleted), the webhook answering.
import ArtifactStore
import AsyncHTTPClient
import BackupCore
import Foundation

struct Preflight: EngineService {
    let core: EngineCore

    func run(connect: Bool) async -> [PreflightCheck] {
        var checks = [PreflightCheck(check: "policy", ok: true, detail: "\(policy.origin): valid, \(policy.sources.count) source(s)")]
        checks += secretFiles()
        for source in policy.sources {
            do {
                let problems = try registry.adapter(for: source.kind).check(source, policy: policy)
                checks += problems.map { PreflightCheck(check: "source \(source.name)", ok: false, detail: $0) }
            } catch {
                checks.append(PreflightCheck(check: "source \(source.name)", ok: false, detail: describe(error), hint: PreflightCheck.hint(error)))
            }
        }
        checks += encryption()
        if let textfile = policy.metricsTextfile {
            let directory = (textfile as NSString).deletingLastPathComponent
            let problem = StatusReport.unreadableByOthers(directory)
            checks.append(PreflightCheck(check: "metrics directory readable by node_exporter", ok: problem == nil,
                                         detail: problem ?? "\(directory): others may traverse and list it (the textfile is written 0644)"))
        }
        guard connect else { return checks }
        checks.append(writableDirectory("repository", policy.repository.path))
        if let textfile = policy.metricsTextfile {
            checks.append(writableDirectory("metrics directory", (textfile as NSString).deletingLastPathComponent))
        }
        // What a kind checks once for the policy (MongoDB: each Compose command's project), for the kinds it has sources of.
        for kind in registry.kinds where policy.sources.contains(where: { $0.kind == kind }) {
            guard let adapter = try? registry.adapter(for: kind) else { continue }
            checks += await adapter.preflightPolicy(context: context)
        }
        for source in policy.sources {
            guard let adapter = try? registry.adapter(for: source.kind) else { continue }
            checks += await adapter.preflight(source, context: context)
        }
        if policy.repository.offsite != nil { checks.append(await offsite()) }
        // Only the webhook is probed: a request to a ping URL is a ping (a GET to Healthchecks' URL says "success").
        if let url = policy.notify?.webhook { checks.append(await webhook(url)) }
        return checks
    }

    private func secretFiles() -> [PreflightCheck] {
        var files: [(String, String)] = []
        for source in policy.sources {
            for (key, path) in source.settings.secretFiles { files.append(("sources.\(source.name).\(key)", path)) }
        }
        if let path = policy.repository.offsite?.secretKey.filePath { files.append(("repository.offsite.secret_key_file", path)) }
        if let path = policy.encryption?.identityFile { files.append(("encryption.identity_file", path)) }
        return files.map { key, path in
            FileManager.default.isReadableFile(atPath: path)
                ? PreflightCheck(check: key, ok: true, detail: "\(path) readable")
                : PreflightCheck(check: key, ok: false, detail: "\(path) is missing or not readable by this user (create it 0600 for the backup user)")
        }
    }

    /// The identity file must hold a key of one of the recipients, or nothing written today could be read back.
    private func encryption() -> [PreflightCheck] {
        guard let encryption = policy.encryption else { return [] }
        guard let file = encryption.identityFile else {
            return [PreflightCheck(check: "encryption", ok: true, detail: "no identity_file: backups are written but cannot be verified, drilled or restored on this host")]
        }
        guard FileManager.default.isReadableFile(atPath: file) else { return [] } // said by the secret files check
        do {
            let recipients = try encryption.recipients.map(AgeRecipient.init)
            let identities = try EngineCore.loadIdentities(file: file, origin: policy.origin, what: "the policy")
            let matching = identities.filter { recipients.contains($0.recipient) }
            return [matching.isEmpty
                ? PreflightCheck(check: "encryption: identity matches a recipient", ok: false,
                                 detail: "no key of \(file) belongs to a recipient of encryption.recipients: backups written now could not be read back with it")
                : PreflightCheck(check: "encryption: identity matches a recipient", ok: true, detail: "\(matching.count) of \(identities.count) key(s) of \(file)")]
        } catch {
            return [PreflightCheck(check: "encryption: identity matches a recipient", ok: false, detail: describe(error), hint: PreflightCheck.hint(error))]
        }
    }

    /// A probe file created and removed. A directory that does not exist yet is not created (`policy check`
    /// reads only): its nearest existing parent must let a backup create it.
    private func writableDirectory(_ what: String, _ path: String) -> PreflightCheck {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            var parent = (path as NSString).deletingLastPathComponent
            while !parent.isEmpty, parent != "/", !FileManager.default.fileExists(atPath: parent) {
                parent = (parent as NSString).deletingLastPathComponent
            }
            if parent.isEmpty { parent = "." }
            return access(parent, W_OK | X_OK) == 0
                ? PreflightCheck(check: "\(what) writable", ok: true, detail: "\(path) does not exist yet; the first backup creates it under \(parent)")
                : PreflightCheck(check: "\(what) writable", ok: false, detail: "\(path) does not exist and \(parent) is not writable: \(String(cString: strerror(errno)))")
        }
        do {
            let probe = path + "/.kaleem-preflight-\(getpid())"
            try FileIO.writeAtomically(Data("probe\n".utf8), to: probe)
            unlink(probe)
            return PreflightCheck(check: "\(what) writable", ok: true, detail: path)
        } catch {
            return PreflightCheck(check: "\(what) writable", ok: false, detail: "\(path): \(describe(error))", hint: PreflightCheck.hint(error))
        }
    }

    /// A probe object put (checked after upload, as every copy is) and deleted.
    private func offsite() async -> PreflightCheck {
        let what = "off-site bucket writable"
        do {
            guard let remote = try core.offsiteRepository() else {
                return PreflightCheck(check: what, ok: false, detail: "repository.offsite has no secret key")
            }
            defer { remote.close() }
            let directory = try EngineCore.privateTemporaryDirectory(prefix: "preflight")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let file = directory + "/probe"
            let data = Data("kaleem-backup preflight probe\n".utf8)
            try FileIO.writeAtomically(data, to: file)
            let relative = "preflight/probe-\(environment.host)-\(getpid())"
            try await remote.put(file, as: relative, sha256: sha256Hex(data))
            try await remote.delete([relative])
            if await core.offsiteMigrator.legacyCopyPresent() == true, let offsite = policy.repository.offsite {
                return PreflightCheck(check: what, ok: false, detail: "a probe put and deleted at \(remote.location), but \(offsite.location) holds an off-site copy in the old layout (without a host directory): run kaleem-backup offsite migrate --policy \(policy.origin) --yes")
            }
            return PreflightCheck(check: what, ok: true, detail: "a probe put and deleted at \(remote.location)")
        } catch {
            return PreflightCheck(check: what, ok: false, detail: describe(error), hint: PreflightCheck.hint(error))
        }
    }

    /// Any HTTP answer is an answer (n8n says 404 to a GET of a POST webhook); no event is sent.
    private func webhook(_ url: String) async -> PreflightCheck {
        let what = "webhook answering"
        do {
            let response = try await WebhookNotifier.http.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return PreflightCheck(check: what, ok: response.status.code < 500,
                                  detail: "\(Redaction.webhook(url)) answered HTTP \(response.status.code) to a GET (no event sent)")
        } catch {
            return PreflightCheck(check: what, ok: false, detail: "\(Redaction.webhook(url)): \(Redaction.scrub("\(error)", secrets: [Secret(url)]))")
        }
    }
}
