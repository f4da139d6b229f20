#!/usr/bin/env bash
# Benchmark P10 (issue #22): `verify --all` of about 1 GiB of artifacts against checking the same files by
# hand (sha256sum, then gzip -t), in the same run.
#
#   scripts/bench-verify.sh [MIB]        (default 1024: sixteen Redis backups of a scratch server)
#
# The artifacts are real: a scratch redis-server is loaded with keys and backed up repeatedly until the
# repository holds about MIB MiB of .rdb.gz. Both sides read every byte from the page cache (each run is
# preceded by a read of every file):
#   peer:  sha256sum FILES; gzip -t FILES
#   ours:  kaleem-backup verify --all (sha256 of the file, gunzip, the RDB walked and its CRC-64, for each)
# Goal: <= 0.7x (verify works on every core).
set -euo pipefail
MIB=${1:-1024}
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"
bench_setup verify

bench_redis_server
python3 "$bench_root/scripts/gen-redis-keys.py" 1000000 | redis-cli -p "$port" --pipe >/dev/null
cat > "$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  redis: { kind: redis, url: "redis://127.0.0.1:$port" }
retention: { keep_last: 1000 }
YML
echo "backing up until the repository holds $MIB MiB..." >&2
while [ "$(find "$work/repo" -name '*.rdb.gz' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { printf "%d", s / 1048576 }')" -lt "$MIB" ]; do
  "$bin" backup --policy "$work/policy.yml" >/dev/null
done
mapfile -t files < <(find "$work/repo" -name '*.rdb.gz' | sort)
bytes=$(find "$work/repo" -name '*.rdb.gz' -printf '%s\n' | awk '{ s += $1 } END { print s }')
bench_before_each() { cat "${files[@]}" >/dev/null; }  # both sides read from the page cache
peer() { sha256sum "${files[@]}" && gzip -t "${files[@]}"; }
ours() { "$bin" verify --all --policy "$work/policy.yml"; }
t_peer=$(best_time peer)
t_ours=$(best_time ours)
rss=$(peak_rss_mib "$bin" verify --all --policy "$work/policy.yml")
printf '%d artifacts, %d bytes (%.0f MiB) of .rdb.gz; %s cores; best of %s\n' "${#files[@]}" "$bytes" "$(calc "$bytes/1048576")" "$(nproc)" "$RUNS"
bench_row P10 "verify --all, $(calc "$bytes/1048576" | cut -d. -f1) MiB of artifacts" "sha256sum + gzip -t" "$t_peer" "$t_ours" 0.7 "$rss"
