#!/usr/bin/env bash
# The main job on the embedded defaults, on a fresh machine: installs what is missing, builds, then
# `kaleem-backup demo` backs up Redis into ./backups (starting a scratch redis-server with sample data when
# REDIS_URL is not set), verifies the backup and lists the catalog.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh" --runtime
swift build --force-resolved-versions --package-path "$root"
exec "$root/.build/debug/kaleem-backup" demo "$@"
