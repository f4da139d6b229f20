#!/usr/bin/env bash
# Runs the whole suite N times (default 3) and lists every test that did not pass every time:
#   scripts/flake-check.sh [N]
# A test that fails once in N runs is a flaky test (or a real race): fix it by waiting on the condition the
# assertion needs, never by retrying.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
scripts/install-deps.sh >/dev/null
swift build --build-tests --force-resolved-versions >/dev/null
logs=$(mktemp -d)
for i in $(seq 1 "$runs"); do
  status=0
  swift test --skip-build >"$logs/run-$i.log" 2>&1 || status=$?
  echo "run $i: exit $status, $(grep -E '^✔ Test run|^✘ Test run' "$logs/run-$i.log" | tail -1)"
done
echo "== tests that did not pass every time:"
grep -h -E '^✘ Test [^r]' "$logs"/run-*.log | sed -E 's/ recorded an issue.*| failed after.*//' | sort | uniq -c | sort -rn || true
if grep -q -E '^✘ Test' "$logs"/run-*.log; then echo "flaky or failing tests found (logs in $logs)"; exit 1; fi
echo "none: $runs clean runs"
rm -rf "$logs"
