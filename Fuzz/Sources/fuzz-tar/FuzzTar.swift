// The tar reader (a Qdrant snapshot, a files source's archive): every entry, and its content when the entry is
// not huge (a sparse entry's holes are expanded as zeros, which costs time, not input).
import BackupCore
import FuzzSupport
import TarFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var reader = TarReader(FuzzBytes(data, size))
    var entries = 0
    do {
        while let entry = try reader.next() {
            entries += 1
            if entry.size <= 16 << 20 { try reader.content { _ in } }
        }
        Verdict.report(true, "\(entries) entries")
    } catch {
        Verdict.report(false, "\(error)")
    }
    return 0
}
