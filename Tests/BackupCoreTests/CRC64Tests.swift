import BackupCore
import Testing

struct CRC64Tests {
    @Test func jonesCheckValues() {
        #expect(CRC64.jones.checksum(Array("123456789".utf8)) == 0xe9c6_d914_c4b8_d9ca)
        // crc64Test of redis/src/crc64.c: the lorem-ipsum text including its terminating NUL.
        let lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed "
            + "do eiusmod tempor incididunt ut labore et dolore magna "
            + "aliqua. Ut enim ad minim veniam, quis nostrud exercitation "
            + "ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis "
            + "aute irure dolor in reprehenderit in voluptate velit esse "
            + "cillum dolore eu fugiat nulla pariatur. Excepteur sint "
            + "occaecat cupidatat non proident, sunt in culpa qui officia "
            + "deserunt mollit anim id est laborum."
        #expect(CRC64.jones.checksum(Array(lorem.utf8) + [0]) == 0xc779_4709_e696_83b3)
    }

    @Test func xzCheckValue() {
        #expect(CRC64.xz.checksum(Array("123456789".utf8)) == 0x995d_c9bb_df19_39fa)
    }

    /// Slicing-by-8 must agree with the byte-at-a-time form whatever the length and split.
    @Test(arguments: [0, 1, 7, 8, 9, 63, 64, 65, 1000])
    func slicingMatchesBytewise(length: Int) {
        var rng = SeededGenerator(seed: UInt64(length) + 1)
        let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for crc in [CRC64.jones, CRC64.xz] {
            var bytewise = crc.start
            for b in data { bytewise = data.isEmpty ? bytewise : [b].withUnsafeBytes { crc.update(bytewise, $0) } }
            let whole = data.withUnsafeBytes { crc.update(crc.start, $0) }
            #expect(whole == bytewise)
            let split = length / 3
            var parts = data[..<split].withUnsafeBytes { crc.update(crc.start, $0) }
            parts = data[split...].withUnsafeBytes { crc.update(parts, $0) }
            #expect(parts == whole)
        }
    }
}

/// A small deterministic generator (SplitMix64) for reproducible test data.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
