#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2016,SC2004  # functions called indirectly; the inner script is single-quoted on purpose
# The fault campaign: kaleem-backup killed (SIGKILL) at points spread over every state-changing system call of
# a backup, a rotation, a pin, a bucket snapshot and an off-site upload (strace -e inject=…:signal=KILL:when=N);
# the repository's disk filled at sizes around an artifact's (tmpfs, private mount namespace); the fuzzers.
# After every fault the invariants are checked:
#   - every backup `list` calls good has its file and manifest, and `verify --all` passes;
#   - the next command completes and leaves no *.partial file and no row `running`.
# Prints a table (tried / survived) for docs/reliability.md. Needs root (unshare, mount), strace,
# redis-server, python3 with moto. Usage: scripts/fault-campaign.sh [POINTS_PER_COMMAND (default 25)] [FUZZ (default 20000)]
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
only=""
case "${1:-}" in --hostile-only|--symlinks-only) only="${1#--}"; only="${only%-only}"; shift ;; esac
points="${1:-25}"
fuzz="${2:-20000}"
swift build --force-resolved-versions --package-path "$root" >/dev/null || exit 1
bin="$root/.build/debug/kaleem-backup"
work="$(mktemp -d /tmp/kb-campaign-XXXXXX)"
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --save '' --appendonly no --repl-diskless-sync-delay 0 --daemonize yes --dir "$work" >/dev/null
python3 -m moto.server -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
moto_pid=$!
cleanup() { redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1; kill "$moto_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$s3_port/" >/dev/null && break; sleep 0.1; done
python3 - "$redis_port" "$s3_port" <<'PY'
import socket, sys, boto3
r = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for i in range(3000):
    k, v = "key:%d" % i, "value-%d-" % i + "x" * 200
    r.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k.encode(), len(v), v.encode()))
r.recv(1 << 20)
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:%s" % sys.argv[2], aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
for b in ("uploads", "offsite"):
    s3.create_bucket(Bucket=b)
for i in range(60):
    s3.put_object(Bucket="uploads", Key="obj/%d" % i, Body=b"content %d " % i * 300)
PY
printf 'x' > "$work/s3-secret"

policy() { # $1 name, $2 repo, $3 extra yaml
  cat > "$work/$1.yml" <<YML
repository:
  path: $2
$3
sources:
  redis: { kind: redis, url: "redis://127.0.0.1:$redis_port", timeout: 20s }
  minio: { kind: s3, endpoint: "http://127.0.0.1:$s3_port", buckets: [uploads], access_key: a, secret_key_file: $work/s3-secret, timeout: 10s }
retention: { keep_last: ${4:-10}, daily: 0 }
YML
  echo "$work/$1.yml"
}

# Invariants after a fault: good rows have their files; verify passes; the next command completes cleanly.
check() { # $1 policy
  local p="$1" repo
  repo=$(python3 -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["repository"]["path"])' "$p")
  "$bin" list --json --policy "$p" > "$work/list.json" 2>/dev/null || return 1
  python3 - "$repo" "$work/list.json" <<'PY' || return 1
import json, os, sys
repo, rows = sys.argv[1], json.load(open(sys.argv[2]))
for a in rows:
    if a["status"] == "ok" and not os.path.exists(os.path.join(repo, a["path"])):
        sys.exit("ok row without its file: %s" % a["id"])
    if a["status"] == "running":
        pass  # a killed run's row: the next locked command marks it failed
PY
  "$bin" verify --all --policy "$p" >/dev/null 2>&1 || return 1
  "$bin" backup --source redis --policy "$p" >/dev/null 2>&1 || return 1
  [ -z "$(find "$repo" -name '*.partial' 2>/dev/null)" ] || return 1
  "$bin" list --json --policy "$p" | python3 -c 'import json,sys; sys.exit(any(a["status"]=="running" for a in json.load(sys.stdin)))' || return 1
  return 0
}

calls="write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,openat,ftruncate"
campaign() { # $1 label, $2 prepare-function, $3.. the command
  local label="$1" prepare="$2"; shift 2
  local total n step p
  p=$("$prepare" count)
  total=$(strace -f -qq -e trace="$calls" -o /dev/stdout "$bin" "$@" --policy "$p" 2>/dev/null | grep -c -E "^[0-9]+ +($(echo "$calls" | tr , '|'))\(" || true)
  [ "$total" -gt 0 ] || total=1
  step=$(( total / points )); [ "$step" -ge 1 ] || step=1
  tried[$label]=0; survived[$label]=0
  for n in $(seq 1 "$step" "$total"); do
    p=$("$prepare" "k$n")
    # (inside its own bash, so that the "Killed" notice of the re-raised signal goes nowhere)
    bash -c 'strace "$@"; :' strace -f -qq -o /dev/null -e trace="$calls" -e inject="$calls:signal=KILL:when=$n" "$bin" "$@" --policy "$p" >/dev/null 2>&1
    tried[$label]=$(( ${tried[$label]} + 1 ))
    if check "$p"; then survived[$label]=$(( ${survived[$label]} + 1 )); else echo "  $label: kill at call $n left the repository wrong" >&2; fi
  done
}

