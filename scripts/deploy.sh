#!/usr/bin/env bash
# Deploys a new API image to the Kaleem stack, or rolls it back (the operations document's §5.3.1 and §3).
#
#   scripts/deploy.sh [deploy]                                   deploy KALEEM_API_IMAGE
#   scripts/deploy.sh rollback [--to RELEASE] [--restore-data] [--reason WORD]
#
# A deploy, in this order (each attempt is one event, DEPLOY_ID, counted by kaleem-backup's deployment metrics:
# a retry and a redeploy of the same tag are counted again):
#   1. docker pull the new image; a failed pull is a failed deploy: recorded (deployment_duration_seconds
#      {status="failed"}), notified (deploy_failed, reason pull-failed), exit 1; nothing changed, nothing pinned;
#   2. a pinned restore point of every stateful source (kaleem-backup hook pre-deploy --deploy-id); if it fails,
#      stop: nothing has been changed (the hook records and notifies the failed deploy);
#   3. note the image running now (to roll back to);
#   4. docker compose --project-directory STACK_DIR -f <each compose file> -f COMPOSE_OVERRIDE up -d --no-deps api:
#      the override file sets the service's image to ${KALEEM_API_IMAGE} (written when missing), whatever the base
#      files say;
#   5. check that the service's containers run the new image (docker compose ps; docker inspect when Compose
#      is 2.14 or older and prints no Image), else roll back;
#   6. poll HEALTH_URL up to MAX_ATTEMPTS times, SLEEP_SECONDS apart, until it answers 2xx, else roll back;
#   7. nginx (NGINX_RELOAD=0 skips it): nginx -t, nginx -s reload, then NGINX_STATUS_URL (the document's §5.5.2
#      `curl http://localhost/nginx_status`; off when unset) answers 2xx with stub_status's "Active connections".
#      When that fails, nginx is rolled back with its own configuration: the failing files are kept aside
#      (DEPLOY_STATE_DIR/nginx-failed-DEPLOY_ID), the last configuration that passed (DEPLOY_STATE_DIR/nginx-good,
#      kept after every passing check) is put back, tested again and reloaded. The API is rolled back only when
#      its own health (HEALTH_URL) fails; the notification says what happened to both;
#   8. hook post-deploy --outcome success, and the release is written to DEPLOY_STATE_DIR/releases.
# Rolling back (a failed deploy): the previous image is put back, checked (image and health, the same way); hook
# rollback (with --restore-data when ROLLBACK_RESTORE_DATA=1); hook post-deploy --outcome failed. When the previous
# image is not healthy either, hook post-deploy --outcome rollback-failed sends a critical notification.
#
# `rollback`, the document's §3 on demand: the previous release (the one deployed before the running one, from
# DEPLOY_STATE_DIR/releases) or --to RELEASE is started through the same compose files and override file and
# checked (image, health); nginx is checked and reloaded (as in step 7); the data is checked: a backup of each
# source of the running release's pre-deploy restore point is taken now (tag pre-rollback) and compared with
# it (kaleem-backup diff: keys, documents, points, objects added, changed, removed), and with --restore-data the
# restore point is restored (kaleem-backup hook rollback --restore-data); the alerts are checked when
# PROMETHEUS_URL is set (GET /api/v1/alerts: the firing alerts whose name matches PROMETHEUS_ALERTS are listed);
# a notification (rollback, with all of this in its detail); a final health check.
#
# Exit status: 0 deployed (or rolled back, every check passed); 1 not deployed (pull or restore point failed:
# nothing changed), or the deploy failed and the previous image is back and healthy, or the new image is kept
# healthy while nginx's check fails even with its last good configuration (nginx keeps running the configuration
# it had loaded; the notification says so); for `rollback`: back and healthy but a check failed (nginx, data);
# 2 set-up error (a variable, a tool, the stack's directory or a compose file missing, no previous release known);
# 3 the deploy failed AND the rollback did not bring the service back, or `rollback` did not bring it back: the
# service is down, wake someone (a critical notification); 4 deployed, the API healthy on the new image, but
# nginx's configuration on disk failed its check and was put back to the last good one (look at
# DEPLOY_STATE_DIR/nginx-failed-DEPLOY_ID).
#
# The stack (Compose's project) is found the way Compose finds it, never from the caller's working directory
# (cron starts jobs in $HOME, systemd in /):
#   STACK_DIR      the stack's directory, Compose's project directory (--project-directory). Default: the
#                  directory of the first compose file when that is given as an absolute path, else KALEEM_ROOT
#                  (/etc/kaleem-backup/env), else /opt/kaleem (the operations document's host: /opt/kaleem/backups
#                  beside the compose files). Relative names in COMPOSE_FILES, COMPOSE_FILE and COMPOSE_OVERRIDE are
#                  relative to it. The script runs from it (the pre-deploy hook too, with COMPOSE_FILE set to the
#                  same files, so a policy's `docker compose exec` tools address the same project).
#   COMPOSE_FILES  the compose files, in order, separated by spaces (production: "docker-compose.yml
#                  docker-compose.prod.yml"). When it is not set, Compose's own COMPOSE_FILE is honoured, from the
#                  environment or else from STACK_DIR/.env (as Compose reads it; COMPOSE_DISABLE_ENV_FILE=1 skips
#                  the .env): a list separated by COMPOSE_PATH_SEPARATOR (default ':'). When neither is set,
#                  Compose's default file in STACK_DIR (compose.yaml, compose.yml, docker-compose.yml,
#                  docker-compose.yaml: the first found) and its override file (compose.override.yml, ...) if any.
#   COMPOSE_OVERRIDE  the image override file (docker-compose.image.override.yml, in STACK_DIR), always last.
#
# Required: KALEEM_API_IMAGE (the new image; not for `rollback`), KALEEM_BACKUP_POLICY (read by kaleem-backup; a
# relative path is relative to the caller's working directory).
# Optional (defaults as in the operations document):
#   HEALTH_URL (http://localhost:8088/api/health), MAX_ATTEMPTS (10), SLEEP_SECONDS (20);
#   HEALTH_TIMEOUT / HEALTH_INTERVAL (older names: attempts = HEALTH_TIMEOUT / HEALTH_INTERVAL, sleep = HEALTH_INTERVAL);
#   STACK_DIR, COMPOSE_FILES / COMPOSE_FILE, COMPOSE_OVERRIDE (above), COMPOSE_SERVICE (api), NGINX_SERVICE (nginx),
#   NGINX_RELOAD (1), NGINX_STATUS_URL (unset: no nginx_status check; the document's http://localhost/nginx_status),
#   NGINX_CONFIG (the nginx configuration files and directories in STACK_DIR that are kept and put back, those of
#   "nginx.conf nginx.lb.conf nginx conf.d" that exist), DEPLOY_STATE_DIR (STACK_DIR/.kaleem-deploy, mode 0700: the
#   releases deployed and the last good nginx configuration), DEPLOY_ID (deploy-UTCTIME-PID, rollback-... for
#   `rollback`), PROMETHEUS_URL (unset: no alerts check), PROMETHEUS_ALERTS (an ERE on alertname; default: the
#   alerts of policies/alerts/backup.rules.yml), KALEEM_BACKUP_BIN (kaleem-backup on PATH), KALEEM_ENVIRONMENT
#   (production), ROLLBACK_RESTORE_DATA (0), DOCKER_PULL (1; 0 for an image built on this host).
set -euo pipefail

