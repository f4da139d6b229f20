// TarFormat: POSIX pax archives (IEEE Std 1003.1-2001 `pax` format, what GNU tar reads with `tar -t`/`-x`),
// written as a stream and read back strictly. Pure: no file system access; the caller supplies bytes.
//
// An entry is a 512-byte ustar header (octal fields, checksum), preceded by a pax extended header (`x`) when
// a value does not fit ustar (long or non-ASCII names, large ids, sub-second mtimes), then the content padded
// to 512 bytes. The archive ends with two zero blocks.
//
// The reader also reads what tar-rs (the Rust `tar` crate, which Qdrant builds its snapshots with) and GNU tar
// write: GNU long names (`L`, `K`), old-GNU sparse files (`S`: the sparse map in the header at 386, extension
// headers after it; tar-rs `Builder::sparse(true)`, GNU `tar --sparse --format=gnu`) and base-256 numbers
// (first byte 0x80: sizes of 8 GiB and more; tar-rs `header.rs` `num_field_wrapper_into`).
import BackupCore
import Foundation

public enum TarEntryType: String, Sendable, Equatable, Codable {
    case file
    case directory
    case symlink
}

/// One member of an archive.
public struct TarEntry: Sendable, Equatable {
    /// Relative path, `/`-separated, never starting with `/` (directories without the trailing `/`).
    public var path: String
    public var type: TarEntryType
    public var size: Int64
    /// Permission bits (0o7777).
    public var mode: UInt32
    public var uid: Int
    public var gid: Int
    public var user: String
    public var group: String
    /// Seconds since the epoch (fraction kept through pax).
    public var mtime: Double
    public var linkTarget: String?
    /// For a GNU sparse file (`S`): the stored chunks, ascending, within `size` (the file's real size); the rest
    /// of the file is holes (zeros). `content` yields the file with its holes filled; nil for a plain file.
    public var sparse: [TarSparseChunk]?

    public init(path: String, type: TarEntryType, size: Int64 = 0, mode: UInt32, uid: Int = 0, gid: Int = 0, user: String = "",
                group: String = "", mtime: Double, linkTarget: String? = nil, sparse: [TarSparseChunk]? = nil) {
        self.path = path
        self.type = type
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.user = user
        self.group = group
        self.mtime = mtime
        self.linkTarget = linkTarget
        self.sparse = sparse
    }

    /// Bytes the entry occupies in the archive (without padding): the stored chunks of a sparse file.
    /// (Saturates rather than traps on a map built by hand; the reader's maps add up to at most `size`.)
    public var storedSize: Int64 {
        guard let sparse else { return size }
        return sparse.reduce(Int64(0)) { total, chunk in
            let (sum, overflow) = total.addingReportingOverflow(chunk.length)
            return overflow ? Int64.max : sum
        }
    }
}

/// One stored piece of a sparse file: `length` bytes of data at `offset` of the real file.
public struct TarSparseChunk: Sendable, Equatable {
    public var offset: Int64
    public var length: Int64
    public init(offset: Int64, length: Int64) {
        self.offset = offset
        self.length = length
    }
}

/// An archive that is not what it claims: where (byte offset) and what. Exit 4.
public struct TarError: UserFacingError, IntegrityFailure, Equatable {
    public var offset: Int64
    public var problem: String

    public init(offset: Int64, problem: String) {
        self.offset = offset
        self.problem = problem
    }

    public var exitStatus: ExitStatus { .integrity }
    public var description: String { "tar archive is not valid at byte \(offset): \(problem)" }
}

enum Tar {
    static let block = 512
    static let maxOctal11: Int64 = 0o77777777777 // 8 GiB - 1: larger sizes go through pax
    static let maxOctal7 = 0o7777777

    static func padding(_ size: Int64) -> Int { Int((Int64(block) - size % Int64(block)) % Int64(block)) }
}

/// Writes an archive to `output`, entry by entry: `begin`, the content through `write`, `end`; then `finish`.
public struct TarWriter {
    private let output: (UnsafeRawBufferPointer) throws -> Void
    private var remaining: Int64 = 0
    private var current: TarEntry?
    private var paxCounter = 0

    public init(output: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.output = output
    }

