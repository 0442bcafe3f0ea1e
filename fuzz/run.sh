#!/usr/bin/env bash
# fuzz/run.sh [seconds=60]: builds the harnesses (fuzz/build.sh) and fuzzes
# one for that long, one process, on a scratch copy of its corpus
# fuzz/corpus/<target> (the committed corpus does not grow).
# FUZZ_TARGET=canonical (default: the request body canonicalizer) or sse
# (the event-stream parser).  Prints one summary line; on a
# finding exits non-zero with the report, the input is in
# build/fuzz/findings/.  FUZZ_ARGS="..." adds libFuzzer flags.
set -euo pipefail

secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=${BUILD_DIR:-$repo/build}/fuzz
target=${FUZZ_TARGET:-canonical}
log="$out/run.log"

"$here/build.sh"

rm -rf "$out/work"
mkdir -p "$out/work" "$out/findings"
cp "$here"/corpus/"$target"/* "$out/work/"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

rc=0
# shellcheck disable=SC2086
"$out/fuzz_$target" -max_total_time="$secs" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -dict="$here/$target.dict" -print_final_stats=1 \
    -artifact_prefix="$out/findings/" ${FUZZ_ARGS:-} "$out/work" \
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
    echo "fuzz: FINDING (exit $rc) after ${execs:-?} execs, $coverage:" \
         "${finding:-see $log}" >&2
    exit "$rc"
fi

echo "fuzz: no findings in ${execs:-?} execs, ${secs}s (${speed:-?}/s), $coverage"
