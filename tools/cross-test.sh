#!/usr/bin/env bash
# Cross-builds the kernels crate's tests for aarch64 with Debian's Rust and runs them under
# qemu-user as three CPUs, so every aarch64 kernel path runs against the scalar reference:
#   cortex-a72  Raspberry Pi 4      paths scalar, neon
#   cortex-a76  Raspberry Pi 5      paths scalar, neon, dotprod
#   max         recent phones       paths scalar, neon, dotprod, i8mm
# Installs the Debian cross toolchain and qemu when missing (Debian's rustc-web with the arm64
# std, gcc-aarch64-linux-gnu, qemu-user-static; see CONTRIBUTING.md).
# Test binaries are linked statically: dynamically linked ones hang in qemu-user at their
# first thread. Doctests cannot run through the runner, so only --lib --tests.
#
# Usage: tools/cross-test.sh        (CROSS_TARGET_DIR overrides the build directory)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
start=$(date +%s)

have_toolchain() {
    [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] &&
        [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] &&
        command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64-static >/dev/null
}

if ! have_toolchain; then
    echo "cross-test: installing Debian's Rust with the arm64 std, the aarch64 linker and qemu"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
        rustc-web cargo-web libstd-rust-web-dev:arm64 \
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
    have_toolchain || { echo "cross-test: toolchain still incomplete after install" >&2; exit 1; }
fi

target=aarch64-unknown-linux-gnu
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-$repo/target/aarch64-cross}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
cargo=(/usr/bin/cargo test --release --target "$target" -p edgegemma-kernels --lib --tests)

echo "cross-test: $(/usr/bin/rustc --version), $(qemu-aarch64-static --version | head -n1)"
"${cargo[@]}" --no-run

for spec in cortex-a72:scalar,neon cortex-a76:scalar,neon,dotprod max:scalar,neon,dotprod,i8mm; do
    cpu="${spec%%:*}"
    echo
    echo "== aarch64 kernel tests as -cpu $cpu (expecting paths ${spec#*:})"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -cpu $cpu" \
        EDGEGEMMA_EXPECT_PATHS="${spec#*:}" "${cargo[@]}"
done
echo
echo "cross-test: all three CPUs passed in $(( $(date +%s) - start )) s"
