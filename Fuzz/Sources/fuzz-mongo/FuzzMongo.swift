// The mongodump archive verifier (what mongodump's stdout or a stored artifact feeds).
import BackupCore
import FuzzSupport
import MongoBackup

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? MongoArchiveVerifier.verify(FuzzBytes(data, size))
    return 0
}
