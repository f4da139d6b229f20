import Foundation

/// How many backups to keep, per source. Windows are calendar windows ending at the planning moment, in
/// `timeZone`: `daily: 7` keeps the newest good backup of each of the last 7 calendar days (today included),
/// `weekly: 4` of each of the last 4 ISO weeks, `monthly: 6` of each of the last 6 months. `keepLast` is a
/// floor: the newest N good backups are kept whatever their age, so gaps never leave too few.
public struct RetentionPolicy: Sendable, Equatable {
    public var daily: Int
    public var weekly: Int
    public var monthly: Int
    public var keepLast: Int
    /// Keep the pre-deploy restore points of the last N releases.
    public var preDeploy: Int
    /// Failed (and interrupted) artifacts are removed once older than this.
    public var failedGraceHours: Int
    /// IANA name of the zone whose calendar days, weeks and months count.
    public var timeZone: String
    /// Rotation removes nothing when the two newest good backups, or the newest and now, are further apart than
    /// this (a clock that jumped forward would otherwise age every real backup out of its window); 0: off.
    public var maxGapHours: Int = Defaults.retentionMaxGapHours

    public init(daily: Int = Defaults.retentionDaily, weekly: Int = 0, monthly: Int = 0,
                keepLast: Int = Defaults.retentionKeepLast, preDeploy: Int = 0,
                failedGraceHours: Int = Defaults.retentionFailedGraceHours, timeZone: String = "UTC") {
        self.daily = daily
        self.weekly = weekly
        self.monthly = monthly
        self.keepLast = keepLast
        self.preDeploy = preDeploy
        self.failedGraceHours = failedGraceHours
        self.timeZone = timeZone
    }

    /// A policy that keeps nothing by rule (only the invariants would save anything): refused unless asked.
    public var isEmpty: Bool {
        daily == 0 && weekly == 0 && monthly == 0 && keepLast == 0 && preDeploy == 0
    }
}