    public mutating func begin(_ entry: TarEntry) throws {
        precondition(current == nil, "end() the previous entry first")
        var e = entry
        if e.type != .file { e.size = 0 }
        var name = e.path
        if e.type == .directory && !name.hasSuffix("/") { name += "/" }
        var pax: [(String, String)] = []
        func fits(_ s: String, _ n: Int) -> Bool { s.utf8.count <= n && s.utf8.allSatisfy { $0 < 0x80 && $0 != 0 } }
        if !fits(name, 100) { pax.append(("path", name)) }
        if let link = e.linkTarget, !fits(link, 100) { pax.append(("linkpath", link)) }
        if e.size > Tar.maxOctal11 { pax.append(("size", String(e.size))) }
        if e.uid > Tar.maxOctal7 || e.uid < 0 { pax.append(("uid", String(e.uid))) }
        if e.gid > Tar.maxOctal7 || e.gid < 0 { pax.append(("gid", String(e.gid))) }
        if !fits(e.user, 32) { pax.append(("uname", e.user)) }
        if !fits(e.group, 32) { pax.append(("gname", e.group)) }
        if e.mtime != e.mtime.rounded(.down) || e.mtime < 0 || e.mtime > Double(Tar.maxOctal11) {
            pax.append(("mtime", String(format: "%.9f", e.mtime)))
        }
        if !pax.isEmpty {
            var records: [UInt8] = []
            for (key, value) in pax { records += Self.paxRecord(key, value) }
            paxCounter += 1
            let header = Self.header(name: Self.asciiPrefix("PaxHeaders/\(paxCounter)", 100), type: UInt8(ascii: "x"), size: Int64(records.count),
                                     mode: 0o644, uid: 0, gid: 0, user: "", group: "", mtime: 0, link: "")
            try emit(header)
            try emit(records)
            try emit([UInt8](repeating: 0, count: Tar.padding(Int64(records.count))))
        }
        let type: UInt8 = e.type == .file ? UInt8(ascii: "0") : (e.type == .directory ? UInt8(ascii: "5") : UInt8(ascii: "2"))
        let header = Self.header(name: Self.asciiPrefix(name, 100), type: type, size: min(e.size, Tar.maxOctal11), mode: e.mode & 0o7777,
                                 uid: min(max(e.uid, 0), Tar.maxOctal7), gid: min(max(e.gid, 0), Tar.maxOctal7),
                                 user: Self.asciiPrefix(e.user, 32), group: Self.asciiPrefix(e.group, 32),
                                 mtime: Int64(max(0, min(e.mtime, Double(Tar.maxOctal11)))), link: Self.asciiPrefix(e.linkTarget ?? "", 100))
        try emit(header)
        current = e
        remaining = e.size
    }

    /// Content of the current file entry; never more than its declared size.
    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        guard Int64(bytes.count) <= remaining else {
            throw BackupFailure("tar: more content than the \(current?.size ?? 0) bytes declared for \(current?.path ?? "?")")
        }
        remaining -= Int64(bytes.count)
        try output(bytes)
    }

    /// Ends the current entry. A file that delivered fewer bytes than declared (it shrank while read) is
    /// padded with zeros to its declared size; the number of bytes padded is returned, so the caller knows.
    @discardableResult
    public mutating func end() throws -> Int64 {
        guard let entry = current else { return 0 }
        let missing = remaining
        var left = missing
        let zeros = [UInt8](repeating: 0, count: 64 * 1024)
        while left > 0 {
            let n = Int(min(left, Int64(zeros.count)))
            try zeros[0..<n].withUnsafeBytes { try output($0) }
            left -= Int64(n)
        }
        try emit([UInt8](repeating: 0, count: Tar.padding(entry.size)))
        current = nil
        remaining = 0
        return missing
    }

    /// The two zero blocks that end an archive.
    public mutating func finish() throws {
        try emit([UInt8](repeating: 0, count: 2 * Tar.block))
    }

    private func emit(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        try bytes.withUnsafeBytes { try output($0) }
    }

    /// `"%d %s=%s\n"` where the leading number counts the whole record, itself included.
    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while String(length).utf8.count + body.utf8.count != length { length = String(length).utf8.count + body.utf8.count }
        return Array("\(length)\(body)".utf8)
    }

    /// The longest prefix of `s` made of ASCII bytes that fits in `n` bytes (ustar fields; pax holds the truth).
    static func asciiPrefix(_ s: String, _ n: Int) -> String {
        String(decoding: s.utf8.prefix { $0 < 0x80 && $0 != 0 }.prefix(n), as: UTF8.self)
    }

    static func header(name: String, type: UInt8, size: Int64, mode: UInt32, uid: Int, gid: Int, user: String, group: String,
                       mtime: Int64, link: String) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: Tar.block)
        func put(_ s: String, _ at: Int, _ n: Int) {
            for (i, b) in s.utf8.prefix(n).enumerated() { h[at + i] = b }
        }
        func octal(_ v: Int64, _ at: Int, _ n: Int) { put(String(repeating: "0", count: max(0, n - 1 - String(v, radix: 8).count)) + String(v, radix: 8), at, n - 1) }
        put(name, 0, 100)
        octal(Int64(mode), 100, 8)
        octal(Int64(uid), 108, 8)
        octal(Int64(gid), 116, 8)
        octal(size, 124, 12)
        octal(mtime, 136, 12)
        for i in 148..<156 { h[i] = 32 }
        h[156] = type
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        put(user, 265, 32)
        put(group, 297, 32)
        octal(0, 329, 8)
        octal(0, 337, 8)
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(repeating: "0", count: max(0, 6 - String(sum, radix: 8).count)) + String(sum, radix: 8), 148, 6)
        h[154] = 0
        h[155] = 32
        return h
    }
}

