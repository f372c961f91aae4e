#!/usr/bin/env bash
# Benchmark: pyperformance on several interpreters, each in its own image, on this machine, in one
# run, interleaved. Two sets:
#
# SET=glibc (default): recipes/python-optimized.toml (CPython 3.13.5 from Debian's pinned source,
# -O3, PGO, LTO, -fno-semantic-interposition, jemalloc linked) with each of its three declared
# profiles (optimized, optimized-bolt, optimized-v3), recipes/python-baseline.toml (the same
# source, -Os, no PGO, no LTO, system malloc) and recipes/debian-python.toml on the suite
# python-optimized builds on (Debian's stock python3 of the same version, jemalloc preloaded).
#
# SET=musl (issue 14): recipes/python-musl.toml (CPython 3.13 on musl, -O3, PGO, LTO, jemalloc
# linked), the same recipe without its [allocator] (musl's own malloc), recipes/python-musl-baseline.toml
# (-Os, no PGO, no LTO, musl's malloc: how Alpine builds its python3), and the glibc
# python-optimized and debian-python (the same suite as above) for comparison. linux/amd64 only.
#
# Also records the build time of each image and of a fully cached rebuild, and shows each
# interpreter's CONFIG_ARGS, recorded switches, BOLT note and allocator. Ratios are against the
# first image, and a last table gives each image against Debian's python3.
#
#   tests/bench/pyperformance.sh             # about 2.5 hours on 2 cores the first time (three PGO builds)
#   SET=musl tests/bench/pyperformance.sh    # about two hours the first time (four CPython builds, two with PGO)
#   STORE=/path tests/bench/pyperformance.sh # reuse a store: builds become cache hits (about 20 min)
#   ROUNDS=5 tests/bench/pyperformance.sh    # more rounds per benchmark and interpreter (default 3)
#   BUILD_ONLY=1 ...                         # build the images into STORE and stop
#   IMAGES="python-optimized python-musl debian-python" ...   # these images of either set
#   IMAGES="python-optimized-builtin debian-python" ...        # or python-optimized with python-musl's built-in modules
#
# Each image gets pyperformance (pinned) as a wheel set in /opt/venv; each benchmark runs with
# pyperf's --fast inside the image (podman, runc, no network), allocator variables inherited.
set -euo pipefail
# A failed build inside $(...) must stop the script, not be timed.
shopt -s inherit_errexit
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
# The regex engines too (regex_v8, regex_effbot, regex_dna): an independent suite measured the
# optimized profile's regex workloads at 0.78x of Debian's python3.
benchmarks=(nbody float chaos richards deltablue spectral_norm raytrace json_dumps json_loads pickle unpickle
    regex_compile regex_v8 regex_effbot regex_dna go hexiom nqueens fannkuch)

case "${SET:-glibc}" in
    glibc) names=(python-optimized python-optimized-bolt python-optimized-v3 python-baseline debian-python) ;;
    musl) names=(python-musl python-musl-malloc python-musl-baseline python-optimized debian-python) ;;
    *) echo "SET is glibc or musl" >&2; exit 2 ;;
esac
# IMAGES picks from both sets, in its order (the first is the ratios' reference, the last the
# one every image is also compared with).
if [ -n "${IMAGES:-}" ]; then
    read -ra names <<<"$IMAGES"
fi

# Benchmark images: each recipe plus pyperformance in a venv (a recipe's own [python] section
# gets the requirements; one without gets the section). python-musl-malloc is python-musl
# without its [allocator] section: musl's own malloc, everything else the same.
# python-optimized-PROFILE is python-optimized whose interpreter builds with that declared
# profile; python-optimized-builtin is python-optimized with python-musl's `builtin` modules
# (linked into the interpreter, as Debian links them). debian-python takes python-optimized's
# suite, so that both have the same CPython.
suite=$(sed -n 's/^suite = "\(.*\)"$/\1/p' recipes/python-optimized.toml)
for name in "${names[@]}"; do
    case $name in
        python-optimized-builtin)
            python3 - recipes/python-optimized.toml recipes/python-musl.toml "$work/$name.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
