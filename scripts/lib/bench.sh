# Shared by the scripts/bench-*.sh benchmarks (sourced, not run). Each bench measures kaleem-backup against
# its peer in the same run, best of RUNS, and prints one result row; under scripts/bench-all.sh the row is
# also appended to the Markdown table in $BENCH_TABLE. Nothing here is asserted by the test suite.
# shellcheck shell=bash

bench_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS=${RUNS:-3}

# The release binary: BIN= names a built one; otherwise it is built (incrementally) here.
bench_binary() {
  if [ -n "${BIN:-}" ]; then echo "$BIN"; return; fi
  echo "building kaleem-backup (release)..." >&2
  swift build --force-resolved-versions --package-path "$bench_root" -c release >/dev/null
  echo "$bench_root/.build/release/kaleem-backup"
}

bench_deps() {
  "$bench_root/scripts/install-deps.sh" >&2
  command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }

# best_time CMD...: the best wall time of RUNS runs of CMD (its output discarded), in seconds.
# A failing run stops the benchmark: a figure of a failed run means nothing.
best_time() {
  local best="" s e t
  for _ in $(seq "$RUNS"); do
    if declare -F bench_before_each >/dev/null; then bench_before_each; fi
    s=$(now)
    "$@" >/dev/null 2>"${BENCH_STDERR:-/dev/null}" || { echo "bench: run failed: $*" >&2; return 1; }
    e=$(now)
    t=$(calc "$e - $s")
    if [ -z "$best" ] || awk "BEGIN { exit !($t < $best) }"; then best=$t; fi
  done
  echo "$best"
}

# peak_rss_mib CMD...: peak resident set size of one run of CMD (and of the children it waited for), in MiB.
peak_rss_mib() {
  local out
  out=$(mktemp)
  /usr/bin/time -v "$@" >/dev/null 2>"$out" || { cat "$out" >&2; rm -f "$out"; echo "bench: run failed: $*" >&2; return 1; }
  awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); printf "%.1f", $2 / 1024 }' "$out"
  rm -f "$out"
}

# bench_row ID WHAT PEER_LABEL PEER_S OURS_S GOAL_RATIO RSS_MIB [RSS_GOAL_MIB]
# Prints the comparison; appends a row to $BENCH_TABLE when set. "met" only when every goal given is met.
bench_row() {
  local id=$1 what=$2 peer=$3 peer_s=$4 ours_s=$5 goal=$6 rss=$7 rss_goal=${8:-} ratio met="met"
  ratio=$(calc "$ours_s / $peer_s")
  awk "BEGIN { exit !($ratio <= $goal) }" || met="missed"
  if [ -n "$rss_goal" ] && [ "$rss" != "-" ]; then awk "BEGIN { exit !($rss <= $rss_goal) }" || met="missed"; fi
  printf '%s %s\n  %-42s %9.3f s\n  %-42s %9.3f s\n  ratio %.2f (goal <= %s)   peak RSS %s MiB%s   -> %s\n' \
    "$id" "$what" "$peer" "$peer_s" "kaleem-backup" "$ours_s" "$ratio" "$goal" "$rss" "${rss_goal:+ (goal <= $rss_goal)}" "$met"
  if [ -n "${BENCH_TABLE:-}" ]; then
    # A peer that is a pipeline ("cat | gzip -6") must not split the Markdown row: its bars are escaped.
    printf '| %s | %s | %s %.2f s | %.2f s | **%.2f×** | ≤ %s× | %s MiB%s | %s |\n' "$id" "${what//|/\\|}" "${peer//|/\\|}" "$peer_s" "$ours_s" \
      "$ratio" "$goal" "$rss" "${rss_goal:+ (≤ $rss_goal)}" "$met" >> "$BENCH_TABLE"
  fi
}

# bench_abs_row ID WHAT SECONDS GOAL_SECONDS RSS_MIB NOTE: a row measured against a fixed goal, not a peer.
bench_abs_row() {
  local id=$1 what=$2 secs=$3 goal=$4 rss=$5 note=$6 met="met"
  awk "BEGIN { exit !($secs <= $goal) }" || met="missed"
  printf '%s %s: %.3f s (goal <= %s s)   peak RSS %s MiB   %s   -> %s\n' "$id" "$what" "$secs" "$goal" "$rss" "$note" "$met"
  if [ -n "${BENCH_TABLE:-}" ]; then
    printf '| %s | %s | %s | %.2f s | – | ≤ %s s | %s MiB | %s |\n' "$id" "$what" "$note" "$secs" "$goal" "$rss" "$met" >> "$BENCH_TABLE"
  fi
}

# bench_setup NAME: what every bench starts with. Sets $work (a scratch directory, removed on exit) and $bin
# (the release binary), after installing what the benches need.
bench_setup() {
  work=$(mktemp -d "/tmp/kb-bench-$1-XXXXXX")
  trap bench_cleanup EXIT
  bench_deps
  # shellcheck disable=SC2034 # for the script that sourced this file
  bin=$(bench_binary)
}

# On exit: the script's own bench_on_exit when it defines one (a server it started), the scratch redis-server
# of bench_redis_server, then $work.
bench_cleanup() {
  if declare -F bench_on_exit >/dev/null; then bench_on_exit || true; fi
  if [ -n "${bench_redis_port:-}" ]; then redis-cli -p "$bench_redis_port" shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}

# bench_redis_server: starts a scratch redis-server on a free port, its files in $work, and waits until it
# answers; sets $port (bench_cleanup stops it).
bench_redis_server() {
  port=$(free_port)
  bench_redis_port=$port
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
    --repl-diskless-sync-delay 0 --daemonize yes --logfile "$work/redis.log"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "bench: redis-server did not start on port $port" >&2
  return 1
}