log() { printf '%s deploy: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "$*"; exit 2; }
usage="usage: deploy.sh [deploy] | deploy.sh rollback [--to RELEASE] [--restore-data] [--reason WORD]"

ACTION=deploy
ROLLBACK_TO=""
RESTORE_DATA=0
ROLLBACK_REASON=manual
case "${1:-}" in
  ""|deploy) [ "$#" -gt 0 ] && shift ;;
  rollback) ACTION=rollback; shift ;;
  -h|--help) printf '%s\n' "$usage"; exit 0 ;;
  *) die "unknown command ${1}: $usage" ;;
esac
while [ "$#" -gt 0 ]; do
  case "$ACTION:$1" in
    rollback:--to)
      [ "$#" -ge 2 ] || die "--to needs a release (an image, e.g. kaleem-api:1.4.1)"
      [ -n "$2" ] || die "--to needs a release (an image, e.g. kaleem-api:1.4.1)"
      ROLLBACK_TO=$2; shift 2 ;;
    rollback:--to=*) ROLLBACK_TO=${1#--to=}; [ -n "$ROLLBACK_TO" ] || die "--to needs a release"; shift ;;
    rollback:--restore-data) RESTORE_DATA=1; shift ;;
    rollback:--reason) [ "$#" -ge 2 ] || die "--reason needs a word"; ROLLBACK_REASON=$2; shift 2 ;;
    *) die "unknown argument $1: $usage" ;;
  esac
done
case "$ROLLBACK_REASON" in ''|*[!a-z0-9._-]*) die "--reason must be a short word (a-z 0-9 . _ -), found '$ROLLBACK_REASON'" ;; esac

if [ "$ACTION" = deploy ]; then
  [ -n "${KALEEM_API_IMAGE:-}" ] || die "set KALEEM_API_IMAGE to the image to deploy, e.g. registry/kaleem-api:1.4.2"
fi
[ -n "${KALEEM_BACKUP_POLICY:-}" ] || die "set KALEEM_BACKUP_POLICY to the backup policy file"
export KALEEM_BACKUP_POLICY
KB="${KALEEM_BACKUP_BIN:-kaleem-backup}"
SERVICE="${COMPOSE_SERVICE:-api}"
NGINX_SERVICE="${NGINX_SERVICE:-nginx}"
NGINX_RELOAD="${NGINX_RELOAD:-1}"
HEALTH_URL="${HEALTH_URL:-http://localhost:8088/api/health}"
SLEEP_SECONDS="${SLEEP_SECONDS:-${HEALTH_INTERVAL:-20}}"
if [ -n "${MAX_ATTEMPTS:-}" ]; then
  :
elif [ -n "${HEALTH_TIMEOUT:-}" ]; then
  MAX_ATTEMPTS=$(awk -v t="$HEALTH_TIMEOUT" -v s="$SLEEP_SECONDS" 'BEGIN { n = int(t / s); print (n < 1 ? 1 : n) }')
else
  MAX_ATTEMPTS=10
