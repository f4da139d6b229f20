import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

func fixture(_ name: String) throws -> [UInt8] {
    let path = fixturesDirectory + "/redis/" + name
    guard let data = FileManager.default.contents(atPath: path) else { throw BackupFailure("fixture missing: \(path)") }
    return Array(data)
}

@Suite(.blockingThreads) struct RDBVerifierTests {
    /// Expected values read with the real redis-check-rdb (Tests/Fixtures/PROVENANCE.md).
    @Test(arguments: [
        ("encodings.rdb", 4, 13, RDBReport.Checksum.absent),
        ("hash-zipmap.rdb", 3, 1, .absent),
        ("hash-ziplist.rdb", 9, 1, .verified),
        ("list-quicklist.rdb", 8, 2, .verified),
        ("zset-ziplist.rdb", 10, 1, .verified),
    ])
    func readsRealFixtures(name: String, version: Int, keys: Int, checksum: RDBReport.Checksum) throws {
        let bytes = try fixture(name)
        for chunk in [1, 3, 64, 1 << 20] {
            let report = try RDBVerifier.verify(ChunkedBytes(bytes, chunkSize: chunk))
            #expect(report.version == version)
            #expect(report.keys == keys)
            #expect(report.checksum == checksum)
            #expect(report.bytes == Int64(bytes.count))
        }
    }

    @Test func rejectsTheCorruptFixture() throws {
        do {
            _ = try RDBVerifier.verify(ChunkedBytes(try fixture("corrupt_empty_keys.rdb"), chunkSize: 7))
            Issue.record("corrupt_empty_keys.rdb accepted")
        } catch let error as RDBError {
            #expect(error.problem.contains("no elements"))
            #expect(error.exitStatus == .integrity)
        }
    }

    /// Any single flipped byte of a checksummed RDB is caught (by structure or by the CRC).
    @Test(arguments: ["hash-ziplist.rdb", "list-quicklist.rdb", "zset-ziplist.rdb"])
    func everyFlippedByteIsCaught(name: String) throws {
        let bytes = try fixture(name)
        for i in 0..<bytes.count {
            var copy = bytes
            copy[i] ^= 0x01
            #expect(throws: RDBError.self, "flip at \(i)") { try RDBVerifier.verify(ChunkedBytes(copy, chunkSize: 16)) }
        }
    }

    @Test(arguments: ["hash-ziplist.rdb", "encodings.rdb"])
    func everyTruncationIsCaught(name: String) throws {
        let bytes = try fixture(name)
        for n in 0..<bytes.count - (name == "encodings.rdb" ? 1 : 8) {
            #expect(throws: RDBError.self, "truncated at \(n)") {
                try RDBVerifier.verify(ChunkedBytes(Array(bytes.prefix(n)), chunkSize: 5))
            }
        }
    }

    /// Redis writes nothing after the checksum: a byte there (or another RDB joined on) is refused, in any chunking.
    @Test(arguments: ["hash-ziplist.rdb", "encodings.rdb"])
    func trailingBytesAreRejected(name: String) throws {
        let bytes = try fixture(name)
        #expect(throws: Never.self) { _ = try RDBVerifier.verify(ChunkedBytes(bytes, chunkSize: 7)) }
        for extra in [[UInt8(0)], Array(bytes)] {
            for size in [1, 7, 1 << 20] {
                #expect(throws: RDBError.self) { _ = try RDBVerifier.verify(ChunkedBytes(bytes + extra, chunkSize: size)) }
            }
        }
    }

    @Test func rejectsWhatIsNotAnRDB() {
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(Array("HELLO WORLD".utf8), chunkSize: 4)) }
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(Array("REDIS0099".utf8) + [0xFF], chunkSize: 4)) }
    }

    @Test func zeroChecksumMeansDisabled() throws {
        var bytes = try fixture("zset-ziplist.rdb")
        for i in (bytes.count - 8)..<bytes.count { bytes[i] = 0 }
        #expect(try RDBVerifier.verify(ChunkedBytes(bytes, chunkSize: 100)).checksum == .disabled)
    }
}

/// Crafted RDBs: the types no server here writes (Redis 7.4's hash field expirations), and lengths chosen to
/// make arithmetic overflow. A verifier may reject; it never traps.
@Suite(.blockingThreads) struct RDBCraftedTests {
    /// `REDIS00<v>`, one key of `type` with `value`, EOF and a zero (disabled) checksum.
    static func rdb(version: String = "12", type: UInt8, key: String = "k", value: [UInt8]) -> [UInt8] {
        Array("REDIS00\(version)".utf8) + [0xFE, 0x00, type, UInt8(key.utf8.count)] + Array(key.utf8) + value + [0xFF] + [UInt8](repeating: 0, count: 8)
    }

