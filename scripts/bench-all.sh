#!/usr/bin/env bash
# Every performance row of issue #22 in one run, written as a Markdown table (docs/performance.md
# is copied from it), with the date, the machine and the commit.
#
#   scripts/bench-all.sh [OUT]        (default bench-results.md; QUICK=1 for smaller sizes, as a smoke run)
#
# Rows: P1/P1b Redis backup vs capture and vs the manual procedure (1M keys), P3 peak RSS at ~77 MB and
# ~1 GiB of RDB, P5 rotate --dry-run at 10^6 artifacts, P6 Redis drill vs redis-server's load, P7 MongoDB
# 1 GiB archive vs gzip -6 + sha256sum, P8 Qdrant snapshot vs curl + sha256sum, P9 files vs tar czf, P10
# verify --all vs sha256sum + gzip -t. Each script's own output (with the stored sizes and the extra peers)
# goes to OUT.log. Takes about 25 minutes on 2 cores (moto-free: no bucket row here; see bench-bucket*.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
OUT=$(realpath -m "${1:-bench-results.md}")
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"
bench_deps
BIN=$(bench_binary)
export BIN
export BENCH_TABLE="$OUT.rows"
: > "$BENCH_TABLE"
: > "$OUT.log"
if [ -n "${QUICK:-}" ]; then
  keys=100000 big_keys=200000 mongo=$((64 << 20)) points=20000 files=2000 verify_mib=64
else
  keys=1000000 big_keys=13000000 mongo=$((1 << 30)) points=500000 files=20000 verify_mib=1024
fi
run() { echo "== $*" | tee -a "$OUT.log" >&2; "$@" 2>&1 | tee -a "$OUT.log"; }
run "$here/bench-redis.sh" "$keys"
RUNS=1 run "$here/bench-redis.sh" "$big_keys"
run "$here/bench-catalog.sh"
run "$here/bench-drill.sh" "$keys"
run "$here/bench-mongo.sh" "$mongo"
run "$here/bench-qdrant.sh" "$points" 256
run "$here/bench-files.sh" "$files"
run "$here/bench-verify.sh" "$verify_mib"
{
  echo "Measured $(date -u +%Y-%m-%d) by \`scripts/bench-all.sh\`: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), $(swift --version 2>/dev/null | head -1 | sed 's/ (.*//'), release build of $(git -C "$bench_root" rev-parse --short HEAD)$(git -C "$bench_root" diff --quiet HEAD || echo ' with local changes'); best of ${RUNS} unless the row says otherwise."
  echo
  echo "| # | what | peer | kaleem-backup | ratio | goal | peak RSS | goal met |"
  echo "|---|---|---|---|---|---|---|---|"
  cat "$BENCH_TABLE"
} > "$OUT"
rm -f "$BENCH_TABLE"
cat "$OUT"
