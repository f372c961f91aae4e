#!/usr/bin/env bash
# Benchmark: a foreign platform's build cross-compiled on the machine's own root (`[cross]`)
# against the same build under qemu-user, with the native amd64 build as the yardstick, in one
# run on this machine. The build is recipes/jemalloc-hello.toml's jemalloc (the step that
# dominated CI under qemu-user), arm64.
#
#   tests/bench/cross-build.sh             # all three (the qemu-user one takes 10 to 20 minutes)
#   QEMU=0 tests/bench/cross-build.sh      # without the qemu-user case
#
# Each case builds in the same store with a flag unique to this run (so nothing is cached but
# the packages) and one build at a time, and prints the jemalloc step's time:
#   native amd64     jemalloc for linux/amd64 on amd64's root
#   cross arm64      jemalloc for linux/arm64 on amd64's root with aarch64-linux-gnu-gcc
#   qemu arm64       jemalloc for linux/arm64 on arm64's root under qemu-user
# Ratios: cross / native (target <= 2x) and qemu / cross.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMPOSE_BENCH=1 tests/setup.sh >/dev/null
cargo build --release --locked -q
compose="$PWD/target/release/compose"
work=$(mktemp -d /tmp/compose-cross-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
store="${STORE:-/tmp/compose-bench-cross-store}"
nonce=$(date +%s%N)

# The recipe for one platform, with or without [cross], its profile marked with this run's nonce.
recipe() {
    local platform=$1 cross=$2 dir="$work/$3"
    mkdir -p "$dir"
    cp -r recipes/jemalloc-hello "$dir/"
    sed -e "s|platforms = \[\"linux/amd64\", \"linux/arm64\"\]|platforms = [\"$platform\"]|" \
        -e "s|cflags = \[\"-fno-plt\", \"-g0\"\]|cflags = [\"-fno-plt\", \"-g0\", \"-DBENCH_RUN=$nonce\"]|" \
        recipes/jemalloc-hello.toml >"$dir/recipe.toml"
    if [ "$cross" = 0 ]; then
        # Everything from `[cross]` on is the cross table and its comment; the config after it stays.
        python3 - "$dir/recipe.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"(# Builds for arm64 run natively.*?\n)?\[cross\]\nbuild = \"linux/amd64\"\n\n", "", text, flags=re.S)
open(path, "w").write(text)
PY
    fi
    echo "$dir/recipe.toml"
}

# Seconds the jemalloc step took, from the build's own report.
jemalloc_seconds() {
    local recipe=$1 log="$work/$(basename "$(dirname "$1")").log"
    RAYON_NUM_THREADS=1 "$compose" --store "$store" build "$recipe" -o "$work/out-$RANDOM" --progress json \
        2>"$log" >/dev/null
    python3 - "$log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("event") == "step" and event.get("step") == "build" and event.get("name") == "jemalloc":
        print(event["seconds"])
        break
else:
    sys.exit("no jemalloc step in " + sys.argv[1])
PY
}

native=$(jemalloc_seconds "$(recipe linux/amd64 1 native)")
cross=$(jemalloc_seconds "$(recipe linux/arm64 1 cross)")
printf '%-14s %8.1f s\n' "native amd64" "$native" "cross arm64" "$cross"
printf '%-14s %8.2fx   (target <= 2x)\n' "cross/native" "$(python3 -c "print($cross / $native)")"
if [ "${QEMU:-1}" != 0 ]; then
    qemu=$(jemalloc_seconds "$(recipe linux/arm64 0 qemu)")
    printf '%-14s %8.1f s\n' "qemu arm64" "$qemu"
    printf '%-14s %8.2fx\n' "qemu/native" "$(python3 -c "print($qemu / $native)")"
    printf '%-14s %8.2fx\n' "qemu/cross" "$(python3 -c "print($qemu / $cross)")"
fi