    static func str(_ s: String) -> [UInt8] { [UInt8(s.utf8.count)] + Array(s.utf8) }

    /// A listpack of short strings (6-bit length encoding, one-byte back-lengths).
    static func listpack(_ items: [String]) -> [UInt8] {
        var body: [UInt8] = []
        for item in items {
            let entry = [0x80 | UInt8(item.utf8.count)] + Array(item.utf8)
            body += entry + [UInt8(entry.count)]
        }
        let total = 4 + 2 + body.count + 1
        return [UInt8(total & 0xFF), UInt8(total >> 8 & 0xFF), 0, 0, UInt8(items.count & 0xFF), UInt8(items.count >> 8)] + body + [0xFF]
    }

    @Test func hashWithFieldExpirationsMetadata() throws {
        // type 24: min expire (8 bytes), 2 fields: (ttl 0, f1, v1), (ttl 5, f2, v2)
        let value: [UInt8] = [UInt8](repeating: 1, count: 8) + [2] + [0] + Self.str("f1") + Self.str("v1") + [5] + Self.str("f2") + Self.str("v2")
        let report = try RDBVerifier.verify(ChunkedBytes(Self.rdb(type: 24, value: value), chunkSize: 3))
        #expect(report.keys == 1)
        // type 22 (7.4 release candidates): no min expire.
        let pre: [UInt8] = [1] + [0] + Self.str("f") + Self.str("v")
        #expect(try RDBVerifier.verify(ChunkedBytes(Self.rdb(type: 22, value: pre), chunkSize: 2)).keys == 1)
        // No fields: an empty key is corrupt.
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(Self.rdb(type: 24, value: [UInt8](repeating: 0, count: 8) + [0]), chunkSize: 4)) }
    }

    @Test func hashListpackWithFieldExpirations() throws {
        let lp = Self.listpack(["f1", "v1", "0", "f2", "v2", "9"])
        let value = [UInt8](repeating: 0, count: 8) + [UInt8(lp.count)] + lp
        #expect(try RDBVerifier.verify(ChunkedBytes(Self.rdb(type: 25, value: value), chunkSize: 5)).keys == 1)
        #expect(try RDBVerifier.verify(ChunkedBytes(Self.rdb(type: 23, value: [UInt8(lp.count)] + lp), chunkSize: 5)).keys == 1)
        // Not triples: rejected.
        let two = Self.listpack(["f1", "v1"])
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(Self.rdb(type: 23, value: [UInt8(two.count)] + two), chunkSize: 5)) }
    }

    /// A module id packs the module's 9-character name in 6-bit codes from its top bits (Redis's
    /// moduleTypeEncodeId): a name starting with g-z, a digit, - or _ sets bit 63. Read as a length, it was
    /// "out of range" and every backup of such a server failed. Here: a type-7 value and a MODULE_AUX record.
    static func moduleID(_ name: String, encver: UInt64 = 1) -> [UInt8] {
        let charset = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var id: UInt64 = 0
        for ch in name { id = id << 6 | UInt64(charset.firstIndex(of: ch)!) }
        id = id << 10 | encver
        return [0x81] + withUnsafeBytes(of: id.bigEndian) { Array($0) }
    }

    @Test(arguments: ["graphdata", "ReJSON-RL", "_________", "0timeserie"])
    func moduleIDsUseAll64Bits(name: String) throws {
        let nine = String(name.prefix(9))
        let huge: [UInt8] = [0x81] + [UInt8](repeating: 0xFF, count: 8)
        let body = [2] + huge + [1] + [5] + [5] + Self.str("payload") + [3] + [0, 0, 0x80, 0x3F] + [0]
        let value = Self.moduleID(nine) + body
        #expect(try RDBVerifier.verify(ChunkedBytes(Self.rdb(type: 7, value: value), chunkSize: 3)).keys == 1)
        let aux = Array("REDIS0012".utf8) + [0xF7] + Self.moduleID(nine) + [2] + [2] + body
            + [0xFE, 0x00, 0x00, 1] + Array("k".utf8) + Self.str("v") + [0xFF] + [UInt8](repeating: 0, count: 8)
        #expect(try RDBVerifier.verify(ChunkedBytes(aux, chunkSize: 4)).keys == 1)
    }

    /// zipmapValidateIntegrity: the count byte is the count, or 254 (too many to hold); 0xFF is refused by Redis.
    @Test func aZipmapCountOf255IsRefused() throws {
        func zipmap(count: UInt8) -> [UInt8] {
            let blob: [UInt8] = [count, 1] + Array("a".utf8) + [1, 0] + Array("b".utf8) + [0xFF]
            return Self.rdb(version: "06", type: 9, value: [UInt8(blob.count)] + blob)
        }
        #expect(try RDBVerifier.verify(ChunkedBytes(zipmap(count: 1), chunkSize: 2)).keys == 1)
        #expect(try RDBVerifier.verify(ChunkedBytes(zipmap(count: 254), chunkSize: 2)).keys == 1)
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(zipmap(count: 0xFF), chunkSize: 2)) }
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(zipmap(count: 2), chunkSize: 2)) }
    }

    /// The fault campaign's reproduction: a hash announcing 2^62 fields (`0..<2*n` trapped).
    @Test func hugeHashLengthIsRejectedNotTrapped() {
        var value: [UInt8] = [0x81]
        value += withUnsafeBytes(of: (UInt64(1) << 62).bigEndian) { Array($0) }
        value += Self.str("a") + Self.str("b")
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(Self.rdb(version: "09", type: 4, value: value), chunkSize: 7)) }
    }

    /// A stream consumer owning 2^60 entries (`skip(16 * owned)` trapped), and an entries_read of -1 (valid).
    @Test func hugeStreamConsumerCountIsRejectedNotTrapped() {
        let lp = Self.listpack(["1", "0", "1", "a", "0", "0", "0", "x", "0", "2"])
        var value: [UInt8] = [1, 16] + [UInt8](repeating: 0, count: 16) + [UInt8(lp.count)] + lp
        value += [1, 1, 0] // length, last id
        value += [0, 0, 0, 0, 1] // first id, max deleted id, entries added
        value += [1] + Self.str("g") + [1, 0] // one group, last id
        value += [0x81] + [UInt8](repeating: 0xFF, count: 8) // entries_read -1
        value += [0] // PEL
        value += [1] + Self.str("c") + [UInt8](repeating: 0, count: 16) // consumer, seen + active time
        value += [0x81] + withUnsafeBytes(of: (UInt64(1) << 60).bigEndian) { Array($0) } // owned
        #expect(throws: RDBError.self) { try RDBVerifier.verify(ChunkedBytes(Self.rdb(version: "11", type: 21, value: value), chunkSize: 9)) }
    }
}

