#!/usr/bin/env bash
# Deploys a new API image to the Kaleem stack, safely:
#   1. a pinned restore point of every stateful source (kaleem-backup hook pre-deploy); if it fails, stop:
#      nothing has been changed;
#   2. note the image running now (to roll back to);
#   3. docker compose up -d --no-deps api with the new image;
#   4. poll HEALTH_URL until it answers 2xx or HEALTH_TIMEOUT passes;
#   5. healthy: hook post-deploy --outcome success; unhealthy: put the previous image back, hook rollback
#      (with --restore-data when ROLLBACK_RESTORE_DATA=1), hook post-deploy --outcome failed, exit 1.
#
# Required: KALEEM_API_IMAGE (the new image), HEALTH_URL, KALEEM_BACKUP_POLICY (read by kaleem-backup).
# Optional: KALEEM_BACKUP_BIN (default: kaleem-backup on PATH), COMPOSE_SERVICE (api), HEALTH_TIMEOUT (120 s),
#           HEALTH_INTERVAL (3 s), KALEEM_ENVIRONMENT (production), ROLLBACK_RESTORE_DATA (0).
# The compose file must take the image from the environment: `image: ${KALEEM_API_IMAGE}`.
set -euo pipefail

: "${KALEEM_API_IMAGE:?set KALEEM_API_IMAGE to the image to deploy, e.g. registry/kaleem-api:1.4.2}"
: "${HEALTH_URL:?set HEALTH_URL to the health endpoint behind nginx, e.g. http://127.0.0.1/health}"
: "${KALEEM_BACKUP_POLICY:?set KALEEM_BACKUP_POLICY to the backup policy file}"
export KALEEM_BACKUP_POLICY
KB="${KALEEM_BACKUP_BIN:-kaleem-backup}"
SERVICE="${COMPOSE_SERVICE:-api}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-120}"
HEALTH_INTERVAL="${HEALTH_INTERVAL:-3}"
export KALEEM_ENVIRONMENT="${KALEEM_ENVIRONMENT:-production}"
export KALEEM_SERVICE="$SERVICE"
NEW_IMAGE="$KALEEM_API_IMAGE"

log() { printf '%s deploy: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

command -v "$KB" >/dev/null 2>&1 || { log "kaleem-backup not found (KALEEM_BACKUP_BIN=$KB)"; exit 2; }
command -v docker >/dev/null 2>&1 || { log "docker not found"; exit 2; }

# The image the service runs now. `docker compose ps --format json` prints a JSON array (Compose < 2.21) or
# one object per line (newer); both are handled.
current_image() {
  docker compose ps --format json "$SERVICE" | python3 -c '
import json, sys
text = sys.stdin.read().strip()
items = []
if text.startswith("["):
    items = json.loads(text)
else:
    items = [json.loads(line) for line in text.splitlines() if line.strip()]
images = [i.get("Image", "") for i in items if i.get("Service", "") in ("", sys.argv[1])]
print(images[0] if images else "")
' "$SERVICE"
}

healthy() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 5 "$HEALTH_URL"
  else
    python3 -c 'import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=5).status < 300 else 1)' "$HEALTH_URL" 2>/dev/null
  fi
}

wait_healthy() {
  local deadline=$((SECONDS + HEALTH_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if healthy; then return 0; fi
    sleep "$HEALTH_INTERVAL"
  done
  return 1
}

started=$SECONDS

log "taking the pre-deploy restore point for $NEW_IMAGE"
if ! set_id=$("$KB" hook pre-deploy --release "$NEW_IMAGE"); then
  log "the pre-deploy backup failed: NOT deploying (nothing was changed)"
  exit 1
fi
log "restore point: $set_id"

previous=$(current_image || true)
log "running now: ${previous:-nothing}"

log "deploying $NEW_IMAGE"
if ! KALEEM_API_IMAGE="$NEW_IMAGE" docker compose up -d --no-deps "$SERVICE"; then
  log "docker compose up failed"
  "$KB" hook post-deploy --release "$NEW_IMAGE" --outcome failed --duration "$((SECONDS - started))" || true
  exit 1
fi

if wait_healthy; then
  "$KB" hook post-deploy --release "$NEW_IMAGE" --outcome success --duration "$((SECONDS - started))"
  log "$NEW_IMAGE is healthy"
  exit 0
fi

log "health check failed for $HEALTH_TIMEOUT s: rolling back"
if [ -n "$previous" ]; then
  KALEEM_API_IMAGE="$previous" docker compose up -d --no-deps "$SERVICE" || log "could not start the previous image $previous"
else
  log "no previous image known: the service stays on $NEW_IMAGE"
fi
rollback_args=(hook rollback --release "$NEW_IMAGE" --reason health-check-failed)
if [ "${ROLLBACK_RESTORE_DATA:-0}" = "1" ]; then
  rollback_args+=(--restore-data --yes)
fi
"$KB" "${rollback_args[@]}" || log "the rollback hook failed"
"$KB" hook post-deploy --release "$NEW_IMAGE" --outcome failed --duration "$((SECONDS - started))" || true
exit 1
