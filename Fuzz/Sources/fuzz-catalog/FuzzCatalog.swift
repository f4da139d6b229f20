// The catalog-copy reader (BackupCatalog): what a catalog rebuild does with `catalog-copy/catalog.sqlite` or the
// off-site copy (untrusted files): open it (GRDB over the system SQLite, with the migrations), Catalog.copyRefusal
// (PRAGMA integrity_check, every row against the repository's layout), the newest run, the counts and ids.
import BackupCatalog
import FuzzSupport
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzFile.write(data, size)
    defer { FuzzFile.remove() }
    guard let copy = try? Catalog(path: FuzzFile.path) else { return 0 }
    if (try? copy.copyRefusal()) == .some(nil) {
        _ = try? copy.newestRunStart()
        _ = try? copy.runCount()
        _ = try? copy.artifactIDs()
        _ = try? copy.artifacts(includeDeleted: false)
    }
    try? copy.close()
    return 0
}
