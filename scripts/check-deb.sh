#!/usr/bin/env bash
# Installs the package scripts/package-deb.sh built, on this machine, and checks it as an operator would
# (CI runs it as root on a fresh Debian 12):
#
#   scripts/check-deb.sh [PACKAGE.deb]      (default: the newest .build/deb/kaleem-backup_*.deb)
#
#   1. dpkg -i (apt-get install -f pulls its dependencies); lintian finds no error;
#   2. kaleem-backup --version names the version and the commit of this checkout;
#   3. the system user, its 0700 home, the 0600 environment file, the units, completions and man page are there;
#   4. policy check on the installed policy, with the environment file filled in as an operator would
#      (secret files and an age key made here, in a scratch directory);
#   5. one backup of a scratch Redis as the kaleem-backup user (`kaleem-backup demo`), its files 0600 and
#      owned by that user; then verify.
# Exit 0 when every check passed; the first failure stops it with a message naming the check.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deb="${1:-$(find "$root/.build/deb" -name 'kaleem-backup_*.deb' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -n 1 | cut -d' ' -f2-)}"
if [ -z "$deb" ] || [ ! -f "$deb" ]; then echo "no package: run scripts/package-deb.sh first" >&2; exit 2; fi
[ "$(id -u)" = 0 ] || { echo "run as root (it installs a package)" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
fail() { echo "check-deb: FAILED: $*" >&2; exit 1; }
step() { echo "check-deb: $*" >&2; }

command -v lintian >/dev/null || apt-get install -y -qq lintian >/dev/null
step "lintian $deb"
lintian --fail-on error "$deb" || fail "lintian reports errors"

step "dpkg -i $deb"
if ! dpkg -i "$deb" >/dev/null; then
  apt-get install -f -y -qq >/dev/null || fail "the package's dependencies cannot be installed"
fi
dpkg-query -W -f='${Status}' kaleem-backup | grep -q 'install ok installed' || fail "the package is not installed"

step "--version"
version=$(/usr/bin/kaleem-backup --version)
if commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null); then
  case "$version" in *"(commit $commit"*) ;; *) fail "--version says '$version', expected the commit $commit" ;; esac
fi
echo "  $version" >&2

step "files, user, modes"
getent passwd kaleem-backup >/dev/null || fail "no kaleem-backup user"
[ "$(stat -c '%a %U' /var/lib/kaleem-backup)" = "700 kaleem-backup" ] || fail "/var/lib/kaleem-backup is not 0700 kaleem-backup"
[ "$(stat -c '%a %U' /etc/kaleem-backup/env)" = "600 root" ] || fail "/etc/kaleem-backup/env is not 0600 root"
for f in /lib/systemd/system/kaleem-backup.service /lib/systemd/system/kaleem-backup.timer \
         /lib/systemd/system/kaleem-backup-drill.service /lib/systemd/system/kaleem-backup-drill.timer \
         /usr/share/bash-completion/completions/kaleem-backup /usr/share/zsh/vendor-completions/_kaleem-backup \
         /usr/share/fish/vendor_completions.d/kaleem-backup.fish /usr/share/man/man1/kaleem-backup.1.gz \
         /usr/share/doc/kaleem-backup/runbooks/full-disaster-recovery.md /usr/share/doc/kaleem-backup/alerts/backup.rules.yml \
         /etc/kaleem-backup/policy.yml /etc/logrotate.d/kaleem-backup \
         /usr/share/doc/kaleem-backup/dashboards/kaleem-backup.json \
         /usr/share/doc/kaleem-backup/dashboards/provisioning/dashboards/kaleem-backup.yml \
         /usr/share/doc/kaleem-backup/dashboards/provisioning/datasources/prometheus.yml; do
  [ -f "$f" ] || fail "$f is missing"
done
# The metrics go where Debian's prometheus-node-exporter reads (--collector.textfile.directory), and the units
# may write there (#36).
# shellcheck disable=SC2016 # the policy's own ${VAR:-default}, matched literally
grep -q '^  textfile: ${KALEEM_METRICS_TEXTFILE:-/var/lib/prometheus/node-exporter/kaleem_backup.prom}$' /etc/kaleem-backup/policy.yml \
  || fail "the installed policy does not write its metrics to /var/lib/prometheus/node-exporter"
