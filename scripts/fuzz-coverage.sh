#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the readers a peer or a file feeds (#40):
#   scripts/fuzz-coverage.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; targets: resp snapshot rdb mongo tar
#                                                                   policy cron s3xml qdrant age gzip manifest catalog)
#   scripts/fuzz-coverage.sh --differential [tar|rdb ...]          (the readers against GNU tar / redis-check-rdb)
# Builds the fuzz targets of the package in Fuzz/ (each one file over the real reader, no mocks), runs each for
# the budget from its seeds (Tests/Fixtures/fuzz/<target>/ and the fixtures: RDBs, archives, tars, policies) with
# its dictionary (Fuzz/dict/<target>.dict), prints a table (runs, coverage, corpus, result) and exits 1 when a
# target crashed, leaked, timed out (10 s for one input) or ran out of memory (2 GiB). Such an input is copied to
# Tests/Fixtures/fuzz/<target>/crash-<sha1> with a note (crash-<sha1>.note): fix the reader, keep the input, and
# FuzzRegressionTests replays it in the ordinary suite from then on.
# The corpus a run grows is kept in Fuzz/.build/fuzz/corpus/<target> (not in git) and reused by the next run.
# Debug build on purpose: this toolchain's -O drops the coverage counters (libFuzzer then sees no coverage).
#
# --differential: no fuzzing; every input the fuzzer kept (Fuzz/.build/fuzz/corpus/<target>) and every seed goes
# through our reader (the fuzz target with KALEEM_FUZZ_VERDICT=1 prints accept/reject) and through the reference
# tool: GNU `tar -tvf` for tar, `redis-check-rdb` for rdb. Ours may refuse what the reference accepts (stricter is
# allowed: counted and listed as "stricter"); ours must never accept what the reference refuses: such an input is
# printed, kept as Tests/Fixtures/fuzz/<target>/differential-<sha1> (with a .note), and the exit status is 1.
set -euo pipefail
cd "$(dirname "$0")/.."
differential=0
if [ "${1:-}" = --differential ]; then
    differential=1
    shift
    seconds=0
else
    seconds="${1:-60}"
    if [ $# -gt 0 ]; then shift; fi
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    if [ "$differential" = 1 ]; then targets=(tar rdb); else targets=(resp snapshot rdb mongo tar policy cron s3xml qdrant age gzip manifest catalog); fi
fi

# The longest input tried, and the seed directories, per target. RESP goes beyond the 64 KiB reply-line bound;
# tar holds the 130 KiB sparse-extended fixture.
max_len() {
    case "$1" in
        resp) echo 131072 ;;
        snapshot | rdb | mongo) echo 65536 ;;
        tar) echo 139264 ;;
        policy | manifest) echo 16384 ;;
        cron) echo 256 ;;
        s3xml | qdrant | gzip) echo 65536 ;;
        age | catalog) echo 139264 ;; # age: two 64 KiB chunks; catalog: the 120 KiB catalog copy of a demo run
        *) echo "unknown target $1" >&2; exit 2 ;;
    esac
}
# libFuzzer options of one target. s3xml: no leak check while fuzzing. FoundationXML leaks on every malformed
# document (Fuzz/lsan.supp), and libFuzzer then runs LeakSanitizer, which stops the process and symbolizes stacks
# to match the suppression, after every such input: 7 runs a second instead of hundreds. Our XML tree is plain
# Swift values and classes without cycles.
extra_flags() {
    case "$1" in
        s3xml) echo -detect_leaks=0 ;;
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

# The reference tools of the differential mode: 0 when the reference accepts the file; what it said in $ref_out.
ref_out=$(mktemp)
reference() {
    case "$1" in
        tar) timeout 20 tar -tvf "$2" >"$ref_out" 2>&1 ;;
        rdb) timeout 20 redis-check-rdb "$2" >"$ref_out" 2>&1 ;;
        *) echo "no reference reader for $1 (differential: tar, rdb)" >&2; exit 2 ;;
    esac
}

# `--sanitize fuzzer` makes SwiftPM link libFuzzer's main (and not rename the entry point); the one
# -sanitize=fuzzer,address for every Swift module: given `--sanitize fuzzer --sanitize address`, SwiftPM passes
# two -sanitize= options in an order that changes from one run to the next, the driver keeps only the last, and
# the modules lose either the coverage counters or ASan (and are all rebuilt each time).
flags=(--sanitize fuzzer -Xswiftc "-sanitize=fuzzer,address" --force-resolved-versions)
# libFuzzer reports a trap itself (the input, the stack); the Swift backtracer would only get in its way.
export SWIFT_BACKTRACE=enable=no
# Leaks in the toolchain's own libraries (each named and explained there) are not findings; ours are.
export LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan.supp:print_suppressions=0"
build_log=$(mktemp)
trap 'rm -f "$build_log" "$ref_out"' EXIT
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
work=Fuzz/.build/fuzz