fi
case "$MAX_ATTEMPTS" in ''|*[!0-9]*) die "MAX_ATTEMPTS must be a whole number, found $MAX_ATTEMPTS" ;; esac
COMPOSE_OVERRIDE="${COMPOSE_OVERRIDE:-docker-compose.image.override.yml}"
export KALEEM_ENVIRONMENT="${KALEEM_ENVIRONMENT:-production}"
export KALEEM_SERVICE="$SERVICE"
NEW_IMAGE="${KALEEM_API_IMAGE:-}"
NGINX_STATUS_URL="${NGINX_STATUS_URL:-}"
PROMETHEUS_URL="${PROMETHEUS_URL:-}"
PROMETHEUS_ALERTS="${PROMETHEUS_ALERTS:-^(Backup|Deployment|LongDeployment)}"
# The URLs may hold credentials: no child (docker, kaleem-backup, curl) gets them in its environment.
export -n HEALTH_URL NGINX_STATUS_URL PROMETHEUS_URL
# One id for each attempt: kaleem-backup counts each once (a retry and a redeploy of the same tag too).
DEPLOY_ID="${DEPLOY_ID:-$ACTION-$(date -u +%Y%m%dT%H%M%SZ)-$$}"
case "$DEPLOY_ID" in ''|*[!A-Za-z0-9._:-]*) die "DEPLOY_ID must be letters, digits, '.', '_', ':' or '-', found '$DEPLOY_ID'" ;; esac

# What the caller named relative to its own working directory stays so after the cd below.
case "$KALEEM_BACKUP_POLICY" in /*) ;; *) KALEEM_BACKUP_POLICY="$PWD/$KALEEM_BACKUP_POLICY" ;; esac
case "$KB" in /*) ;; */*) KB="$PWD/$KB" ;; esac

command -v "$KB" >/dev/null 2>&1 || die "kaleem-backup not found (KALEEM_BACKUP_BIN=$KB)"
command -v docker >/dev/null 2>&1 || die "docker not found"

# --- The project, found the way Compose finds it (compose-spec/compose-go cli/options.go), from STACK_DIR ---

# Prints the items of a list separated by $2, one a line (strings.Split in compose-go: every separator counts).
split_list() {
  local rest=$1 sep=$2
  while :; do
    case $rest in
      *"$sep"*) printf '%s\n' "${rest%%"$sep"*}"; rest=${rest#*"$sep"} ;;
      *) printf '%s\n' "$rest"; return 0 ;;
    esac
  done
}

# The value of NAME in a .env file (NAME=VALUE or `export NAME=VALUE`, quoted or not; the last one counts), as
# Compose reads the project's .env; status 1 when it is not there.
dotenv_value() {
  local line value="" found=1
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line#"${line%%[![:space:]]*}"}
    line=${line#export }
    case $line in
      "$1="*)
        value=${line#*=}
        case $value in
          \"*) value=${value#\"}; value=${value%%\"*} ;;
          \'*) value=${value#\'}; value=${value%%\'*} ;;
          *) value=${value%%[[:space:]]#*}; value=${value%"${value##*[![:space:]]}"} ;;
        esac
        found=0 ;;
    esac
  done < "$2"
  [ "$found" = 0 ] && printf '%s\n' "$value"
}

compose_files=()
files_from=""
if [ -n "${COMPOSE_FILES:-}" ]; then
  read -r -a compose_files <<< "$COMPOSE_FILES"
  files_from="COMPOSE_FILES"
elif [ -n "${COMPOSE_FILE:-}" ]; then
  mapfile -t compose_files < <(split_list "$COMPOSE_FILE" "${COMPOSE_PATH_SEPARATOR:-:}")
  files_from="COMPOSE_FILE"
fi

if [ -z "${STACK_DIR:-}" ]; then
  if [ "${#compose_files[@]}" -gt 0 ] && [ "${compose_files[0]#/}" != "${compose_files[0]}" ]; then
    STACK_DIR=$(dirname -- "${compose_files[0]}")
  else
    STACK_DIR="${KALEEM_ROOT:-/opt/kaleem}"
  fi
fi
[ -d "$STACK_DIR" ] || die "the stack's directory $STACK_DIR does not exist: set STACK_DIR to the directory of the stack's compose files (on the operations document's hosts: /opt/kaleem)"
STACK_DIR=$(cd -- "$STACK_DIR" && pwd) || die "cannot enter the stack's directory $STACK_DIR"

# COMPOSE_FILE may come from the project's .env, as for `docker compose` run in the stack's directory; the
# environment wins over the file.
if [ -z "$files_from" ] && [ -f "$STACK_DIR/.env" ]; then
  case "${COMPOSE_DISABLE_ENV_FILE:-}" in
    1|[tT]|[tT][rR][uU][eE]) ;;
    *)
      if env_files=$(dotenv_value COMPOSE_FILE "$STACK_DIR/.env") && [ -n "$env_files" ]; then
        env_sep="${COMPOSE_PATH_SEPARATOR:-$(dotenv_value COMPOSE_PATH_SEPARATOR "$STACK_DIR/.env" || true)}"
        mapfile -t compose_files < <(split_list "$env_files" "${env_sep:-:}")
        files_from="COMPOSE_FILE in $STACK_DIR/.env"
      fi ;;
  esac
fi

