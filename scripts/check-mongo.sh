#!/usr/bin/env bash
# Checks kaleem-backup against a REAL MongoDB (the test suite can only use stand-in tools):
#
#   KALEEM_MONGO_URI='mongodb://user:pass@host:27017/?authSource=admin' scripts/check-mongo.sh [DATABASE]
#
# With the real mongodump/mongorestore on PATH (or KALEEM_MONGODUMP / KALEEM_MONGORESTORE set to a command,
# e.g. "docker run --rm -i --network host mongo:7 mongodump" or "docker compose exec -T mongo mongodump": the
# same wrapper forms as the policy; the credentials reach the tools through their stdin), it:
#   1. dumps DATABASE (default: all) through kaleem-backup into a scratch repository, verified as it streams;
#   2. verifies the stored artifact again;
#   3. restores it into scratch databases kb_check_<time>_<db> (--nsFrom/--nsTo), never over the originals;
#   4. compares per-collection document counts of the originals and the copies (mongosh, if installed);
#   5. drops the scratch databases.
# The connection string goes through a policy file read from the environment, never argv.
set -euo pipefail
: "${KALEEM_MONGO_URI:?set KALEEM_MONGO_URI to the MongoDB to check against}"
db="${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/kb-check-mongo-XXXXXX)"
chmod 700 "$work"
trap 'rm -rf "$work"' EXIT
swift build --force-resolved-versions --package-path "$root" >/dev/null
bin="$root/.build/debug/kaleem-backup"
suffix="kb_check_$(date +%s)"

yaml_list() { local out="" w; for w in $1; do out="$out${out:+, }\"$w\""; done; echo "[$out]"; }
{
  echo "repository: { path: $work/repo }"
  echo "sources:"
  echo "  mongo:"
  echo "    kind: mongodb"
  echo "    uri: \"\${KALEEM_MONGO_URI}\""
  echo "    mongodump: $(yaml_list "${KALEEM_MONGODUMP:-mongodump}")"
  echo "    mongorestore: $(yaml_list "${KALEEM_MONGORESTORE:-mongorestore}")"
  [ -n "$db" ] && echo "    databases: [\"$db\"]"
  echo "    timeout: 2h"
} > "$work/policy.yml"
export KALEEM_BACKUP_POLICY="$work/policy.yml"

echo "== 1. backup"
"$bin" backup --json > "$work/backup.json"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["artifacts"][0]["id"])' "$work/backup.json")
python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["artifacts"][0]; print(a["status"], a["stats"]["documents"], "documents", a["stats"]["per_namespace"])' "$work/backup.json"

echo "== 2. verify"
"$bin" verify "$id"

echo "== 3. restore into scratch databases (${suffix}_*)"
dbs=$(python3 -c 'import json,sys; ns=json.load(open(sys.argv[1]))["artifacts"][0]["stats"]["per_namespace"]; print(" ".join(sorted({n.split(".")[0] for n in ns if n != "oplog" and not n.startswith(("admin.","config.","local."))})))' "$work/backup.json")
args=()
for d in $dbs; do args+=(--ns-from "$d.*" --ns-to "${suffix}_$d.*"); done
"$bin" restore mongo --backup "$id" "${args[@]}" --yes

echo "== 4. compare counts"
if command -v mongosh >/dev/null; then
  for d in $dbs; do
    mongosh --quiet "$KALEEM_MONGO_URI" --eval "
      const a = db.getSiblingDB('$d'), b = db.getSiblingDB('${suffix}_$d');
      let bad = 0;
      a.getCollectionNames().forEach(c => { const x = a[c].countDocuments(), y = b[c].countDocuments();
        print(c + ': ' + x + ' / ' + y + (x === y ? '' : '  MISMATCH')); if (x !== y) bad++; });
      if (bad) quit(1);"
  done
else
  echo "mongosh not installed: counts were checked by mongorestore's summary only"
fi

echo "== 5. drop the scratch databases"
if command -v mongosh >/dev/null; then
  for d in $dbs; do mongosh --quiet "$KALEEM_MONGO_URI" --eval "db.getSiblingDB('${suffix}_$d').dropDatabase()" >/dev/null; done
else
  echo "drop them by hand: ${dbs:+${suffix}_}${dbs// / ${suffix}_}"
fi
echo "ok"
