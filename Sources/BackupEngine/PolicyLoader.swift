import BackupCore
import Foundation

/// Finds and reads the policy: `--policy`, else `$KALEEM_BACKUP_POLICY`, else `policies/local.yml` in the
/// working directory, else the copy of it built into the binary.
public enum PolicyLoader {
    public static let environmentVariable = "KALEEM_BACKUP_POLICY"
    public static let defaultPath = "policies/local.yml"
    public static let embeddedOrigin = "<embedded policies/local.yml>"

    public static func load(path: String?, environment: [String: String]) throws -> Policy {
        let chosen = path ?? environment[environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        if let chosen {
            guard let data = FileManager.default.contents(atPath: chosen) else {
                let reason = FileManager.default.fileExists(atPath: chosen) ? "cannot be read (permissions?)" : "does not exist"
                throw PolicyError(origin: chosen, keyPath: "", problem: "the policy file \(reason)")
            }
            return try PolicyParser.parse(String(decoding: data, as: UTF8.self), origin: chosen, environment: environment, sourceKinds: SourceKinds.policyTable)
        }
        if let data = FileManager.default.contents(atPath: defaultPath) {
            return try PolicyParser.parse(String(decoding: data, as: UTF8.self), origin: defaultPath, environment: environment, sourceKinds: SourceKinds.policyTable)
        }
        return try PolicyParser.parse(EmbeddedPolicy.localYAML, origin: embeddedOrigin, environment: environment, sourceKinds: SourceKinds.policyTable)
    }
}
