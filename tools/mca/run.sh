#!/usr/bin/env bash
# Static cost model of the aarch64 kernels: cycles per 32-weight block per token for each of
# our prefill (gemm) and decode microkernels and ggml's corresponding kernels, from llvm-mca on
# Cortex-A72 (Pi 4), Cortex-A76 (Pi 5) and Neoverse-N2 (an ARMv9 big core with i8mm, the
# A710/X2 generation). See docs/arm-cost-model.md.
#
# Usage: tools/mca/run.sh [LLAMA_CPP_SRC]
#   LLAMA_CPP_SRC: an unpacked llama.cpp source tree (default: the one the bench setup unpacks,
#   bench-out/llama.cpp/src, from PyPI llama-cpp-python 0.3.36's sdist; fetched with pip
#   download into target/mca when absent).
# Needs Debian's llvm-19 + clang-19, the aarch64 cross toolchain of tools/cross-test.sh, and
# libstdc++-12-dev-arm64-cross (ggml's repack.cpp is C++); installs what is missing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
out="$repo/target/mca"
mkdir -p "$out"

need=()
command -v llvm-mca-19 >/dev/null || need+=(llvm-19)
command -v clang-19 >/dev/null || need+=(clang-19)
[ -d /usr/aarch64-linux-gnu/include/c++ ] || need+=(libstdc++-12-dev-arm64-cross)
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] || need+=(rustc-web cargo-web libstd-rust-web-dev:arm64)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi

src="${1:-$repo/bench-out/llama.cpp/src}"
if [ ! -f "$src/ggml/src/ggml-cpu/arch/arm/quants.c" ]; then
    src="$out/llama-cpp-python/vendor/llama.cpp"
    if [ ! -f "$src/ggml/src/ggml-cpu/arch/arm/quants.c" ]; then
        python3 -m pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$out"
        tar -xzf "$out"/llama_cpp_python-0.3.36.tar.gz -C "$out"
        rm -rf "$out/llama-cpp-python"
        mv "$out/llama_cpp_python-0.3.36" "$out/llama-cpp-python"
    fi
fi

# CPU name for llvm (rustc -C target-cpu, llvm-mca -mcpu) and for clang's -mcpu (ggml's NEON
# code is compiled without SVE: with SVE enabled ggml takes its SVE paths instead).
cpus=(cortex-a72 cortex-a76 neoverse-n2)
declare -A clang_cpu=([cortex-a72]=cortex-a72 [cortex-a76]=cortex-a76 [neoverse-n2]=neoverse-n2+nosve)
inc=(-I"$src/ggml/include" -I"$src/ggml/src" -I"$src/ggml/src/ggml-cpu")
for cpu in "${cpus[@]}"; do
    echo "mca: assembling ggml for $cpu" >&2
    clang-19 --target=aarch64-linux-gnu -mcpu="${clang_cpu[$cpu]}" -O3 -DNDEBUG -S "${inc[@]}" \
        "$src/ggml/src/ggml-cpu/arch/arm/quants.c" -o "$out/ggml-quants-$cpu.s"
    clang++-19 --target=aarch64-linux-gnu -mcpu="${clang_cpu[$cpu]}" -O3 -DNDEBUG -std=c++17 -S \
        "${inc[@]}" "$src/ggml/src/ggml-cpu/arch/arm/repack.cpp" -o "$out/ggml-repack-$cpu.s"

    echo "mca: assembling our kernels for $cpu" >&2
    rm -rf "$out/rust-$cpu"
    RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$out/rust-$cpu" /usr/bin/cargo rustc -q --release \
        --target aarch64-unknown-linux-gnu -p edgegemma-kernels --lib -- --emit asm \
        -C target-cpu="$cpu" -C symbol-mangling-version=v0 -C codegen-units=1 -C debuginfo=0
    cp "$out/rust-$cpu"/aarch64-unknown-linux-gnu/release/deps/edgegemma_kernels-*.s "$out/rust-$cpu.s"
done

python3 "$repo/tools/mca/costmodel.py" "$out" | tee "$out/table.md"
