#!/usr/bin/env bash
# Benchmark P1, P1b, P3 (issue #22): kaleem-backup's Redis backup against the raw capture and against the
# operations procedure done by hand, in the same run.
#
#   scripts/bench-redis.sh [KEYS]        (default 1,000,000 keys of mixed types, about 77 MB of RDB;
#                                         13,000,000 make about 1 GiB)
#
# Measures, on one scratch redis-server (127.0.0.1, free port), best of RUNS (default 3):
#   a) redis-cli --rdb                          (capture only: the floor of the source side)
#   b) redis-cli --rdb; gzip -6; sha256sum      (the manual procedure)
#   c) redis-cli --rdb; pigz -p N -6; sha256sum (the manual procedure on every core)
#   d) kaleem-backup backup                     (capture + verify + gzip + sha256 + catalog, streamed)
# and prints d/a (P1, goal <= 1.4), d/b (P1b, goal <= 0.45) and kaleem-backup's peak RSS (P3, goal <= 48 MiB).
set -euo pipefail
KEYS=${1:-1000000}
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"
bench_setup redis
command -v pigz >/dev/null || { apt-get install -y -qq pigz >/dev/null || true; }

bench_redis_server
echo "loading $KEYS keys of mixed types..." >&2
python3 "$bench_root/scripts/gen-redis-keys.py" "$KEYS" | redis-cli -p "$port" --pipe >/dev/null
redis-cli -p "$port" dbsize | sed 's/^/keys: /' >&2

capture() { redis-cli -p "$port" --rdb "$work/c.rdb"; }
manual() { redis-cli -p "$port" --rdb "$work/m.rdb" && gzip -6 -f "$work/m.rdb" && sha256sum "$work/m.rdb.gz"; }
manual_pigz() { redis-cli -p "$port" --rdb "$work/p.rdb" && pigz -p "$(nproc)" -6 -f "$work/p.rdb" && sha256sum "$work/p.rdb.gz"; }
cat > "$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  redis: { kind: redis, url: "redis://127.0.0.1:$port" }
retention: { keep_last: 1 }
YML
kb() { "$bin" backup --policy "$work/policy.yml"; }

t_cli=$(best_time capture)
t_man=$(best_time manual)
t_pigz=""
command -v pigz >/dev/null && t_pigz=$(best_time manual_pigz)
t_kb=$(best_time kb)
rss=$(peak_rss_mib "$bin" backup --policy "$work/policy.yml")
rdb_bytes=$(stat -c %s "$work/c.rdb")
gz=$(find "$work/repo/redis" -name '*.rdb.gz' | sort | tail -1)
mb=$(calc "$rdb_bytes/1000000" | cut -d. -f1)
printf 'RDB: %d bytes (%s MB); %s cores; best of %s runs; stored: kaleem-backup %d bytes, gzip -6 %d bytes\n' \
  "$rdb_bytes" "$mb" "$(nproc)" "$RUNS" "$(stat -c %s "$gz")" "$(stat -c %s "$work/m.rdb.gz")"
[ -z "$t_pigz" ] || printf 'manual with pigz -p %s: %.2f s (kaleem-backup / it: %.2f)\n' "$(nproc)" "$t_pigz" "$(calc "$t_kb/$t_pigz")"
bench_row P1 "Redis $KEYS keys ($mb MB RDB), backup" "redis-cli --rdb" "$t_cli" "$t_kb" 1.4 "$rss"
bench_row P1b "Redis $KEYS keys ($mb MB RDB), backup" "redis-cli --rdb + gzip -6 + sha256sum" "$t_man" "$t_kb" 0.45 "$rss" 48
