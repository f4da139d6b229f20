#!/usr/bin/env bash
# Benchmark P7 (issue #22): a MongoDB backup of a large archive against compressing and hashing the same
# bytes by hand, in the same run.
#
#   scripts/bench-mongo.sh [BYTES]        (default 1 GiB)
#
# No MongoDB server can run here: the archive (a real mongodump archive layout, every CRC right, from
# scripts/gen-mongo-archive.py) is streamed by the mongodump stand-in of the tests, in 1 MiB pieces.
#   peer:  cat ARCHIVE | gzip -6 | sha256sum
#   ours:  kaleem-backup backup (mongodump stand-in -> archive verifier, every CRC -> gzip -> sha256 -> fsync)
# Also printed: the stand-in alone into /dev/null (the floor of the source side). Goal: <= 0.5x, RSS <= 48 MiB.
set -euo pipefail
BYTES=${1:-1073741824}
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"
bench_setup mongo

echo "writing a mongodump archive of about $BYTES bytes..." >&2
python3 "$bench_root/scripts/gen-mongo-archive.py" "$BYTES" "$work/dump.archive"
export STANDIN_ARCHIVE="$work/dump.archive"
standin="$bench_root/Tests/StandIns/mongodump"
cat > "$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  mongo: { kind: mongodb, uri: "mongodb://127.0.0.1:27017/", mongodump: ["$standin"], oplog: false }
retention: { keep_last: 1 }
YML

# shellcheck disable=SC2002 # the peer as the issue states it: cat | gzip -6 | sha256sum
peer() { cat "$work/dump.archive" | gzip -6 | sha256sum; }
ours() { "$bin" backup --policy "$work/policy.yml"; }  # rotation (keep_last 1) is part of every run
standin_only() { "$standin" --archive >/dev/null; }
size=$(stat -c %s "$work/dump.archive")
t_standin=$(best_time standin_only)
t_peer=$(best_time peer)
t_ours=$(best_time ours)
rss=$(peak_rss_mib "$bin" backup --policy "$work/policy.yml")
stored=$(find "$work/repo/mongo" -name '*.gz' -printf '%s\n' | sort -n | tail -1)
printf 'archive %d bytes (%.0f MiB); %s cores; best of %s; the stand-in alone streams it in %.2f s; stored %d bytes, gzip -6 %d\n' \
  "$size" "$(calc "$size/1048576")" "$(nproc)" "$RUNS" "$t_standin" "$stored" "$(gzip -6 -c "$work/dump.archive" | wc -c)"
bench_row P7 "MongoDB $(calc "$size/1073741824" | cut -c1-4) GiB archive, backup" "cat | gzip -6 | sha256sum" "$t_peer" "$t_ours" 0.5 "$rss" 48
