#!/usr/bin/env bash
# Installs what kaleem-backup and its tests need on Debian 12, when it is missing:
# zlib and SQLite headers, redis-server and redis-tools (the tests start real Redis servers), python3 (the
# MongoDB tool stand-ins), prometheus (promtool checks the alert rules and the metrics file) and shellcheck
# (the deploy script).
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

# --runtime: only what building and running kaleem-backup (and its demo) needs.
packages=(zlib1g-dev libsqlite3-dev redis-server redis-tools)
if [ "${1:-}" != "--runtime" ]; then
  packages+=(python3 prometheus shellcheck)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package may start a system redis-server where an init system runs; the tests start their own
# servers on free ports and never use it.
