// The RDB verifier (what `SYNC` or a stored artifact feeds), once plain and once with every key's payload
// captured (the key-restore path).
import BackupCore
import FuzzSupport
import RedisBackup

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    do {
        let report = try RDBVerifier.verify(FuzzBytes(data, size))
        Verdict.report(true, "RDB v\(report.version), \(report.keys) keys")
    } catch {
        Verdict.report(false, "\(error)")
    }
    _ = try? RDBVerifier.verify(FuzzBytes(data, size), keys: RDBKeyVisitor(capture: { _, _ in true }, visit: { _ in }))
    return 0
}
