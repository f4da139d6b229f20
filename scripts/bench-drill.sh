#!/usr/bin/env bash
# Benchmark: a Redis restore drill against the time redis-server itself takes to load the same RDB.
#
#   scripts/bench-drill.sh [KEYS]        (default 1,000,000 keys of mixed types)
#
# Loads a scratch redis-server, backs it up with kaleem-backup, then times `kaleem-backup drill` (verify the
# stored file, decompress, start a scratch redis-server, wait for loading:0, compare the keys, stop) and
# reads redis-server's own load time of that RDB ("DB loaded from disk: N seconds" in its log).
# Prints the ratio (P6 of issue #22, goal: at most 1.2). No threshold is asserted anywhere.
set -euo pipefail
KEYS=${1:-1000000}
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"
bench_setup drill

bench_redis_server
python3 - "$KEYS" <<'PY' | redis-cli -p "$port" --pipe >/dev/null
import sys, random
n = int(sys.argv[1]); random.seed(42); out = sys.stdout.buffer
def cmd(*args):
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x if isinstance(x, bytes) else str(x).encode() for x in args)))
for i in range(n):
    v = ("%016x" % random.getrandbits(64)) * 5
    r = i % 10
    if r < 6: cmd("SET", "str:%d" % i, v)
    elif r == 6: cmd("HSET", "hash:%d" % i, "a", v[:20], "b", v[20:40])
    elif r == 7: cmd("RPUSH", "list:%d" % i, v[:20], v[20:40])
    elif r == 8: cmd("SADD", "set:%d" % i, v[:16], v[16:32])
    else: cmd("ZADD", "zset:%d" % i, 1, v[:20], 2, v[20:40])
PY
cat > "$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  redis: { kind: redis, url: "redis://127.0.0.1:$port" }
YML
"$bin" backup --policy "$work/policy.yml" >/dev/null

# redis-server's own load time of the same RDB.
mkdir -p "$work/load"
gzip -dc "$(find "$work/repo/redis" -name '*.rdb.gz' | sort | head -1)" > "$work/load/dump.rdb"
load=""
for _ in $(seq "$RUNS"); do
  lport=$(free_port)
  rm -f "$work/load/redis.log"
  redis-server --port "$lport" --bind 127.0.0.1 --dir "$work/load" --save '' --appendonly no --daemonize yes --logfile "$work/load/redis.log"
  for _ in $(seq 600); do
    grep -q "DB loaded from disk" "$work/load/redis.log" 2>/dev/null && break
    sleep 0.1
  done
  redis-cli -p "$lport" shutdown nosave >/dev/null 2>&1 || true
  t=$(sed -n 's/.*DB loaded from disk: \([0-9.]*\) seconds.*/\1/p' "$work/load/redis.log" | tail -1)
  if [ -z "$load" ] || awk "BEGIN { exit !($t < $load) }"; then load=$t; fi
done

best=""
for _ in $(seq "$RUNS"); do
  d=$("$bin" drill --policy "$work/policy.yml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["duration_seconds"])')
  if [ -z "$best" ] || awk "BEGIN { exit !($d < $best) }"; then best=$d; fi
done
rss=$(peak_rss_mib "$bin" drill --policy "$work/policy.yml")
printf 'keys: %s; best of %s; the load is what redis-server logs ("DB loaded from disk"), the drill what it records\n' "$KEYS" "$RUNS"
bench_row P6 "Redis drill, $KEYS keys" "redis-server's load of the RDB" "$load" "$best" 1.2 "$rss"