builtin = re.search(r"\nbuiltin = \[.*?\]\n", open(sys.argv[2]).read(), re.S).group(0)
head, sep, tail = text.partition("\n[python.build]\n")
assert sep and "\nbuiltin = " not in tail
text = (head + sep + builtin.lstrip("\n") + tail).replace('name = "python-optimized"', 'name = "python-optimized-builtin"', 1)
open(sys.argv[3], "w").write(text)
PY
            ;;
        python-optimized-*)
            python3 - recipes/python-optimized.toml "$work/$name.toml" "${name#python-}" <<'PY'
import sys
text = open(sys.argv[1]).read()
head, sep, tail = text.partition("\n[python.build]\n")
assert sep and '\nprofile = "optimized"\n' in tail and f"[toolchain.profiles.{sys.argv[3]}]" in head
tail = tail.replace('\nprofile = "optimized"\n', f'\nprofile = "{sys.argv[3]}"\n', 1)
text = (head + sep + tail).replace('name = "python-optimized"', f'name = "python-{sys.argv[3]}"', 1)
open(sys.argv[2], "w").write(text)
PY
            ;;
        debian-python) sed "s|^suite = .*|suite = \"$suite\"|" recipes/debian-python.toml >"$work/$name.toml" ;;
        python-musl-malloc)
            python3 - recipes/python-musl.toml "$work/$name.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"\n\[allocator\]\n.*?(?=\n\[)", "\n", text, flags=re.S)
text = text.replace('name = "python-musl"', 'name = "python-musl-malloc"', 1)
assert "[allocator]" not in text
open(sys.argv[2], "w").write(text)
PY
            ;;
        *) cp "recipes/$name.toml" "$work/$name.toml" ;;
    esac
    # A recipe that extends another (python-musl.toml extends python-musl-baseline.toml) reads
    # its base from beside it: copied as it is, unless the loop writes it as an image of its own.
    base=$(sed -n 's/^extends = "\(.*\)"$/\1/p' "$work/$name.toml")
    if [ -n "$base" ] && [ ! -e "$work/$base" ]; then
        cp "recipes/$base" "$work/$base"
    fi
    # amd64 only: a lock covers every platform of its recipe, and pyperformance's psutil has no
    # wheel for some (musllinux armv7l). A recipe that takes its platforms from its base sets them.
    if grep -q '^platforms = ' "$work/$name.toml"; then
        sed -i 's|^platforms = .*|platforms = ["linux/amd64"]|' "$work/$name.toml"
    else
        sed -i 's|^\[image\]$|[image]\nplatforms = ["linux/amd64"]|' "$work/$name.toml"
    fi
    if grep -q '^\[python\]' "$work/$name.toml"; then
        sed -i "s|^\[python\]\$|[python]\nrequirements = [\"pyperformance==$PYPERFORMANCE\"]\ntarget = \"/opt/venv\"|" "$work/$name.toml"
    else
        printf '\n[python]\nrequirements = ["pyperformance==%s"]\ntarget = "/opt/venv"\n' "$PYPERFORMANCE" >>"$work/$name.toml"
    fi
done

build() {
    local name=$1 start
    start=$(date +%s%N)
    "$compose" -q --store "$store" build "$work/$name.toml" --platform linux/amd64 -o "$work/out/$name" >/dev/null
    echo $(( ($(date +%s%N) - start) / 1000000 ))
}
declare -A build_seconds rebuild_seconds
for name in "${names[@]}"; do
    build_seconds[$name]=$(build "$name")
    rebuild_seconds[$name]=$(build "$name")
done
if [ -n "${BUILD_ONLY:-}" ]; then
    for name in "${names[@]}"; do
        printf '%-22s built in %8d ms, rebuilt in %6d ms\n' "$name" "${build_seconds[$name]}" "${rebuild_seconds[$name]}"
    done
    exit 0
fi

# Each image into podman's storage once (by ID, no tag to clash with anything else).
for name in "${names[@]}"; do
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
for name in "${names[@]}"; do
    echo "-- $name"
    run "$name" python3 -c "import sys, sysconfig
