#!/usr/bin/env bash
# Deploys a new API image to the Kaleem stack, safely, in this order:
#   1. docker pull the new image; a failed pull stops here (nothing changed, nothing pinned);
#   2. a pinned restore point of every stateful source (kaleem-backup hook pre-deploy); if it fails, stop:
#      nothing has been changed;
#   3. note the image running now (to roll back to);
#   4. docker compose -f <each of COMPOSE_FILES> -f COMPOSE_OVERRIDE up -d --no-deps api: the override file sets
#      the service's image to ${KALEEM_API_IMAGE} (written when missing), whatever the base files say;
#   5. check that the service's containers run the new image (docker compose ps), else roll back;
#   6. poll HEALTH_URL up to MAX_ATTEMPTS times, SLEEP_SECONDS apart, until it answers 2xx, else roll back;
#   7. nginx -t, then nginx -s reload, in the nginx service (NGINX_RELOAD=0 skips it); a failing nginx -t rolls back;
#   8. hook post-deploy --outcome success.
# Rolling back: the previous image is put back, checked (image and health, the same way); hook rollback (with
# --restore-data when ROLLBACK_RESTORE_DATA=1); hook post-deploy --outcome failed. When the previous image is not
# healthy either, hook post-deploy --outcome rollback-failed sends a critical notification.
#
# Exit status: 0 deployed; 1 not deployed (pull or restore point failed: nothing changed), or the deploy failed
# and the previous image is back and healthy; 2 set-up error (a variable or a tool missing); 3 the deploy
# failed AND the rollback did not bring the service back: the service is down, wake someone.
#
# Required: KALEEM_API_IMAGE (the new image), KALEEM_BACKUP_POLICY (read by kaleem-backup).
# Optional (defaults as in the operations document):
#   HEALTH_URL (http://localhost:8088/api/health), MAX_ATTEMPTS (10), SLEEP_SECONDS (20);
#   HEALTH_TIMEOUT / HEALTH_INTERVAL (older names: attempts = HEALTH_TIMEOUT / HEALTH_INTERVAL, sleep = HEALTH_INTERVAL);
#   COMPOSE_FILES ("docker-compose.yml"; production: "docker-compose.yml docker-compose.prod.yml"),
#   COMPOSE_OVERRIDE (docker-compose.image.override.yml), COMPOSE_SERVICE (api), NGINX_SERVICE (nginx),
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
COMPOSE_FILES="${COMPOSE_FILES:-docker-compose.yml}"
COMPOSE_OVERRIDE="${COMPOSE_OVERRIDE:-docker-compose.image.override.yml}"
export KALEEM_ENVIRONMENT="${KALEEM_ENVIRONMENT:-production}"
export KALEEM_SERVICE="$SERVICE"
NEW_IMAGE="$KALEEM_API_IMAGE"

command -v "$KB" >/dev/null 2>&1 || die "kaleem-backup not found (KALEEM_BACKUP_BIN=$KB)"
command -v docker >/dev/null 2>&1 || die "docker not found"

# The override file applies the image, whatever the base files say (the document's base file has
# `image: kaleem-api:${IMAGE_TAG}`). Written once when missing; an existing one is the operator's.
if [ ! -e "$COMPOSE_OVERRIDE" ]; then
  # shellcheck disable=SC2016 # the variable is for Compose to expand, not the shell
  printf 'services:\n  %s:\n    image: ${KALEEM_API_IMAGE}\n' "$SERVICE" > "$COMPOSE_OVERRIDE"
  log "wrote $COMPOSE_OVERRIDE (services.$SERVICE.image: \${KALEEM_API_IMAGE})"
fi
compose_args=()
for f in $COMPOSE_FILES; do compose_args+=(-f "$f"); done
compose_args+=(-f "$COMPOSE_OVERRIDE")
compose() { docker compose "${compose_args[@]}" "$@"; }

# The images the service's containers run, one per line. `docker compose ps --format json` prints a JSON array
# (Compose < 2.21) or one object per line (newer); both are handled.
service_images() {
  compose ps --format json "$SERVICE" | python3 -c '
import json, sys
text = sys.stdin.read().strip()
items = []
if text.startswith("["):
    items = json.loads(text)
else:
    items = [json.loads(line) for line in text.splitlines() if line.strip()]
for i in items:
    if i.get("Service", "") in ("", sys.argv[1]):
        print(i.get("Image", ""))
' "$SERVICE"
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

previous=$(service_images | head -n 1 || true)
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