if [ "$differential" = 1 ]; then
    echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - start )) s; differential over the kept corpora and the seeds"
    status=0
    for t in "${targets[@]}"; do
        reference "$t" /dev/null || true # fails early on an unknown target
        command -v "$( [ "$t" = tar ] && echo tar || echo redis-check-rdb)" >/dev/null || { echo "fuzz: $t: the reference tool is not installed" >&2; exit 2; }
        mapfile -t seeds < <(seed_dirs "$t")
        inputs=$(mktemp)
        find "$work/corpus/$t" "${seeds[@]}" -type f ! -name '*.note' 2>/dev/null | sort >"$inputs"
        verdicts="$work/logs/$t.differential.log"
        mkdir -p "$(dirname "$verdicts")"
        # libFuzzer runs each file given once ("Running: <file>"), the target prints its verdict after it.
        KALEEM_FUZZ_VERDICT=1 xargs -d '\n' -n 100 "$bin/fuzz-$t" -rss_limit_mb=2048 -timeout=10 <"$inputs" >"$verdicts" 2>&1 || true
        total=0 agree=0 stricter=0 worse=0 newer=0 examples=()
        file=""
        while IFS= read -r line; do
            case "$line" in
                "Running: "*) file=${line#Running: } ;;
                "kaleem-verdict "*)
                    [ -n "$file" ] || continue
                    ours=${line#kaleem-verdict }; ours=${ours%% *}
                    detail=${line#kaleem-verdict "$ours" }
                    total=$(( total + 1 ))
                    theirs=reject
                    if reference "$t" "$file"; then theirs=accept; fi
                    if [ "$ours" = "$theirs" ]; then
                        agree=$(( agree + 1 ))
                    elif [ "$t" = rdb ] && grep -q -E "Can't handle RDB format version|module" "$ref_out"; then
                        # By design: an RDB version newer than this redis-check-rdb knows (we read up to Redis
                        # 7.4's 12), or module data it cannot load without the module (we walk module types 2
                        # generically, as the server's own `DEBUG RELOAD` of a module-less build cannot).
                        newer=$(( newer + 1 ))
                        [ ${#examples[@]} -lt 5 ] && examples+=("  by design: $(basename "$file"): ours: $detail; reference: $(grep -m1 -E "Can't handle RDB format version|module" "$ref_out" | head -c 160)")
                    elif [ "$ours" = reject ]; then
                        stricter=$(( stricter + 1 ))
                        [ ${#examples[@]} -lt 5 ] && examples+=("  stricter: $(basename "$file"): ours: $detail")
                    else
                        worse=$(( worse + 1 ))
                        sha=$(sha1sum "$file" | cut -d' ' -f1)
                        dest="Tests/Fixtures/fuzz/$t/differential-$sha"
                        cp "$file" "$dest"
                        echo "fuzz: $t: DISAGREEMENT on $file: ours accepts ($detail), the reference refuses it; kept as $dest"
                        echo "fuzz-$t differential: accepted ($detail) by ours, refused by the reference ($( [ "$t" = tar ] && echo 'tar -tvf' || echo redis-check-rdb)), $(date -u +%Y-%m-%dT%H:%MZ)" >"$dest.note"
                        if [ "$(wc -c <"$file")" -le 8192 ]; then echo "fuzz: $t: the input, base64: $(base64 -w0 "$file")"; fi
                        status=1
                    fi
                    file="" ;;
            esac
        done <"$verdicts"
        rm -f "$inputs"
        printf 'fuzz: %s differential: %d inputs, %d agree, %d refused only by ours (stricter, allowed), %d accepted only by ours (must be 0), %d by design (a newer RDB version or module data)\n' \
            "$t" "$total" "$agree" "$stricter" "$worse" "$newer"
        [ ${#examples[@]} -eq 0 ] || printf '%s\n' "${examples[@]}"
    done
    exit "$status"
fi
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - start )) s; ${seconds} s each"

failed=0
rows=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    log="$work/logs/$t.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")" "Tests/Fixtures/fuzz/$t"
    rm -f "$artifacts"/*
    mapfile -t seeds < <(seed_dirs "$t")
    mapfile -t extra < <(extra_flags "$t")
    status=0
    # The outer timeout only guards against a fuzzer that does not stop by itself.
    timeout --kill-after=30 $(( seconds + 300 )) "$bin/fuzz-$t" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$t")" \
        -dict="Fuzz/dict/$t.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 ${extra[@]+"${extra[@]}"} \
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
