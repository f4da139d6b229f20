@testable import ArtifactStore
import BackupCore
import Foundation
import Testing
import TestSupport

/// The age format, checked both ways against the real `age` tool (Debian package `age`).
@Suite(.blockingThreads) struct AgeTests {
    func encrypt(_ plain: [UInt8], to recipients: [AgeRecipient]) throws -> [UInt8] {
        var out: [UInt8] = []
        let e = try AgeEncryptor(recipients: recipients) { out += $0 }
        // Uneven writes, to cross chunk boundaries.
        var i = 0, step = 1
        while i < plain.count {
            let n = min(step, plain.count - i)
            try plain[i..<i + n].withUnsafeBytes { try e.write($0) }
            i += n
            step = step * 3 + 7
        }
        try e.finish()
        return out
    }

    func decrypt(_ cipher: [UInt8], with identities: [AgeIdentity], feed: Int = 1000) throws -> [UInt8] {
        let d = AgeDecryptor(identities: identities, object: "test.age")
        var out: [UInt8] = []
        var i = 0
        while i < cipher.count {
            let n = min(feed, cipher.count - i)
            out += try cipher[i..<i + n].withUnsafeBytes { try d.feed($0) }
            i += n
        }
        return out + (try d.finish())
    }

    static func bytes(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 11) } }

    @Test(arguments: [0, 1, 65_535, 65_536, 65_537, 200_000, 3 * 65_536])
    func roundTrip(size: Int) throws {
        let id = AgeIdentity.generate()
        let other = AgeIdentity.generate()
        let plain = Self.bytes(size)
        let cipher = try encrypt(plain, to: [other.recipient, id.recipient])
        #expect(try decrypt(cipher, with: [id]) == plain)
        #expect(try decrypt(cipher, with: [other], feed: 65_552) == plain)
    }

    /// A header fed byte by byte is scanned once (it was scanned again from its start with every byte: a MiB without
    /// its "---" line took 5 * 10^11 steps before it was refused). Whole files decrypt the same fed a byte at a time.
    @Test func aHeaderFedByteByByteIsScannedOnce() throws {
        let d = AgeDecryptor(identities: [AgeIdentity.generate()], object: "slow.age")
        let header = Array("age-encryption.org/v1\n-> X25519 ".utf8) + [UInt8](repeating: UInt8(ascii: "A"), count: (1 << 20) + 16)
        let error = #expect(throws: IntegrityError.self) {
            try header.withUnsafeBytes { raw in
                for i in 0..<raw.count { _ = try d.feed(UnsafeRawBufferPointer(rebasing: raw[i..<i + 1])) }
            }
        }
        #expect(error?.problem.contains("no age header found in the first MiB") == true)
        let id = AgeIdentity.generate()
        let plain = Self.bytes(70_000)
        #expect(try decrypt(try encrypt(plain, to: [id.recipient]), with: [id], feed: 1) == plain)
    }

    @Test func keysRoundTripThroughBech32() throws {
        let id = AgeIdentity.generate()
        #expect(id.secretKeyText.hasPrefix("AGE-SECRET-KEY-1"))
        #expect(try AgeIdentity(id.secretKeyText).recipient == id.recipient)
        #expect(id.recipient.description.hasPrefix("age1"))
        #expect(try AgeRecipient(id.recipient.description) == id.recipient)
        #expect(!"\(id)".contains(id.secretKeyText))
        #expect(throws: BackupFailure.self) { try AgeRecipient("age1notarecipient") }
        // One changed character breaks the checksum.
        var text = Array(id.recipient.description)
        text[10] = text[10] == "q" ? "p" : "q"
        #expect(throws: BackupFailure.self) { try AgeRecipient(String(text)) }
    }

    @Test func ageDecryptsWhatWeEncrypt() throws {
        let dir = TemporaryDirectory()
        let keygen = try runProcess("age-keygen", ["-o", dir.file("key.txt")])
        #expect(keygen.status == 0, "\(keygen.stderr)")
        let identities = try AgeIdentity.parseFile(try String(contentsOfFile: dir.file("key.txt"), encoding: .utf8))
        let plain = Self.bytes(300_000)
        try Data(try encrypt(plain, to: [identities[0].recipient])).write(to: URL(fileURLWithPath: dir.file("x.age")))
        let r = try runProcess("age", ["-d", "-i", dir.file("key.txt"), "-o", dir.file("x.out"), dir.file("x.age")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.contents(atPath: dir.file("x.out")) == Data(plain))

        // And with a key we generated, written as age writes its key files.
        let ours = AgeIdentity.generate()
        try Data("# created: now\n# public key: \(ours.recipient.description)\n\(ours.secretKeyText)\n".utf8)
            .write(to: URL(fileURLWithPath: dir.file("ours.txt")))
        try Data(try encrypt([], to: [ours.recipient])).write(to: URL(fileURLWithPath: dir.file("empty.age")))
        let e = try runProcess("age", ["-d", "-i", dir.file("ours.txt"), dir.file("empty.age")])
        #expect(e.status == 0 && e.stdout.isEmpty, "\(e.stderr)")
    }

    @Test func weDecryptWhatAgeEncrypts() throws {
        let dir = TemporaryDirectory()
        let ours = AgeIdentity.generate()
        for size in [0, 10, 65_536, 200_001] {
            try Data(Self.bytes(size)).write(to: URL(fileURLWithPath: dir.file("p")))
            let r = try runProcess("age", ["-r", ours.recipient.description, "-r", AgeIdentity.generate().recipient.description,
                                           "-o", dir.file("p.age"), dir.file("p")])
            #expect(r.status == 0, "\(r.stderr)")
            let cipher = Array(try #require(FileManager.default.contents(atPath: dir.file("p.age"))))
            #expect(try decrypt(cipher, with: [ours]) == Self.bytes(size), "size \(size)")
        }
    }

    @Test func tamperingTruncationAndWrongKeyAreIntegrityErrors() throws {
        let id = AgeIdentity.generate()
        let plain = Self.bytes(150_000)
        let cipher = try encrypt(plain, to: [id.recipient])
        func expectIntegrity(_ bytes: [UInt8], _ needle: String, with ids: [AgeIdentity]? = nil) {
            do {
                _ = try decrypt(bytes, with: ids ?? [id])
                Issue.record("decrypted a bad file (\(needle))")
            } catch let e as IntegrityError {
                #expect(needle.isEmpty || e.description.contains(needle), "\(e.description)")
                #expect(e.exitStatus == .integrity)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        var flipped = cipher
        flipped[cipher.count - 100] ^= 1
        expectIntegrity(flipped, "does not authenticate")
        var header = cipher
        header[30] ^= 1 // inside the stanza
        expectIntegrity(header, "")
        expectIntegrity(Array(cipher.dropLast(70_000)), "")
        expectIntegrity(Array(cipher.prefix(40)), "header is incomplete")
        expectIntegrity(cipher, "wrong key", with: [AgeIdentity.generate()])
        expectIntegrity(Array("not an age file at all, just some text\n".utf8), "not an age file")
        // Two files spliced: the first one's last chunk followed by more data.
        expectIntegrity(cipher + Self.bytes(20), "")
    }
}