/// Reads an archive strictly: header checksums, ustar magic, octal (or base-256) fields, pax records, sizes,
/// sparse maps, padding, the end blocks. Every length read is checked before it is used. Content is streamed
/// (`content(_:)`).
public struct TarReader<S: ByteSource> {
    private var reader: ByteReader<S>
    /// Stored bytes of the current entry not read yet.
    private var pendingContent: Int64 = 0
    private var pendingPadding = 0
    /// The current entry's sparse map and real size, while its content has not been read.
    private var pendingSparse: [TarSparseChunk]?
    private var pendingRealSize: Int64 = 0
    public private(set) var ended = false

    /// Chunks a sparse map may hold (each extension header adds at most 21): memory stays bounded.
    public static var maxSparseChunks: Int { 1 << 18 }

    public init(_ source: S) { reader = ByteReader(source) }

    public var offset: Int64 { reader.offset }

    /// The next entry, or nil after the end blocks. The previous entry's content, if not read, is skipped.
    public mutating func next() throws -> TarEntry? {
        try skipContent()
        var pax: [String: String] = [:]
        while true {
            let at = reader.offset
            let h: [UInt8]
            do {
                if try reader.atEnd() { throw TarError(offset: at, problem: "the archive ends without its end blocks (truncated)") }
                h = try reader.bytes(Tar.block)
            } catch ByteReader<S>.Failure.truncated(let where_) {
                throw TarError(offset: where_, problem: "the archive ends in the middle of a header (truncated)")
            }
            if h.allSatisfy({ $0 == 0 }) {
                let second = try readBlock(at: reader.offset, what: "the second end block")
                guard second.allSatisfy({ $0 == 0 }) else {
                    throw TarError(offset: at, problem: "a zero block is not followed by a second one (a damaged header?)")
                }
                // What follows the end (GNU tar pads to 10 KiB records) must be zeros.
                while try !reader.atEnd() {
                    let pad = try reader.byte()
                    if pad != 0 { throw TarError(offset: reader.offset - 1, problem: "data after the end of the archive") }
                }
                ended = true
                return nil
            }
            try checkChecksum(h, at: at)
            guard Array(h[257..<262]) == Array("ustar".utf8) else {
                throw TarError(offset: at, problem: "not a POSIX ustar header (no \"ustar\" magic)")
            }
            // The old GNU header (magic "ustar  \0", what tar-rs `Header::new_gnu` and `tar --format=gnu` write)
            // has no name prefix: bytes 345... hold atime, ctime and the sparse map.
            let gnu = Array(h[257..<265]) == Array("ustar  \0".utf8)
            let type = h[156]
            var size = try octal(h, 124, 12, at: at, field: "size")
            if let s = pax["size"] {
                guard let v = Int64(s), v >= 0 else { throw TarError(offset: at, problem: "pax size \"\(s)\" is not a size") }
                size = v
            }
            switch type {
            case UInt8(ascii: "x"):
                guard size <= 1 << 20 else { throw TarError(offset: at, problem: "pax header of \(size) bytes (at most 1 MiB accepted)") }
                let records = try readContentBytes(Int(size), at: at)
                pax.merge(try Self.paxRecords(records, at: at)) { $1 }
                continue
            case UInt8(ascii: "L"), UInt8(ascii: "K"): // GNU long name / long link (what Rust's tar crate writes)
                guard size <= 64 * 1024 else { throw TarError(offset: at, problem: "GNU long name of \(size) bytes") }
                let bytes = try readContentBytes(Int(size), at: at)
                let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                pax[type == UInt8(ascii: "L") ? "path" : "linkpath"] = text
                continue
            case UInt8(ascii: "g"):
                guard size <= 1 << 20 else { throw TarError(offset: at, problem: "pax global header of \(size) bytes") }
                _ = try readContentBytes(Int(size), at: at)
                continue
            case UInt8(ascii: "0"), 0, UInt8(ascii: "5"), UInt8(ascii: "2"), UInt8(ascii: "S"):
                break
            default:
                let kind: String = [UInt8(ascii: "1"): "hard link", UInt8(ascii: "3"): "character device", UInt8(ascii: "4"): "block device",
                                    UInt8(ascii: "6"): "FIFO"][type]
                    ?? String(format: "type 0x%02x", type)
                throw TarError(offset: at, problem: "unsupported entry (\(kind))")
            }
            if pax.keys.contains(where: { $0.hasPrefix("GNU.sparse.") }) {
                // A pax-format sparse file stores its map inside the content: read as a plain file, it would be wrong.
                throw TarError(offset: at, problem: "unsupported entry (a pax-format sparse file; old-GNU sparse entries, type S, are read)")
            }
            var sparse: [TarSparseChunk]?
            var stored = size
            if type == UInt8(ascii: "S") {
                guard gnu else { throw TarError(offset: at, problem: "a sparse entry (type S) without the GNU magic") }
                guard pax["size"] == nil else { throw TarError(offset: at, problem: "a sparse entry with a pax size") }
                let map = try sparseMap(h, storedSize: size, at: at)
                sparse = map.chunks
                size = map.realSize
                stored = map.storedSize
            }
            let prefix = gnu ? "" : Self.string(h, 345, 155)
            var path = pax["path"] ?? (prefix.isEmpty ? Self.string(h, 0, 100) : prefix + "/" + Self.string(h, 0, 100))
            let entryType: TarEntryType = type == UInt8(ascii: "5") ? .directory : (type == UInt8(ascii: "2") ? .symlink : .file)
            if entryType == .directory, path.hasSuffix("/") { path.removeLast() }
            guard !path.isEmpty else { throw TarError(offset: at, problem: "an entry without a name") }
            if entryType != .file && size != 0 { throw TarError(offset: at, problem: "\(entryType.rawValue) \(path) declares \(size) bytes of content") }
            var uid = Int(try octal(h, 108, 8, at: at, field: "uid"))
            var gid = Int(try octal(h, 116, 8, at: at, field: "gid"))
            if let v = pax["uid"] { guard let n = Int(v) else { throw TarError(offset: at, problem: "pax uid \"\(v)\"") }; uid = n }
            if let v = pax["gid"] { guard let n = Int(v) else { throw TarError(offset: at, problem: "pax gid \"\(v)\"") }; gid = n }
            var mtime = Double(try octal(h, 136, 12, at: at, field: "mtime"))
            if let v = pax["mtime"] {
                guard let d = Double(v), d.isFinite else { throw TarError(offset: at, problem: "pax mtime \"\(v)\"") }
                mtime = d
            }
            let entry = TarEntry(path: path, type: entryType, size: size, mode: UInt32(try octal(h, 100, 8, at: at, field: "mode") & 0o7777),
                                 uid: uid, gid: gid, user: pax["uname"] ?? Self.string(h, 265, 32), group: pax["gname"] ?? Self.string(h, 297, 32),
                                 mtime: mtime, linkTarget: entryType == .symlink ? (pax["linkpath"] ?? Self.string(h, 157, 100)) : nil,
                                 sparse: sparse)
            pendingContent = stored
            pendingPadding = Tar.padding(stored)
            pendingSparse = sparse
            pendingRealSize = size
            return entry
        }
    }