# Neither: Compose's default file in the stack's directory, and the override file beside it.
if [ -z "$files_from" ]; then
  for name in compose.yaml compose.yml docker-compose.yml docker-compose.yaml; do
    if [ -f "$STACK_DIR/$name" ]; then compose_files=("$name"); break; fi
  done
  [ "${#compose_files[@]}" -gt 0 ] || die "no compose file in $STACK_DIR (compose.yaml, compose.yml, docker-compose.yml or docker-compose.yaml): set STACK_DIR, or COMPOSE_FILES / COMPOSE_FILE"
  for name in compose.override.yml compose.override.yaml docker-compose.override.yml docker-compose.override.yaml; do
    if [ -f "$STACK_DIR/$name" ]; then compose_files+=("$name"); break; fi
  done
  files_from="the default compose file in $STACK_DIR"
fi

in_stack() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$STACK_DIR/$1" ;; esac; }
resolved=()
for f in "${compose_files[@]}"; do
  [ -n "$f" ] || die "an empty compose file name in $files_from (a doubled or trailing separator?)"
  f=$(in_stack "$f")
  [ -f "$f" ] || die "compose file $f (from $files_from) not found"
  resolved+=("$f")
done
[ "${#resolved[@]}" -gt 0 ] || die "no compose file named by $files_from"
COMPOSE_OVERRIDE=$(in_stack "$COMPOSE_OVERRIDE")
cd -- "$STACK_DIR"

# What the script keeps between runs: the releases deployed (for `rollback`) and the last nginx configuration that
# passed its check. Only the owner reads it (the nginx files may name upstreams and certificate paths).
STATE_DIR=$(in_stack "${DEPLOY_STATE_DIR:-.kaleem-deploy}")
if [ ! -d "$STATE_DIR" ]; then
  (umask 077 && mkdir -p -- "$STATE_DIR") || die "cannot create DEPLOY_STATE_DIR $STATE_DIR"
fi
chmod 700 "$STATE_DIR" 2>/dev/null || true
RELEASES="$STATE_DIR/releases"
if [ -n "${NGINX_CONFIG:-}" ]; then
  read -r -a nginx_config <<< "$NGINX_CONFIG"
  for f in "${nginx_config[@]}"; do
    case $f in /*|*..*) die "NGINX_CONFIG names files in STACK_DIR, relative and without '..', found $f" ;; esac
  done
else
  nginx_config=()
  for f in nginx.conf nginx.lb.conf nginx conf.d; do [ -e "$f" ] && nginx_config+=("$f"); done
fi

# The override file applies the image, whatever the base files say (the document's production file has
# `image: kaleem-api:${IMAGE_TAG:-latest}`). Written once, in the stack's directory, when missing; an existing
# one is the operator's.
if [ ! -e "$COMPOSE_OVERRIDE" ]; then
  # shellcheck disable=SC2016 # the variable is for Compose to expand, not the shell
  printf 'services:\n  %s:\n    image: ${KALEEM_API_IMAGE}\n' "$SERVICE" > "$COMPOSE_OVERRIDE"
  log "wrote $COMPOSE_OVERRIDE (services.$SERVICE.image: \${KALEEM_API_IMAGE})"
fi
compose_args=(--project-directory "$STACK_DIR")
for f in "${resolved[@]}"; do compose_args+=(-f "$f"); done
compose_args+=(-f "$COMPOSE_OVERRIDE")
log "stack $STACK_DIR; compose files ($files_from): ${resolved[*]}, then $COMPOSE_OVERRIDE"
compose() { docker compose "${compose_args[@]}" "$@"; }

# Every other `docker compose` of the deploy (a policy's `docker compose exec -T mongo mongodump` in the
# pre-deploy hook) finds the same project: it runs in the stack's directory, COMPOSE_FILE naming the same files.
# The separator is ':' unless a file name holds one.
COMPOSE_PATH_SEPARATOR=:
for sep in : ';' '|' ','; do
  case "${resolved[*]}" in *"$sep"*) ;; *) COMPOSE_PATH_SEPARATOR=$sep; break ;; esac
done
COMPOSE_FILE=$(IFS=$COMPOSE_PATH_SEPARATOR; printf '%s' "${resolved[*]}")
# And the same project name: with --project-directory, Compose names the project after STACK_DIR (compose-go's
# NormalizeProjectName: lower case, only a-z 0-9 _ -), while a call with COMPOSE_FILE alone would name it after
# the first file's directory. An explicit COMPOSE_PROJECT_NAME wins for both, and a top-level `name:` in the
# files names it for both already.
if [ -z "${COMPOSE_PROJECT_NAME:-}" ] && ! grep -qE '^name:' "${resolved[@]}" 2>/dev/null; then
  COMPOSE_PROJECT_NAME=$(basename "$STACK_DIR" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-' | sed 's/^[_-]*//')
fi
export COMPOSE_FILE COMPOSE_PATH_SEPARATOR
if [ -n "${COMPOSE_PROJECT_NAME:-}" ]; then export COMPOSE_PROJECT_NAME; fi

