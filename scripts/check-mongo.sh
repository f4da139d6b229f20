#!/usr/bin/env bash
# Checks kaleem-backup against a REAL MongoDB and the real Database Tools (the test suite can only use the
# stand-ins of Tests/StandIns, which imitate them):
#
#   KALEEM_MONGO_URI='mongodb://user:pass@host:27017/?authSource=admin' scripts/check-mongo.sh [DATABASE]
#
# With the real mongodump/mongorestore/mongosh on PATH (or KALEEM_MONGODUMP / KALEEM_MONGORESTORE /
# KALEEM_MONGOSH set to a command, e.g. "docker run --rm -i --network host mongo:7 mongodump" or
# "docker compose exec -T mongo mongodump": the same wrapper forms as the policy; the credentials reach the
# tools through their stdin, never argv), it runs the whole kind and prints a pass/fail table:
#   backup   dumps DATABASE (default: all) into a scratch repository, verified as it streams (--config YAML
#            read by the real yaml.v2);
#   verify   verifies the stored artifact again;
#   restore  restores it into scratch databases kb_check_<time>_<db> (--nsFrom/--nsTo), never over the
#            originals, and checks mongorestore's counts (the current tools' count lines);
#   counts   compares per-collection counts of originals and copies through mongosh (the script on stdin,
#            reporting its own outcome: mongosh's REPL exits 0 after a failing statement);
#   swap     what a refresh's swap relies on, between two scratch databases: renameCollection across databases
#            keeps the count, is refused onto an existing target without dropTarget (code 48), replaces it with;
#   drill    a drill into the same server (drill.mongo_uri) under kb_drill_* names, dropped after;
#   preflight `policy check --connect` (a ping through mongosh).
# The scratch databases are dropped at the end. Exit 0 when every row passed, 1 otherwise, 2 without a server.
set -uo pipefail
if [ -z "${KALEEM_MONGO_URI:-}" ]; then
  echo "check-mongo: set KALEEM_MONGO_URI to a MongoDB to check against (nothing was run)" >&2
  exit 2
fi
db="${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/kb-check-mongo-XXXXXX)"
chmod 700 "$work"
trap 'rm -rf "$work"' EXIT
swift build --force-resolved-versions --package-path "$root" >/dev/null || exit 1
bin="$root/.build/debug/kaleem-backup"
suffix="kb_check_$(date +%s)"
read -r -a mongosh_cmd <<< "${KALEEM_MONGOSH:-mongosh}"

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
  echo "drill:"
  echo "  mongo_uri: \"\${KALEEM_MONGO_URI}\""
  echo "  mongosh: $(yaml_list "${KALEEM_MONGOSH:-mongosh}")"
} > "$work/policy.yml"
export KALEEM_BACKUP_POLICY="$work/policy.yml"

rows=()
failed=0
row() { rows+=("$(printf '%-10s %-5s %s' "$1" "$2" "$3")"); [ "$2" != FAIL ] || failed=1; }

# A mongosh script on stdin, connection string inside it; prints the marker only when every statement succeeded.
shell() {
  local body="$1" marker="kb-check-ok-$RANDOM$RANDOM"
  python3 - "$marker" "$body" <<'PY' | "${mongosh_cmd[@]}" --nodb --quiet > "$work/shell.out" 2>&1
import json, os, sys
marker, body = sys.argv[1], sys.argv[2]
print('try { const kb = connect(%s); %s print(%s); } catch (e) { print("FAILED: " + e); }'
      % (json.dumps(os.environ["KALEEM_MONGO_URI"]), body.replace("\n", " "), json.dumps(marker)))
PY
  grep -q "$marker" "$work/shell.out"
}

echo "== backup"
if "$bin" backup --json > "$work/backup.json" 2> "$work/backup.err"; then
  id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["artifacts"][0]["id"])' "$work/backup.json")
  row backup pass "$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["artifacts"][0]; print(a["stats"]["documents"], "documents in", a["stats"]["namespaces"], "namespaces")' "$work/backup.json")"
else
  row backup FAIL "$(tail -n 3 "$work/backup.err" | tr '\n' ' ')"
  id=""
fi