    /// Streams the current entry's content to `body`, then skips its padding. A sparse file's holes come as
    /// zeros: `body` sees the file as it was (`entry.size` bytes).
    public mutating func content(_ body: (ArraySlice<UInt8>) throws -> Void) throws {
        if let map = pendingSparse {
            pendingSparse = nil
            let zeros = [UInt8](repeating: 0, count: 64 * 1024)
            var position: Int64 = 0
            // The map was checked when the header was read: ascending, within the real size.
            for chunk in map + [TarSparseChunk(offset: pendingRealSize, length: 0)] {
                var hole = chunk.offset - position
                while hole > 0 {
                    let n = Int(min(hole, Int64(zeros.count)))
                    try body(zeros[0..<n])
                    hole -= Int64(n)
                }
                try stored(chunk.length, body)
                position = chunk.offset + chunk.length
            }
        }
        try stored(pendingContent, body)
        try skipPadding()
    }

    /// `n` stored bytes of the current entry, in pieces of at most 64 KiB.
    private mutating func stored(_ n: Int64, _ body: (ArraySlice<UInt8>) throws -> Void) throws {
        var left = min(n, pendingContent)
        while left > 0 {
            let n = Int(min(left, 64 * 1024))
            let at = reader.offset
            let bytes: [UInt8]
            do { bytes = try reader.bytes(n) } catch ByteReader<S>.Failure.truncated(let where_) {
                throw TarError(offset: where_, problem: "the archive ends in the middle of an entry's content (truncated at \(at))")
            }
            try body(bytes[...])
            left -= Int64(n)
            pendingContent -= Int64(n)
        }
    }

