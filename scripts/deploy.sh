#!/usr/bin/env bash
# Deploys a new API image to the Kaleem stack, safely, in this order:
#   1. docker pull the new image; a failed pull stops here (nothing changed, nothing pinned);
#   2. a pinned restore point of every stateful source (kaleem-backup hook pre-deploy); if it fails, stop:
#      nothing has been changed;
#   3. note the image running now (to roll back to);
#   4. docker compose --project-directory STACK_DIR -f <each compose file> -f COMPOSE_OVERRIDE up -d --no-deps api:
#      the override file sets the service's image to ${KALEEM_API_IMAGE} (written when missing), whatever the base
#      files say;
#   5. check that the service's containers run the new image (docker compose ps; docker inspect when Compose
#      is 2.14 or older and prints no Image), else roll back;
#   6. poll HEALTH_URL up to MAX_ATTEMPTS times, SLEEP_SECONDS apart, until it answers 2xx, else roll back;
#   7. nginx -t, then nginx -s reload, in the nginx service (NGINX_RELOAD=0 skips it); a failing nginx -t rolls back;
#   8. hook post-deploy --outcome success.
# Rolling back: the previous image is put back, checked (image and health, the same way); hook rollback (with
# --restore-data when ROLLBACK_RESTORE_DATA=1); hook post-deploy --outcome failed. When the previous image is not
# healthy either, hook post-deploy --outcome rollback-failed sends a critical notification.
#
# Exit status: 0 deployed; 1 not deployed (pull or restore point failed: nothing changed), or the deploy failed
# and the previous image is back and healthy; 2 set-up error (a variable, a tool, the stack's directory or a
# compose file missing); 3 the deploy failed AND the rollback did not bring the service back: the service is
# down, wake someone.
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
# Required: KALEEM_API_IMAGE (the new image), KALEEM_BACKUP_POLICY (read by kaleem-backup; a relative path is
# relative to the caller's working directory).
# Optional (defaults as in the operations document):
#   HEALTH_URL (http://localhost:8088/api/health), MAX_ATTEMPTS (10), SLEEP_SECONDS (20);
#   HEALTH_TIMEOUT / HEALTH_INTERVAL (older names: attempts = HEALTH_TIMEOUT / HEALTH_INTERVAL, sleep = HEALTH_INTERVAL);
#   STACK_DIR, COMPOSE_FILES / COMPOSE_FILE, COMPOSE_OVERRIDE (above), COMPOSE_SERVICE (api), NGINX_SERVICE (nginx),
#   NGINX_RELOAD (1), KALEEM_BACKUP_BIN (kaleem-backup on PATH), KALEEM_ENVIRONMENT (production),
#   ROLLBACK_RESTORE_DATA (0), DOCKER_PULL (1; 0 for an image built on this host).
set -euo pipefail

log() { printf '%s deploy: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "$*"; exit 2; }

[ -n "${KALEEM_API_IMAGE:-}" ] || die "set KALEEM_API_IMAGE to the image to deploy, e.g. registry/kaleem-api:1.4.2"
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
NEW_IMAGE="$KALEEM_API_IMAGE"

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

healthy() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 5 "$HEALTH_URL"
  else
    python3 -c 'import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=5).status < 300 else 1)' "$HEALTH_URL" 2>/dev/null
  fi
}

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
    log "$image is not healthy after $MAX_ATTEMPTS checks of $HEALTH_URL"
    return 4
  fi
}

reload_nginx() {
  [ "$NGINX_RELOAD" = "0" ] && { log "nginx reload skipped (NGINX_RELOAD=0)"; return 0; }
  if ! compose exec -T "$NGINX_SERVICE" nginx -t; then
    log "nginx -t failed in service $NGINX_SERVICE"
    return 1
  fi
  compose exec -T "$NGINX_SERVICE" nginx -s reload
}

started=$SECONDS
post_deploy() { "$KB" hook post-deploy --release "$NEW_IMAGE" --outcome "$1" --duration "$((SECONDS - started))"; }

roll_back() {
  local reason=$1 back_ok=0
  log "rolling back ($reason)"
  if [ -n "$previous" ]; then
    if start_and_check "$previous"; then
      back_ok=1
      log "the previous image $previous is back and healthy"
    fi
  else
    log "no previous image known: nothing to put back"
  fi
  local rollback_args=(hook rollback --release "$NEW_IMAGE" --reason "$reason")
  if [ "${ROLLBACK_RESTORE_DATA:-0}" = "1" ]; then
    rollback_args+=(--restore-data --yes)
  fi
  "$KB" "${rollback_args[@]}" || log "the rollback hook failed"
  if [ "$back_ok" = "1" ]; then
    post_deploy failed || true
    exit 1
  fi
  log "CRITICAL: the deploy of $NEW_IMAGE failed and the rollback did not bring $SERVICE back (${previous:-no previous image}): THE SERVICE IS DOWN"
  post_deploy rollback-failed || true
  exit 3
}

if [ "${DOCKER_PULL:-1}" != "0" ]; then
  log "pulling $NEW_IMAGE"
  if ! docker pull "$NEW_IMAGE"; then
    log "docker pull $NEW_IMAGE failed: NOT deploying (nothing was changed, no restore point taken)"
    exit 1
  fi
fi

log "taking the pre-deploy restore point for $NEW_IMAGE"
if ! set_id=$("$KB" hook pre-deploy --release "$NEW_IMAGE"); then
  log "the pre-deploy backup failed: NOT deploying (nothing was changed)"
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
if ! reload_nginx; then
  roll_back nginx-config-invalid
fi
post_deploy success
log "$NEW_IMAGE is deployed and healthy"
