#!/usr/bin/env bash
# Regenerates Sources/BackupEngine/EmbeddedPolicy.swift from policies/local.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2016 # the backquotes are Swift doc comment text, not expansions
{
  echo '/// A copy of `policies/local.yml`, so the binary runs on its defaults from any directory.'
  echo '/// Kept equal to the file by a test (`EmbeddedPolicyTests`); regenerate with `scripts/embed-policy.sh`.'
  echo 'enum EmbeddedPolicy {'
  echo '    static let localYAML = #"""'
  cat policies/local.yml
  echo '"""#'
  echo '}'
} > Sources/BackupEngine/EmbeddedPolicy.swift
