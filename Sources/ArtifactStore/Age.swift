// Encryption at rest in the age format (https://age-encryption.org/v1), so that the standard `age` tool
// decrypts what kaleem-backup encrypts and the other way round. X25519 recipients only:
//
//   age-encryption.org/v1
//   -> X25519 <base64 ephemeral share>          one stanza per recipient: the 16-byte file key, wrapped
//   <base64 wrapped file key>
//   --- <base64 HMAC-SHA256 of the header>
//   <16-byte nonce><payload: ChaCha20-Poly1305 STREAM, 64 KiB chunks, counter ‖ last-chunk flag as nonce>
//
// Both directions stream: memory is one chunk whatever the size of the file.
import BackupCore
import Crypto
import Foundation

/// A public key to encrypt to: `age1…`.
public struct AgeRecipient: Sendable, Equatable {
    public let publicKey: Curve25519.KeyAgreement.PublicKey

    public static func == (a: AgeRecipient, b: AgeRecipient) -> Bool { a.publicKey.rawRepresentation == b.publicKey.rawRepresentation }

    public init(_ text: String) throws {
        guard let (hrp, data) = Bech32.decode(text.trimmingCharacters(in: .whitespaces)), hrp == "age", data.count == 32,
              let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: data) else {
            throw BackupFailure("\"\(text)\" is not an age recipient (age1…, as age-keygen prints it)", exitStatus: .usage)
        }
        publicKey = key
    }

    init(publicKey: Curve25519.KeyAgreement.PublicKey) { self.publicKey = publicKey }

    public var description: String { Bech32.encode(hrp: "age", data: Array(publicKey.rawRepresentation)) }
}

/// A private key to decrypt with: `AGE-SECRET-KEY-1…` (a line of an age identity file). Never printed.
public struct AgeIdentity: Sendable, CustomStringConvertible {
    let privateKey: Curve25519.KeyAgreement.PrivateKey

    public init(_ text: String) throws {
        guard let (hrp, data) = Bech32.decode(text.trimmingCharacters(in: .whitespaces)), hrp == "age-secret-key-", data.count == 32,
              let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: data) else {
            throw BackupFailure("an identity is not an age secret key (AGE-SECRET-KEY-1…)", exitStatus: .usage,
                                hint: "make one with age-keygen -o key.txt, and give its path as encryption.identity_file")
        }
        privateKey = key
    }

    public static func generate() -> AgeIdentity { AgeIdentity(privateKey: Curve25519.KeyAgreement.PrivateKey()) }

    init(privateKey: Curve25519.KeyAgreement.PrivateKey) { self.privateKey = privateKey }

    /// The identities of an age identity file: one key per line, `#` comments and blank lines ignored.
    public static func parseFile(_ text: String) throws -> [AgeIdentity] {
        let keys = try text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }.map { try AgeIdentity($0) }
        guard !keys.isEmpty else { throw BackupFailure("the identity file holds no AGE-SECRET-KEY-1… line", exitStatus: .usage) }
        return keys
    }

    public var recipient: AgeRecipient { AgeRecipient(publicKey: privateKey.publicKey) }

    /// The secret key as age writes it. Only for writing a key file; never log it.
    public var secretKeyText: String {
        Bech32.encode(hrp: "age-secret-key-", data: Array(privateKey.rawRepresentation)).uppercased()
    }

    public var description: String { "<age identity \(recipient.description)>" }
}

enum Age {
    static let intro = "age-encryption.org/v1\n"
    static let chunkSize = 64 * 1024
    static let tagSize = 16
    static let x25519Label = "age-encryption.org/v1/X25519"

    static func hkdf(_ ikm: [UInt8], salt: [UInt8], info: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: ikm), salt: salt, info: Array(info.utf8), outputByteCount: 32)
    }

    /// Base64 without padding, as age writes it.
    static func b64(_ bytes: [UInt8]) -> String {
        var s = Data(bytes).base64EncodedString()
        while s.hasSuffix("=") { s.removeLast() }
        return s
    }

    /// Strict unpadded base64 (age rejects padding and non-canonical encodings).
    static func unb64(_ s: String) -> [UInt8]? {
        guard !s.contains("="), s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }) else { return nil }
        var padded = s
        while padded.count % 4 != 0 { padded += "=" }
        guard let data = Data(base64Encoded: padded) else { return nil }
        guard b64(Array(data)) == s else { return nil }
        return Array(data)
    }

    static func streamNonce(counter: UInt64, last: Bool) -> ChaChaPoly.Nonce {
        var n = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { n[3 + i] = UInt8(truncatingIfNeeded: counter >> (8 * (7 - UInt64(i)))) }
        n[11] = last ? 1 : 0
        return try! ChaChaPoly.Nonce(data: n)
    }
}

