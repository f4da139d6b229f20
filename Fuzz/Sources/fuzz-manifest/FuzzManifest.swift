// The manifest reader (ArtifactStore/Manifest.swift): Manifest.decode (JSONDecoder, ISO 8601 dates, the enums
// of BackupCore) and, for what decodes, the refusal a catalog rebuild applies (Manifest.refusal(at:): does it
// describe the file beside it, in the repository's layout), at its own path and at a fixed other one.
import ArtifactStore
import FuzzSupport
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let manifest = try? Manifest.decode(Data(bytes: data, count: size)) else { return 0 }
    let a = manifest.artifact
    _ = manifest.refusal(at: (a.path as NSString).deletingLastPathComponent + "/" + a.id + ".manifest.json")
    _ = manifest.refusal(at: "redis/2026-12-04/20261204T000000Z-abcd.manifest.json")
    _ = try? manifest.encoded()
    return 0
}
