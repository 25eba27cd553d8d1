#!/usr/bin/env bash
# A fuzzing campaign: every target (or those named) for FUZZ_RUNS executions
# from its seeds and dictionary, FUZZ_JOBS at a time, longest first; then a
# table of executions, rate, coverage and corpus per target (the figures in
# fuzz/README.md come from this). Crashes land in $FUZZ_OUT/artifacts.
#
#   FUZZ_RUNS=10000000 FUZZ_OUT=/tmp/campaign fuzz/campaign.sh
set -euo pipefail
cd "$(dirname "$0")"
runs=${FUZZ_RUNS:-10000000}
jobs=${FUZZ_JOBS:-2}
out=${FUZZ_OUT:-/tmp/bpfmem-fuzz-campaign}
mkdir -p "$out/artifacts" "$out/logs"

mapfile -t all < <(grep -v '^#' targets.txt | awk 'NF { print $1 }')
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

cargo fuzz build -O -a --sanitizer none
bin=target/x86_64-unknown-linux-gnu/release

run_one() {
    local t=$1 names dict="$out/$1.dict" start end
    names=$(awk -v t="$t" '$1 == t { print $2 }' targets.txt)
    : >"$dict"
    for n in ${names//+/ }; do cat "dict/$n.dict" >>"$dict"; done
    mkdir -p "$out/corpus/$t"
    start=$(date +%s)
    "$bin/$t" "$out/corpus/$t" "seeds/$t" -dict="$dict" -runs="$runs" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=2048 -artifact_prefix="$out/artifacts/$t-" \
        -print_final_stats=1 >"$out/logs/$t.log" 2>&1 && rc=0 || rc=$?
    end=$(date +%s)
    echo "$t $rc $((end - start))" >"$out/logs/$t.status"
    echo "campaign: $t done (rc $rc, $((end - start)) s)"
}

running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

printf '| target | executions | exec/s | cov | ft | corpus | time | result |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n'
for t in "${targets[@]}"; do
    log="$out/logs/$t.log"
    read -r _ rc secs <"$out/logs/$t.status"
    n=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | awk '{ print $2 }')
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | awk '{ print $2 }')
    corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" | awk '{ print $2 }')
    result=$([ "$rc" = 0 ] && echo "no finding" || echo "FINDING (rc $rc)")
    printf '| `%s` | %s | %s | %s | %s | %s | %s s | %s |\n' "$t" "$n" "$rate" "$cov" "$ft" "$corp" "$secs" "$result"
done
