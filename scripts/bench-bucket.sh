#!/usr/bin/env bash
# Benchmark: kaleem-backup's bucket snapshots against rclone and s3cmd, in the same run, on the same local S3
# server (python3 -m moto.server on 127.0.0.1).
#
#   scripts/bench-bucket.sh [OBJECTS] [SIZE_KIB]        (default 2,000 objects of 32 KiB)
#
# Measures (best of RUNS, default 3):
#   1. a first copy of the bucket:   kaleem-backup backup  vs  rclone sync --transfers 8  vs  s3cmd sync
#   2. a copy when nothing changed:  kaleem-backup backup  vs  rclone sync --transfers 8 (its default checks)
# and prints wall times, ratios and the HTTP requests each made (counted in the server's request log).
# Goal (issue #3): a no-change snapshot makes only list requests (about 1 per 1,000 objects) and takes at
# most a fifth of rclone's no-change sync. Printed here, never asserted in the test suite.
set -euo pipefail
OBJECTS=${1:-2000}
SIZE_KIB=${2:-32}
RUNS=${RUNS:-3}
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/kb-bench-bucket-XXXXXX)"
moto_pid=""
trap '[ -n "${moto_pid:-}" ] && kill "$moto_pid" 2>/dev/null; rm -rf "$work"' EXIT

"$root/scripts/install-deps.sh"
for tool in rclone s3cmd; do
  command -v "$tool" >/dev/null || apt-get install -y -qq --no-install-recommends "$tool" >/dev/null
done
echo "building kaleem-backup (release)..." >&2
swift build --force-resolved-versions --package-path "$root" -c release >/dev/null
bin="$root/.build/release/kaleem-backup"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
endpoint="http://127.0.0.1:$port"
requests() { grep -c '" [0-9][0-9][0-9] ' "$work/moto.log" || true; }

# rclone and s3cmd configured for the local server; the keys are placeholders (moto accepts any).
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other RCLONE_CONFIG_BENCH_ENDPOINT="$endpoint" \
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=bench RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=bench-secret \
  RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true RCLONE_CONFIG_BENCH_REGION=us-east-1
rclone_() { env -u AWS_CA_BUNDLE rclone --config /dev/null "$@"; }
cat >"$work/s3cfg" <<CFG
[default]
access_key = bench
secret_key = bench-secret
host_base = 127.0.0.1:$port
host_bucket = 127.0.0.1:$port
use_https = False
signature_v2 = False
CFG

echo "uploading $OBJECTS objects of $SIZE_KIB KiB..." >&2
mkdir -p "$work/src"
python3 - "$work/src" "$OBJECTS" "$SIZE_KIB" <<'PY'
import os, sys
root, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 50))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "obj-%05d.bin" % i), "wb") as f:
        f.write(os.urandom(kib * 1024))
PY
rclone_ mkdir bench:bench
rclone_ copy "$work/src" bench:bench --transfers 16 >/dev/null

printf 'bench-secret' >"$work/secret"
chmod 600 "$work/secret"
policy="$work/policy.yml"
now() { date +%s.%N; }

# One measured run of a command: prints "seconds requests".
measure() {
  local before after t0 t1
  before=$(requests)
  t0=$(now)
  "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
  t1=$(now)
  after=$(requests)
  echo "$(echo "$t1 - $t0" | bc) $((after - before))"
}
best() { sort -n | head -1; }

first_kb=(); first_rclone=(); first_s3cmd=(); same_kb=(); same_rclone=()
for run in $(seq "$RUNS"); do
  rm -rf "$work/repo" "$work/rclone-dst" "$work/s3cmd-dst"
  cat >"$policy" <<YML
repository: { path: $work/repo }
sources:
  bucket: { kind: s3, endpoint: "$endpoint", buckets: [bench], access_key: bench, secret_key_file: $work/secret, concurrency: 8 }
retention: { daily: 0, keep_last: 100 }
YML
  first_kb+=("$(measure "$bin" backup --policy "$policy")")
  first_rclone+=("$(measure rclone_ sync bench:bench "$work/rclone-dst" --transfers 8)")
  mkdir -p "$work/s3cmd-dst"
  first_s3cmd+=("$(measure s3cmd -c "$work/s3cfg" sync --quiet s3://bench/ "$work/s3cmd-dst/")")
  same_kb+=("$(measure "$bin" backup --policy "$policy")")
  same_rclone+=("$(measure rclone_ sync bench:bench "$work/rclone-dst" --transfers 8)")
  echo "run $run done" >&2
done

pick() { printf '%s\n' "$@" | best; }
fk=$(pick "${first_kb[@]}"); fr=$(pick "${first_rclone[@]}"); fs=$(pick "${first_s3cmd[@]}")
sk=$(pick "${same_kb[@]}"); sr=$(pick "${same_rclone[@]}")
t() { echo "$1" | cut -d' ' -f1; }
r() { echo "$1" | cut -d' ' -f2; }
ratio() { echo "scale=3; $1 / $2" | bc; }

echo
echo "bucket: $OBJECTS objects of $SIZE_KIB KiB on $endpoint (moto); best of $RUNS; requests counted at the server"
printf '%-44s %9s %9s\n' "" "seconds" "requests"
printf '%-44s %9.2f %9d\n' "first copy: kaleem-backup backup" "$(t "$fk")" "$(r "$fk")"
printf '%-44s %9.2f %9d\n' "first copy: rclone sync --transfers 8" "$(t "$fr")" "$(r "$fr")"
printf '%-44s %9.2f %9d\n' "first copy: s3cmd sync" "$(t "$fs")" "$(r "$fs")"
printf '%-44s %9.2f %9d\n' "no change:  kaleem-backup backup" "$(t "$sk")" "$(r "$sk")"
printf '%-44s %9.2f %9d\n' "no change:  rclone sync --transfers 8" "$(t "$sr")" "$(r "$sr")"
echo
echo "first copy, kaleem-backup / rclone:  $(ratio "$(t "$fk")" "$(t "$fr")")"
echo "first copy, kaleem-backup / s3cmd:   $(ratio "$(t "$fk")" "$(t "$fs")")"
echo "no change,  kaleem-backup / rclone:  $(ratio "$(t "$sk")" "$(t "$sr")")   (goal: <= 0.2)"
echo "no change,  kaleem-backup requests:  $(r "$sk") for $OBJECTS objects   (goal: list requests only, ~1 per 1,000)"