maps = open('/proc/self/maps').read()
print('version   ', sys.version.split()[0])
print('CONFIG_ARGS', sysconfig.get_config_var('CONFIG_ARGS'))
print('jemalloc  ', 'libjemalloc' in maps)
print('built-in  ', len(sys.builtin_module_names), 'modules:', ' '.join(sorted(sys.builtin_module_names)))"
    # The images have no shell: python copies its own binary out.
    run "$name" python3 -c "import os, shutil; shutil.copy(os.path.realpath(shutil.which('python3')), '/results/python.bin')"
    switches=$(readelf -p .GCC.command.line "$work/results/python.bin" 2>/dev/null |
        grep -oE -- '-O[0-3s]|-march=[^ ]*|-flto[^ ]*|-fprofile-use|-fno-semantic-interposition|-fno-builtin-malloc' |
        sort | uniq -c | tr -s ' \n' ' ' || true)
    echo "switches   ${switches:-(none recorded: built without -frecord-gcc-switches)}"
    # llvm-bolt leaves this note in what it rewrote.
    if readelf -S "$work/results/python.bin" | grep -q '\.note\.bolt_info'; then echo "bolt       yes"; else echo "bolt       no"; fi
    rm -f "$work/results/python.bin"
done

declare -A site=()
for name in "${names[@]}"; do
    site[$name]=$(run "$name" /opt/venv/bin/python -c \
        "import os, pyperformance; print(os.path.join(os.path.dirname(pyperformance.__file__), 'data-files/benchmarks'))")
done
# Interleaved: on a shared VM the machine's speed drifts by tens of percent within minutes, so
# running one interpreter's whole list after the other's would measure the drift. Each
# benchmark runs ROUNDS times per interpreter, the three taking turns in a rotating order, and
# every round's values are appended to the same pyperf file.
ROUNDS=${ROUNDS:-3}
for bench in "${benchmarks[@]}"; do
    case $bench in
        pickle | unpickle) dir=bm_pickle args=("$bench") ;;
        *) dir=bm_$bench args=() ;;
    esac
    for round in $(seq 0 $((ROUNDS - 1))); do
        for i in "${!names[@]}"; do
            name=${names[$(((i + round) % ${#names[@]}))]}
            run "$name" /opt/venv/bin/python "${site[$name]}/$dir/run_benchmark.py" "${args[@]}" --fast --quiet \
                --inherit-environ LD_PRELOAD,MALLOC_CONF --append "/results/$name-$bench.json" >/dev/null
        done
    done
done

python3 - "$work/results" "${names[*]}" "${benchmarks[@]}" <<'PY'
import json, math, statistics, sys
results, names, benches = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def median(name, bench):
    data = json.load(open(f"{results}/{name}-{bench}.json"))
    values = [v for b in data["benchmarks"] for run in b["runs"] for v in run.get("values", [])]
    return statistics.median(values)
reference, others = names[0], names[1:]
# json_loads, pickle and unpickle take microseconds: milliseconds with two decimals hid them.
shown = lambda t: f"{t * 1e3:.2f} ms" if t >= 1e-3 else f"{t * 1e6:.1f} us"
print(f"{'benchmark':16}" + "".join(f" {n[:20]:>20}" for n in names) + "".join(f" {'vs ' + n[:17]:>20}" for n in others))
ratios = {n: [] for n in others}
for bench in benches:
    times = {n: median(n, bench) for n in names}
    for n in others:
        ratios[n].append(times[n] / times[reference])
    print(f"{bench:16}" + "".join(f" {shown(times[n]):>20}" for n in names)
          + "".join(f" {times[n]/times[reference]:19.2f}x" for n in others))
geo = lambda xs: math.exp(sum(math.log(x) for x in xs) / len(xs))
print(f"{'geometric mean':16}" + "".join(f" {'':>20}" for n in names) + "".join(f" {geo(ratios[n]):19.2f}x" for n in others))
print(f"(ratios are speed-ups of {reference}: time of the other / time of {reference})")
last = names[-1]
print(f"\neach against {last} (time of {last} / time of the image; geometric mean, lowest, highest):")
for n in names[:-1]:
    each = [median(last, b) / median(n, b) for b in benches]
    print(f"  {n:24} {geo(each):5.2f}x   {min(each):5.2f}x .. {max(each):5.2f}x")
PY

echo "== build times (ms): first build, fully cached rebuild"
for name in "${names[@]}"; do
    printf '%-22s %10d %8d\n' "$name" "${build_seconds[$name]}" "${rebuild_seconds[$name]}"
done