/// Encrypts a stream to recipients; the ciphertext goes to `output` as it is produced.
public final class AgeEncryptor {
    private let output: (UnsafeRawBufferPointer) throws -> Void
    private let payloadKey: SymmetricKey
    private var buffer: [UInt8] = []
    private var counter: UInt64 = 0
    private var finished = false

    public init(recipients: [AgeRecipient], output: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        precondition(!recipients.isEmpty, "encrypting to nobody")
        self.output = output
        var fileKey = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in fileKey.indices { fileKey[i] = rng.next() }
        var header = Age.intro
        for recipient in recipients {
            let ephemeral = Curve25519.KeyAgreement.PrivateKey()
            let share = Array(ephemeral.publicKey.rawRepresentation)
            let shared = try ephemeral.sharedSecretFromKeyAgreement(with: recipient.publicKey).withUnsafeBytes { Array($0) }
            let wrapKey = Age.hkdf(shared, salt: share + Array(recipient.publicKey.rawRepresentation), info: Age.x25519Label)
            let sealed = try ChaChaPoly.seal(fileKey, using: wrapKey, nonce: try ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12)))
            header += "-> X25519 \(Age.b64(share))\n\(Age.b64(Array(sealed.ciphertext) + Array(sealed.tag)))\n"
        }
        header += "---"
        let mac = HMAC<SHA256>.authenticationCode(for: Array(header.utf8), using: Age.hkdf(fileKey, salt: [], info: "header"))
        header += " \(Age.b64(Array(mac)))\n"
        var nonce = [UInt8](repeating: 0, count: 16)
        for i in nonce.indices { nonce[i] = rng.next() }
        payloadKey = Age.hkdf(fileKey, salt: nonce, info: "payload")
        try Array(header.utf8).withUnsafeBytes { try output($0) }
        try nonce.withUnsafeBytes { try output($0) }
        buffer.reserveCapacity(Age.chunkSize)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes[...]
        while !rest.isEmpty {
            // A full chunk is sealed only once more data follows: the last chunk carries the final flag.
            if buffer.count == Age.chunkSize { try seal(last: false) }
            let take = min(Age.chunkSize - buffer.count, rest.count)
            buffer.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
        }
    }

    /// Seals the last chunk (empty only when the whole plaintext is empty).
    public func finish() throws {
        guard !finished else { return }
        finished = true
        try seal(last: true)
    }

    private func seal(last: Bool) throws {
        let box = try ChaChaPoly.seal(buffer, using: payloadKey, nonce: Age.streamNonce(counter: counter, last: last))
        try (Array(box.ciphertext) + Array(box.tag)).withUnsafeBytes { try output($0) }
        counter += 1
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Decrypts an age stream fed in pieces of any size. Errors are `IntegrityError`s naming `object`.
public final class AgeDecryptor {
    private let identities: [AgeIdentity]
    private let object: String
    private var pending: [UInt8] = []
    private var payloadKey: SymmetricKey?
    private var counter: UInt64 = 0
    private var sawLast = false

    public init(identities: [AgeIdentity], object: String) {
        self.identities = identities
        self.object = object
    }

    private func fail(_ problem: String) -> IntegrityError { IntegrityError(object: object, problem: problem) }

    /// Takes ciphertext; returns the plaintext it completes (possibly none yet).
    public func feed(_ bytes: UnsafeRawBufferPointer) throws -> [UInt8] {
        pending.append(contentsOf: bytes)
        if payloadKey == nil {
            guard try parseHeader() else { return [] }
        }
        var out: [UInt8] = []
        let sealed = Age.chunkSize + Age.tagSize
        // Keep one whole chunk back until we know whether it is the last. The opened chunks are dropped from
        // `pending` once, at the end (not one shift of the buffer per chunk).
        var start = 0
        while pending.count - start > sealed {
            if sawLast { throw fail("data follows the last age chunk") }
            out += try open(Array(pending[start..<start + sealed]), last: false)
            start += sealed
        }
        pending.removeFirst(start)
        return out
    }

    /// The end of the ciphertext: opens the last chunk.
    public func finish() throws -> [UInt8] {
        guard payloadKey != nil else { throw fail("the age header is incomplete (truncated or not an age file)") }
        guard pending.count >= Age.tagSize else { throw fail("the age payload ends before its last chunk (truncated)") }
        if pending.count == Age.tagSize && counter > 0 { throw fail("the age payload ends with an empty chunk") }
        let last = try open(pending, last: true)
        pending.removeAll()
        return last
    }

    private func open(_ chunk: [UInt8], last: Bool) throws -> [UInt8] {
        guard let payloadKey else { throw fail("no payload key") }
        do {
            let box = try ChaChaPoly.SealedBox(nonce: Age.streamNonce(counter: counter, last: last),
                                               ciphertext: chunk.dropLast(Age.tagSize), tag: chunk.suffix(Age.tagSize))
            let plain = try ChaChaPoly.open(box, using: payloadKey)
            counter += 1
            if last { sawLast = true }
            return Array(plain)
        } catch {
            if !last, let _ = try? ChaChaPoly.open(ChaChaPoly.SealedBox(nonce: Age.streamNonce(counter: counter, last: true),
                                                                         ciphertext: chunk.dropLast(Age.tagSize), tag: chunk.suffix(Age.tagSize)),
                                                     using: payloadKey) {
                throw fail("data follows the last age chunk")
            }
            throw fail("age chunk \(counter) does not authenticate: the file was altered or \(last ? "truncated" : "damaged")")
        }
    }

    /// Parses the header once it is complete; false while more bytes are needed.
    private func parseHeader() throws -> Bool {
        // The header ends with the line "--- <mac>\n".
        guard let end = findHeaderEnd() else {
            if pending.count > 1 << 20 { throw fail("no age header found in the first MiB (not an age file)") }
            if pending.count >= Age.intro.utf8.count && !pending.starts(with: Array(Age.intro.utf8)) {
                throw fail("not an age file (it does not start with \"age-encryption.org/v1\")")
            }
            return false
        }
        let headerBytes = Array(pending[0..<end.macLineStart])
        guard let text = String(bytes: headerBytes, encoding: .utf8), text.hasPrefix(Age.intro) else {
            throw fail("not an age file (it does not start with \"age-encryption.org/v1\")")
        }
        guard let mac = String(bytes: pending[end.macLineStart + 4..<end.lineEnd], encoding: .utf8).flatMap(Age.unb64), mac.count == 32 else {
            throw fail("the age header MAC line is malformed")
        }
        var lines = text.dropFirst(Age.intro.count).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        // Stanzas: "-> type args…", then body lines of 64 base64 characters, ending with a shorter line.
        var stanzas: [(args: [String], body: [UInt8])] = []
        var i = 0
        while i < lines.count {
            guard lines[i].hasPrefix("-> ") else { throw fail("malformed age header line \(i + 2)") }
            let args = lines[i].dropFirst(3).split(separator: " ").map(String.init)
            var body: [UInt8] = []
            i += 1
            while true {
                guard i < lines.count, let bytes = Age.unb64(lines[i]) else { throw fail("malformed age stanza body") }
                body += bytes
                let full = lines[i].count == 64
                i += 1
                if !full { break }
            }
            stanzas.append((args, body))
        }
        var fileKey: [UInt8]?
        search: for stanza in stanzas where stanza.args.first == "X25519" {
            guard stanza.args.count == 2, let share = Age.unb64(stanza.args[1]), share.count == 32, stanza.body.count == 32,
                  let sharePoint = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: share) else {
                throw fail("malformed X25519 stanza in the age header")
            }
            for identity in identities {
                guard let shared = try? identity.privateKey.sharedSecretFromKeyAgreement(with: sharePoint).withUnsafeBytes({ Array($0) }),
                      shared.contains(where: { $0 != 0 }) else { continue }
                let wrapKey = Age.hkdf(shared, salt: share + Array(identity.recipient.publicKey.rawRepresentation), info: Age.x25519Label)
                if let box = try? ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12)),
                                                       ciphertext: stanza.body.prefix(16), tag: stanza.body.suffix(16)),
                   let key = try? ChaChaPoly.open(box, using: wrapKey) {
                    fileKey = Array(key)
                    break search
                }
            }
        }
        guard let fileKey else {
            // Not damage: the file may be whole, and another key may read it.
            throw IntegrityError(object: object, problem: "no identity of encryption.identity_file can decrypt it (wrong key?)", showsDamage: false)
        }
        let expected = HMAC<SHA256>.authenticationCode(for: headerBytes + Array("---".utf8), using: Age.hkdf(fileKey, salt: [], info: "header"))
        guard Array(expected) == mac else { throw fail("the age header MAC does not match: the header was altered") }
        let nonceStart = end.lineEnd + 1
        guard pending.count >= nonceStart + 16 else { return false } // the nonce has not arrived yet
        payloadKey = Age.hkdf(fileKey, salt: Array(pending[nonceStart..<nonceStart + 16]), info: "payload")
        pending.removeFirst(nonceStart + 16)
        return true
    }

    /// How far `findHeaderEnd` has looked: the start of the line it was in, and the next byte to look at. A header
    /// fed a few bytes at a time is then scanned once, not again from its start with every piece (quadratic: a
    /// MiB fed byte by byte was 5 * 10^11 steps).
    private var headerScan = (lineStart: 0, next: 0)

    /// Where the "---" line starts and where it ends (its newline).
    private func findHeaderEnd() -> (macLineStart: Int, lineEnd: Int)? {
        var (lineStart, i) = headerScan
        defer { headerScan = (lineStart, i) }
        while i < pending.count {
            if pending[i] == UInt8(ascii: "\n") {
                if i - lineStart >= 4 && pending[lineStart] == 45 && pending[lineStart + 1] == 45 && pending[lineStart + 2] == 45
                    && pending[lineStart + 3] == 32 {
                    return (lineStart, i)
                }
                lineStart = i + 1
            }
            i += 1
        }
        return nil
    }
}

