#!/usr/bin/env bash
# Rewrites the golden files of the retention planner tests from the current code; review the diff by eye
# (git diff Tests/BackupCoreTests/Golden) before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
KALEEM_UPDATE_GOLDEN=1 swift test --filter RetentionPlannerTests/matchesGolden
git --no-pager diff --stat -- Tests/BackupCoreTests/Golden || true