    private mutating func skipContent() throws {
        pendingSparse = nil
        try stored(pendingContent) { _ in }
        try skipPadding()
    }

    /// The old-GNU sparse map of header `h` (4 entries of offset and length at 386, `isextended` at 482, the real
    /// size at 483), then of its extension headers (21 entries, `isextended` at 504), as GNU tar's
    /// `oldgnu_get_sparse_info` reads it: an entry whose length field starts with NUL ends a header's list.
    /// Checked: ascending, not overlapping, within the real size, and the lengths add up to the stored size.
    private mutating func sparseMap(_ h: [UInt8], storedSize: Int64, at: Int64) throws -> (chunks: [TarSparseChunk], realSize: Int64, storedSize: Int64) {
        var chunks: [TarSparseChunk] = []
        func take(_ block: [UInt8], _ base: Int, _ count: Int, at: Int64) throws {
            for i in 0..<count {
                let o = base + i * 24
                if block[o + 12] == 0 { return }
                let offset = try octal(block, o, 12, at: at, field: "sparse offset")
                let length = try octal(block, o + 12, 12, at: at, field: "sparse length")
                chunks.append(TarSparseChunk(offset: offset, length: length))
            }
        }
        try take(h, 386, 4, at: at)
        let realSize = try octal(h, 483, 12, at: at, field: "sparse real size")
        var extended = h[482] != 0
        var blocks = 0
        while extended {
            let blockAt = reader.offset
            blocks += 1
            // Bounded both ways: by the chunks kept, and by the headers read (empty ones add no chunk).
            guard blocks <= Self.maxSparseChunks / 21 + 1 else {
                throw TarError(offset: blockAt, problem: "more than \(Self.maxSparseChunks / 21 + 1) sparse extension headers")
            }
            let block = try readBlock(at: blockAt, what: "a sparse extension header")
            try take(block, 0, 21, at: blockAt)
            guard chunks.count <= Self.maxSparseChunks else {
                throw TarError(offset: blockAt, problem: "a sparse map of more than \(Self.maxSparseChunks) chunks")
            }
            extended = block[504] != 0
        }
        var end: Int64 = 0
        var total: Int64 = 0
        for (i, c) in chunks.enumerated() {
            guard c.offset >= end else {
                throw TarError(offset: at, problem: "sparse chunk \(i) at \(c.offset) overlaps the previous one or is out of order")
            }
            guard c.offset <= realSize, c.length <= realSize - c.offset else {
                throw TarError(offset: at, problem: "sparse chunk \(i) (\(c.length) bytes at \(c.offset)) ends past the file's real size \(realSize)")
            }
            end = c.offset + c.length // <= realSize: no overflow
            total += c.length // chunks do not overlap and lie within realSize: total <= realSize
        }
        guard total == storedSize else {
            throw TarError(offset: at, problem: "the sparse map holds \(total) bytes, the header declares \(storedSize) stored")
        }
        return (chunks, realSize, total)
    }

