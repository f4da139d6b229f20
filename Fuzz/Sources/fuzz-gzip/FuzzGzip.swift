// The gzip inflaters (ArtifactStore): GzipReader (a stored artifact, read from a file: concatenated members,
// truncation), InflatingSource (a gzipped mongodump archive streamed from another ByteSource, in chunks of 1-97
// bytes) and MemoryGzip.decompress (a bucket snapshot's tree, with its 1 MiB limit here). The inflated bytes are
// dropped as they come: memory stays bounded by the readers' buffers whatever the ratio.
import ArtifactStore
import BackupCore
import FuzzSupport
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzFile.write(data, size)
    defer { FuzzFile.remove() }
    if let reader = try? GzipReader(path: FuzzFile.path, chunkSize: 1 + size % 4099) {
        while (try? reader.read { _ in }) == true {}
        _ = reader.storedSHA256
    }
    if let source = try? InflatingSource(FuzzBytes(data, size)) {
        while (try? source.nextChunk()) != nil {}
    }
    _ = MemoryGzip.decompress(Data(bytes: data, count: size), limit: 1 << 20)
    return 0
}