/// Bech32 (BIP 173) without the 90-character limit, as age uses it for keys.
enum Bech32 {
    private static let charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
    private static let generator: [UInt32] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]

    private static func polymod(_ values: [UInt8]) -> UInt32 {
        var chk: UInt32 = 1
        for v in values {
            let top = chk >> 25
            chk = (chk & 0x1ffffff) << 5 ^ UInt32(v)
            for i in 0..<5 where (top >> i) & 1 == 1 { chk ^= generator[i] }
        }
        return chk
    }

    private static func expand(_ hrp: [UInt8]) -> [UInt8] { hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 } }

    private static func convert(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var acc = 0, bits = 0
        var out: [UInt8] = []
        let maxv = (1 << to) - 1
        for v in data {
            acc = (acc << from) | Int(v)
            bits += from
            while bits >= to {
                bits -= to
                out.append(UInt8((acc >> bits) & maxv))
            }
        }
        if pad {
            if bits > 0 { out.append(UInt8((acc << (to - bits)) & maxv)) }
        } else if bits >= from || (acc << (to - bits)) & maxv != 0 {
            return nil
        }
        return out
    }

    static func encode(hrp: String, data: [UInt8]) -> String {
        let h = Array(hrp.lowercased().utf8)
        let values = convert(data, from: 8, to: 5, pad: true)!
        let mod = polymod(expand(h) + values + [0, 0, 0, 0, 0, 0]) ^ 1
        let checksum = (0..<6).map { UInt8((mod >> (5 * (5 - UInt32($0)))) & 31) }
        return String(decoding: h + [UInt8(ascii: "1")] + (values + checksum).map { charset[Int($0)] }, as: UTF8.self)
    }

    /// (lowercased hrp, data); nil when the text is not valid bech32 (mixed case, bad checksum, …).
    static func decode(_ text: String) -> (String, [UInt8])? {
        guard text == text.lowercased() || text == text.uppercased() else { return nil }
        let s = Array(text.lowercased().utf8)
        guard let sep = s.lastIndex(of: UInt8(ascii: "1")), sep >= 1, s.count - sep >= 7 else { return nil }
        let hrp = Array(s[..<sep])
        var values: [UInt8] = []
        for c in s[(sep + 1)...] {
            guard let v = charset.firstIndex(of: c) else { return nil }
            values.append(UInt8(v))
        }
        guard polymod(expand(hrp) + values) == 1 else { return nil }
        guard let data = convert(Array(values.dropLast(6)), from: 5, to: 8, pad: false) else { return nil }
        return (String(decoding: hrp, as: UTF8.self), data)
    }
}
