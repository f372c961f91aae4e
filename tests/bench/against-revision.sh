#!/usr/bin/env bash
# Benchmark: this tree's compose against the compose of another revision (default: the last
# commit before verified reads, f3a0d66), on recipes/debian-python.toml (amd64 + arm64), in the
# same run, taking turns. Measures what reading the store costs, since every object read is now
# verified while it streams:
#
#   layers    the store holds the unpacked packages but no layer records: every layer is written
#             again from stored file contents (each content object read and checked)
#   unpack    the store holds the .deb files only: unpack (each .deb read and checked) and layers
#   export    everything cached, written to a new OCI layout (each blob copied and checked)
#   no-op     everything cached, written over the same layout (existing blobs checked)
#
#   tests/bench/against-revision.sh [REV]     # prints seconds (median of 5) and ratios
set -euo pipefail
cd "$(dirname "$0")/../.."
rev="${1:-f3a0d66}"
COMPOSE_BENCH=1 tests/setup.sh >/dev/null
cargo build --release --locked -q
new="$PWD/target/release/compose"
work=$(mktemp -d /tmp/compose-rev.XXXXXX)
trap 'git worktree remove --force "$work/old-src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q "$work/old-src" "$rev"
(cd "$work/old-src" && CARGO_TARGET_DIR="${OLD_TARGET_DIR:-$work/old-target}" cargo build --release --locked -q)
old="${OLD_TARGET_DIR:-$work/old-target}/release/compose"
cp recipes/debian-python.toml "$work/"
recipe="$work/debian-python.toml"

# One store per binary (their step keys differ), each filled once.
for who in old new; do
    bin=${!who}
    rm -f "$work/debian-python.lock"
    "$bin" -q --store "$work/store-$who" build "$recipe" -o "$work/out-$who" >/dev/null
    cp "$work/debian-python.lock" "$work/lock-$who"
done

# Removes the records a case must redo; keeps the objects.
drop_records() {
    local store=$1 steps=$2
    grep -lE "\"step\":\"($steps)\"" -r "$store/actions-v1" | xargs -r rm -f
}

run_case() {
    local who=$1 case=$2 bin=${!1} store="$work/store-$1"
    cp "$work/lock-$who" "$work/debian-python.lock"
    case $case in
        layers) drop_records "$store" "layer|system-layer"; rm -rf "$work/o"; out="$work/o" ;;
        unpack) drop_records "$store" "layer|system-layer|unpack"; rm -rf "$work/o"; out="$work/o" ;;
        export) rm -rf "$work/o"; out="$work/o" ;;
        no-op) out="$work/out-$who" ;;
    esac
    sync
    local start end
    start=$(date +%s.%N)
    "$bin" -q --store "$store" build "$recipe" -o "$out" >/dev/null
    end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}

printf '%-8s %12s %12s %8s\n' case "$rev s" "HEAD s" ratio
for case in layers unpack export no-op; do
    olds=(); news=()
    for round in 1 2 3 4 5; do
        olds+=("$(run_case old "$case")")
        news+=("$(run_case new "$case")")
    done
    python3 - "$case" "${olds[*]}" "${news[*]}" <<'PY'
import statistics, sys
case, old, new = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
o, n = statistics.median(old), statistics.median(new)
print(f"{case:<8} {o:>12.3f} {n:>12.3f} {n / o:>7.2f}x")
PY
done
