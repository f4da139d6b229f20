import Foundation

/// What the planner needs to know of one artifact.
public struct RetentionCandidate: Sendable, Equatable, Codable {
    public var id: String
    public var createdAt: Date
    public var status: ArtifactStatus
    public var tag: RunTag
    public var release: String?
    public var pinned: Bool
    public var pinReason: String?

    public init(id: String, createdAt: Date, status: ArtifactStatus, tag: RunTag = .nightly, release: String? = nil,
                pinned: Bool = false, pinReason: String? = nil) {
        self.id = id
        self.createdAt = createdAt
        self.status = status
        self.tag = tag
        self.release = release
        self.pinned = pinned
        self.pinReason = pinReason
    }
}

/// The decision for one source: every input artifact is either kept, with at least one reason, or removed.
public struct RetentionPlan: Sendable, Equatable {
    public struct Kept: Sendable, Equatable {
        public var id: String
        public var reasons: [String]

        public init(id: String, reasons: [String]) {
            self.id = id
            self.reasons = reasons
        }
    }

    /// Newest first.
    public var keep: [Kept]
    /// Newest first.
    public var remove: [String]
    /// Why good artifacts were held back (the newest backup failed), or nil.
    public var heldBack: String?
}

/// Decides which backups of ONE source to keep, and says why for each (restic's `forget` is the model).
///
/// Pure: the artifacts, the policy and `now` come in; nothing is read or deleted here.
///
/// Rules, in the order reasons are listed:
/// 1. `newest good`: the newest `ok` artifact is never removed.
/// 2. `pinned: …`: pinned artifacts are never removed.
/// 3. `held back: …`: when the newest artifact of the source failed, no good artifact is removed; nor when the
///    clock looks wrong: a good backup dated after `now` (the clock was set back), or the newest good backups
///    further apart than `maxGapHours` from each other or from `now` (it jumped forward). Anything dated after
///    `now` is kept (`dated after the clock`).
/// 4. `last N`: the newest `keepLast` good artifacts.
/// 5. `daily D`, `weekly YYYY-Www`, `monthly YYYY-MM`: the newest good artifact of each calendar bucket inside
///    the window ending at `now`.
/// 6. `pre-deploy RELEASE`: the newest good pre-deploy artifact of each of the last `preDeploy` releases.
/// 7. Artifacts that are not good are removed once older than `failedGraceHours`; until then they are kept
///    (`failed, kept for 48h`); `running` ones are kept (`in progress`); `corrupt` ones are never removed here
///    (`corrupt: never removed automatically`): they are evidence, and an operator removes them by hand. They
///    are not good either: they count for no rule above.
public enum RetentionPlanner {
    /// - Parameter checkClock: false when `now` was given by the operator (`rotate --now`, a what-if): the clock
    ///   is then not what is planned against, and the clock rules of 3. do not apply.
    public static func plan(_ artifacts: [RetentionCandidate], policy: RetentionPolicy, now: Date, checkClock: Bool = true) -> RetentionPlan {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: policy.timeZone) ?? TimeZone(identifier: "UTC")!
        var iso = Calendar(identifier: .iso8601)
        iso.timeZone = calendar.timeZone

        let sorted = artifacts.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        // Reasons by position in `sorted` (a plan can cover a million artifacts: no hashing of ids).
        var reasons = [[String]](repeating: [], count: sorted.count)
        func add(_ i: Int, _ reason: String) { reasons[i].append(reason) }

        let good = sorted.indices.filter { sorted[$0].status == .ok } // positions, newest first
        if let newest = good.first { add(newest, "newest good") }
        for i in sorted.indices where sorted[i].pinned {
            let a = sorted[i]
            add(i, "pinned: " + (a.pinReason ?? a.release.map { "release \($0)" } ?? "by hand"))
        }