dbs=""
if [ -n "$id" ]; then
  echo "== verify"
  if out=$("$bin" verify "$id" 2>&1); then row verify pass "$(echo "$out" | tail -n 1)"; else row verify FAIL "$(echo "$out" | tail -n 2 | tr '\n' ' ')"; fi

  echo "== restore into scratch databases (${suffix}_*)"
  dbs=$(python3 -c 'import json,sys; ns=json.load(open(sys.argv[1]))["artifacts"][0]["stats"]["per_namespace"]; print(" ".join(sorted({n.split(".")[0] for n in ns if n != "oplog" and not n.startswith(("admin.","config.","local."))})))' "$work/backup.json")
  args=()
  for d in $dbs; do args+=(--ns-include "$d.*" --ns-from "$d.*" --ns-to "${suffix}_$d.*"); done
  if out=$("$bin" restore mongo --backup "$id" "${args[@]}" --yes --json 2>&1); then
    row restore pass "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["restored"], "of", d["expected"], "documents, verified:", d.get("verified"))' 2>/dev/null || echo "$out" | tail -n 1)"
  else
    row restore FAIL "$(echo "$out" | tail -n 3 | tr '\n' ' ')"
  fi

  echo "== compare counts"
  if command -v "${mongosh_cmd[0]}" >/dev/null; then
    bad=0
    for d in $dbs; do
      if ! shell "const a = kb.getSiblingDB('$d'), b = kb.getSiblingDB('${suffix}_$d');
                  a.getCollectionNames().forEach(c => { const x = a[c].countDocuments(), y = b[c].countDocuments();
                  if (x !== y) throw new Error(c + ': ' + x + ' / ' + y); });"; then
        bad=1; cat "$work/shell.out"
      fi
    done
    if [ "$bad" = 0 ]; then row counts pass "every collection of $dbs"; else row counts FAIL "see above"; fi
  else
    row counts skip "mongosh not installed: mongorestore's counts only"
  fi

  echo "== swap (what a refresh does: renameCollection across databases, dropTarget)"
  if command -v "${mongosh_cmd[0]}" >/dev/null && [ -n "$dbs" ]; then
    d="${dbs%% *}"
    # Only scratch databases: ${suffix}_$d (restored above) and ${suffix}s_$d. A collection renamed across databases
    # keeps its count; a rename onto an existing target without dropTarget is refused (code 48, "target namespace
    # exists"); with dropTarget it replaces it; getCollectionInfos gives name and type, as the refresh reads them.
    if shell "const a = kb.getSiblingDB('${suffix}_$d'), b = kb.getSiblingDB('${suffix}s_$d');
              const infos = a.getCollectionInfos({}).map((kb_c) => [kb_c.name, kb_c.type]).filter((x) => x[1] === 'collection' && !x[0].startsWith('system.'));
              if (infos.length === 0) throw new Error('no collection to swap in ${suffix}_$d');
              const c = infos[0][0], n = a.getCollection(c).countDocuments({});
              kb.adminCommand({ renameCollection: '${suffix}_$d.' + c, to: '${suffix}s_$d.' + c, dropTarget: true });
              a.createCollection(c);
              let refused = null;
              try { kb.adminCommand({ renameCollection: '${suffix}s_$d.' + c, to: '${suffix}_$d.' + c }); } catch (e) { refused = e; }
              if (refused === null || refused.code !== 48) throw new Error('a rename onto an existing target was not refused with code 48: ' + refused);
              kb.adminCommand({ renameCollection: '${suffix}s_$d.' + c, to: '${suffix}_$d.' + c, dropTarget: true });
              const m = a.getCollection(c).countDocuments({});
              if (m !== n) throw new Error(c + ': ' + m + ' documents after the swap, ' + n + ' before');
              if (b.getCollectionInfos({}).length !== 0) throw new Error('${suffix}s_$d not empty after the swap back');"; then
      row swap pass "renameCollection across databases (dropTarget), refused without it (48)"
    else
      row swap FAIL "$(tail -n 1 "$work/shell.out")"
    fi
  else
    row swap skip "mongosh not installed"
  fi

  echo "== drill"
  if out=$("$bin" drill --json 2>&1); then
    row drill pass "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["detail"][:90])' 2>/dev/null)"
  else
    row drill FAIL "$(echo "$out" | tail -n 3 | tr '\n' ' ')"
  fi
fi

echo "== preflight"
if out=$("$bin" policy check --connect 2>&1); then row preflight pass "ping through mongosh"; else row preflight FAIL "$(echo "$out" | grep -i fail | head -n 2 | tr '\n' ' ')"; fi

for d in $dbs; do
  shell "kb.getSiblingDB('${suffix}_$d').dropDatabase(); kb.getSiblingDB('${suffix}s_$d').dropDatabase();" || echo "drop ${suffix}_$d and ${suffix}s_$d by hand"
done

echo
printf '%-10s %-5s %s\n' check result detail
printf '%s\n' "${rows[@]}"
exit "$failed"
