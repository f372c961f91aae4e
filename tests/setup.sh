#!/usr/bin/env bash
# Installs and starts what the tests need on a Debian 12 machine (root). Safe to run again:
# apt-get is quick when everything is installed, and each step checks before it acts.
set -euo pipefail

packages=(podman runc skopeo umoci qemu-user-static binfmt-support gnupg ca-certificates debian-archive-keyring docker-registry docker.io bubblewrap binutils apache2-utils openssl)
if [ "${COMPOSE_BENCH:-}" = 1 ]; then
    packages+=(mmdebstrap hyperfine time)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" \
        || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

# podman: runc (crun fails on this host's hybrid cgroups) and no default ulimits (EPERM here).
mkdir -p /etc/containers
if ! grep -q 'default_ulimits' /etc/containers/containers.conf 2>/dev/null; then
    printf '[containers]\ndefault_ulimits = []\n' >> /etc/containers/containers.conf
fi

# Foreign architectures run through qemu-user via binfmt_misc.
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
for arch in qemu-aarch64 qemu-arm; do
    update-binfmts --enable "$arch" 2>/dev/null || true
done
for arch in qemu-aarch64 qemu-arm; do
    test -e "/proc/sys/fs/binfmt_misc/$arch" || { echo "$arch binfmt is not enabled" >&2; exit 1; }
done

# uv resolves wheel sets (composer runs it as `uv pip compile`); pinned, from the Python index
# through pip's own configuration. It lands on PATH beside pip's other scripts.
# pip also reads the exported wheel index in the tests.
UV_VERSION=0.13.9
if ! python3 -m pip --version >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends python3-pip \
        || { apt-get update && apt-get install -y --no-install-recommends python3-pip; }
fi
if [ "$(uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    for attempt in 1 2 3; do
        python3 -m pip install --quiet "uv==$UV_VERSION" 2>/dev/null \
            || python3 -m pip install --quiet --break-system-packages "uv==$UV_VERSION" && break
        echo "pip install uv failed (attempt $attempt); retrying" >&2
        sleep $((attempt * 5))
    done
    hash -r
fi
uv --version | grep -q "$UV_VERSION" || { echo "uv $UV_VERSION is not on PATH" >&2; exit 1; }