/// The small encodings' semantics, on RDBs a real Redis wrote, changed the way a bit flip could change them: a
/// hash field or zset member turned into its neighbour is a duplicate that `redis-check-rdb` rejects, and so
/// must the verifier (before, only the containers' structure was walked).
@Suite(.blockingThreads) struct RDBSemanticsTests {
    @Test func duplicatesInSmallContainersAreRejectedAsRedisRejectsThem() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        _ = try c.command(["HSET", "h", "field-a", "1", "field-b", "2"])
        _ = try c.command(["ZADD", "z", "1", "member-a", "2", "member-b"])
        _ = try c.command(["XADD", "s", "1-1", "k", "v"])
        c.close()
        let dir = TemporaryDirectory()
        let dump = try runProcess("redis-cli", ["-p", "\(redis.port)", "--rdb", dir.file("d.rdb")])
        #expect(dump.status == 0, "\(dump.stderr)")
        let original = try #require(FileManager.default.contents(atPath: dir.file("d.rdb")).map(Array.init))
        _ = try RDBVerifier.verify(ChunkedBytes(original, chunkSize: 64))
        for (from, to, problem) in [("field-b", "field-a", "hash listpack holds a duplicate key"),
                                    ("member-b", "member-a", "zset listpack holds a duplicate key")] {
            var mutant = original
            let needle = Array(from.utf8)
            let at = try #require((0...(mutant.count - needle.count)).first { Array(mutant[$0..<($0 + needle.count)]) == needle })
            mutant.replaceSubrange(at..<(at + needle.count), with: Array(to.utf8))
            for i in (mutant.count - 8)..<mutant.count { mutant[i] = 0 } // checksum disabled, as in the differential test
            try Data(mutant).write(to: URL(fileURLWithPath: dir.file("m.rdb")))
            let tool = try runProcess("/usr/bin/redis-check-rdb", [dir.file("m.rdb")])
            #expect(tool.status != 0, "redis-check-rdb accepted the \(from) → \(to) mutant")
            do {
                _ = try RDBVerifier.verify(ChunkedBytes(mutant, chunkSize: 64))
                Issue.record("the verifier accepted the \(from) → \(to) mutant")
            } catch {
                #expect("\(error)".contains(problem), "\(error)")
            }
        }
    }
}

