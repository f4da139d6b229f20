#!/usr/bin/env bash
# Benchmark P8 (issue #22): a Qdrant snapshot backup against downloading the same snapshot with curl and
# hashing it, in the same run, from the same server.
#
#   scripts/bench-qdrant.sh [POINTS] [DIM]        (default 500,000 points of 256 float32: a 512 MB snapshot)
#
# No Qdrant server can run here: the stand-in of the tests (Qdrant's REST shapes) serves the snapshot with
# sendfile, so the server side is not what is measured. Both sides ask for a new snapshot and delete it after:
#   peer:  POST /collections/C/snapshots; curl -o FILE .../snapshots/NAME; sha256sum FILE; DELETE it
#   ours:  kaleem-backup backup (the same calls; the download streamed through the tar check, sha256 against
#          Qdrant's checksum, gzip, the artifact's sha256, fsync)
# Goal: <= 1.1x.
set -euo pipefail
POINTS=${1:-500000}
DIM=${2:-256}
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"
qpid=""
bench_on_exit() { [ -z "$qpid" ] || kill "$qpid" 2>/dev/null; }
bench_setup qdrant

port=$(free_port)
mkdir -p "$work/state"
printf '{"collections": {"docs": {"points": %d, "dim": %d}}}\n' "$POINTS" "$DIM" > "$work/state/collections.json"
python3 "$bench_root/Tests/StandIns/qdrant_standin.py" "$port" "$work/state" > "$work/qdrant.log" 2>&1 &
qpid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/collections" && break; sleep 0.1; done
url="http://127.0.0.1:$port"
echo "making the snapshot once (the stand-in keeps it)..." >&2
curl -sf -X POST "$url/collections/docs/snapshots?wait=true" > "$work/first.json"
first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["name"])' "$work/first.json")
curl -sf -X DELETE "$url/collections/docs/snapshots/$first" >/dev/null

cat > "$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  qdrant: { kind: qdrant, url: "$url" }
retention: { keep_last: 1 }
YML
peer() {
  local name
  name=$(curl -sf -X POST "$url/collections/docs/snapshots?wait=true" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["name"])')
  curl -sf -o "$work/peer.snapshot" "$url/collections/docs/snapshots/$name"
  sha256sum "$work/peer.snapshot"
  curl -sf -X DELETE "$url/collections/docs/snapshots/$name" >/dev/null
  rm -f "$work/peer.snapshot"
}
ours() { "$bin" backup --policy "$work/policy.yml"; }  # rotation (keep_last 1) is part of every run
t_peer=$(best_time peer)
t_ours=$(best_time ours)
rss=$(peak_rss_mib "$bin" backup --policy "$work/policy.yml")
size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["size"])' "$work/first.json")
stored=$(find "$work/repo/qdrant" -name '*.gz' -printf '%s\n' | sort -n | tail -1)
printf 'snapshot %d bytes (%.0f MiB), %s points x %s dims; %s cores; best of %s; stored %d bytes\n' \
  "$size" "$(calc "$size/1048576")" "$POINTS" "$DIM" "$(nproc)" "$RUNS" "$stored"
bench_row P8 "Qdrant snapshot of $(calc "$size/1048576" | cut -d. -f1) MiB, backup" "curl -o + sha256sum" "$t_peer" "$t_ours" 1.1 "$rss"
