import BackupCore
import Foundation
import RedisBackup
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The framing parser under adversarial chunking: the payload is written into one end of a socketpair in
/// pieces of every size, so the `$EOF:` mark lands across reads at every offset. (The real-server tests in
/// RedisSnapshotTests cover both framings end to end; this covers the splits a real server rarely makes.)
@Suite(.blockingThreads) struct SnapshotFramingTests {
    static let mark = Array("0123456789abcdef0123456789abcdef01234567".utf8)

    func receive(_ wire: [UInt8], piece: Int) throws -> ([UInt8], SnapshotFraming) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw BackupFailure("socketpair") }
        let writer = fds[1]
        let thread = Thread {
            var offset = 0
            while offset < wire.count {
                let n = min(piece, wire.count - offset)
                _ = wire[offset..<offset + n].withUnsafeBytes { send(writer, $0.baseAddress, n, 0) }
                offset += n
            }
            close(writer)
        }
        thread.start()
        let connection = RESPConnection(fileDescriptor: fds[0], endpointDescription: "socketpair", ioTimeout: 5)
        defer { connection.close() }
        var out: [UInt8] = []
        let r = try RedisSnapshot.receive(connection, endpoint: RedisEndpoint(host: "socketpair"), startTimeout: 5) { out += $0 }
        #expect(r.bytes == Int64(out.count))
        return (out, r.framing)
    }

    @Test(arguments: [1, 2, 39, 40, 41, 1000, 70000])
    func eofMarkFramingAnySplit(piece: Int) throws {
        let payload = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        // Keepalives first; anything after the mark (a stray newline) is dropped.
        let wire = Array("\n\n\n$EOF:".utf8) + Self.mark + [13, 10] + payload + Self.mark + [10]
        let (out, framing) = try receive(wire, piece: piece)
        #expect(framing == .eofMark)
        #expect(out == payload)
    }

    @Test(arguments: [1, 7, 4096])
    func lengthFraming(piece: Int) throws {
        let payload = (0..<3000).map { UInt8(truncatingIfNeeded: $0) }
        let wire = Array("\n$3000\r\n".utf8) + payload
        let (out, framing) = try receive(wire, piece: piece)
        #expect(framing == .length)
        #expect(out == payload)
    }

    @Test func fullResyncLineIsSkipped() throws {
        let wire = Array("+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n$3\r\nabc".utf8)
        #expect(try receive(wire, piece: 5).0 == Array("abc".utf8))
    }

    @Test func missingMarkIsAnError() {
        let wire = Array("$EOF:".utf8) + Self.mark + [13, 10] + Array(repeating: 7, count: 500)
        #expect(throws: RedisError.self) { try receive(wire, piece: 64) }
    }

    @Test func shortLengthPayloadIsAnError() {
        #expect(throws: RedisError.self) { try receive(Array("$100\r\nabc".utf8), piece: 64) }
    }

    @Test func errorReplyIsReported() {
        do {
            _ = try receive(Array("-NOPERM this user has no permissions to run the 'sync' command\r\n".utf8), piece: 64)
            Issue.record("accepted an error")
        } catch let error as RedisError {
            #expect(error.description.contains("SYNC refused"))
            #expect(error.hint?.contains("+sync +replconf") == true)
        } catch {
            Issue.record("\(error)")
        }
    }
}