# The images the service's containers run, one per line. `docker compose ps --format json` prints a JSON array
# (Compose 2.20 and older) or one object per line (2.21 and later). Compose 2.14 and older print no Image field
# (only ID, Name, Command, Project, Service, State, Health, ExitCode, Publishers): then each container's image is
# asked of the engine, `docker inspect --format '{{.Config.Image}}' ID` (the image the container was created
# from, as named: what later versions' `ps` prints).
service_images() {
  local ps line
  ps=$(compose ps --format json "$SERVICE") || return 1
  printf '%s\n' "$ps" | python3 -c '
import json, sys
text = sys.stdin.read().strip()
if text.startswith("["):
    items = json.loads(text)
else:
    items = [json.loads(line) for line in text.splitlines() if line.strip()]
for i in items:
    if i.get("Service", "") not in ("", sys.argv[1]):
        continue
    if i.get("Image"):
        print("image " + i["Image"])
    elif i.get("ID") or i.get("Name"):
        print("container " + (i.get("ID") or i.get("Name")))
    else:
        print("image ")
' "$SERVICE" | while IFS= read -r line; do
    case $line in
      "image "*) printf '%s\n' "${line#image }" ;;
      "container "*) docker inspect --format '{{.Config.Image}}' "${line#container }" || exit 1 ;;
    esac
  done
}

# Every container of the service runs exactly this image.
runs_image() {
  local images
  images=$(service_images) || return 1
  [ -n "$images" ] && ! printf '%s\n' "$images" | grep -qvxF -- "$1"
}

