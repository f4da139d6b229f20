#!/usr/bin/env bash
# Checks kaleem-backup against a REAL Qdrant (the test suite can only use a stand-in, Tests/StandIns/README.md):
#
#   QDRANT_URL=http://127.0.0.1:6333 [QDRANT_API_KEY_FILE=/run/secrets/qdrant_api_key] scripts/check-qdrant.sh COLLECTION
#
# With the built binary (.build/debug/kaleem-backup, built if missing) it runs the whole kind: a backup of
# COLLECTION into a scratch repository (snapshot streamed, size and sha256 checked, tar walked: sparse entries
# and base-256 sizes as Qdrant 1.12+ writes them), verify, a restore as kb_check_<time>_<collection> (exact
# count compared), a drill (its scratch collection and snapshots deleted), then checks that no snapshot the
# tool made or uploaded is left on the server, deletes the restored copy, and prints a pass/fail table.
# The live collection is never written. The key goes through a file (curl -H @file), never argv.
# Exit: 0 every step passed, 1 a step failed, 2 no QDRANT_URL or no collection named.
set -uo pipefail
if [ -z "${QDRANT_URL:-}" ]; then
  echo "check-qdrant: QDRANT_URL is not set: this check needs a real Qdrant server (none was given; nothing was run)." >&2
  echo "usage: QDRANT_URL=http://host:6333 [QDRANT_API_KEY_FILE=path] $0 COLLECTION" >&2
  exit 2
fi
collection="${1:-}"
if [ -z "$collection" ]; then echo "check-qdrant: name the collection to check" >&2; exit 2; fi
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/kb-check-qdrant-XXXXXX)"
chmod 700 "$work"
trap 'rm -rf "$work"' EXIT
bin="$root/.build/debug/kaleem-backup"
[ -x "$bin" ] || swift build --force-resolved-versions --package-path "$root" >/dev/null || { echo "build failed" >&2; exit 1; }
copy="kb_check_$(date +%s)_$collection"
{
  echo "repository: { path: $work/repo }"
  echo "sources:"
  echo "  qdrant:"
  echo "    kind: qdrant"
  echo "    url: \"\${QDRANT_URL}\""
  [ -n "${QDRANT_API_KEY_FILE:-}" ] && echo "    api_key_file: \"\${QDRANT_API_KEY_FILE}\""
  echo "    collections: [\"$collection\"]"
  echo "    timeout: 30m"
} > "$work/policy.yml"
export KALEEM_BACKUP_POLICY="$work/policy.yml"
: > "$work/headers"; chmod 600 "$work/headers"
[ -n "${QDRANT_API_KEY_FILE:-}" ] && printf 'api-key: %s\n' "$(cat "$QDRANT_API_KEY_FILE")" > "$work/headers"
q() { curl -sS -H @"$work/headers" -H 'content-type: application/json' "$@"; }
snapshots() { q "$QDRANT_URL/collections/$1/snapshots" | python3 -c 'import json,sys; print("\n".join(sorted(s["name"] for s in json.load(sys.stdin).get("result") or [])))'; }
count() { q -X POST -d '{"exact": true}' "$QDRANT_URL/collections/$1/points/count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["count"])'; }

results=()
step() { # name, status (0 = pass), detail
  local verdict=pass; [ "$2" -eq 0 ] || verdict=FAIL
  results+=("$(printf '%-30s %-5s %s' "$1" "$verdict" "$3")")
}
version="$(q "$QDRANT_URL/" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("version","?"))' 2>/dev/null || echo '?')"
before="$(snapshots "$collection")"

"$bin" backup --json > "$work/backup.json" 2> "$work/backup.err"; rc=$?
detail="$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["artifacts"][0]; c=a["stats"]["collections"][sys.argv[2]]; print(a["status"], "points", c["points"], "..", c.get("points_after"), "(approx", str(c.get("points_approximate"))+")", "size", c["size"])' "$work/backup.json" "$collection" 2>/dev/null || tail -1 "$work/backup.err")"
step "1. backup" $rc "$detail"
"$bin" verify --all > "$work/verify.out" 2>&1; rc=$?
step "2. verify" $rc "$(tail -1 "$work/verify.out")"
"$bin" restore qdrant --latest --collection "$collection" --to-collection "$copy" --yes > "$work/restore.out" 2>&1; rc=$?
step "3. restore (scratch copy)" $rc "$(tail -1 "$work/restore.out")"
restored="$(count "$copy" 2>/dev/null || echo '?')"
step "4. exact count of the copy" "$([ "$rc" -eq 0 ] && [ "$restored" != '?' ]; echo $?)" "$restored points"
"$bin" drill > "$work/drill.out" 2>&1; rc=$?
step "5. drill" $rc "$(tail -1 "$work/drill.out")"
left_copy="$(snapshots "$copy" 2>/dev/null)"
after="$(snapshots "$collection")"
new="$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')"
step "6. nothing left on the server" "$([ -z "$new" ] && [ -z "$left_copy" ]; echo $?)" "new snapshots of $collection: ${new:-none}; of $copy: ${left_copy:-none}"
q -X DELETE "$QDRANT_URL/collections/$copy" > /dev/null; rc=$?
step "7. delete the copy" $rc "$copy"

echo
echo "kaleem-backup against Qdrant $version at $QDRANT_URL, collection $collection"
printf '%-30s %-5s %s\n' "step" "" "detail"
failed=0
for r in "${results[@]}"; do echo "$r"; [[ "$r" == *" FAIL "* ]] && failed=1; done
exit $failed
