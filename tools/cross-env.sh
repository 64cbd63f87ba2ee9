# Sourced by the cross-build scripts (tools/aarch64-e2e.sh, tools/release.sh): makes sure
# Debian's Rust with the arm64 standard library, the aarch64 linker and qemu-user are
# installed (the recipe tools/cross-test.sh uses), and defines `cross_cargo`, Debian's cargo
# set up for static aarch64 binaries. Static (`+crt-static`): dynamically linked aarch64
# programs hang in qemu-user at their first thread, and a static binary runs unchanged on
# Raspberry Pi OS 64-bit, other aarch64 Linux distributions and in an Android shell (Termux).

cross_target=aarch64-unknown-linux-gnu

have_cross_toolchain() {
    [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] &&
        [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] &&
        command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64-static >/dev/null &&
        command -v qemu-x86_64-static >/dev/null
}

ensure_cross_toolchain() {
    have_cross_toolchain && return 0
    echo "installing Debian's Rust with the arm64 std, the aarch64 linker and qemu-user"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
        rustc-web cargo-web libstd-rust-web-dev:arm64 \
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
    have_cross_toolchain || { echo "cross toolchain still incomplete after install" >&2; return 1; }
}

# Debian's cargo for aarch64, static, in its own target directory ($1...: cargo arguments).
cross_cargo() {
    RUSTC=/usr/bin/rustc \
        CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-$repo/target/aarch64-cross}" \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
        /usr/bin/cargo "$@"
}

cross_out() { echo "${CROSS_TARGET_DIR:-$repo/target/aarch64-cross}/$cross_target/release"; }
