#!/usr/bin/env bash
# Benchmark: kaleem-backup's Redis backup against the operations procedure done by hand, in the same run.
#
#   scripts/bench-redis.sh [KEYS]        (default 1,000,000 keys of mixed types, about 77 MB of RDB)
#
# Measures, on one scratch redis-server (127.0.0.1, free port):
#   a) redis-cli --rdb                          (capture only)
#   b) redis-cli --rdb; gzip -6; sha256sum      (the manual procedure)
#   c) redis-cli --rdb; pigz -p N -6; sha256sum (the manual procedure on every core)
#   d) kaleem-backup backup                     (capture + verify + gzip + sha256 + catalog, streamed)
# and prints best-of-3 wall times, the ratio d/b (goal: <= 0.6) and kaleem-backup's peak RSS (goal: <= 64 MiB).
# Timing goals are printed here, never asserted in the test suite.
set -euo pipefail
KEYS=${1:-1000000}
RUNS=${RUNS:-3}
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/kb-bench-XXXXXX)"
trap '[ -z "${port:-}" ] || redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$root/scripts/install-deps.sh"
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
command -v pigz >/dev/null || { apt-get install -y -qq pigz >/dev/null || true; }
echo "building kaleem-backup (release)..." >&2
swift build --force-resolved-versions --package-path "$root" -c release >/dev/null
bin="$root/.build/release/kaleem-backup"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  --repl-diskless-sync-delay 0 --daemonize yes --logfile "$work/redis.log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "loading $KEYS keys of mixed types..." >&2
python3 "$root/scripts/gen-redis-keys.py" "$KEYS" | redis-cli -p "$port" --pipe >/dev/null
redis-cli -p "$port" dbsize | sed 's/^/keys: /' >&2

now() { date +%s.%N; }
best() { sort -n | head -1; }
time_of() { local s e; s=$(now); "$@" >/dev/null 2>&1; e=$(now); calc "$e - $s"; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }

manual() { redis-cli -p "$port" --rdb "$work/m.rdb" && gzip -6 -f "$work/m.rdb" && sha256sum "$work/m.rdb.gz"; }
manual_pigz() { redis-cli -p "$port" --rdb "$work/p.rdb" && pigz -p "$(nproc)" -6 -f "$work/p.rdb" && sha256sum "$work/p.rdb.gz"; }
cat > "$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  redis: { kind: redis, url: "redis://127.0.0.1:$port" }
YML
kb() { "$bin" backup --policy "$work/policy.yml"; }

t_cli=(); t_manual=(); t_pigz=(); t_kb=()
for _ in $(seq "$RUNS"); do
  t_cli+=("$(time_of redis-cli -p "$port" --rdb "$work/c.rdb")")
  t_manual+=("$(time_of manual)")
  command -v pigz >/dev/null && t_pigz+=("$(time_of manual_pigz)")
  t_kb+=("$(time_of kb)")
done
rdb_bytes=$(stat -c %s "$work/c.rdb")
cli=$(printf '%s\n' "${t_cli[@]}" | best)
man=$(printf '%s\n' "${t_manual[@]}" | best)
kbt=$(printf '%s\n' "${t_kb[@]}" | best)
/usr/bin/time -v "$bin" backup --policy "$work/policy.yml" 2> "$work/time.txt" >/dev/null
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$work/time.txt")
gz=$(find "$work/repo/redis" -name '*.rdb.gz' | sort | tail -1)

printf '\nRDB: %d bytes (%.1f MB); %s cores; best of %d runs\n' "$rdb_bytes" "$(calc "$rdb_bytes/1000000")" "$(nproc)" "$RUNS"
printf '%-44s %8.2f s\n' "redis-cli --rdb" "$cli"
printf '%-44s %8.2f s\n' "manual: redis-cli --rdb + gzip -6 + sha256sum" "$man"
if [ ${#t_pigz[@]} -gt 0 ]; then
  pg=$(printf '%s\n' "${t_pigz[@]}" | best)
  printf '%-44s %8.2f s\n' "manual with pigz -p $(nproc)" "$pg"
fi
printf '%-44s %8.2f s\n' "kaleem-backup backup" "$kbt"
printf '\nratio kaleem-backup / manual procedure : %.2f  (goal <= 0.60)\n' "$(calc "$kbt/$man")"
printf 'ratio kaleem-backup / redis-cli --rdb  : %.2f\n' "$(calc "$kbt/$cli")"
[ -n "${pg:-}" ] && printf 'ratio kaleem-backup / manual with pigz : %.2f\n' "$(calc "$kbt/$pg")"
printf 'kaleem-backup peak RSS                 : %.1f MiB (goal <= 64)\n' "$(calc "$rss_kb/1024")"
printf 'stored size: kaleem-backup %d bytes, gzip -6 %d bytes\n' "$(stat -c %s "$gz")" "$(stat -c %s "$work/m.rdb.gz")"
