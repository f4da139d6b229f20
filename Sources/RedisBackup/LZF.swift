/// LZF decompression (the format Redis uses for compressed strings in RDB files).
enum LZF {
    /// Returns nil when the input is malformed or does not produce exactly `expectedLength` bytes.
    static func decompress(_ input: [UInt8], expectedLength: Int) -> [UInt8]? {
        guard expectedLength >= 0 else { return nil }
        var ok = false
        let out = [UInt8](unsafeUninitializedCapacity: expectedLength) { buffer, count in
            ok = decompress(input, into: buffer)
            count = ok ? expectedLength : 0
        }
        return ok ? out : nil
    }

    /// Decompresses `input` into `out`, which it must fill exactly; false when the input is malformed (a
    /// back-reference before the start, a literal run past the end of the input) or the lengths disagree.
    /// Every index is checked against both buffers before it is used.
    static func decompress(_ input: [UInt8], into out: UnsafeMutableBufferPointer<UInt8>) -> Bool {
        input.withUnsafeBufferPointer { inp in
            let n = inp.count, capacity = out.count
            var i = 0, o = 0
            while i < n {
                let ctrl = Int(inp[i])
                i += 1
                if ctrl < 32 {
                    let run = ctrl + 1
                    guard run <= n - i, run <= capacity - o else { return false }
                    (out.baseAddress! + o).update(from: inp.baseAddress! + i, count: run)
                    i += run
                    o += run
                } else {
                    var len = ctrl >> 5
                    if len == 7 {
                        guard i < n else { return false }
                        len += Int(inp[i])
                        i += 1
                    }
                    guard i < n else { return false }
                    let back = ((ctrl & 0x1f) << 8) + Int(inp[i]) + 1
                    i += 1
                    len += 2
                    guard back <= o, len <= capacity - o else { return false }
                    var from = o - back
                    if back >= len { // apart: one copy
                        (out.baseAddress! + o).update(from: out.baseAddress! + from, count: len)
                        o += len
                    } else { // overlapping (a run repeating its last bytes): byte by byte, in order
                        for _ in 0..<len {
                            out[o] = out[from]
                            o += 1
                            from += 1
                        }
                    }
                }
            }
            return o == capacity
        }
    }
}
