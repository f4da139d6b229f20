#!/usr/bin/env bash
# Checks kaleem-backup against a REAL Qdrant (the test suite can only use a stand-in):
#
#   QDRANT_URL=http://127.0.0.1:6333 [QDRANT_API_KEY_FILE=/run/secrets/qdrant_api_key] scripts/check-qdrant.sh COLLECTION
#
# It backs up COLLECTION into a scratch repository (snapshot streamed, size and sha256 checked, tar walked,
# the server's snapshot deleted), verifies the artifact, restores it as kb_check_<time>_<collection>, compares
# the points count, runs a drill (its scratch collection deleted), and deletes the restored copy. The live
# collection is never written. The key goes through a file, never argv.
set -euo pipefail
: "${QDRANT_URL:?set QDRANT_URL to the Qdrant to check against}"
collection="${1:?name the collection to check}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/kb-check-qdrant-XXXXXX)"
chmod 700 "$work"
trap 'rm -rf "$work"' EXIT
swift build --force-resolved-versions --package-path "$root" >/dev/null
bin="$root/.build/debug/kaleem-backup"
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
key_header=()
[ -n "${QDRANT_API_KEY_FILE:-}" ] && key_header=(-H "api-key: $(cat "$QDRANT_API_KEY_FILE")")

echo "== 1. backup";   "$bin" backup --json > "$work/backup.json"
python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["artifacts"][0]; print(a["status"], a.get("detail") or "", json.dumps(a["stats"].get("collections", {}), indent=1)[:2000])' "$work/backup.json"
echo "== 2. verify";   "$bin" verify --all
echo "== 3. restore as $copy"
"$bin" restore qdrant --latest --collection "$collection" --to-collection "$copy" --yes
echo "== 4. points";   curl -s "${key_header[@]}" "$QDRANT_URL/collections/$copy" | python3 -c 'import json,sys; print("restored points:", json.load(sys.stdin)["result"]["points_count"])'
echo "== 5. drill";    "$bin" drill
echo "== 6. clean up"; curl -s -X DELETE "${key_header[@]}" "$QDRANT_URL/collections/$copy" >/dev/null && echo "deleted $copy"
