// Encryption at rest: artifacts are written encrypted to `encryption.recipients` (age format) and read back
// through `artifactReader`, which decrypts with `encryption.identity_file` on the fly.
import ArtifactStore
import BackupCore
import Foundation

extension BackupEngine {

    /// The recipients new artifacts are encrypted to (none: stored unencrypted).
    func encryptionRecipients() throws -> [AgeRecipient] {
        guard let encryption = policy.encryption else { return [] }
        return try encryption.recipients.map(AgeRecipient.init)
    }

    /// The identities that decrypt artifacts, read from `encryption.identity_file` when needed.
    func encryptionIdentities(for artifact: ArtifactInfo) throws -> [AgeIdentity] {
        try Self.loadIdentities(file: policy.encryption?.identityFile, origin: policy.origin, what: "backup \(artifact.id)")
    }

    static func loadIdentities(file: String?, origin: String, what: String) throws -> [AgeIdentity] {
        guard let file else {
            throw BackupFailure("\(what) is encrypted and the policy sets no encryption.identity_file to decrypt it", exitStatus: .usage,
                                hint: "set encryption.identity_file in \(origin) to the age key file (AGE-SECRET-KEY-1…)")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BackupFailure("cannot read encryption.identity_file \(file)", exitStatus: .usage,
                                hint: "check that the file exists and is readable by this user")
        }
        return try AgeIdentity.parseFile(String(decoding: data, as: UTF8.self))
    }

    /// Opens a stored artifact for reading: hashed as stored, decrypted if it is encrypted, inflated.
    func artifactReader(_ artifact: ArtifactInfo) async throws -> GzipReader {
        let decryptor: AgeDecryptor?
        switch artifact.compression {
        case .gzip:
            decryptor = nil
        case .gzipAge:
            decryptor = AgeDecryptor(identities: try encryptionIdentities(for: artifact), object: repository.absolute(artifact.path))
        case .none, .unknown:
            throw IntegrityError(object: repository.absolute(artifact.path),
                                 problem: "it is stored with compression \(String(reflecting: artifact.compression.rawValue)), which is not a gzip stream this build reads"
                                    + (artifact.compression == .none ? " (a snapshot's manifest is read by its kind, not as a stream)" : " (written by a newer kaleem-backup?)"))
        }
        return try await GzipReader(path: try localArtifactPath(artifact), decryptor: decryptor)
    }

    /// Where the artifact's file is on this host; fetched from the off-site copy (sha256 checked) when it is
    /// missing here and one is configured.
    func localArtifactPath(_ artifact: ArtifactInfo) async throws -> String {
        let path = repository.absolute(artifact.path)
        if access(path, F_OK) != 0 && policy.repository.offsite != nil {
            try await fetchFromOffsite(artifact.path, sha256: artifact.sha256)
        }
        return path
    }
}
