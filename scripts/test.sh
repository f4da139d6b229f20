#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests against real redis-server processes and real
# S3 servers (python3 -m moto.server) that the tests start on free 127.0.0.1 ports. A test whose server cannot start fails; none is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Build the binary and the tests together: the CLI tests run the built kaleem-backup.
started=$SECONDS
swift build --build-tests --force-resolved-versions "$@"
echo "== scripts/test.sh: built in $((SECONDS - started)) s"
# python3 as the tests' children find it on PATH, resolved once. Where python3 is a version manager's shim (pyenv's
# is a chain of some 35 bash processes, ~0.07 s of CPU per start) the suite's ~700 python3 starts (the stand-ins,
# moto, the helper scripts) would pay it each time: a directory holding only a python3 link to the interpreter
# the shim picks goes first on PATH. Where python3 is /usr/bin/python3 the link points there: nothing changes.
python_dir="$PWD/.build/test-python3"
mkdir -p "$python_dir"
ln -sfn "$(python3 -c 'import sys; print(sys.executable)')" "$python_dir/python3"
export PATH="$python_dir:$PATH"
started=$SECONDS
status=0
swift test --skip-build --force-resolved-versions "$@" || status=$?
echo "== scripts/test.sh: the test run took $((SECONDS - started)) s"
exit $status