fresh() { # a repository with three good backups of both sources
  local d="$work/repo-$1"; rm -rf "$d"
  local p; p=$(policy "p-$1" "$d" "" 10)
  for _ in 1 2 3; do "$bin" backup --policy "$p" >/dev/null 2>&1; done
  echo "$p"
}
prep_backup() { fresh "$1"; }
prep_rotate() { local p; p=$(fresh "$1"); sed -i 's/keep_last: 10/keep_last: 1/' "$p"; echo "$p"; }
prep_pin() { local p; p=$(fresh "$1"); echo "$p"; }
prep_offsite() {
  local d="$work/repo-$1"; rm -rf "$d"
  local p; p=$(policy "p-$1" "$d" "  offsite: { endpoint: \"http://127.0.0.1:$s3_port\", bucket: offsite, prefix: \"$1/\", access_key: a, secret_key_file: $work/s3-secret, timeout: 10s }" 10)
  echo "$p"
}
pin_id() { "$bin" list --json --policy "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])'; }

# Hostile peers: a fake Redis and a fake S3 that answer with one bad reply each (Tests/StandIns/redis_hostile.py,
# redis_trickle.py, s3_hostile.py). Each run must end by itself, cleanly (exit 1, never a signal), within
# 300 s and 1 GiB of memory, leaving no *.partial and no `running` row.
declare -A tried survived
hostile_one() { # $1 label, $2 policy
  local label="$1" p="$2" repo out rc rss secs
  repo=$(python3 -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["repository"]["path"])' "$p")
  out=$(python3 - "$bin" "$p" <<'PY'
import resource, subprocess, sys, time
t = time.time()
try:
    rc = subprocess.run([sys.argv[1], "backup", "--policy", sys.argv[2]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300).returncode
except subprocess.TimeoutExpired:
    rc = "timeout"
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, int(time.time() - t))
PY
)
  read -r rc rss secs <<<"$out"
  tried[hostile]=$(( ${tried[hostile]:-0} + 1 ))
  if [ "$rc" = 1 ] && [ "$rss" -lt 1024 ] && [ -z "$(find "$repo" -name '*.partial' 2>/dev/null)" ] \
     && "$bin" list --json --policy "$p" | python3 -c 'import json,sys; sys.exit(any(a["status"]=="running" for a in json.load(sys.stdin)))'; then
    survived[hostile]=$(( ${survived[hostile]:-0} + 1 ))
    echo "  $label: exit $rc, ${rss} MiB, ${secs} s" >&2
  else
    echo "  $label: exit $rc, ${rss} MiB, ${secs} s: NOT survived" >&2
  fi
}
hostile() {
  local mode port pid p
  for mode in huge-bulk deep-array long-line wide-array bulk-no-crlf echo-error trickle; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ "$mode" = trickle ]; then python3 "$root/Tests/StandIns/redis_trickle.py" "$port" 0.2 >/dev/null & pid=$!
    else python3 "$root/Tests/StandIns/redis_hostile.py" "$port" "$mode" >/dev/null & pid=$!; fi
    sleep 0.5
    p="$work/hostile-redis-$mode.yml"
    printf 'repository: { path: %s }\nsources:\n  redis: { kind: redis, url: "redis://:pw@127.0.0.1:%s", timeout: 10s, min_rate_window: 20s }\n' "$work/hr-$mode" "$port" > "$p"
    chmod 600 "$p"; hostile_one "redis $mode" "$p"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
  for mode in deep-xml repeat-token trickle huge-length garbage; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 "$root/Tests/StandIns/s3_hostile.py" "$port" "$mode" >/dev/null & pid=$!
    sleep 0.5
    p="$work/hostile-s3-$mode.yml"
    printf 'repository: { path: %s }\nsources:\n  minio: { kind: s3, endpoint: "http://127.0.0.1:%s", buckets: [uploads], access_key: a, secret_key_file: %s, timeout: 10s, deadline: 2m }\n' "$work/hs-$mode" "$port" "$work/s3-secret" > "$p"
    chmod 600 "$p"; hostile_one "s3 $mode" "$p"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
}

