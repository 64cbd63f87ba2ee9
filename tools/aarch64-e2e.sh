#!/usr/bin/env bash
# End-to-end checks of the shipped programs on the CPUs people run them on, under qemu-user:
#
# 1. The C library: examples/c/api_check.c (every function of include/edgegemma.h) and
#    examples/c/stream.c, built with gcc against target/release/libedgegemma_c.a and with
#    aarch64-linux-gnu-gcc -static against the aarch64 one; stream's greedy text must equal
#    `edgegemma run --temp 0`'s for the same prompt, on each architecture (tiny model; and
#    the real Gemma 3 270M on x86_64).
# 2. One static aarch64 `edgegemma` and `edgegemma-convert` (Debian's Rust, glibc with
#    crt-static): the converter's output under qemu is byte-identical to the x86_64 one's;
#    every tiny model's logits (f32 weights, f32 KV cache) equal the transformers goldens to
#    1e-3 with the same argmax, as cortex-a53 and cortex-a72 (Pi 3 / Pi 4: neon kernels),
#    cortex-a76 (Pi 5: dotprod) and max (recent phones: i8mm); Q4_0 tiny models run on every
#    path within 0.1 of the x86_64 logits; a greedy run of the real Gemma 3 270M as
#    cortex-a76 gives the x86_64 build's tokens.
# 3. No SIGILL: the x86_64 build as qemu `-cpu Haswell` (AVX2, no AVX-512) picks avx2 and as
#    `-cpu Westmere` (no AVX) scalar, with the same tiny-model checks.
#
# Installs the cross toolchain and qemu when missing (tools/cross-env.sh). The real model is
# $EDGEGEMMA_REAL_MODEL or models/real/gemma3-270m-q4_k_m.gguf (tools/fetch-real-model.sh);
# without it those steps are skipped, saying so.
#
# Usage: tools/aarch64-e2e.sh      (E2E_DIR overrides the scratch directory)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
start=$(date +%s)
# shellcheck source=tools/cross-env.sh
. tools/cross-env.sh
ensure_cross_toolchain

work="${E2E_DIR:-$repo/target/aarch64-e2e}"
rm -rf "$work"
mkdir -p "$work/gguf"
host="$repo/target/release"
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "build: x86_64 (rustup) and static aarch64 (Debian's Rust $(/usr/bin/rustc --version | cut -d' ' -f2))"
cargo build --release -q -p edgegemma -p edgegemma-convert --bins
cargo build --release -q -p edgegemma-capi --lib
cross_cargo build --release -q --target "$cross_target" -p edgegemma -p edgegemma-convert --bins
# Only the static library: a cdylib cannot be linked with crt-static (release.sh builds the
# aarch64 shared library separately).
cross_cargo rustc --release -q --target "$cross_target" -p edgegemma-capi --lib --crate-type staticlib
arm="$(cross_out)"
for b in edgegemma edgegemma-convert; do
    ! aarch64-linux-gnu-readelf -l "$arm/$b" | grep -q INTERP || fail "$arm/$b is not static"
done
# The linker's notes about getaddrinfo/getpwuid_r in static glibc programs concern std code
# edgegemma never calls; they go to a log.
cflags=(-O2 -Wall -Wextra -Werror -std=c11 -Iinclude)
# The header is also valid C++ (apps in C++ include it directly).
if command -v g++ >/dev/null; then
    echo '#include "edgegemma.h"' | g++ -x c++ -std=c++11 -Wall -Werror -fsyntax-only -Iinclude - ||
        fail "include/edgegemma.h does not compile as C++"
else
    echo "SKIPPED: the C++ compile of the header (no g++)"
fi
for prog in stream api_check; do
    gcc "${cflags[@]}" "examples/c/$prog.c" "$host/libedgegemma_c.a" -lpthread -ldl -lm \
        -o "$work/$prog-x86_64"
    aarch64-linux-gnu-gcc "${cflags[@]}" -static "examples/c/$prog.c" "$arm/libedgegemma_c.a" \
        -lpthread -ldl -lm -o "$work/$prog-aarch64" 2>>"$work/link.log"
done

tiny_models=$(cd models/tiny && ls -d */ | tr -d /)
for m in $tiny_models; do
    for t in f32 q4_0 q8_0; do
        "$host/edgegemma-convert" hf "models/tiny/$m" -o "$work/gguf/$m-$t.gguf" -t "$t" \
            --force >/dev/null 2>&1 || fail "converting $m to $t"
    done
done

step "aarch64 edgegemma-convert under qemu: same bytes as the x86_64 build"
qemu-aarch64-static -cpu cortex-a72 "$arm/edgegemma-convert" hf models/tiny/gemma3-f32 \
    -o "$work/gemma3-f32-q4_0.aarch64.gguf" -t q4_0 --force >/dev/null 2>&1 ||
    fail "aarch64 edgegemma-convert"
