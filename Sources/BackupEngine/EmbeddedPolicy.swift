/// A copy of `policies/local.yml`, so the binary runs on its defaults from any directory.
/// Kept equal to the file by a test (`EmbeddedPolicyTests`); regenerate with `scripts/embed-policy.sh`.
enum EmbeddedPolicy {
    static let localYAML = #"""
# kaleem-backup — the embedded default policy.
#
# Everything local: the repository (and its SQLite catalog) in ./backups, one Redis source.
# Used when neither --policy nor $KALEEM_BACKUP_POLICY names a policy. `kaleem-backup demo` starts a
# scratch redis-server and points REDIS_URL at it when REDIS_URL is not set.
repository:
  path: ${KALEEM_BACKUP_REPOSITORY:-./backups}

sources:
  redis:
    kind: redis
    url: ${REDIS_URL:-redis://127.0.0.1:6379}
    timeout: 60s

compression:
  level: 6
"""#
}
