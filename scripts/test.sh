#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests against real redis-server processes and real
# S3 servers (python3 -m moto.server) that the tests start on free 127.0.0.1 ports. A test whose server cannot start fails; none is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Build the binary and the tests together: the CLI tests run the built kaleem-backup.
swift build --build-tests --force-resolved-versions "$@"
swift test --skip-build --force-resolved-versions "$@"
