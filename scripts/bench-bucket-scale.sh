#!/usr/bin/env bash
# Benchmark: bucket snapshots at scale (issue #23): the chunked manifest (format 2) on a growing bucket of tiny
# objects under many prefixes, on one moto server seeded once and grown from one size to the next.
#
#   scripts/bench-bucket-scale.sh [OBJECTS...]        (default: 20000 100000)
#   SERVER=standin scripts/bench-bucket-scale.sh 1000000
#   RESTORE=1 ...                                       also a real restore into a new bucket and a drill
#
# SERVER=moto (the default) seeds moto through the S3 API. SERVER=standin uses scripts/lib/s3-scale-standin.py,
# an in-memory S3 stand-in filled without HTTP: moto cannot be used at a million objects (each ListObjectsV2
# page sorts the whole bucket: about four hours to list it once).
#
# For each size, into a fresh repository:
#   first         the first snapshot (every object downloaded, every chunk new)
#   no change     nothing changed since
#   1% new        1% new objects under one new prefix (a day of uploads: the way an uploads bucket grows)
#   1% scattered  1% of the objects, picked at random over the whole bucket, overwritten
# and prints wall time, requests (counted at the server), peak RSS, the bytes the snapshot added to the
# repository beside the new objects' blobs (snapshot file + new manifest chunks), that as a share of the
# full manifest (the first snapshot's file + chunks), and the peak RSS of `ls` and `verify` of the last one.
# moto fills at ~300 requests/s: 100,000 objects take ~6 minutes to seed.
# Goals are printed, never asserted in the test suite.
set -euo pipefail
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(20000 100000)
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/kb-bench-scale-XXXXXX)"
moto_pid=""
trap '[ -n "${moto_pid:-}" ] && kill "$moto_pid" 2>/dev/null; rm -rf "$work"' EXIT

"$root/scripts/install-deps.sh"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
# BIN=path uses a binary already built (the package's, say) instead of building one.
bin="${BIN:-$root/.build/release/kaleem-backup}"
if [ -z "${BIN:-}" ]; then
  echo "building kaleem-backup (release)..." >&2
  swift build --force-resolved-versions --package-path "$root" -c release >/dev/null
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
server="${SERVER:-moto}"
case "$server" in
  moto) python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 & ;;
  standin) python3 "$root/scripts/lib/s3-scale-standin.py" "$port" >"$work/moto.log" 2>&1 & ;;
  *) echo "SERVER is moto or standin" >&2; exit 2 ;;
esac
moto_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
endpoint="http://127.0.0.1:$port"
requests() { grep -c '" [0-9][0-9][0-9] ' "$work/moto.log" || true; }
curl -s -X PUT "$endpoint/scale" >/dev/null