/// The key walk behind `ls` and partial restores, against the real server: the same keys, types and TTLs as
/// `SCAN`/`TYPE`/`PEXPIRETIME`, and `--match` globs selecting exactly what `KEYS pattern` selects.
@Suite(.blockingThreads) struct RDBKeyWalkTests {
    @Test func keysTypesTTLsAndGlobsAgreeWithRedis() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        defer { c.close() }
        var names: [String] = []
        for i in 0..<300 { names.append("user:\(i):profile"); _ = try c.command(["SET", "user:\(i):profile", "v\(i)"]) }
        for name in ["hello", "hallo", "hxllo", "hllo", "heeeello", "a*b", "a?b", "[x]", "back\\slash", "12345", "-7", "ünï"] {
            names.append(name)
            _ = try c.command(["SET", name, "x"])
        }
        _ = try c.command(["HSET", "h:small", "f", "1"])
        _ = try c.command(["RPUSH", "l:list", "a", "b"])
        _ = try c.command(["SADD", "s:ints", "1", "2", "3"])
        _ = try c.command(["ZADD", "z:set", "1", "m"])
        _ = try c.command(["XADD", "x:stream", "*", "f", "v"])
        _ = try c.command(["PEXPIRE", "user:7:profile", "3600000"])
        let dir = TemporaryDirectory()
        #expect(try runProcess("redis-cli", ["-p", "\(redis.port)", "--rdb", dir.file("d.rdb")]).status == 0)
        let rdb = try #require(FileManager.default.contents(atPath: dir.file("d.rdb")).map(Array.init))
        var walked: [String: RDBKey] = [:]
        _ = try RDBVerifier.verify(ChunkedBytes(rdb, chunkSize: 61), keys: RDBKeyVisitor { walked[String(decoding: $0.key, as: UTF8.self)] = $0 })
        #expect(walked.count == names.count + 5)
        for (key, entry) in walked {
            #expect(try c.command(["TYPE", key]) == .simple(entry.typeName), "\(key)")
        }
        if case .integer(let at) = try c.command(["PEXPIRETIME", "user:7:profile"]) { #expect(walked["user:7:profile"]?.expireAtMs == Int64(at)) }
        #expect(walked["hello"]?.expireAtMs == nil)
        for pattern in ["*", "user:1?:*", "h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo", "a\\*b", "a[*]b", "\\[x\\]", "back\\\\slash",
                        "*:profile", "user:*7*", "1*", "-*", "ü*", "[", "nomatch*"] {
            guard case .array(let keys?) = try c.command(["KEYS", pattern]) else { Issue.record("KEYS \(pattern)"); continue }
            let expected = Set(keys.compactMap { if case .bulk(let b) = $0 { return String(decoding: b ?? [], as: UTF8.self) } else { return nil } })
            let ours = Set(walked.keys.filter { Glob(pattern).matches($0) })
            #expect(ours == expected, "pattern \(pattern): ours \(ours.subtracting(expected).sorted().prefix(5)), Redis's \(expected.subtracting(ours).sorted().prefix(5))")
        }
    }
}

/// LZF payloads as RDB strings (encoding 3) inside a minimal RDB: what the decompressor accepts and refuses.
@Suite(.blockingThreads) struct LZFPayloadTests {
    /// An RDB v9 holding one string key whose value is the LZF payload `lzf` said to decompress to `plain` bytes.
    private func rdb(lzf: [UInt8], plain: Int) -> [UInt8] {
        var b = Array("REDIS0009".utf8)
        b += [0xFE, 0x00, 0x00, 0x01, 0x61] // SELECTDB 0, type string, key "a"
        b += [0xC3, UInt8(lzf.count), UInt8(plain)] + lzf
        b += [0xFF] + [UInt8](repeating: 0, count: 8) // EOF, no checksum
        return b
    }

    @Test func literalsAndBackReferencesDecompress() throws {
        // "abcabcabcX": literal "abc", a back-reference of 6 bytes at distance 3 (overlapping), literal "X";
        // then "abcX" again at distance 4 (apart).
        let lzf: [UInt8] = [0x02, 0x61, 0x62, 0x63, 0x80, 0x02, 0x00, 0x58, 0x40, 0x03]
        let report = try RDBVerifier.verify(ChunkedBytes(rdb(lzf: lzf, plain: 14), chunkSize: 3))
        #expect(report.keys == 1)
    }

    @Test(arguments: [
        ([0x02, 0x61, 0x62, 0x63, 0x80, 0x05], 9, "back-reference before the start"),
        ([0x05, 0x61, 0x62], 6, "literal run past the end of the input"),
        ([0x02, 0x61, 0x62, 0x63], 4, "shorter than recorded"),
        ([0x02, 0x61, 0x62, 0x63, 0x20, 0x00], 4, "longer than recorded"),
        ([0x02, 0x61, 0x62, 0x63, 0xE0], 12, "long back-reference cut off"),
    ] as [([UInt8], Int, String)])
    func malformedPayloadsAreRefused(lzf: [UInt8], plain: Int, what: String) {
        #expect(throws: RDBError.self, "\(what)") { try RDBVerifier.verify(ChunkedBytes(rdb(lzf: lzf, plain: plain), chunkSize: 2)) }
    }
}
