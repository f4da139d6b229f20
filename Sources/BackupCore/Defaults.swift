/// Named defaults, in one place.
public enum Defaults {
    /// The longest one backup of a source may take unless its `deadline:` says otherwise.
    public static let sourceDeadlineSeconds: Double = 6 * 3600
    /// Without `deadline:`, a source that has a good backup gets this many times that backup's duration
    /// (within `fittedDeadlineFloorSeconds` … `sourceDeadlineSeconds`): a stuck transfer of a 20 s backup is
    /// stopped after 30 min, not 6 h.
    public static let fittedDeadlineFactor = 5.0
    public static let fittedDeadlineFloorSeconds: Double = 30 * 60
    /// `min_rate:` — a backup stream that stores fewer bytes than this a second, over `sourceRateWindowSeconds`,
    /// is stopped (a peer trickling a byte at a time never trips an idle timeout). 0 turns it off.
    public static let sourceMinimumRate: Int64 = 1024
    public static let sourceRateWindowSeconds: Double = 120
    /// Free space kept for the catalog and manifests when checking, before a backup, that the previous backup's
    /// size still fits on the repository's disk.
    public static let freeSpaceReserve: Int64 = 8 * 1024 * 1024
    /// gzip level of the artifact pipeline (what `gzip -6` uses).
    public static let compressionLevel = 6
    /// Size of one independently compressed block of the parallel gzip writer.
    public static let compressionBlockSize = 128 * 1024
    /// Chunk size read from a source at a time.
    public static let readChunkSize = 256 * 1024
    /// How long a network read may stay idle before a source is declared stuck.
    public static let sourceIdleTimeoutSeconds = 60.0
    /// How long a Redis server may take to start sending a snapshot (its BGSAVE can take minutes on a big
    /// dataset with disk-based replication; keepalives arrive meanwhile).
    public static let snapshotStartTimeoutSeconds = 600.0
    /// How long to wait for a TCP connection.
    public static let connectTimeoutSeconds = 10.0
    /// Default repository and catalog of the embedded policy.
    public static let repositoryPath = "./backups"
    public static let catalogFileName = "catalog.sqlite"
    public static let lockFileName = ".lock"
    /// Default port of a Redis server.
    public static let redisPort = 6379
    /// Retention when the policy says nothing: a week of dailies, at least 3 backups, failures cleaned after 2 days.
    public static let retentionDaily = 7
    public static let retentionKeepLast = 3
    public static let retentionFailedGraceHours = 48
    /// Rotation holds back when the newest backups are further apart, or further from now, than this: the
    /// clock may have jumped forward (retention.max_gap_hours; 0 turns the check off).
    public static let retentionMaxGapHours = 336
    /// A backup dated more than this after `now` is from the future: the clock was set back.
    public static let retentionClockSlackSeconds: Double = 900
    /// The longest a mongodump or mongorestore may run.
    public static let mongoTimeoutSeconds = 4 * 3600.0
    /// Lines of a child's stderr kept for an error message.
    public static let stderrTailLines = 20
}