# put FROM TO PREFIX|- [SEED]: objects FROM..TO-1 (keys under users/<i mod 997>/, or all under PREFIX), tiny
# content; with SEED the keys are a random 1% sample of 0..FROM-1 instead (overwrites).
put() {
  if [ "$server" = standin ]; then
    curl -sf -X POST "$endpoint/_seed?bucket=scale&from=$1&to=$2&prefix=$3${4:+&seed=$4}" >/dev/null
    return
  fi
  python3 - "$endpoint" "$@" <<'PY'
import http.client, random, sys, threading, urllib.parse
endpoint, start, end, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
seed = sys.argv[5] if len(sys.argv) > 5 else None
host = urllib.parse.urlparse(endpoint).netloc
def key(i):
    return f"users/{i % 997}/uploads/{i:09d}.jpg" if prefix == "-" else f"{prefix}/{i:09d}.jpg"
if seed is not None:
    rng = random.Random(seed)
    keys = [key(i) for i in rng.sample(range(start), end)]
    content = "overwritten " + seed
else:
    keys = [key(i) for i in range(start, end)]
    content = "object"
errors = []
def work(part):
    if seed is not None:
        # Overwrites go through boto3 (moto's dependency): moto refuses an unsigned PUT over an existing key.
        import boto3
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench-secret", region_name="us-east-1")
        for k in part:
            s3.put_object(Bucket="scale", Key=k, Body=(content + " " + k).encode())
        return
    conn = http.client.HTTPConnection(host)
    for k in part:
        conn.request("PUT", "/scale/" + k, body=(content + " " + k).encode(), headers={"Content-Type": "application/octet-stream"})
        r = conn.getresponse(); r.read()
        if r.status != 200:
            errors.append(f"PUT {k}: {r.status}")
            return
def run(part):
    try: work(part)
    except Exception as e: errors.append(repr(e))
threads = [threading.Thread(target=run, args=(keys[i::16],)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
if errors: sys.exit("seeding failed: " + "; ".join(errors[:3]))
PY
}

printf 'bench-secret' >"$work/secret"
chmod 600 "$work/secret"
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }

# snap LABEL: one measured backup; prints a table row and remembers the artifact id.
snap() {
  local label=$1 before t0 t1 after
  before=$(requests); t0=$(now)
  /usr/bin/time -f %M -o "$work/rss" "$bin" backup --policy "$work/policy.yml" --json >"$work/out.json" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(now); after=$(requests)
  python3 - "$work/out.json" "$work/repo" "$label" "$(calc "$t1 - $t0")" "$((after - before))" "$(cat "$work/rss")" "$work/full" <<'PY'
import json, os, sys
out, repo, label, secs, reqs, rss_kb, full_file = sys.argv[1:8]
a = json.load(open(out))["artifacts"][0]
s = a["stats"]
snapshot_file = os.path.getsize(os.path.join(repo, a["path"]))
manifest_added = snapshot_file + s["manifest_bytes_added"]
if label == "first":
    open(full_file, "w").write(str(manifest_added))
full = int(open(full_file).read())
print(f"{label:<14} {float(secs):8.2f} {int(reqs):9d} {int(rss_kb)/1024:9.1f} {s['objects']:9d} {s['new']+s['changed']:8d} "
      f"{snapshot_file:10d} {s['manifest_chunks_added']:6d}/{s['manifest_chunks']:<6d} {manifest_added:11d} {100*manifest_added/full:7.2f}%")
open(out + ".id", "w").write(a["id"])
PY
}

seeded=0
for n in "${SIZES[@]}"; do
  if [ "$n" -gt "$seeded" ]; then
    echo "seeding objects $seeded..$n ($server)..." >&2
    put "$seeded" "$n" -
    seeded=$n
  fi
  rm -rf "$work/repo"
  cat >"$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  bucket: { kind: s3, endpoint: "$endpoint", buckets: [scale], access_key: bench, secret_key_file: $work/secret, concurrency: 16 }
retention: { daily: 0, keep_last: 100 }
YML
  total=$(python3 -c "print($seeded)")
  echo
  echo "bucket of $total objects (then +1% new, then 1% overwritten): $(nproc) cores, $server on 127.0.0.1"
  printf '%-14s %8s %9s %9s %9s %8s %10s %13s %11s %8s\n' "snapshot" "seconds" "requests" "RSS MiB" "objects" "fetched" \
    "file B" "chunks new" "manifest+B" "of full"
  snap first
  snap "no change"
  one=$((seeded / 100))
  put "$seeded" "$((seeded + one))" "uploads/day-$seeded"
  snap "1% new"
  put "$seeded" "$one" - "$seeded"
  snap "1% scattered"
  id=$(cat "$work/out.json.id")
  t0=$(now)
  /usr/bin/time -f %M -o "$work/rss" "$bin" ls "$id" --policy "$work/policy.yml" >"$work/ls.txt" 2>/dev/null
  t1=$(now)
  printf 'ls of the last snapshot:     %d lines in %.2f s, peak RSS %.1f MiB\n' "$(wc -l <"$work/ls.txt")" "$(calc "$t1 - $t0")" "$(calc "$(cat "$work/rss") / 1024")"
  t0=$(now)
  /usr/bin/time -f %M -o "$work/rss" "$bin" verify "$id" --policy "$work/policy.yml" >/dev/null 2>&1
  t1=$(now)
  printf 'verify of the last snapshot: %.2f s, peak RSS %.1f MiB\n' "$(calc "$t1 - $t0")" "$(calc "$(cat "$work/rss") / 1024")"
  t0=$(now)
  /usr/bin/time -f %M -o "$work/rss" "$bin" restore bucket --policy "$work/policy.yml" --backup "$id" --to-bucket "plan-$seeded" --dry-run >/dev/null 2>&1
  t1=$(now)
  printf 'restore --dry-run (plan):    %.2f s, peak RSS %.1f MiB\n' "$(calc "$t1 - $t0")" "$(calc "$(cat "$work/rss") / 1024")"
  t0=$(now)
  /usr/bin/time -f %M -o "$work/rss" "$bin" restore bucket --policy "$work/policy.yml" --backup "$id" --to-bucket scale --dry-run >/dev/null 2>&1
  t1=$(now)
  printf 'restore --dry-run (into the source bucket, all listed): %.2f s, peak RSS %.1f MiB\n' "$(calc "$t1 - $t0")" "$(calc "$(cat "$work/rss") / 1024")"
  if [ -n "${RESTORE:-}" ]; then
    before=$(requests); t0=$(now)
    /usr/bin/time -f %M -o "$work/rss" "$bin" restore bucket --policy "$work/policy.yml" --backup "$id" --to-bucket "copy-$seeded" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    t1=$(now); after=$(requests)
    printf 'restore into a new bucket:   %.2f s, %d requests, peak RSS %.1f MiB\n' "$(calc "$t1 - $t0")" "$((after - before))" "$(calc "$(cat "$work/rss") / 1024")"
    before=$(requests); t0=$(now)
    /usr/bin/time -f %M -o "$work/rss" "$bin" drill --source bucket --policy "$work/policy.yml" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    t1=$(now); after=$(requests)
    printf 'drill (restore, read back, delete): %.2f s, %d requests, peak RSS %.1f MiB\n' "$(calc "$t1 - $t0")" "$((after - before))" "$(calc "$(cat "$work/rss") / 1024")"
  fi
  # The 1% new objects stay in the bucket for the next size (and are counted in it).
  seeded=$((seeded + one))
done
echo
echo "goals (issue #23): no change adds <= 1% of a full manifest; 1% changed adds <= 5%; no-change and verify peak RSS <= 64 MiB, flat with size"
