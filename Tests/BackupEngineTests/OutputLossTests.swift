import Foundation
import TestSupport
import Testing

/// Review round 2 (attack2): output that could not be written is not a success.
@Suite(.blockingThreads) struct OutputLossTests {
    /// `kaleem-backup list --json > /dev/full` (a full disk) used to exit 0 over an empty file, and `>&-` (a
    /// closed stdout) too: a script keeping an inventory could not tell. Now exit 1 and stderr says why; a
    /// reader that goes away (`| head -c 10`) still ends the process quietly.
    @Test(arguments: [true, false]) func lostOutputIsAFailure(json: Bool) throws {
        let s = MongoEndToEndTests.Setup()
        #expect(try s.run(["backup"]).status == 0)
        let args = ["list"] + (json ? ["--json"] : []) + ["--policy", s.policy]
        let quoted = args.map { "'\($0)'" }.joined(separator: " ")
        let full = try runProcess("/bin/sh", ["-c", "\"$0\" \(quoted) > /dev/full", try kaleemBinary()], environment: s.env())
        #expect(full.status == 1, "\(full.status) \(full.stderr)")
        #expect(full.stderr.contains("could not be written to standard output: No space left on device"), "\(full.stderr)")
        let closed = try runProcess("/bin/sh", ["-c", "\"$0\" \(quoted) >&-", try kaleemBinary()], environment: s.env())
        #expect(closed.status == 1, "\(closed.status) \(closed.stderr)")
        let fine = try runProcess("/bin/sh", ["-c", "\"$0\" \(quoted) > /dev/null", try kaleemBinary()], environment: s.env())
        #expect(fine.status == 0 && !fine.stderr.contains("could not be written"), "\(fine.status) \(fine.stderr)")
    }
}