cmp "$work/gemma3-f32-q4_0.aarch64.gguf" "$work/gguf/gemma3-f32-q4_0.gguf" ||
    fail "aarch64 and x86_64 converters wrote different files"
echo "gemma3-f32 -> q4_0: identical"

step "C API: api_check and stream == edgegemma run --temp 0"
prompt="Once upon a time"
same_text() { # label, then two files
    cmp -s "$2" "$3" || { diff <(od -c "$2") <(od -c "$3") | head -20; fail "$1: texts differ"; }
    echo "$1: identical ($(wc -c <"$2") bytes)"
}
for arch in x86_64 aarch64; do
    if [ "$arch" = x86_64 ]; then run=(); eg="$host/edgegemma"; else
        run=(qemu-aarch64-static -cpu cortex-a72); eg="$arm/edgegemma"; fi
    for m in gemma3-f32 recurrentgemma-f32; do
        "${run[@]}" "$work/api_check-$arch" "$work/gguf/$m-f32.gguf" "$work/state.bin" |
            tail -n 1 | sed "s/^/$arch $m: /"
    done
    for m in gemma3-f32 recurrentgemma-bf16; do
        args=(-m "$work/gguf/$m-q8_0.gguf" -p "$prompt" -n 24 --temp 0 -c 256)
        "${run[@]}" "$eg" run "${args[@]}" >"$work/run.txt" 2>/dev/null
        "${run[@]}" "$work/stream-$arch" "${args[@]}" >"$work/stream.txt" 2>/dev/null
        same_text "$arch $m stream vs run" "$work/run.txt" "$work/stream.txt"
    done
done

real="${EDGEGEMMA_REAL_MODEL:-$repo/models/real/gemma3-270m-q4_k_m.gguf}"
real_prompt="1, 2, 3, 4, 5,"
if [ -f "$real" ]; then
    args=(-m "$real" -p "$real_prompt" -n 16 --temp 0 -c 256)
    "$host/edgegemma" run "${args[@]}" >"$work/run.txt" 2>/dev/null
    "$work/stream-x86_64" "${args[@]}" >"$work/stream.txt" 2>/dev/null
    same_text "x86_64 gemma3-270m stream vs run" "$work/run.txt" "$work/stream.txt"
else
    echo "SKIPPED: the real model ($real) is not there (tools/fetch-real-model.sh)"
fi

step "tiny models against the transformers goldens, per CPU"
check=(python3 tools/check_tiny_logits.py --gguf-dir "$work/gguf")
python3 tools/check_tiny_logits.py --bin "$host/edgegemma" --gguf-dir "$work/gguf" \
    --type q4_0 --out "$work/logits/x86_64" --against none
for spec in aarch64:cortex-a53:neon aarch64:cortex-a72:neon aarch64:cortex-a76:dotprod \
    aarch64:max:i8mm x86_64:Haswell:avx2 x86_64:Westmere:scalar; do
    IFS=: read -r arch cpu kernels <<<"$spec"
    if [ "$arch" = aarch64 ]; then bin="$arm/edgegemma"; else bin="$host/edgegemma"; fi
    runner="qemu-$arch-static -cpu $cpu"
    "${check[@]}" --bin "$bin" --runner "$runner" --out "$work/logits/$cpu" \
        --expect-kernels "$kernels"
    # Quantized weights and activations: paths round differently, so no tight bound and no
    # argmax (near-ties); this is about every integer kernel running, not SIGILLing.
    "${check[@]}" --bin "$bin" --runner "$runner" --out "$work/logits/$cpu" --type q4_0 \
        --against "$work/logits/x86_64" --tol 0.1 --no-argmax
done

step "real Gemma 3 270M: aarch64 (cortex-a76) greedy tokens == x86_64's"
if [ -f "$real" ]; then
    ids() { python3 -c 'import json,sys; print(json.load(sys.stdin)["generated_ids"])'; }
    args=(run -m "$real" -p "$real_prompt" -n 12 --temp 0 -c 256 --json)
    want=$("$host/edgegemma" "${args[@]}" | ids)
    got=$(qemu-aarch64-static -cpu cortex-a76 "$arm/edgegemma" "${args[@]}" | ids)
    echo "x86_64:  $want"
    echo "aarch64: $got"
    [ "$want" = "$got" ] || fail "aarch64 greedy tokens differ from x86_64's"
else
    echo "SKIPPED: the real model ($real) is not there (tools/fetch-real-model.sh)"
fi

echo
echo "aarch64-e2e: all checks passed in $(( $(date +%s) - start )) s"
