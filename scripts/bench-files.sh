#!/usr/bin/env bash
# Benchmark P9 (issue #22): a files backup of many small files against `tar czf` of the same tree, in the
# same run.
#
#   scripts/bench-files.sh [FILES]        (default 20,000 files of 1-16 KiB of configuration-like text)
#
#   peer:  tar czf OUT -C ROOT tree
#   ours:  kaleem-backup backup (walk, read each file once, tar, sha256 per file and of the artifact, gzip,
#          the tar walked back by the verifier, fsync)
# Goal: <= 0.6x.
set -euo pipefail
FILES=${1:-20000}
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
. "$(dirname "$0")/lib/bench.sh"
bench_setup files

echo "writing $FILES files..." >&2
python3 - "$work/root/tree" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(5)
words = ["server", "listen", "location", "proxy_pass", "upstream", "image", "environment", "volumes", "restart",
         "healthcheck", "timeout", "replicas", "ports", "depends_on", "command", "true", "false", "always"]
for i in range(n):
    d = os.path.join(root, "d%03d" % (i % 200), "s%02d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    size = rng.randint(1024, 16384)
    lines, total = [], 0
    while total < size:
        line = "  " * rng.randint(0, 3) + "%s: %s %d\n" % (rng.choice(words), rng.choice(words), rng.getrandbits(20))
        lines.append(line)
        total += len(line)
    with open(os.path.join(d, "f%05d.conf" % i), "w") as f:
        f.write("".join(lines))
PY
cat > "$work/policy.yml" <<YML
repository: { path: $work/repo }
sources:
  config: { kind: files, root: "$work/root", paths: [tree/] }
retention: { keep_last: 1 }
YML
total=$(du -sb "$work/root/tree" | cut -f1)
peer() { tar czf "$work/peer.tar.gz" -C "$work/root" tree; }
ours() { "$bin" backup --policy "$work/policy.yml"; }  # rotation (keep_last 1) is part of every run
t_peer=$(best_time peer)
t_ours=$(best_time ours)
rss=$(peak_rss_mib "$bin" backup --policy "$work/policy.yml")
stored=$(find "$work/repo/config" -name '*.gz' -printf '%s\n' | sort -n | tail -1)
printf '%s files, %d bytes; %s cores; best of %s; stored %d bytes, tar czf %d\n' "$FILES" "$total" "$(nproc)" "$RUNS" \
  "$stored" "$(stat -c %s "$work/peer.tar.gz")"
bench_row P9 "files source, $FILES files, backup" "tar czf" "$t_peer" "$t_ours" 0.6 "$rss"
