@testable import BackupEngine
import BackupCore
import Testing
import TestSupport

/// What restores and drills compare a restored collection's exact count with.
@Suite(.blockingThreads) struct QdrantPointsRecordTests {
    @Test func exactCountsAndTheirRange() {
        let same = PointsRecord(.object(["points": .int(120), "points_after": .int(120), "points_exact": .bool(true)]))
        #expect(same.mismatch(120) == nil && same.mismatch(122) != nil && same.describe == "120 points")
        let written = PointsRecord(.object(["points": .int(120), "points_after": .int(125), "points_exact": .bool(true)]))
        #expect(written.mismatch(123) == nil && written.mismatch(126) != nil && written.mismatch(119) != nil)
        // A backup from before exact counts: its count is approximate, shown but never compared.
        let old = PointsRecord(.object(["points": .int(122)]))
        #expect(!old.exact && old.mismatch(120) == nil && old.describe.contains("approximate"))
        #expect(PointsRecord(nil).mismatch(0) == nil)
    }
}
