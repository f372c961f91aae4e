#!/usr/bin/env bash
# Runs every fuzz target of composer's untrusted-input parsers, each for FUZZ_SECONDS of CPU
# (default 600: ten CPU-minutes), one job per core, and prints what each found. Not part of CI.
#
#   tests/fuzz/run.sh              # all targets, ten CPU-minutes each
#   FUZZ_SECONDS=60 tests/fuzz/run.sh deb recipe
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The machine's only toolchain is stable, so the
# sanitizer flags cargo-fuzz passes are allowed with RUSTC_BOOTSTRAP=1. Crashes land in
# tests/fuzz/artifacts/<target>/; fix each and keep its input as a regression test beside the
# parser it broke.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-600}"
jobs="$(nproc)"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(deb822 deb recipe pylock wheel oci_json tree bundle lock)
fi
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2; exit 1; }
mkdir -p corpus
./seed.sh
# Build first, so that the CPU time below is the fuzzing's alone.
cargo fuzz build --fuzz-dir . >/dev/null
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    # -max_total_time is wall time per job: jobs in parallel give seconds x jobs CPU-seconds,
    # so each job runs seconds / jobs to spend `seconds` of CPU in all.
    # A few seconds more per job: start-up and corpus loading are not fuzzing.
    per_job=$(( seconds / jobs + 5 ))
    echo "== $target: ${seconds} CPU-seconds (${jobs} jobs x ${per_job} s)"
    started=$(date +%s)
    /usr/bin/time -f '%U %S' -o "artifacts/$target.cpu" \
        cargo fuzz run --fuzz-dir . "$target" "corpus/$target" -- \
        -max_total_time="$per_job" -jobs="$jobs" -workers="$jobs" -max_len=262144 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"artifacts/$target.log" 2>&1 || true
    ended=$(date +%s)
    cpu=$(awk '{printf "%d", $1 + $2}' "artifacts/$target.cpu")
    found=$(find "artifacts/$target" -type f | wc -l)
    execs=$(grep -h "stat::number_of_executed_units" fuzz-*.log "artifacts/$target.log" 2>/dev/null \
        | awk '{s += $2} END {print s + 0}')
    rm -f fuzz-*.log
    echo "   $((ended - started)) s wall, ${cpu} CPU-seconds, ${execs} inputs run, ${found} crash/hang/leak artifact(s)"
done
