/// LZF decompression (the format Redis uses for compressed strings in RDB files).
enum LZF {
    /// Returns nil when the input is malformed or does not produce exactly `expectedLength` bytes.
    static func decompress(_ input: [UInt8], expectedLength: Int) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(expectedLength)
        var i = 0
        while i < input.count {
            let ctrl = Int(input[i])
            i += 1
            if ctrl < 32 {
                let run = ctrl + 1
                guard i + run <= input.count, out.count + run <= expectedLength else { return nil }
                out.append(contentsOf: input[i..<i + run])
                i += run
            } else {
                var len = ctrl >> 5
                if len == 7 {
                    guard i < input.count else { return nil }
                    len += Int(input[i])
                    i += 1
                }
                guard i < input.count else { return nil }
                let back = ((ctrl & 0x1f) << 8) + Int(input[i]) + 1
                i += 1
                len += 2
                guard back <= out.count, out.count + len <= expectedLength else { return nil }
                let start = out.count - back
                for k in 0..<len { out.append(out[start + k]) }
            }
        }
        return out.count == expectedLength ? out : nil
    }
}
