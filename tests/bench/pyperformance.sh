#!/usr/bin/env bash
# Benchmark: pyperformance on three interpreters, each in its own image, on this machine, in one
# run: recipes/python-optimized.toml (CPython 3.11.2 from Debian's pinned source, -O3, PGO, LTO,
# -fno-semantic-interposition, jemalloc linked), recipes/python-baseline.toml (the same source,
# -Os, no PGO, no LTO, system malloc) and recipes/debian-python.toml (Debian's stock python3,
# jemalloc preloaded). Also records the build time of both CPython builds and of a fully cached
# rebuild, and shows each interpreter's CONFIG_ARGS, recorded switches and allocator.
#
#   tests/bench/pyperformance.sh             # about an hour on 2 cores the first time (two CPython builds)
#   STORE=/path tests/bench/pyperformance.sh # reuse a store: builds become cache hits (about 20 min)
#   ROUNDS=5 tests/bench/pyperformance.sh    # more rounds per benchmark and interpreter (default 3)
#
# Each image gets pyperformance (pinned) as a wheel set in /opt/venv; each benchmark runs with
# pyperf's --fast inside the image (podman, runc, no network), allocator variables inherited.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMPOSE_BENCH=1 tests/setup.sh >/dev/null
cargo build --release --locked -q
compose="$PWD/target/release/compose"
# Lowercase only: podman rejects image references (the layout path) with capitals.
work=/tmp/compose-pyperf-$$-$(date +%s)
mkdir -p "$work"
cleanup() {
    for id in "${image_id[@]}"; do podman rmi -f "$id" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
declare -A image_id=()
trap cleanup EXIT
store="${STORE:-$work/store}"
PYPERFORMANCE=1.14.0
benchmarks=(nbody float chaos richards deltablue spectral_norm raytrace json_dumps json_loads pickle unpickle
    regex_compile go hexiom nqueens fannkuch)

# Benchmark images: each recipe plus pyperformance in a venv.
for name in python-optimized python-baseline debian-python; do
    cp "recipes/$name.toml" "$work/$name.toml"
    printf '\n[python]\nrequirements = ["pyperformance==%s"]\ntarget = "/opt/venv"\n' "$PYPERFORMANCE" >>"$work/$name.toml"
done

build() {
    local name=$1 start
    start=$(date +%s%N)
    "$compose" -q --store "$store" build "$work/$name.toml" -o "$work/out/$name" >/dev/null
    echo $(( ($(date +%s%N) - start) / 1000000 ))
}
declare -A build_seconds rebuild_seconds
for name in python-optimized python-baseline debian-python; do
    build_seconds[$name]=$(build "$name")
    rebuild_seconds[$name]=$(build "$name")
done

# Each image into podman's storage once (by ID, no tag to clash with anything else).
for name in python-optimized python-baseline debian-python; do
    image_id[$name]=$(podman pull -q "oci:$work/out/$name:latest")
done
run() {
    local name=$1
    shift
    # One host name for all runs: pyperf refuses to append runs whose host names differ.
    podman --runtime runc run --rm --network=none --hostname pyperf -v "$work/results:/results" \
        "${image_id[$name]}" "$@"
}
mkdir -p "$work/results"
# debian-python runs as its unprivileged user.
chmod 0777 "$work/results"

echo "== interpreters"
for name in python-optimized python-baseline debian-python; do
    echo "-- $name"
    run "$name" python3 -c "import sys, sysconfig
maps = open('/proc/self/maps').read()
print('version   ', sys.version.split()[0])
print('CONFIG_ARGS', sysconfig.get_config_var('CONFIG_ARGS'))
print('jemalloc  ', 'libjemalloc' in maps)"
    # The images have no shell: python copies its own binary out.
    run "$name" python3 -c "import os, shutil; shutil.copy(os.path.realpath(shutil.which('python3')), '/results/python.bin')"
    switches=$(readelf -p .GCC.command.line "$work/results/python.bin" 2>/dev/null |
        grep -oE -- '-O[0-3s]|-flto[^ ]*|-fprofile-use|-fno-semantic-interposition|-fno-builtin-malloc' |
        sort | uniq -c | tr -s ' \n' ' ' || true)
    echo "switches   ${switches:-(none recorded: built without -frecord-gcc-switches)}"
    rm -f "$work/results/python.bin"
done

site=/opt/venv/lib/python3.11/site-packages/pyperformance/data-files/benchmarks
# Interleaved: on a shared VM the machine's speed drifts by tens of percent within minutes, so
# running one interpreter's whole list after the other's would measure the drift. Each
# benchmark runs ROUNDS times per interpreter, the three taking turns in a rotating order, and
# every round's values are appended to the same pyperf file.
ROUNDS=${ROUNDS:-3}
names=(python-optimized python-baseline debian-python)
for bench in "${benchmarks[@]}"; do
    case $bench in
        pickle | unpickle) dir=bm_pickle args=("$bench") ;;
        *) dir=bm_$bench args=() ;;
    esac
    for round in $(seq 0 $((ROUNDS - 1))); do
        for i in 0 1 2; do
            name=${names[$(((i + round) % 3))]}
            run "$name" /opt/venv/bin/python "$site/$dir/run_benchmark.py" "${args[@]}" --fast --quiet \
                --inherit-environ LD_PRELOAD,MALLOC_CONF --append "/results/$name-$bench.json" >/dev/null
        done
    done
done

python3 - "$work/results" "${benchmarks[@]}" <<'PY'
import json, math, statistics, sys
results, benches = sys.argv[1], sys.argv[2:]
def median(name, bench):
    data = json.load(open(f"{results}/{name}-{bench}.json"))
    values = [v for b in data["benchmarks"] for run in b["runs"] for v in run.get("values", [])]
    return statistics.median(values)
rows = []
print(f"{'benchmark':16} {'optimized':>11} {'baseline':>11} {'debian':>11} {'opt vs base':>12} {'opt vs debian':>14}")
for bench in benches:
    o, b, d = (median(n, bench) for n in ("python-optimized", "python-baseline", "debian-python"))
    rows.append((b / o, d / o))
    print(f"{bench:16} {o*1e3:9.2f}ms {b*1e3:9.2f}ms {d*1e3:9.2f}ms {b/o:11.2f}x {d/o:13.2f}x")
geo = lambda xs: math.exp(sum(math.log(x) for x in xs) / len(xs))
print(f"{'geometric mean':16} {'':>11} {'':>11} {'':>11} {geo([r[0] for r in rows]):11.2f}x {geo([r[1] for r in rows]):13.2f}x")
print("(ratios are speed-ups of the optimized build: time of the other / time of optimized)")
PY

echo "== build times (ms): first build, fully cached rebuild"
for name in python-optimized python-baseline debian-python; do
    printf '%-18s %10d %8d\n' "$name" "${build_seconds[$name]}" "${rebuild_seconds[$name]}"
done
