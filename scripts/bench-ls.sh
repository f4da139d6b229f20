#!/usr/bin/env bash
# Benchmark: `kaleem-backup ls` of a Redis backup (the RDB walked key by key from the stored artifact) against
# its floor and its nearest peer, in the same run:
#
#   scripts/bench-ls.sh [KEYS]        (default 1,000,000 keys of mixed types)
#
#   a) gzip -dc ARTIFACT > /dev/null        (the floor: decompressing the stored file)
#   b) redis-cli --scan | wc -l             (listing the live server's keys, what an operator does without a backup)
#   c) kaleem-backup ls ID > /dev/null      (keys, types, TTLs, sizes, from the backup)
#   d) kaleem-backup ls ID --json --match 'str:1*'
# prints best-of-3 wall times, the ratios c/a and c/b, and the peak RSS of c (bounded memory: it must not grow
# with the key count). Goals are printed, never asserted in the test suite.
set -euo pipefail
KEYS=${1:-1000000}
RUNS=${RUNS:-3}
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/kb-bench-ls-XXXXXX)"
trap '[ -z "${port:-}" ] || redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$root/scripts/install-deps.sh"
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
echo "building kaleem-backup (release)..." >&2
swift build --force-resolved-versions --package-path "$root" -c release >/dev/null
bin="$root/.build/release/kaleem-backup"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  --repl-diskless-sync-delay 0 --daemonize yes --logfile "$work/redis.log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "loading $KEYS keys of mixed types..." >&2
python3 "$root/scripts/gen-redis-keys.py" "$KEYS" 100 | redis-cli -p "$port" --pipe >/dev/null
cat > "$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  redis: { kind: redis, url: "redis://127.0.0.1:$port" }
YML
"$bin" backup --policy "$work/policy.yml" >/dev/null
id=$("$bin" list --policy "$work/policy.yml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
artifact="$work/repo/$("$bin" show "$id" --policy "$work/policy.yml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')"

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
best_of() { local b=999999 s e t; for _ in $(seq "$RUNS"); do s=$(now); "$@" >/dev/null 2>&1; e=$(now); t=$(calc "$e - $s"); b=$(calc "($t < $b) ? $t : $b"); done; echo "$b"; }

t_gz=$(best_of sh -c "gzip -dc '$artifact' > /dev/null")
t_scan=$(best_of sh -c "redis-cli -p $port --scan | wc -l")
t_ls=$(best_of "$bin" ls "$id" --policy "$work/policy.yml")
t_match=$(best_of "$bin" ls "$id" --policy "$work/policy.yml" --json --match 'str:1*')
lines=$("$bin" ls "$id" --policy "$work/policy.yml" 2>/dev/null | wc -l)
/usr/bin/time -v "$bin" ls "$id" --policy "$work/policy.yml" 2> "$work/time.txt" >/dev/null
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$work/time.txt")

printf '\n%d keys listed; artifact %d bytes; %s cores; best of %d runs\n' "$lines" "$(stat -c %s "$artifact")" "$(nproc)" "$RUNS"
printf '%-44s %8.2f s\n' "gzip -dc artifact (floor)" "$t_gz" "redis-cli --scan | wc -l (live server)" "$t_scan" \
  "kaleem-backup ls" "$t_ls" "kaleem-backup ls --json --match 'str:1*'" "$t_match"
printf '\nratio ls / gzip -dc          : %.2f\n' "$(calc "$t_ls / $t_gz")"
printf 'ratio ls / redis-cli --scan  : %.2f\n' "$(calc "$t_ls / $t_scan")"
printf 'kaleem-backup ls peak RSS    : %.1f MiB (bounded: it must not grow with the key count)\n' "$(calc "$rss_kb / 1024")"
