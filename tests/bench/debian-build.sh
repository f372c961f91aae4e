#!/usr/bin/env bash
# Benchmark: `compose build recipes/debian-python.toml` (linux/amd64 + linux/arm64) against
# mmdebstrap --variant=extract for the same packages and both architectures, in the same run.
#
#   tests/bench/debian-build.sh                                # recipes/debian-python.toml
#   tests/bench/debian-build.sh tests/bench/large-image.toml   # about 300 packages per architecture
#
# Prints a table of seconds, ratios and peak memory.
#
# Cases, each with a fresh output directory (cold cases: median of three rounds, taking turns
# with mmdebstrap):
#   cold       empty store, no lock (resolution, downloads, unpack, layers, image)
#   downloads  the store holds the .deb files but no step results
#   no-op      everything cached (the lock from the first build is used)
# mmdebstrap runs cold each time (its own apt cache in a temp dir) and writes only a rootfs tar.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMPOSE_BENCH=1 tests/setup.sh >/dev/null
cargo build --release --locked -q
compose="$PWD/target/release/compose"
work=$(mktemp -d /tmp/compose-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
source_recipe="${1:-recipes/debian-python.toml}"
name=$(basename "$source_recipe" .toml)
cp "$source_recipe" "$work/"
recipe="$work/$name.toml"
lock="$work/$name.lock"
# mmdebstrap gets what composer resolves: the recipe's packages, base-files and base-passwd, and
# the allocator's package when the recipe preloads the distribution's jemalloc.
packages=$(python3 - "$recipe" <<'PY'
import sys, tomllib
recipe = tomllib.load(open(sys.argv[1], "rb"))
packages = list(recipe["base"]["packages"]) + ["base-files", "base-passwd"]
if recipe.get("allocator", {}).get("name") == "jemalloc" and recipe["allocator"].get("source", "distro") == "distro":
    packages.append("libjemalloc2")
print(",".join(packages))
PY
)
suite=$(python3 -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['base']['suite'])" "$recipe")

# seconds and peak RSS (KiB) of a command, via GNU time
measure() {
    local log="$work/time.log"
    /usr/bin/time -f '%e %M' -o "$log" "$@" >/dev/null 2>"$work/stderr.log" || { cat "$work/stderr.log" >&2; exit 1; }
    cat "$log"
}

# The VM's disk and the mirror are noisy: cold cases run three times and report the median.
median() { python3 -c "import sys, statistics; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

# Cold cases take turns with mmdebstrap, three rounds, so that the VM's drift in speed lands on
# both. Each cold build gets a store of its own, all deleted at the end: on an ext4 without a
# journal (these VMs), every new inode skips the group's inodes freed in the last minutes one by
# one, so deleting a 250 MB store just before the next build adds seconds of system time that a
# first build on a machine does not pay. (mmdebstrap's own temp directory still adds some.)
cold_runs=(); cold_kb=0
mm_runs=(); mm_kb=0
for run in 1 2 3; do
    store="$work/store-$run"
    rm -f "$lock"; sync
    read -r s kb < <(measure "$compose" -q --store "$store" build "$recipe" -o "$work/out1")
    cold_runs+=("$s"); cold_kb=$(( kb > cold_kb ? kb : cold_kb ))
    total=0
    for arch in amd64 arm64; do
        rm -f "$work/rootfs-$arch.tar"; sync
        read -r s kb < <(measure mmdebstrap --quiet --variant=extract --architectures="$arch" \
            --include="$packages" "$suite" "$work/rootfs-$arch.tar")
        total=$(python3 -c "print($total + $s)")
        mm_kb=$(( kb > mm_kb ? kb : mm_kb ))
    done
    mm_runs+=("$total")
done
cold_s=$(median "${cold_runs[@]}")
mm_total=$(median "${mm_runs[@]}")
rm -rf "$store/actions-v1"
read -r dl_s dl_kb < <(measure "$compose" -q --store "$store" build "$recipe" -o "$work/out2")
# Warm the page cache once, then time the no-op with hyperfine (many runs).
"$compose" -q --store "$store" build "$recipe" -o "$work/out3" >/dev/null
read -r noop_s noop_kb < <(measure "$compose" -q --store "$store" build "$recipe" -o "$work/out3")
noop_ms=$(hyperfine -N --warmup 3 --runs 20 --export-json "$work/noop.json" \
    "$compose -q --store $store build $recipe -o $work/out3" >/dev/null && \
    python3 -c "import json;print(round(json.load(open('$work/noop.json'))['results'][0]['mean']*1000,1))")

python3 - "$cold_s" "$dl_s" "$noop_s" "$noop_ms" "$mm_total" "$cold_kb" "$dl_kb" "$noop_kb" "$mm_kb" "${cold_runs[*]}" "${mm_runs[*]}" <<'PY'
import sys
cold, dl, noop, noop_ms, mm, cold_kb, dl_kb, noop_kb, mm_kb = map(float, sys.argv[1:10])
print(f"{'case':<34}{'seconds':>10}{'vs mmdebstrap':>16}{'peak MiB':>10}")
print(f"compose cold runs: {sys.argv[10]}; mmdebstrap runs: {sys.argv[11]}")
print(f"{'mmdebstrap extract, amd64+arm64':<34}{mm:>10.2f}{1.0:>15.2f}x{mm_kb/1024:>10.0f}")
for name, s, kb in [("compose cold store", cold, cold_kb), ("compose, downloads in store", dl, dl_kb), ("compose no-op rebuild", noop, noop_kb)]:
    print(f"{name:<34}{s:>10.2f}{s/mm:>15.3f}x{kb/1024:>10.0f}")
print(f"no-op rebuild, hyperfine mean: {noop_ms:.1f} ms")
print(f"cold build takes {cold/mm:.2f} of mmdebstrap's time (target <= 0.33)")
PY