# GET a URL, body on stdout; status non-zero unless it answers 2xx. The URL may hold credentials
# (user:password@host): it goes to curl on its standard input (a config line), never in its argv.
fetch() {
  if command -v curl >/dev/null 2>&1; then
    local u=${1//\\/\\\\}
    u=${u//\"/\\\"}
    printf 'url = "%s"\n' "$u" | curl -fsS --max-time 5 -K -
  else
    printf '%s' "$1" | python3 -c 'import sys, urllib.request; r = urllib.request.urlopen(sys.stdin.read(), timeout=5); sys.stdout.write(r.read().decode("utf-8", "replace")); sys.exit(0 if r.status < 300 else 1)' 2>/dev/null
  fi
}

# A URL as logs and notifications show it: without its credentials.
shown() { printf '%s' "$1" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@#\1***@#'; }

healthy() { fetch "$HEALTH_URL" >/dev/null; }

wait_healthy() {
  local attempt
  for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
    if healthy; then return 0; fi
    log "health check $attempt/$MAX_ATTEMPTS: not healthy yet"
    [ "$attempt" -lt "$MAX_ATTEMPTS" ] && sleep "$SLEEP_SECONDS"
  done
  return 1
}

# Starts IMAGE as the service and checks it: the image applied, then healthy. Returns 2 when compose up failed,
# 3 when the containers run another image, 4 when the service never became healthy.
start_and_check() {
  local image=$1
  if ! KALEEM_API_IMAGE="$image" compose up -d --no-deps "$SERVICE"; then
    log "docker compose up failed for $image"
    return 2
  fi
  if ! runs_image "$image"; then
    log "the $SERVICE containers do not run $image (docker compose ps says: $(service_images | tr '\n' ' ')): does $COMPOSE_OVERRIDE set services.$SERVICE.image: \${KALEEM_API_IMAGE}?"
    return 3
  fi
  if ! wait_healthy; then
    log "$image is not healthy after $MAX_ATTEMPTS checks of $(shown "$HEALTH_URL")"
    return 4
  fi
}

# --- nginx: test, reload, nginx_status; its own configuration put back when that fails ---

# Status 0: nginx -t passed, nginx reloaded and (when NGINX_STATUS_URL is set) nginx_status answers. The first
# problem is in $nginx_problem.
nginx_problem=""
nginx_check() {
  local out
  nginx_problem=""
  if ! out=$(compose exec -T "$NGINX_SERVICE" nginx -t 2>&1); then
    printf '%s\n' "$out" >&2
    nginx_problem="nginx -t failed: $(printf '%s\n' "$out" | grep -m1 -E 'emerg|error|no such' || printf '%s' "${out%%$'\n'*}")"
    log "$nginx_problem"
    return 1
  fi
  printf '%s\n' "$out" >&2
  if ! compose exec -T "$NGINX_SERVICE" nginx -s reload; then
    nginx_problem="nginx -s reload failed"
    log "$nginx_problem"
    return 1
  fi
  [ -n "$NGINX_STATUS_URL" ] || return 0
  local attempt body
  for attempt in 1 2 3; do
    if body=$(fetch "$NGINX_STATUS_URL") && printf '%s' "$body" | grep -q 'Active connections'; then
      log "nginx_status: $(printf '%s' "$body" | head -n 1)"
      return 0
    fi
    [ "$attempt" -lt 3 ] && sleep "$SLEEP_SECONDS"
  done
  nginx_problem="nginx_status ($(shown "$NGINX_STATUS_URL")) did not answer with stub_status's \"Active connections\""
  log "$nginx_problem"
  return 1
}

# The nginx files (NGINX_CONFIG) copied from $1 to $2 (a fresh directory), each as it is (a directory whole).
copy_nginx_config() {
  local from=$1 to=$2 f
  rm -rf -- "$to"
  (umask 077 && mkdir -p -- "$to") || return 1
  for f in "${nginx_config[@]}"; do
    [ -e "$from/$f" ] || continue
    mkdir -p -- "$to/$(dirname -- "$f")" && cp -a -- "$from/$f" "$to/$f" || return 1
  done
}

# After a passing check: this configuration is the last good one.
keep_nginx_good() {
  [ "${#nginx_config[@]}" -gt 0 ] || return 0
  if copy_nginx_config "$STACK_DIR" "$STATE_DIR/nginx-good.new"; then
    rm -rf -- "$STATE_DIR/nginx-good" && mv -- "$STATE_DIR/nginx-good.new" "$STATE_DIR/nginx-good"
  else
    log "warning: cannot keep the nginx configuration in $STATE_DIR/nginx-good"
  fi
}

# The failing files kept aside, the last good ones put back. Status 1 when there is none to put back.
restore_nginx_good() {
  local f
  if [ ! -d "$STATE_DIR/nginx-good" ] || [ "${#nginx_config[@]}" -eq 0 ]; then
    log "no good nginx configuration kept yet in $STATE_DIR/nginx-good (each deploy whose nginx check passes keeps one)"
    return 1
  fi
  copy_nginx_config "$STACK_DIR" "$STATE_DIR/nginx-failed-$DEPLOY_ID" || return 1
  for f in "${nginx_config[@]}"; do
    [ -e "$STATE_DIR/nginx-good/$f" ] || continue
    rm -rf -- "${STACK_DIR:?}/$f" && cp -a -- "$STATE_DIR/nginx-good/$f" "$STACK_DIR/$f" || return 1
  done
  log "nginx: the failing configuration is kept in $STATE_DIR/nginx-failed-$DEPLOY_ID; the last good one is back"
}

# nginx checked; on failure its last good configuration put back and checked again. Says what happened in
# $nginx_note; status 0 when nginx passes (as it is, or with the restored configuration), 1 when it does not.
nginx_restored=0
nginx_note=""
nginx_step() {
  nginx_restored=0
  if [ "$NGINX_RELOAD" = "0" ]; then
    log "nginx reload skipped (NGINX_RELOAD=0)"
    nginx_note="nginx: not checked (NGINX_RELOAD=0)"
    return 0
  fi
  if nginx_check; then
    keep_nginx_good
    nginx_note="nginx: configuration tested and reloaded${NGINX_STATUS_URL:+, nginx_status answers}"
    return 0
  fi
  local first=$nginx_problem
  if restore_nginx_good && nginx_check; then
    nginx_restored=1
    nginx_note="nginx: $first; its last good configuration was put back (the failing one kept in $STATE_DIR/nginx-failed-$DEPLOY_ID), tested and reloaded"
    log "$nginx_note"
    return 0
  fi
  nginx_note="nginx: $first; ${nginx_problem:+with its last good configuration: $nginx_problem; }not reloaded: nginx runs the configuration it had loaded"
  log "$nginx_note"
  return 1
}

started=$SECONDS
# hook post-deploy for this attempt: OUTCOME [REASON [DETAIL]] (release $NEW_IMAGE).
post_deploy() {
  local args=(hook post-deploy --release "$NEW_IMAGE" --outcome "$1" --duration "$((SECONDS - started))" --deploy-id "$DEPLOY_ID")
  [ -n "${2:-}" ] && args+=(--reason "$2")
  [ -n "${3:-}" ] && args+=(--detail "$3")
  "$KB" "${args[@]}"
}

# The release history: TIME DEPLOY_ID IMAGE EVENT (deployed | rolled-back) PREVIOUS (the image that ran before),
# tab-separated, oldest first.
record_release() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$DEPLOY_ID" "$1" "$2" "${3:-}" >> "$RELEASES" \
    || log "warning: cannot write $RELEASES"
}

roll_back() {
  local reason=$1 note=${2:-} back_ok=0
  log "rolling back ($reason)"
  if [ -n "$previous" ]; then
    if start_and_check "$previous"; then
      back_ok=1
      log "the previous image $previous is back and healthy"
    fi
  else
    log "no previous image known: nothing to put back"
  fi
  local api_note
  if [ "$back_ok" = 1 ]; then api_note="api: rolled back to $previous (healthy)"
  else api_note="api: rolled back to ${previous:-nothing (no previous image known)}, NOT healthy: the service is down"; fi
  local detail="${note:+$note; }$api_note"
  local rollback_args=(hook rollback --release "$NEW_IMAGE" --reason "$reason" --deploy-id "$DEPLOY_ID" --detail "$detail")
  if [ "${ROLLBACK_RESTORE_DATA:-0}" = "1" ]; then
    rollback_args+=(--restore-data --yes)
  fi
  "$KB" "${rollback_args[@]}" || log "the rollback hook failed"
  if [ "$back_ok" = "1" ]; then
    post_deploy failed "$reason" "$detail" || true
    exit 1
  fi
  log "CRITICAL: the deploy of $NEW_IMAGE failed and the rollback did not bring $SERVICE back (${previous:-no previous image}): THE SERVICE IS DOWN"
  post_deploy rollback-failed "$reason" "$detail" || true
  exit 3
}

deploy() {
  if [ "${DOCKER_PULL:-1}" != "0" ]; then
    log "pulling $NEW_IMAGE"
    if ! docker pull "$NEW_IMAGE"; then
      log "docker pull $NEW_IMAGE failed: NOT deploying (nothing was changed, no restore point taken)"
      post_deploy failed pull-failed "docker pull $NEW_IMAGE failed: nothing was changed" || log "the post-deploy hook failed"
      exit 1
    fi
  fi

  log "taking the pre-deploy restore point for $NEW_IMAGE (deploy $DEPLOY_ID)"
  local set_id
  if ! set_id=$("$KB" hook pre-deploy --release "$NEW_IMAGE" --deploy-id "$DEPLOY_ID"); then
    log "the pre-deploy backup failed: NOT deploying (nothing was changed; recorded as a failed deploy)"
    exit 1
  fi
  log "restore point: $set_id"

  # (All of them read: `| head -n 1` would cut the docker inspect calls short.)
  previous=$(service_images || true)
  previous=${previous%%$'\n'*}
  log "running now: ${previous:-nothing}"

  log "deploying $NEW_IMAGE"
  if start_and_check "$NEW_IMAGE"; then
    :
  else
    case $? in
      2) roll_back compose-up-failed ;;
      3) roll_back image-not-applied ;;
      *) roll_back health-check-failed ;;
    esac
  fi
  if ! nginx_step; then
    # nginx fails with its last good configuration too: the API is rolled back only when its own health fails.
    if wait_healthy; then
      local detail="$nginx_note; api: $NEW_IMAGE healthy, kept (its own health passes)"
      log "the deploy of $NEW_IMAGE failed at nginx; $SERVICE runs $NEW_IMAGE, healthy"
      post_deploy failed nginx-config-invalid "$detail" || true
      exit 1
    fi
    roll_back nginx-config-invalid "$nginx_note"
  fi
  if [ "$nginx_restored" = 1 ]; then
    if ! wait_healthy; then
      roll_back health-check-failed "$nginx_note"
    fi
    local detail="$nginx_note; api: $NEW_IMAGE healthy, kept (its own health passes)"
    # (recorded and notified; its advice on restoring data does not apply to nginx's configuration)
    "$KB" hook rollback --release "$NEW_IMAGE" --reason nginx-config-restored --deploy-id "$DEPLOY_ID" --detail "$detail" >/dev/null \
      || log "the rollback hook failed"
    post_deploy success nginx-config-restored "$detail"
    record_release "$NEW_IMAGE" deployed "$previous"
    log "$NEW_IMAGE is deployed and healthy; nginx's configuration was put back to the last good one (exit 4)"
    exit 4
  fi
  post_deploy success "" "$nginx_note; api: $NEW_IMAGE healthy"
  record_release "$NEW_IMAGE" deployed "$previous"
  log "$NEW_IMAGE is deployed and healthy"
}

