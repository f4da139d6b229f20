// The age reader (ArtifactStore/Age.swift): AgeDecryptor fed the input in chunks, then finished, with a fixed
// identity (the seeds are encrypted to it: Tests/Fixtures/fuzz/age/seeds, made with age 1.x); and the same bytes
// as an encrypted artifact through GzipReader (decrypt, then inflate), and as an identity file.
import ArtifactStore
import FuzzSupport
import Foundation

/// A key made for the fuzz seeds only (age-keygen; its recipient: age1wac3sc2cznazvz8s2pktqdxeqn5nqur0x4fmm5677tuyvgg52eksy0vu0p). Not a secret.
let identity = try! AgeIdentity("AGE-SECRET-KEY-1VR3Y7VNYFT0MJ57U6P745XRXVZU8QPQWVWD77XMEPU9AVGGFFWKQ9FW0ZQ")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let decryptor = AgeDecryptor(identities: [identity], object: "fuzz.age")
    let chunk = 1 + size % 97
    do {
        var off = 0
        while off < size {
            let n = min(chunk, size - off)
            _ = try decryptor.feed(UnsafeRawBufferPointer(start: data + off, count: n))
            off += n
        }
        _ = try decryptor.finish()
    } catch {}
    FuzzFile.write(data, size)
    defer { FuzzFile.remove() }
    if let reader = try? GzipReader(path: FuzzFile.path, chunkSize: 4096, decryptor: AgeDecryptor(identities: [identity], object: "fuzz.age")) {
        while (try? reader.read { _ in }) == true {}
    }
    _ = try? AgeIdentity.parseFile(String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self))
    return 0
}
