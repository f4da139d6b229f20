#!/usr/bin/env bash
# Benchmark: the catalog at scale. Builds catalogs of 10^4, 10^5 and 10^6 artifacts over 20 sources
# (one artifact per source per hour, mixed statuses, some pinned pre-deploy sets), then times
#   kaleem-backup list --limit 20        (goal: < 50 ms at 10^6)
#   kaleem-backup rotate --dry-run       (P5 of issue #22, goal: <= 0.5 s at 10^6, linear; it plans all 20 sources)
# and prints the growth factor per 10x, to show the cost grows no worse than n log n.
# Rows are inserted with python's sqlite3 into a catalog created (and migrated) by kaleem-backup itself.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"
bench_setup catalog

make_catalog() { # N DIR
  local n=$1 dir=$2
  mkdir -p "$dir"
  {
    echo "repository: { path: $dir/repo }"
    echo "sources:"
    for s in $(seq -w 1 20); do echo "  src$s: { kind: redis, url: \"redis://127.0.0.1:1\" }"; done
    echo "retention: { daily: 7, weekly: 4, monthly: 6, keep_last: 3, pre_deploy: 5 }"
  } > "$dir/policy.yml"
  "$bin" list --policy "$dir/policy.yml" >/dev/null   # creates and migrates the catalog
  python3 - "$n" "$dir/repo/catalog.sqlite" <<'PY'
import sqlite3, sys, random, datetime
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
db = sqlite3.connect(path)
start = datetime.datetime(2026, 11, 29, 2, 30) - datetime.timedelta(hours=n // 20)
fmt = "%Y-%m-%d %H:%M:%S.000"
runs, arts = [], []
for i in range(n // 20):
    t = (start + datetime.timedelta(hours=i)).strftime(fmt)
    pre = i % 97 == 0
    rid = "run-%08d" % i
    runs.append((rid, "pre-deploy" if pre else "nightly", ("kaleem-api:1.%d" % (i // 97)) if pre else None, t, t, "ok", "bench"))
    for s in range(1, 21):
        status = "failed" if random.random() < 0.03 else "ok"
        aid = "%08d-%02d" % (i, s)
        arts.append((aid, rid, "src%02d" % s, "redis", "src%02d/x/%s.rdb.gz" % (s, aid), 1000, 400, "ab" * 32, "gzip",
                     status, t, 1 if pre else 0, ("release kaleem-api:1.%d" % (i // 97)) if pre else None, None, '{"keys": 5}', None))
db.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?)", runs)
db.executemany("INSERT INTO artifacts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", arts)
db.commit()
PY
}


printf '%-10s %14s %20s\n' "artifacts" "list --limit 20" "rotate --dry-run"
prev_list=""; prev_rot=""
for n in 10000 100000 1000000; do
  dir="$work/n$n"
  make_catalog "$n" "$dir"
  tl=$(best_time "$bin" list --policy "$dir/policy.yml" --limit 20 --json)
  tr=$(best_time "$bin" rotate --policy "$dir/policy.yml" --dry-run --json --now 2026-11-29T03:00:00Z)
  printf '%-10s %12.1f ms %18.1f ms' "$n" "$(calc "$tl*1000")" "$(calc "$tr*1000")"
  if [ -n "$prev_list" ]; then
    printf '   (x10 artifacts: list x%.2f, rotate x%.2f; n log n would be x%.1f)' "$(calc "$tl/$prev_list")" "$(calc "$tr/$prev_rot")" "$(calc "10*log($n)/log($n/10)")"
  fi
  echo
  prev10=${prev_rot:-$tr}
  prev_list=$tl; prev_rot=$tr
done
rss=$(peak_rss_mib "$bin" rotate --policy "$dir/policy.yml" --dry-run --json --now 2026-11-29T03:00:00Z)
echo "goals at 10^6: list < 50 ms, rotate --dry-run <= 500 ms (process start included)"
bench_abs_row P5 "rotate --dry-run, 10^6 artifacts over 20 sources" "$tr" 0.5 "$rss" "x$(calc "$tr/$prev10" | cut -c1-5) for 10x artifacts"
