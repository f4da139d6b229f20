#!/usr/bin/env bash
# Fuzzes every reader kaleem-backup has (RDB verifier, MongoDB archive verifier, age decryptor, gzip inflater)
# with random mutations of the fixtures, of an RDB a real redis-server writes and of a MongoDB 7 archive:
#   scripts/fuzz.sh [ITERATIONS]      (default 100000 per reader; the test suite runs 1500)
# Each reader may reject a mutant; none may trap (the test process would die) or hang (the run would not end).
# The mutations are reproducible (seeded); a failure names the reader.
set -euo pipefail
cd "$(dirname "$0")/.."
iterations="${1:-100000}"
swift build --build-tests --force-resolved-versions >/dev/null
start=$(date +%s)
log=$(mktemp)
status=0
KALEEM_FUZZ_ITERATIONS="$iterations" swift test --skip-build --filter FuzzTests >"$log" 2>&1 || status=$?
grep -E '✔ Test|✘|error:|Fatal' "$log" || tail -20 "$log"
rm -f "$log"
echo "fuzz: $iterations mutants per reader, $(( $(date +%s) - start )) s, exit $status"
exit "$status"