grep -q '^ReadWritePaths=.* /var/lib/prometheus/node-exporter' /lib/systemd/system/kaleem-backup.service \
  || fail "the backup unit may not write /var/lib/prometheus/node-exporter"
grep -q '^ExecStart=/usr/bin/kaleem-backup backup' /lib/systemd/system/kaleem-backup.service || fail "the service does not run /usr/bin/kaleem-backup"
grep -q '^EnvironmentFile=/etc/kaleem-backup/env$' /lib/systemd/system/kaleem-backup-drill.service || fail "the drill unit does not load the environment file"
zcat /usr/share/man/man1/kaleem-backup.1.gz | grep -q 'kaleem-backup' || fail "the man page is empty"

work=$(mktemp -d /tmp/kb-check-deb-XXXXXX)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT

step "policy check of /etc/kaleem-backup/policy.yml with the environment filled in"
mkdir -p "$work/secrets"
for s in redis-password minio-secret qdrant-api-key offsite-secret; do printf 'not-a-real-secret\n' > "$work/secrets/$s"; done
age-keygen -o "$work/secrets/age-key.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/secrets/age-key.txt")
# The stack's directory as the configuration source expects it (KALEEM_ROOT, /opt/kaleem on the stack's hosts):
# the operations document's layout (root nginx.conf and nginx.lb.conf, the compose files, ssl/, redis.conf).
mkdir -p "$work/stack/ssl"
printf 'MONGO_URI=not-a-real-secret\n' > "$work/stack/.env"
printf 'services: {}\n' > "$work/stack/docker-compose.yml"
printf 'services: {}\n' > "$work/stack/docker-compose.prod.yml"
printf 'events {}\nhttp { server {} }\n' > "$work/stack/nginx.conf"
printf 'upstream api { server 127.0.0.1:8088; }\n' > "$work/stack/nginx.lb.conf"
printf 'appendonly yes\n' > "$work/stack/redis.conf"
sed -e "s#/etc/kaleem-backup/secrets/#$work/secrets/#" -e "s#^KALEEM_AGE_RECIPIENT=.*#KALEEM_AGE_RECIPIENT=$recipient#" \
    -e "s#^KALEEM_ROOT=.*#KALEEM_ROOT=$work/stack#" /etc/kaleem-backup/env > "$work/env"
grep -q "^KALEEM_ROOT=$work/stack\$" "$work/env" || fail "/etc/kaleem-backup/env does not set KALEEM_ROOT"
# shellcheck disable=SC2016 # expanded by the inner sh
env -i PATH=/usr/bin:/bin sh -c 'set -a; . "$0"; set +a; exec kaleem-backup policy check' "$work/env" \
  || fail "policy check of the installed policy failed"

step "a backup of a scratch Redis as the kaleem-backup user"
home=/var/lib/kaleem-backup
(cd "$home" && runuser -u kaleem-backup -- env -i PATH=/usr/bin:/bin HOME="$home" KALEEM_BACKUP_REPOSITORY="$home/check-deb" \
   kaleem-backup demo --policy /usr/share/doc/kaleem-backup/examples/local.yml) || fail "the demo backup as kaleem-backup failed"
artifact=$(find "$home/check-deb" -name '*.rdb.gz' | head -n 1)
[ -n "$artifact" ] || fail "no artifact written"
[ "$(stat -c '%a %U' "$artifact")" = "600 kaleem-backup" ] || fail "$artifact is not 0600 kaleem-backup"
(cd "$home" && runuser -u kaleem-backup -- env -i PATH=/usr/bin:/bin HOME="$home" KALEEM_BACKUP_REPOSITORY="$home/check-deb" \
   kaleem-backup verify --all --policy /usr/share/doc/kaleem-backup/examples/local.yml) || fail "verify as kaleem-backup failed"
rm -rf "$home/check-deb"
step "all checks passed"
