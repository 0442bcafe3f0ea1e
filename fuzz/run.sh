#!/usr/bin/env bash
# fuzz/run.sh [seconds=60]: builds the harnesses (fuzz/build.sh) and fuzzes
# for that long in all: a quarter each for fuzz_entry (the stored entry
# decoder), fuzz_sse (the event-stream parser) and fuzz_semantic (the
# semantic core), much smaller programs, the rest for fuzz_canonical (the
# body canonicalizer and key builder),
# one process each, on a scratch
# copy of fuzz/corpus/<target> (the committed corpus does not grow).
# Prints one summary line per target; on a finding exits non-zero with the
# report, the input is in build/fuzz/findings/.  FUZZ_ARGS="..." adds
# libFuzzer flags; FUZZ_TARGETS="fuzz_entry" runs only those.
set -euo pipefail

secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=${BUILD_DIR:-$repo/build}/fuzz

"$here/build.sh"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

fuzz() {
    local name=$1 corpus=$2 dict=$3 t=$4 log="$out/run-$1.log" rc=0
    local execs speed status cov ft corp coverage finding

    rm -rf "$out/work-$name"
    mkdir -p "$out/work-$name" "$out/findings"
    cp "$here/corpus/$corpus"/* "$out/work-$name/"

    # shellcheck disable=SC2086
    "$out/$name" -max_total_time="$t" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -dict="$here/$dict" -print_final_stats=1 \
        -artifact_prefix="$out/findings/" ${FUZZ_ARGS:-} "$out/work-$name" \
        > "$log" 2>&1 || rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    status=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$status")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$status")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<< "$status")

    coverage="cov ${cov:-?} edges, ft ${ft:-?}, corpus ${corp:-?} inputs"

    if [ "$rc" -ne 0 ]; then
        grep -E -A 40 'invariant failed|canonical form does not|==ERROR|runtime error|deadly signal|Timeout|leak' \
            "$log" | head -n 80 >&2 || tail -n 40 "$log" >&2
        finding=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -n 1)
        echo "fuzz: $name: FINDING (exit $rc) after ${execs:-?} execs," \
             "$coverage: ${finding:-see $log}" >&2
        return "$rc"
    fi

    echo "fuzz: $name: no findings in ${execs:-?} execs, ${t}s" \
         "(${speed:-?}/s), $coverage"
}

targets=${FUZZ_TARGETS:-fuzz_canonical fuzz_entry fuzz_sse fuzz_semantic}
set -- $targets
rc=0

# the small harnesses (entry, sse, semantic) a quarter each, the rest to
# canonical
quarter=$(( secs / 4 > 0 ? secs / 4 : 1 ))
rest=$secs
if [ $# -gt 1 ]; then
    for name in $targets; do
        [ "$name" = fuzz_canonical ] || rest=$(( rest - quarter ))
    done
    [ "$rest" -gt 0 ] || rest=1
fi

for name in $targets; do
    t=$secs
    if [ $# -gt 1 ]; then
        t=$quarter
        [ "$name" != fuzz_canonical ] || t=$rest
    fi

    case $name in
    fuzz_canonical) fuzz fuzz_canonical canonical canonical.dict "$t" || rc=$? ;;
    fuzz_entry)     fuzz fuzz_entry entry entry.dict "$t" || rc=$? ;;
    fuzz_sse)       fuzz fuzz_sse sse sse.dict "$t" || rc=$? ;;
    fuzz_semantic)  fuzz fuzz_semantic semantic semantic.dict "$t" || rc=$? ;;
    *)
        echo "fuzz/run.sh: unknown target $name" >&2
        exit 2
        ;;
    esac
done

exit "$rc"