        var heldBack: String?
        if let newest = sorted.first, newest.status == .failed {
            heldBack = "the newest backup (\(newest.id)) failed: no good backup is removed until one succeeds"
            for i in good { add(i, "held back: newest backup failed") }
        }
        // The clock. A backup dated after `now` means the clock was set back (or was ahead when it was taken):
        // such a backup is never outside a window, and while one exists nothing good is removed. Good backups
        // far apart (the newest two, or the newest and now) mean the clock may have jumped forward: every real
        // backup would fall out of its window at once, so nothing good is removed this time, and it is said.
        let slack = Defaults.retentionClockSlackSeconds
        if !checkClock {
            // `now` is the operator's: nothing to say about the clock.
        } else if let newest = good.first, sorted[newest].createdAt.timeIntervalSince(now) > slack {
            let a = sorted[newest]
            heldBack = heldBack ?? "the clock (\(Timestamps.iso8601(now))) is earlier than the newest backup \(a.id) (\(Timestamps.iso8601(a.createdAt))): the clock may have been set back; no good backup is removed until it is right"
            for i in good { add(i, "held back: clock earlier than the newest backup") }
        } else if policy.maxGapHours > 0, let newest = good.first {
            let gap = TimeInterval(policy.maxGapHours) * 3600
            let newestAt = sorted[newest].createdAt
            // The newest gap wider than max_gap between two good backups: until the backups after it span max_gap
            // themselves, they may all be the work of a clock that jumped (and stayed) ahead, and the backups
            // before the gap are the real ones. Then nothing good is removed.
            var recentGap: (after: Int, before: Int)?
            for k in good.indices.dropLast() where sorted[good[k]].createdAt.timeIntervalSince(sorted[good[k + 1]].createdAt) > gap {
                recentGap = (good[k], good[k + 1])
                break
            }
            let jump: String?
            if now.timeIntervalSince(newestAt) > gap {
                jump = "the newest backup \(sorted[newest].id) is \(Self.days(now.timeIntervalSince(newestAt))) days older than the clock"
            } else if let g = recentGap, newestAt.timeIntervalSince(sorted[g.after].createdAt) < gap {
                jump = "backup \(sorted[g.after].id) is \(Self.days(sorted[g.after].createdAt.timeIntervalSince(sorted[g.before].createdAt))) days newer than the one before it, and the backups since span less than max_gap_hours"
            } else {
                jump = nil
            }
            if let jump {
                heldBack = heldBack ?? "\(jump) (more than retention.max_gap_hours \(policy.maxGapHours)): the clock may have jumped, or no backup has succeeded since; no good backup is removed until the gap closes"
                for i in good { add(i, "held back: backups further apart than max_gap_hours") }
            }
        }
        if checkClock {
            for i in sorted.indices where sorted[i].createdAt.timeIntervalSince(now) > slack { add(i, "dated after the clock") }
        }

        for i in good.prefix(policy.keepLast) { add(i, "last \(policy.keepLast)") }

        // Calendar buckets: the newest good artifact of each of the last N days, weeks and months up to `now`.
        // Walks the buckets (a handful), not the artifacts (there can be hundreds of thousands): each lookup
        // is a binary search in the newest-first list.
        func newestGood(before end: Date) -> Int? {
            var lo = 0, hi = good.count // first position whose createdAt < end
            while lo < hi {
                let mid = (lo + hi) / 2
                if sorted[good[mid]].createdAt < end { hi = mid } else { lo = mid + 1 }
            }
            return lo < good.count ? good[lo] : nil
        }
        let justAfterNow = now.addingTimeInterval(0.001)
        func keepBuckets(count: Int, label: String, unit: Calendar.Component, calendar: Calendar, key: (Date) -> String) {
            guard count > 0, var bucket = calendar.dateInterval(of: unit, for: now) else { return }
            for _ in 0..<count {
                if let i = newestGood(before: min(bucket.end, justAfterNow)), sorted[i].createdAt >= bucket.start {
                    add(i, "\(label) \(key(bucket.start))")
                }
                guard let previous = calendar.date(byAdding: .second, value: -1, to: bucket.start),
                      let next = calendar.dateInterval(of: unit, for: previous) else { break }
                bucket = next
            }
        }
        keepBuckets(count: policy.daily, label: "daily", unit: .day, calendar: calendar, key: { dayKey($0, calendar) })
        keepBuckets(count: policy.weekly, label: "weekly", unit: .weekOfYear, calendar: iso, key: { weekKey($0, iso) })
        keepBuckets(count: policy.monthly, label: "monthly", unit: .month, calendar: calendar, key: { monthKey($0, calendar) })

        if policy.preDeploy > 0 {
            var releases: [String] = []
            for i in good where sorted[i].tag == .preDeploy {
                let release = sorted[i].release ?? "(no release)"
                if releases.contains(release) { continue }
                guard releases.count < policy.preDeploy else { break }
                releases.append(release)
                add(i, "pre-deploy \(release)")
            }
        }

        let grace = TimeInterval(policy.failedGraceHours) * 3600
        for i in sorted.indices where sorted[i].status != .ok {
            let a = sorted[i]
            if a.status == .running { add(i, "in progress") }
            else if a.status == .corrupt { add(i, "corrupt: never removed automatically") }
            else if now.timeIntervalSince(a.createdAt) < grace { add(i, "failed, kept for \(policy.failedGraceHours)h") }
        }

        var plan = RetentionPlan(keep: [], remove: [], heldBack: heldBack)
        plan.remove.reserveCapacity(sorted.count)
        for (i, a) in sorted.enumerated() {
            if reasons[i].isEmpty { plan.remove.append(a.id) } else { plan.keep.append(.init(id: a.id, reasons: reasons[i])) }
        }
        return plan
    }

    static func days(_ seconds: TimeInterval) -> String { String(format: "%.1f", seconds / 86_400) }

    static func dayKey(_ date: Date, _ calendar: Calendar) -> String {
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }

    static func weekKey(_ date: Date, _ iso: Calendar) -> String {
        let c = iso.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
        return String(format: "%04d-W%02d", c.yearForWeekOfYear!, c.weekOfYear!)
    }

    static func monthKey(_ date: Date, _ calendar: Calendar) -> String {
        let c = calendar.dateComponents([.year, .month], from: date)
        return String(format: "%04d-%02d", c.year!, c.month!)
    }
}
