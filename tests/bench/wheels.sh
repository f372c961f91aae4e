#!/usr/bin/env bash
# Benchmark: the wheel set of recipes/python-app.toml (aiohttp, pyyaml, orjson, cryptography,
# numpy and their dependencies) for linux/amd64 and linux/arm64, resolved, fetched and
# installed by composer, against `uv pip install --target DIR --python-platform ...
# --python-version 3.11 --only-binary :all:` for the same set and platforms, in the same run.
#
#   tests/bench/wheels.sh
#
# Cases (cold cases: median of three):
#   cold    composer: the store holds the Debian base but nothing of the wheel set, no pylock,
#           empty uv cache (resolve, fetch, verify, install, layer, image).
#           uv: empty cache, empty targets, one run per platform (as a user scripts it).
#   warm    composer: wheels in the store and uv's cache warm, install and layer steps dropped
#           (install, layer, image again). uv: warm cache, empty targets.
#   no-op   composer rebuild with everything cached (hyperfine, 20 runs).
#
# With COMPOSE_OLD=PATH (another revision's compose, e.g. from tests/bench/against-revision.sh's
# worktree), the cold case also runs that binary in the same rounds (its own base store), so that
# a change is measured against the code before it rather than against a recorded figure.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMPOSE_BENCH=1 tests/setup.sh >/dev/null
cargo build --release --locked -q
compose="$PWD/target/release/compose"
work=$(mktemp -d /tmp/compose-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
requirements=(aiohttp pyyaml orjson cryptography numpy)
platforms=(x86_64-manylinux_2_36 aarch64-manylinux_2_36)

cp recipes/python-app.toml "$work/"
recipe="$work/python-app.toml"
# The same recipe without [python]: it fills the base store every cold case starts from.
python3 - "$recipe" "$work/base.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
open(sys.argv[2], "w").write(re.sub(r"\n\[python\].*?(?=\n\[)", "\n", text, flags=re.S))
PY
"$compose" -q --store "$work/base-store" build "$work/base.toml" -o "$work/base-out" >/dev/null
old="${COMPOSE_OLD:-}"
if [ -n "$old" ]; then
    cp "$work/base.lock" "$work/base.lock.keep"
    "$old" -q --store "$work/base-store-old" build "$work/base.toml" -o "$work/base-out-old" >/dev/null
    cp "$work/base.lock.keep" "$work/base.lock"
fi

measure() {
    local log="$work/time.log"
    /usr/bin/time -f '%e %M' -o "$log" "$@" >/dev/null 2>"$work/stderr.log" || { cat "$work/stderr.log" >&2; exit 1; }
    cat "$log"
}
median() { python3 -c "import sys, statistics; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

uv_all() {  # uv pip install for every platform into fresh targets; prints total seconds
    local total=0
    for platform in "${platforms[@]}"; do
        rm -rf "$work/target-$platform"
        read -r s _ < <(measure uv pip install --quiet --native-tls --only-binary :all: --target "$work/target-$platform" \
            --python-platform "$platform" --python-version 3.11 "${requirements[@]}")
        total=$(python3 -c "print($total + $s)")
    done
    echo "$total"
}

compose_cold=(); uv_cold=(); old_cold=(); cold_kb=0
old_cold_run() {
    [ -n "$old" ] || return 0
    rm -rf "$work/store-old" "$work"/pylock.*.toml "$work/uv-cache"; cp -a "$work/base-store-old" "$work/store-old"
    cp "$work/base.lock" "$work/python-app.lock"; sync
    read -r s _ < <(UV_CACHE_DIR="$work/uv-cache" measure "$old" -q --store "$work/store-old" build "$recipe" -o "$work/out-old")
    old_cold+=("$s")
}
for run in 1 2 3 4; do
    # The other revision runs first in odd rounds and last in even ones: the disk is slower
    # right after a store was deleted, and that should not fall on one binary only.
    [ $((run % 2)) = 1 ] && old_cold_run
    rm -rf "$work/store" "$work"/pylock.*.toml "$work/uv-cache"; cp -a "$work/base-store" "$work/store"
    # The base lock is shared: python-app asks for the same Debian packages.
    cp "$work/base.lock" "$work/python-app.lock"
    sync
    read -r s kb < <(UV_CACHE_DIR="$work/uv-cache" measure "$compose" -q --store "$work/store" build "$recipe" -o "$work/out")
    compose_cold+=("$s"); cold_kb=$(( kb > cold_kb ? kb : cold_kb ))
    rm -rf "$work/uv-cache-peer"
    uv_cold+=("$(UV_CACHE_DIR="$work/uv-cache-peer" uv_all)")
    [ $((run % 2)) = 0 ] && old_cold_run
done

# Warm: wheels in the store, uv caches warm; drop the install and layer results.
grep -rlE '"step":"(wheel-install|wheel-layer|python-env)"' "$work/store/actions-v1" | xargs rm -f
read -r warm_s warm_kb < <(UV_CACHE_DIR="$work/uv-cache" measure "$compose" -q --store "$work/store" build "$recipe" -o "$work/out")
uv_warm=$(UV_CACHE_DIR="$work/uv-cache-peer" uv_all)

noop_ms=$(hyperfine -N --warmup 3 --runs 20 --export-json "$work/noop.json" \
    "$compose -q --store $work/store build $recipe -o $work/out" >/dev/null && \
    python3 -c "import json;print(round(json.load(open('$work/noop.json'))['results'][0]['mean']*1000,1))")

python3 - "$(median "${compose_cold[@]}")" "$(median "${uv_cold[@]}")" "$warm_s" "$uv_warm" "$noop_ms" "$cold_kb" "$warm_kb" \
    "${compose_cold[*]}" "${uv_cold[*]}" <<'PY'
import sys
cold, uv_cold, warm, uv_warm, noop_ms, cold_kb, warm_kb = map(float, sys.argv[1:8])
print(f"compose cold runs: {sys.argv[8]}; uv cold runs: {sys.argv[9]}")
print(f"{'case':<44}{'seconds':>9}{'vs uv':>9}{'peak MiB':>10}")
print(f"{'uv pip install, cold cache, 2 platforms':<44}{uv_cold:>9.2f}{1.0:>8.2f}x")
print(f"{'compose build, cold wheel caches':<44}{cold:>9.2f}{cold/uv_cold:>8.2f}x{cold_kb/1024:>10.0f}")
print(f"{'uv pip install, warm cache, 2 platforms':<44}{uv_warm:>9.2f}{1.0:>8.2f}x")
print(f"{'compose build, wheels in store':<44}{warm:>9.2f}{warm/uv_warm:>8.2f}x{warm_kb/1024:>10.0f}")
print(f"compose no-op rebuild, hyperfine mean: {noop_ms:.1f} ms (target < 100 ms)")
print(f"cold: compose takes {cold/uv_cold:.2f}x uv's time (target <= 1.00)")
PY
if [ -n "$old" ]; then
    python3 -c "import sys, statistics as st; o=[float(x) for x in sys.argv[1].split()]; n=[float(x) for x in sys.argv[2].split()]; \
print(f'cold, this tree against COMPOSE_OLD in the same rounds: {st.median(n):.2f} s against {st.median(o):.2f} s ({st.median(n)/st.median(o):.2f}x); runs {n} against {o}')" \
        "${old_cold[*]}" "${compose_cold[*]}"
fi
