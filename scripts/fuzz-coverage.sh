#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the readers a peer or a file feeds (#40):
#   scripts/fuzz-coverage.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; targets: resp snapshot rdb mongo tar policy cron)
# Builds the fuzz targets of the package in Fuzz/ (each one file over the real reader, no mocks), runs each for
# the budget from its seeds (Tests/Fixtures/fuzz/<target>/ and the fixtures: RDBs, archives, tars, policies) with
# its dictionary (Fuzz/dict/<target>.dict), prints a table (runs, coverage, corpus, result) and exits 1 when a
# target crashed, leaked, timed out (10 s for one input) or ran out of memory (2 GiB). Such an input is copied to
# Tests/Fixtures/fuzz/<target>/crash-<sha1> with a note (crash-<sha1>.note): fix the reader, keep the input, and
# FuzzRegressionTests replays it in the ordinary suite from then on.
# The corpus a run grows is kept in Fuzz/.build/fuzz/corpus/<target> (not in git) and reused by the next run.
# Debug build on purpose: this toolchain's -O drops the coverage counters (libFuzzer then sees no coverage).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if [ $# -gt 0 ]; then shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(resp snapshot rdb mongo tar policy cron)

# The longest input tried, and the seed directories, per target. RESP goes beyond the 64 KiB reply-line bound;
# tar holds the 130 KiB sparse-extended fixture.
max_len() {
    case "$1" in
        resp) echo 131072 ;;
        snapshot | rdb | mongo) echo 65536 ;;
        tar) echo 139264 ;;
        policy) echo 16384 ;;
        cron) echo 256 ;;
        *) echo "unknown target $1" >&2; exit 2 ;;
    esac
}
seed_dirs() {
    echo "Tests/Fixtures/fuzz/$1"
    case "$1" in
        rdb) echo Tests/Fixtures/redis ;;
        mongo) echo Tests/Fixtures/mongo ;;
        tar) echo Tests/Fixtures/qdrant ;;
        policy) echo policies ;;
    esac
}

# `--sanitize fuzzer` makes SwiftPM link libFuzzer's main (and not rename the entry point); the one
# -sanitize=fuzzer,address for every Swift module: given `--sanitize fuzzer --sanitize address`, SwiftPM passes
# two -sanitize= options in an order that changes from one run to the next, the driver keeps only the last, and
# the modules lose either the coverage counters or ASan (and are all rebuilt each time).
flags=(--sanitize fuzzer -Xswiftc "-sanitize=fuzzer,address" --force-resolved-versions)
# libFuzzer reports a trap itself (the input, the stack); the Swift backtracer would only get in its way.
export SWIFT_BACKTRACE=enable=no
build_log=$(mktemp)
trap 'rm -f "$build_log"' EXIT
start=$(date +%s)
for t in "${targets[@]}"; do max_len "$t" >/dev/null; done
# One product at a time: `swift build` takes a single --product.
for t in "${targets[@]}"; do
    if ! (cd Fuzz && swift build "${flags[@]}" --product "fuzz-$t") >"$build_log" 2>&1; then
        grep -v "Cannot export local symbol" "$build_log" | tail -40
        echo "fuzz: the build of fuzz-$t failed" >&2
        exit 2
    fi
done
bin=$(cd Fuzz && swift build "${flags[@]}" --show-bin-path)
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - start )) s; ${seconds} s each"

work=Fuzz/.build/fuzz
failed=0
rows=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    log="$work/logs/$t.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")" "Tests/Fixtures/fuzz/$t"
    rm -f "$artifacts"/*
    mapfile -t seeds < <(seed_dirs "$t")
    status=0
    # The outer timeout only guards against a fuzzer that does not stop by itself.
    timeout --kill-after=30 $(( seconds + 300 )) "$bin/fuzz-$t" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$t")" \
        -dict="Fuzz/dict/$t.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        "$corpus" "${seeds[@]}" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    found=0
    for a in "$artifacts"/*; do
        [ -f "$a" ] || continue
        kind=$(basename "$a"); kind=${kind%%-*}
        [ "$kind" = slow ] && continue # slow-unit-*: slower than usual, not a failure
        sha=$(sha1sum "$a" | cut -d' ' -f1)
        dest="Tests/Fixtures/fuzz/$t/crash-$sha"
        cp "$a" "$dest"
        {
            echo "fuzz-$t: $kind on $(date -u +%Y-%m-%dT%H:%MZ) (scripts/fuzz-coverage.sh $seconds, $(wc -c <"$a") bytes)"
            grep -E -m 12 'Fatal error|==ERROR|ERROR: libFuzzer|SUMMARY|#[0-9]+ 0x.* in .*(/Sources/|Fuzz/Sources)' "$log" || true
            echo "Reproduce: $bin/fuzz-$t $dest"
        } >"$dest.note"
        echo "fuzz: $t: $kind, input kept as $dest (note: $dest.note)"
        # A CI log is all that is left of a CI clone: the input in it, when it is small.
        if [ "$(wc -c <"$a")" -le 8192 ]; then echo "fuzz: $t: the input, base64: $(base64 -w0 "$a")"; fi
        found=$(( found + 1 ))
    done
    result=ok
    if [ "$found" -gt 0 ]; then
        result="$found crash(es)"
        failed=1
    elif [ "$status" -ne 0 ]; then
        result="exit $status"
        failed=1
        tail -20 "$log"
    fi
    rows+=("$(printf '%-8s %12s %8s %8s %8s %8s  %s' "$t" "${runs:--}" "${cov:--}" "${ft:--}" "${corp:--}" "${rate:--}" "$result")")
done

printf '%-8s %12s %8s %8s %8s %8s  %s\n' target runs cov ft corpus exec/s result
printf '%s\n' "${rows[@]}"
echo "fuzz: $(( $(date +%s) - start )) s in all; logs and corpora in $work"
exit "$failed"
