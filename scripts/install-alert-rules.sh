#!/usr/bin/env bash
# Installs kaleem-backup's Prometheus alert rules with the team's runbook base URL.
#
#   scripts/install-alert-rules.sh [--runbook-base URL] [--rules FILE] DEST
#
# Each alert's runbook_url is RUNBOOK_BASE/<runbook name> (the name of its file in runbooks/ without .md). The
# rules ship with the operations document's base, https://kb.kaleem-ai.com/runbooks; --runbook-base (or
# RUNBOOK_BASE) puts another in its place, e.g. where runbooks/ is published (a wiki, or the repository's
# https://git.example/kaleem-backup/-/blob/main/runbooks with --suffix .md). DEST is a directory (the file is
# written there as kaleem-backup.rules.yml) or a file. The result is checked with `promtool check rules` when
# promtool is installed, and written only when it passes.
#
# Exit status: 0 written; 1 promtool rejected the result (nothing written); 2 a usage error.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
rules="$here/../policies/alerts/backup.rules.yml"
[ -f "$rules" ] || rules=/usr/share/doc/kaleem-backup/alerts/backup.rules.yml
base="${RUNBOOK_BASE:-https://kb.kaleem-ai.com/runbooks}"
suffix=""
dest=""
die() { printf 'install-alert-rules: %s\n' "$*" >&2; exit 2; }
while [ "$#" -gt 0 ]; do
  case $1 in
    --runbook-base) [ "$#" -ge 2 ] || die "--runbook-base needs a URL"; base=$2; shift 2 ;;
    --suffix) [ "$#" -ge 2 ] || die "--suffix needs a value, e.g. .md"; suffix=$2; shift 2 ;;
    --rules) [ "$#" -ge 2 ] || die "--rules needs a file"; rules=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$dest" ] || die "one destination only (found $dest and $1)"; dest=$1; shift ;;
  esac
done
[ -n "$dest" ] || die "name the destination: a directory (e.g. /etc/prometheus/rules) or a file"
[ -f "$rules" ] || die "the rules file $rules does not exist (--rules FILE)"
base=${base%/}
case $base in
  http://?*|https://?*) ;;
  *) die "--runbook-base must be an http:// or https:// URL, found '$base'" ;;
esac
case "$base$suffix" in *[[:space:]\"\'\\]*) die "--runbook-base and --suffix cannot hold spaces, quotes or backslashes" ;; esac
[ -d "$dest" ] && dest="$dest/kaleem-backup.rules.yml"

tmp=$(mktemp "$(dirname -- "$dest")/.kaleem-backup.rules.XXXXXX.yml") || die "cannot write in $(dirname -- "$dest")"
trap 'rm -f -- "$tmp"' EXIT
# Only the runbook_url lines change: RUNBOOK_BASE/<name>.
awk -v base="$base" -v suffix="$suffix" '
  /^[[:space:]]*runbook_url: "https:\/\/kb\.kaleem-ai\.com\/runbooks\/[a-z0-9-]+"[[:space:]]*$/ {
    match($0, /runbooks\/[a-z0-9-]+"/)
    name = substr($0, RSTART + 9, RLENGTH - 10)
    sub(/runbook_url: .*/, "runbook_url: \"" base "/" name suffix "\"")
  }
  { print }' "$rules" > "$tmp"
if command -v promtool >/dev/null 2>&1; then
  if ! promtool check rules "$tmp" >&2; then
    printf 'install-alert-rules: promtool rejected the rules: nothing written\n' >&2
    exit 1
  fi
fi
chmod 0644 "$tmp"
mv -- "$tmp" "$dest"
trap - EXIT
printf 'wrote %s (runbook_url: %s/<runbook>%s)\n' "$dest" "$base" "$suffix"
