import BackupCore
import CZlib
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads a gzip file as a stream of decompressed chunks, hashing the stored bytes on the way (so one pass
/// both checks the sha256 and feeds a format verifier). Concatenated gzip members are read as `gzip -d` does.
public final class GzipReader {
    public let path: String
    private var fd: Int32
    private var stream = z_stream()
    private var inBuffer: [UInt8]
    private var outBuffer: [UInt8]
    private var inStart = 0
    private var inEnd = 0
    private var hasher = SHA256()
    private var sawEnd = false
    private var inputEOF = false
    private var started = false
    public private(set) var bytesStored: Int64 = 0
    public private(set) var bytesRaw: Int64 = 0
    /// Set for an encrypted artifact: the stored bytes are hashed as they are, then decrypted, then inflated.
    private let decryptor: AgeDecryptor?
    private var chunkSize: Int
    /// Told the size of every decompressed chunk (progress on a terminal).
    public var onRead: ((Int) -> Void)?

    public init(path: String, chunkSize: Int = Defaults.readChunkSize, decryptor: AgeDecryptor? = nil) throws {
        self.path = path
        self.decryptor = decryptor
        self.chunkSize = chunkSize
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError("open", path: path) }
        inBuffer = [UInt8](repeating: 0, count: chunkSize)
        outBuffer = [UInt8](repeating: 0, count: chunkSize)
        // 15 + 16: gzip wrapper only.
        let rc = inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { close(fd); throw BackupFailure("cannot start gzip decompression of \(path) (zlib \(rc))") }
    }

    deinit {
        inflateEnd(&stream)
        if fd >= 0 { close(fd) }
    }

    /// Hex sha256 of every stored byte read so far (all of them once `read` returned 0).
    public var storedSHA256: String { hasher.finalize().hexString }

    /// Decompresses the next chunk into `body`; returns false at the end of the file.
    /// Throws `IntegrityError` when the file is not valid gzip or ends early.
    public func read(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        while true {
            if inStart == inEnd && !inputEOF { try fill() }
            if inStart == inEnd && inputEOF {
                if !started || sawEnd { return false }
                throw IntegrityError(object: path, problem: "gzip data ends early (truncated file)")
            }
            if sawEnd {
                // Another member follows: gzip -d reads concatenated members.
                inflateReset(&stream)
                sawEnd = false
            }
            started = true
            let produced: Int
            let rc: Int32
            let consumed: Int
            (rc, produced, consumed) = inBuffer.withUnsafeMutableBufferPointer { inBuf in
                outBuffer.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_in = inBuf.baseAddress! + inStart
                    stream.avail_in = uInt(inEnd - inStart)
                    stream.next_out = outBuf.baseAddress
                    stream.avail_out = uInt(outBuf.count)
                    let before = Int(stream.avail_in)
                    let r = inflate(&stream, Z_NO_FLUSH)
                    return (r, outBuf.count - Int(stream.avail_out), before - Int(stream.avail_in))
                }
            }
            inStart += consumed
            switch rc {
            case Z_OK, Z_BUF_ERROR:
                break
            case Z_STREAM_END:
                sawEnd = true
            default:
                let why = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw IntegrityError(object: path, problem: "not valid gzip data: \(why)")
            }
            if produced > 0 {
                bytesRaw += Int64(produced)
                onRead?(produced)
                try outBuffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
                return true
            }
            if rc == Z_BUF_ERROR && inputEOF && inStart == inEnd {
                throw IntegrityError(object: path, problem: "gzip data ends early (truncated file)")
            }
        }
    }

    private func fill() throws {
        guard let decryptor else {
            let n = try readStored(into: &inBuffer)
            if n == 0 { inputEOF = true; inStart = 0; inEnd = 0; return }
            inStart = 0
            inEnd = n
            return
        }
        // Encrypted: read until the decryptor hands back plaintext (it releases a chunk at a time).
        if decryptorDone { inputEOF = true; inStart = 0; inEnd = 0; return }
        var raw = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let n = try readStored(into: &raw)
            let plain: [UInt8]
            if n == 0 {
                plain = try decryptor.finish()
                decryptorDone = true
            } else {
                plain = try raw.withUnsafeBytes { try decryptor.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            if !plain.isEmpty {
                inBuffer = plain
                inStart = 0
                inEnd = plain.count
                return
            }
            if n == 0 { inputEOF = true; inStart = 0; inEnd = 0; return }
        }
    }

    private var decryptorDone = false

    /// Reads stored bytes (hashing them); 0 at the end of the file.
    private func readStored(into buffer: inout [UInt8]) throws -> Int {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw FileSystemError("read", path: path) }
        bytesStored += Int64(n)
        buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        return n
    }
}

/// The stored bytes do not match what was recorded, or are not what their format says. Exit 4.
public struct IntegrityError: UserFacingError, Equatable, IntegrityFailure {
    public var object: String
    public var problem: String
    public var showsDamage: Bool
    public init(object: String, problem: String, showsDamage: Bool = true) {
        self.object = object
        self.problem = problem
        self.showsDamage = showsDamage
    }
    public var exitStatus: ExitStatus { .integrity }
    public var description: String { "integrity check failed for \(object): \(problem)" }
    public var hint: String? { "do not restore from this artifact; use an older good one (kaleem-backup list) and take a new backup" }
}

extension Digest {
    public var hexString: String {
        var s = ""
        s.reserveCapacity(64)
        for byte in self { s += String(format: "%02x", byte) }
        return s
    }
}

/// sha256 of a whole file, streamed.
public func sha256OfFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileSystemError("open", path: path) }
    defer { close(fd) }
    var hasher = SHA256()
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw FileSystemError("read", path: path) }
        if n == 0 { break }
        buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
    return hasher.finalize().hexString
}

/// The hex sha256 of bytes in memory.
public func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).hexString
}

/// SHA-256 fed in pieces; `finalize()` gives the hex digest.
public struct StreamingSHA256 {
    private var hasher = SHA256()
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }
    public func finalize() -> String { hasher.finalize().hexString }
}
