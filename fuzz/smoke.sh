#!/usr/bin/env bash
# CI smoke fuzzing: build every fuzz target, replay the saved regressions, then
# run each target for a fixed time from its seeds; any crash, timeout or
# out-of-memory fails the run. Stable Rust, no sanitizer (`--sanitizer none`).
#
#   fuzz/smoke.sh                 # every target, FUZZ_SECONDS (12) each, 2 at a time
#   FUZZ_SECONDS=60 FUZZ_JOBS=4 fuzz/smoke.sh xarray htab
#
# About 2 minutes to build from scratch and 1.5 minutes of fuzzing on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-12}
jobs=${FUZZ_JOBS:-2}

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "smoke: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

mapfile -t all < <(grep -v '^#' targets.txt | awk 'NF { print $1 }')
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

cargo fuzz build -O -a --sanitizer none
bin=target/x86_64-unknown-linux-gnu/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The target's dictionary: its dict/*.dict files joined into one.
dict_for() {
    local names out="$work/$1.dict"
    names=$(awk -v t="$1" '$1 == t { print $2 }' targets.txt)
    [ -n "$names" ] || return 0
    : >"$out"
    for n in ${names//+/ }; do cat "dict/$n.dict" >>"$out"; done
    echo "$out"
}

run_one() {
    local t=$1 dict log
    dict=$(dict_for "$t")
    log="$work/$t.log"
    mkdir -p "$work/corpus/$t" "$work/artifacts"
    # Every saved regression must run clean.
    if [ -d "regressions/$t" ] && compgen -G "regressions/$t/*" >/dev/null; then
        if ! "$bin/$t" regressions/"$t"/* >"$log" 2>&1; then
            echo "smoke: $t: a regression input fails"
            tail -40 "$log"
            return 1
        fi
    fi
    if ! "$bin/$t" "$work/corpus/$t" "seeds/$t" ${dict:+-dict="$dict"} \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -artifact_prefix="$work/artifacts/$t-" -print_final_stats=1 >"$log" 2>&1; then
        echo "smoke: $t: FAILED"
        grep -m1 -A30 -E 'panicked|ERROR: libFuzzer|deadly signal' "$log" || tail -40 "$log"
        ls "$work/artifacts" >&2 || true
        return 1
    fi
    local runs rate cov
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    printf 'smoke: %-18s ok  %10s runs  %8s/s  %s\n' "$t" "$runs" "$rate" "$cov"
}

failed=0
running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if ((running >= jobs)); then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while ((running > 0)); do
    wait -n || failed=1
    running=$((running - 1))
done

if ((failed)); then
    # Keep what crashed for a look.
    mkdir -p artifacts
    cp -r "$work/artifacts/." artifacts/ 2>/dev/null || true
    echo "smoke: FAILED (crashing inputs copied to fuzz/artifacts/)"
    exit 1
fi
echo "smoke: all ${#targets[@]} targets ran ${seconds}s each without a finding"