    private mutating func skipPadding() throws {
        guard pendingPadding > 0 else { return }
        let at = reader.offset
        let pad = try readContentBytes(pendingPadding, at: at)
        pendingPadding = 0
        guard pad.allSatisfy({ $0 == 0 }) else { throw TarError(offset: at, problem: "the padding after an entry is not zeros") }
    }

    private mutating func readBlock(at: Int64, what: String) throws -> [UInt8] {
        do { return try reader.bytes(Tar.block) } catch ByteReader<S>.Failure.truncated(let where_) {
            throw TarError(offset: where_, problem: "the archive ends before \(what) (truncated)")
        }
    }

    private mutating func readContentBytes(_ n: Int, at: Int64) throws -> [UInt8] {
        do {
            let bytes = try reader.bytes(n)
            if n > 0 && pendingPadding == 0 && n % Tar.block != 0 {
                // pax and global headers are padded like any content
                let pad = try reader.bytes(Tar.padding(Int64(n)))
                guard pad.allSatisfy({ $0 == 0 }) else { throw TarError(offset: at, problem: "the padding after a pax header is not zeros") }
            }
            return bytes
        } catch ByteReader<S>.Failure.truncated(let where_) {
            throw TarError(offset: where_, problem: "the archive ends in the middle of an entry (truncated)")
        }
    }

    private func checkChecksum(_ h: [UInt8], at: Int64) throws {
        let stored = try octal(h, 148, 8, at: at, field: "checksum")
        var unsigned = 0
        var signed = 0
        for (i, b) in h.enumerated() {
            let v = (148..<156).contains(i) ? 32 : Int(b)
            unsigned += v
            signed += (148..<156).contains(i) ? 32 : Int(Int8(bitPattern: b))
        }
        guard stored == Int64(unsigned) || stored == Int64(signed) else {
            throw TarError(offset: at, problem: "header checksum \(String(stored, radix: 8)) does not match \(String(unsigned, radix: 8)) (a damaged header)")
        }
    }

    /// A numeric field: octal digits, optionally surrounded by spaces and ended by NUL or space, bounded by its
    /// width; or base-256 (first byte 0x80, then big-endian binary: GNU tar and tar-rs `numeric_extended_into`
    /// for values that octal cannot hold, such as sizes of 8 GiB and more). Negative or past Int64: rejected.
    private func octal(_ h: [UInt8], _ at: Int, _ width: Int, at offset: Int64, field: String) throws -> Int64 {
        if h[at] & 0x80 != 0 {
            guard h[at] & 0x40 == 0 else { throw TarError(offset: offset, problem: "the \(field) field is a negative base-256 number") }
            var v = Int64(h[at] & 0x3f)
            for b in h[(at + 1)..<(at + width)] {
                guard v <= Int64.max >> 8 else { throw TarError(offset: offset, problem: "the \(field) field (base-256) is past 2^63") }
                v = v << 8 | Int64(b)
            }
            return v
        }
        var v: Int64 = 0
        var digits = 0
        var done = false
        for b in h[at..<at + width] {
            if b == 0 || b == 32 { if digits > 0 { done = true }; continue }
            guard !done, b >= 48, b <= 55 else {
                throw TarError(offset: offset, problem: "the \(field) field is not an octal number")
            }
            v = v * 8 + Int64(b - 48) // at most 11 digits of 3 bits: no overflow
            digits += 1
        }
        return v
    }

    static func string(_ h: [UInt8], _ at: Int, _ n: Int) -> String {
        String(decoding: h[at..<at + n].prefix { $0 != 0 }, as: UTF8.self)
    }

    /// `len key=value\n` records; each length is checked against what is left before it is used.
    static func paxRecords(_ bytes: [UInt8], at: Int64) throws -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < bytes.count {
            guard let space = bytes[i...].firstIndex(of: 32), space - i <= 8,
                  let length = Int(String(decoding: bytes[i..<space], as: UTF8.self)), length > space - i + 2,
                  length <= bytes.count - i, bytes[i + length - 1] == 10 else {
                throw TarError(offset: at, problem: "malformed pax record at \(i)")
            }
            let record = bytes[(space + 1)..<(i + length - 1)]
            guard let eq = record.firstIndex(of: UInt8(ascii: "=")) else { throw TarError(offset: at, problem: "pax record without '='") }
            out[String(decoding: record[..<eq], as: UTF8.self)] = String(decoding: record[(eq + 1)...], as: UTF8.self)
            i += length
        }
        return out
    }
}