# --- rollback on demand (§3) ---

# The release that ran before $1 was deployed: the newest `deployed` entry of $1 names it (else the deployed
# entry before that one). Nothing when this script never deployed $1: a rollback is no deploy, so rolling back
# twice does not toggle between two releases.
previous_release() {
  [ -f "$RELEASES" ] || return 0
  awk -F '\t' -v cur="$1" '
    $4 == "deployed" { n++; img[n] = $3; prev[n] = $5 }
    END {
      for (i = n; i >= 1; i--) {
        if (img[i] != cur) continue
        if (prev[i] != "" && prev[i] != cur) { print prev[i]; exit }
        for (j = i - 1; j >= 1; j--) if (img[j] != cur) { print img[j]; exit }
        exit
      }
    }' "$RELEASES"
}

# The data of the release's pre-deploy restore point against the live sources: a backup of each now (tag
# pre-rollback: also the state before a --restore-data) and kaleem-backup diff of each pair. Says it in $data_note;
# status 1 when a step failed. The restore point is pinned meanwhile when it was not (a release older than the
# last retention.pre_deploy confirmed ones): the rotation after that backup must not remove what is compared
# and restored; unpin_checked unpins it again.
data_note=""
pinned_here=()
data_check() {
  local release=$1 pairs line source old new json summary pinned failed=0 notes=()
  pairs=$("$KB" list --json | python3 -c '
import json, sys
release = sys.argv[1]
items = [a for a in json.load(sys.stdin) if a.get("tag") == "pre-deploy" and a.get("release") == release
         and a.get("status") == "ok" and not a.get("deleted_at")]
if items:
    newest = max(items, key=lambda a: a["created_at"])["run_id"]
    for a in items:
        if a["run_id"] == newest:
            print("\t".join([a["source"], a["id"], newest, "1" if a.get("pinned") else "0"]))
' "$release") || { data_note="data: not checked: kaleem-backup list failed"; log "$data_note"; return 1; }
  if [ -z "$pairs" ]; then
    data_note="data: $release has no pre-deploy restore point: nothing to compare"
    log "$data_note"
    return 0
  fi
  local sources=() args=()
  while IFS=$'\t' read -r source old _ pinned; do
    sources+=("$source"); args+=(--source "$source")
    if [ "$pinned" = 0 ]; then
      if "$KB" pin "$old" --reason "rollback $DEPLOY_ID: compared and restored from" >/dev/null; then
        pinned_here+=("$old")
      else
        log "warning: cannot pin $old while it is compared: the rotation after the comparison backup may remove it"
      fi
    fi
  done <<< "$pairs"
  log "data: backing up ${sources[*]} now, to compare with the restore point of $release"
  if ! json=$("$KB" backup "${args[@]}" --tag pre-rollback --release "$release" --json); then
    data_note="data: the backup of ${sources[*]} failed: the live sources were not compared (kaleem-backup list says why)"
    log "$data_note"
    return 1
  fi
  while IFS=$'\t' read -r source old set _; do
    new=$(printf '%s' "$json" | python3 -c '
import json, sys
for a in json.load(sys.stdin)["artifacts"]:
    if a["source"] == sys.argv[1] and a["status"] == "ok":
        print(a["id"])
' "$source")
    if [ -z "$new" ] || ! summary=$("$KB" diff "$old" "$new" | tail -n 1); then
      notes+=("$source: not compared"); failed=1
      continue
    fi
    notes+=("$source: $summary since $old")
    log "data: $source since the restore point ($set): $summary"
  done <<< "$pairs"
  data_note="data (live against the restore point of $release): $(IFS=';'; printf '%s' "${notes[*]}")"
  return "$failed"
}

unpin_checked() {
  local id
  for id in "${pinned_here[@]}"; do
    "$KB" unpin "$id" >/dev/null || log "warning: cannot unpin $id (pinned by this rollback): kaleem-backup unpin $id"
  done
}

# The firing alerts (Prometheus's GET /api/v1/alerts) whose name matches PROMETHEUS_ALERTS, in $alerts_note.
alerts_note=""
alerts_check() {
  if [ -z "$PROMETHEUS_URL" ]; then
    alerts_note="alerts: not checked (PROMETHEUS_URL is not set)"
    return 0
  fi
  local body firing
  if ! body=$(fetch "${PROMETHEUS_URL%/}/api/v1/alerts"); then
    alerts_note="alerts: not checked: $(shown "${PROMETHEUS_URL%/}/api/v1/alerts") did not answer"
    log "$alerts_note"
    return 0
  fi
  if ! firing=$(printf '%s' "$body" | python3 -c '
import json, re, sys
doc = json.load(sys.stdin)
if doc.get("status") != "success":
    sys.exit("Prometheus answered " + str(doc.get("status")) + ": " + str(doc.get("error", "")))
pattern = re.compile(sys.argv[1])
mine, others = [], 0
for a in doc["data"]["alerts"]:
    if a.get("state") != "firing":
        continue
    labels = a.get("labels", {})
    name = labels.get("alertname", "")
    if not pattern.search(name):
        others += 1
        continue
    detail = ",".join("%s=%s" % (k, v) for k, v in sorted(labels.items()) if k not in ("alertname", "severity"))
    mine.append(name + ("{" + detail + "}" if detail else "") + (" (" + labels["severity"] + ")" if "severity" in labels else ""))
print(", ".join(mine) if mine else "none firing")
if others:
    print("%d other alert(s) firing" % others)
' "$PROMETHEUS_ALERTS" 2>&1); then
    alerts_note="alerts: not checked: $firing"
    log "$alerts_note"
    return 0
  fi
  alerts_note="alerts: ${firing//$'\n'/; }"
  log "$alerts_note"
}

rollback() {
  local current target checks_ok=1
  current=$(service_images || true)
  current=${current%%$'\n'*}
  if [ -n "$ROLLBACK_TO" ]; then
    target=$ROLLBACK_TO
  else
    [ -n "$current" ] || die "nothing runs as $SERVICE and no --to RELEASE: name the release to start with --to"
    target=$(previous_release "$current")
    [ -n "$target" ] || die "no release deployed before $current is known ($RELEASES): name one with --to RELEASE"
  fi
  [ "$target" != "$current" ] || die "$target already runs as $SERVICE: nothing to roll back (name another with --to RELEASE)"
  NEW_IMAGE=$target
  log "rolling $SERVICE back from ${current:-nothing} to $target (rollback $DEPLOY_ID)"

  # The previous image, through the same compose files and override file; traffic follows (nginx resolves the
  # service's containers).
  if ! start_and_check "$target"; then
    log "CRITICAL: the rollback to $target did not bring $SERVICE back: THE SERVICE IS DOWN"
    post_deploy rollback-failed "rollback-$ROLLBACK_REASON" "api: rolled back from ${current:-nothing} to $target, which did not come up healthy: the service is down" || true
    exit 3
  fi
  nginx_step || checks_ok=0
  if [ -n "$current" ]; then
    data_check "$current" || checks_ok=0
  else
    data_note="data: nothing ran before: nothing to compare"
  fi
  alerts_check
  local detail="api: rolled back from ${current:-nothing} to $target (healthy); $nginx_note; $data_note; $alerts_note"
  local args=(hook rollback --release "${current:-$target}" --reason "$ROLLBACK_REASON" --deploy-id "$DEPLOY_ID" --detail "$detail")
  [ "$RESTORE_DATA" = 1 ] && args+=(--restore-data --yes)
  if ! "$KB" "${args[@]}"; then
    log "the rollback hook failed$([ "$RESTORE_DATA" = 1 ] && printf ' (with --restore-data: the data may not be restored)')"
    checks_ok=0
  fi
  unpin_checked
  # The final health check.
  if ! wait_healthy; then
    log "CRITICAL: $SERVICE on $target is not healthy at the final check: THE SERVICE IS DOWN"
    post_deploy rollback-failed "rollback-$ROLLBACK_REASON" "$detail; final health check failed: the service is down" || true
    exit 3
  fi
  record_release "$target" rolled-back "$current"
  if [ "$checks_ok" = 1 ]; then
    log "rolled back to $target: healthy"
    exit 0
  fi
  log "rolled back to $target: healthy, but a check failed (above)"
  exit 1
}

"$ACTION"
