#!/usr/bin/env bash
# Seeds each fuzz target's corpus with small valid inputs, so that the fuzzers start from the
# shapes the parsers accept (written only where a corpus is empty).
set -euo pipefail
cd "$(dirname "$0")"
seed() { [ -n "$(ls -A "corpus/$1" 2>/dev/null)" ] || { mkdir -p "corpus/$1"; cat > "corpus/$1/seed"; }; }
seed deb822 <<'TXT'
Origin: Debian
Suite: stable
Codename: bookworm
Date: Sat, 01 Jun 2024 08:10:30 UTC
Valid-Until: Sat, 08 Jun 2024 08:10:30 UTC
Architectures: amd64 arm64
Components: main
SHA256:
 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages.xz

Package: app
Version: 1:1.0-1
Architecture: amd64
Depends: libc6 (>= 2.36), foo | bar:any
Provides: baz (= 1)
Filename: pool/main/a/app/app_1.0-1_amd64.deb
Size: 100
SHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
TXT
seed recipe <<'TXT'
[image]
name = "app"
platforms = ["linux/amd64", "linux/arm64"]
source_date_epoch = 1700000000
[base]
suite = "bookworm"
mirror = "debian"
packages = ["python3", "libssl3 (>= 3.0)"]
[allocator]
name = "jemalloc"
malloc_conf = "narenas:2"
[[accounts.users]]
name = "app"
uid = 1000
[[files]]
path = "/etc/app.conf"
content = "x = 1\n"
mode = "0600"
[config]
user = "app"
cmd = ["python3"]
TXT
seed pylock <<'TXT'
lock-version = "1.0"
created-by = "composer"
[[packages]]
name = "tinyapp"
version = "1.0"
[[packages.wheels]]
name = "tinyapp-1.0-py3-none-any.whl"
url = "https://files.invalid/tinyapp-1.0-py3-none-any.whl"
size = 10
hashes = { sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
[tool.composer]
platform = "linux/amd64"
TXT
seed lock <<'TXT'
Package: libc6
Version: 2.36-9
Architecture: amd64
Essential: yes
Provides: libc-bin (= 2.36)
Filename: pool/main/g/glibc/libc6_2.36-9_amd64.deb
Size: 10
SHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

Package: app
Version: 1:1.0-1
Architecture: amd64
Depends: libc6 (>= 2.36), foo | bar:any
Conflicts: oldapp
Filename: pool/main/a/app/app_1.0-1_amd64.deb
Size: 100
SHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

Package: bar
Version: 2
Architecture: all
Provides: foo (= 1)
Filename: pool/main/b/bar/bar_2_all.deb
Size: 5
SHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
---
app (>= 1.0)
bar
---
libc6 2.36-9 amd64 pool/main/g/glibc/libc6_2.36-9_amd64.deb 10 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
app 1:1.0-1 amd64 pool/main/a/app/app_1.0-1_amd64.deb 100 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
bar 2 all pool/main/b/bar/bar_2_all.deb 5 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
TXT
seed oci_json <<'TXT'
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":1,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}
TXT
seed tree <<'TXT'
{"entries":[{"path":"usr","type":"dir","mode":493,"uid":0,"gid":0,"mtime":0},{"path":"bin","type":"symlink","target":"usr/bin","mode":511,"uid":0,"gid":0,"mtime":0},{"path":"usr/bin/x","type":"file","content":"0000000000000000000000000000000000000000000000000000000000000000","size":1,"mode":493,"uid":0,"gid":0,"mtime":0},{"path":"usr/bin/y","type":"hardlink","target":"usr/bin/x","mode":493,"uid":0,"gid":0,"mtime":0}]}
TXT
# Binary seeds: a few small .deb files from apt's cache and wheels from pip's find-links dir.
copy_small() {
    local kind=$1 dir=$2 pattern=$3
    mkdir -p "corpus/$kind"
    [ -z "$(ls -A "corpus/$kind")" ] || return 0
    find "$dir" -maxdepth 2 -name "$pattern" -size -200k 2>/dev/null | head -n 4 | while read -r f; do
        cp "$f" "corpus/$kind/"
    done
}
copy_small deb /var/cache/apt/archives '*.deb'
copy_small wheel "${PIP_FIND_LINKS:-/opt/wheels}" '*.whl'
# Where the caches hold none, make one of each (dpkg-deb and Python are on every Debian machine).
if [ -z "$(ls -A corpus/deb)" ]; then
    work=$(mktemp -d)
    mkdir -p "$work/pkg/DEBIAN" "$work/pkg/usr/bin" "$work/pkg/usr/lib"
    printf 'Package: seed\nVersion: 1.0\nArchitecture: amd64\nMaintainer: fuzz <fuzz@invalid>\nDescription: seed\n' > "$work/pkg/DEBIAN/control"
    printf '#!/bin/sh\necho seed\n' > "$work/pkg/usr/bin/seed"
    ln -s ../bin/seed "$work/pkg/usr/lib/seed-link"
    for compress in gzip xz zstd none; do
        dpkg-deb -Z"$compress" --root-owner-group --build "$work/pkg" "corpus/deb/seed-$compress.deb" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
fi
if [ -z "$(ls -A corpus/wheel)" ]; then
    python3 - <<'PY'
import zipfile
with zipfile.ZipFile("corpus/wheel/seed-1.0-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("seed/__init__.py", "def main():\n    print('seed')\n")
    z.writestr("seed-1.0.data/scripts/seed-tool", "#!python\nprint('tool')\n")
    z.writestr("seed-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: seed\nVersion: 1.0\n")
    z.writestr("seed-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("seed-1.0.dist-info/entry_points.txt", "[console_scripts]\nseed = seed:main\n")
    z.writestr("seed-1.0.dist-info/RECORD", "seed/__init__.py,,\nseed-1.0.dist-info/RECORD,,\n")
PY
fi
# A real bundle (one signed step result, one input, one lock file), written by compose's own
# code with the key the `bundle` target trusts.
if [ -z "$(ls -A corpus/bundle 2>/dev/null)" ]; then
    mkdir -p corpus/bundle
    cargo run -q --manifest-path Cargo.toml --target-dir ../../target/fuzz-seed --bin bundle-seed -- corpus/bundle/seed
fi
