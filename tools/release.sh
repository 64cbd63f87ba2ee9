#!/usr/bin/env bash
# Builds the release archives, one per target, into dist/:
#
#   edgegemma-<version>-x86_64-linux-gnu.tar.gz   (glibc, dynamically linked)
#   edgegemma-<version>-aarch64-linux-gnu.tar.gz  (static: Raspberry Pi OS 64-bit, any aarch64
#                                                  Linux, an Android shell / Termux)
#
# each holding bin/edgegemma, bin/edgegemma-convert, lib/libedgegemma_c.a, lib/libedgegemma_c.so,
# include/edgegemma.h, the C examples and SHA256SUMS, with a .sha256 beside the archive. Binaries
# and libraries are stripped of debug info. Prints each file's size.
#
# The aarch64 binaries and static library come from Debian's Rust with crt-static (as
# tools/aarch64-e2e.sh tests them); the aarch64 shared library is built in a second target
# directory without crt-static (a cdylib cannot be linked statically), for glibc systems.
# Android apps load libraries built for bionic (aarch64-linux-android, with the NDK), which
# this script does not make; the static binary runs there.
#
# Usage: tools/release.sh [--skip-aarch64]      (DIST_DIR overrides dist/)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
aarch64=1
for arg in "$@"; do
    case "$arg" in
        --skip-aarch64) aarch64=0 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "release.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done
# shellcheck source=tools/cross-env.sh
. tools/cross-env.sh
dist="${DIST_DIR:-$repo/dist}"
version=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "edgegemma"))')
mkdir -p "$dist"

# package TRIPLE BIN_DIR STATIC_LIB SHARED_LIB STRIP
package() {
    local triple=$1 bindir=$2 alib=$3 solib=$4 strip=$5
    local name="edgegemma-$version-$triple"
    local stage="$dist/$name"
    rm -rf "$stage"
    mkdir -p "$stage/bin" "$stage/lib" "$stage/include" "$stage/examples/c"
    for b in edgegemma edgegemma-convert; do
        "$strip" -o "$stage/bin/$b" "$bindir/$b"
    done
    "$strip" --strip-debug -o "$stage/lib/libedgegemma_c.a" "$alib"
    "$strip" --strip-unneeded -o "$stage/lib/libedgegemma_c.so" "$solib"
    cp include/edgegemma.h "$stage/include/"
    cp examples/c/*.c examples/c/README.md "$stage/examples/c/"
    cp README.md "$stage/"
    (cd "$stage" && find . -type f ! -name SHA256SUMS | sort | sed 's|^\./||' |
        xargs sha256sum >SHA256SUMS)
    tar -C "$dist" -czf "$dist/$name.tar.gz" "$name"
    (cd "$dist" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
    echo
    echo "$dist/$name.tar.gz ($(stat -c %s "$dist/$name.tar.gz") bytes)"
    (cd "$stage" && for f in bin/edgegemma bin/edgegemma-convert lib/libedgegemma_c.a \
        lib/libedgegemma_c.so; do
        printf '  %-24s %10d bytes  %6.2f MiB\n' "$f" "$(stat -c %s "$f")" \
            "$(python3 -c "print($(stat -c %s "$f") / 1048576)")"
    done)
    echo "  sha256 $(cut -d' ' -f1 "$dist/$name.tar.gz.sha256")"
}

echo "== x86_64: cargo build --release"
cargo build --release -q -p edgegemma -p edgegemma-convert --bins
cargo build --release -q -p edgegemma-capi --lib
host="$repo/target/release"
package x86_64-linux-gnu "$host" "$host/libedgegemma_c.a" "$host/libedgegemma_c.so" strip

if [ "$aarch64" = 1 ]; then
    ensure_cross_toolchain
    echo
    echo "== aarch64: Debian's Rust, static (crt-static)"
    cross_cargo build --release -q --target "$cross_target" -p edgegemma -p edgegemma-convert --bins
    cross_cargo rustc --release -q --target "$cross_target" -p edgegemma-capi --lib \
        --crate-type staticlib
    arm="$(cross_out)"
    echo "== aarch64: shared library (dynamically linked, glibc)"
    dyn_dir="$repo/target/aarch64-cross-dyn"
    RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$dyn_dir" \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        /usr/bin/cargo rustc --release -q --target "$cross_target" -p edgegemma-capi --lib \
        --crate-type cdylib
    package aarch64-linux-gnu "$arm" "$arm/libedgegemma_c.a" \
        "$dyn_dir/$cross_target/release/libedgegemma_c.so" aarch64-linux-gnu-strip
fi