# Symlinks and traversal: restores into a directory where the target name (or its .partial) is a planted
# symlink, and an off-site manifest whose path climbs out of the repository. The victim file must be untouched.
symlinks() {
  local p d victim id rc
  p=$(fresh links)
  id=$("$bin" list --json --source redis --policy "$p" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  for plant in dump.rdb dump.rdb.incoming dump.rdb.incoming.partial; do
    d="$work/target-$plant"; mkdir -p "$d"; victim="$work/victim-$plant"; echo precious > "$victim"
    ln -sf "$victim" "$d/$plant"
    "$bin" restore redis --backup "$id" --to-dir "$d" --yes --policy "$p" >/dev/null 2>&1; rc=$?
    tried[symlinks]=$(( ${tried[symlinks]:-0} + 1 ))
    if [ "$(cat "$victim")" = precious ] && [ "$rc" -lt 128 ]; then survived[symlinks]=$(( ${survived[symlinks]:-0} + 1 ))
    else echo "  restore --to-dir with $plant planted: the victim changed (exit $rc)" >&2; fi
  done
  # A manifest edited to point outside the repository: rebuild refuses it, rotation never unlinks the victim.
  local repo; repo="$work/repo-links"
  victim="$work/victim-manifest"; echo precious > "$victim"
  python3 - "$repo" "$victim" <<'PY'
import glob, json, sys
for m in glob.glob(sys.argv[1] + "/redis/*/*.manifest.json")[:1]:
    doc = json.load(open(m)); doc["artifact"]["path"] = "../" * 8 + sys.argv[2].lstrip("/"); json.dump(doc, open(m, "w"))
PY
  "$bin" catalog rebuild --policy "$p" >/dev/null 2>&1
  sed -i 's/keep_last: 10/keep_last: 1/' "$p"
  "$bin" rotate --policy "$p" >/dev/null 2>&1
  tried[symlinks]=$(( ${tried[symlinks]:-0} + 1 ))
  if [ -f "$victim" ] && [ "$(cat "$victim")" = precious ]; then survived[symlinks]=$(( ${survived[symlinks]:-0} + 1 ))
  else echo "  a manifest path out of the repository: the victim was removed" >&2; fi
}

if [ -n "$only" ]; then
  "$only"
  echo; echo "| fault | tried | survived |"; echo "|---|---|---|"
  echo "| $only | ${tried[$only]} | ${survived[$only]:-0} |"
  [ "${tried[$only]}" = "${survived[$only]:-0}" ]; exit $?
fi

echo "== kills: $points points per command, spread over every $calls" >&2
campaign "backup (redis)" prep_backup backup --source redis
campaign "bucket snapshot" prep_backup backup --source minio
campaign "rotate" prep_rotate rotate
p=$(prep_pin count); campaign "pin" prep_pin pin "$(pin_id "$p")" --reason campaign
campaign "off-site upload" prep_offsite backup

echo "== disk full: tmpfs sizes around an artifact's" >&2
p=$(fresh sizes)
size=$("$bin" list --json --source redis --policy "$p" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["bytes_stored"] // 1024)')
tried[tmpfs]=0; survived[tmpfs]=0
for delta in -60 -30 -10 0 10 30 60 120 250 500; do
  kib=$(( size * 2 + 400 + delta * 4 )); [ "$kib" -ge 64 ] || kib=64
  d="$work/full-$kib"; mkdir -p "$d"
  p=$(policy "full-$kib" "$d" "" 10)
  tried[tmpfs]=$(( ${tried[tmpfs]} + 1 ))
  if unshare --mount --propagation private sh -c '
      mount -t tmpfs -o size="$1"k kb-full "$2" || exit 90
      for i in 1 2 3; do "$3" backup --source redis --policy "$4" >/dev/null 2>&1; done
      [ -z "$(find "$2" -name "*.partial")" ] || exit 91
      "$3" list --json --policy "$4" | python3 -c "import json,sys; sys.exit(any(a[\"status\"]==\"running\" for a in json.load(sys.stdin)))" || exit 92
      "$3" verify --all --policy "$4" >/dev/null 2>&1 || exit 93' kb "$kib" "$d" "$bin" "$p"; then
    survived[tmpfs]=$(( ${survived[tmpfs]} + 1 ))
  else echo "  tmpfs of $kib KiB: exit $?" >&2; fi
done

echo "== hostile peers (fake Redis, fake S3)" >&2
hostile
echo "== planted symlinks, a manifest path out of the repository" >&2
symlinks

echo "== fuzzers: $fuzz mutants per reader" >&2
tried[fuzz]=4; survived[fuzz]=0
if "$root/scripts/fuzz.sh" "$fuzz" >"$work/fuzz.log" 2>&1; then survived[fuzz]=4; else cat "$work/fuzz.log" >&2; fi

echo
echo "| fault | tried | survived |"
echo "|---|---|---|"
all=0
for label in "backup (redis)" "bucket snapshot" "rotate" "pin" "off-site upload" "tmpfs" "hostile" "symlinks" "fuzz"; do
  name="$label"; [ "$label" = tmpfs ] && name="disk full (tmpfs sizes)"; [ "$label" = fuzz ] && name="fuzzed readers (RDB, archive, age, gzip)"
  [ "$label" = hostile ] && name="hostile peers (Redis: 7 bad replies, S3: 5; bounded in time and memory)"
  [ "$label" = symlinks ] && name="planted symlinks and an escaping manifest path (victim untouched)"
  echo "| $name | ${tried[$label]} | ${survived[$label]} |"
  [ "${tried[$label]}" = "${survived[$label]}" ] || all=1
done
exit "$all"
