#!/usr/bin/env bash
# Runs one cargo-fuzz target with the settings docs/fuzzing.md reports: no sanitizer (the
# parsers are safe Rust, bounds-checked) but debug assertions and overflow checks on, one
# process, 2 GiB RSS/malloc limit, 5 s per input, scratch files on tmpfs.
#
# Usage: fuzz/run.sh TARGET SECONDS [more libFuzzer flags]
# The working corpus is fuzz/target/work/TARGET (seeded from fuzz/corpus/TARGET); crashes
# land in fuzz/artifacts/TARGET. Stable toolchains need RUSTC_BOOTSTRAP=1 for the
# sanitizer-coverage flags cargo-fuzz passes (-Z flags); it is set here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
[ $# -ge 2 ] || { sed -n '5,9p' "$0"; exit 2; }
target=$1
secs=$2
shift 2
export RUSTC_BOOTSTRAP=1
export RAYON_NUM_THREADS=1
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
case "$target" in
    gguf_open | convert_safetensors) max_len=1048576 ;;
    tokenizer | state_load) max_len=262144 ;;
    chat_template | convert_config) max_len=16384 ;;
    *) echo "run.sh: unknown target $target" >&2; exit 2 ;;
esac
dict=()
if [ -f "dict/$target.dict" ]; then
    dict=(-dict="dict/$target.dict")
fi
work="target/work/$target"
mkdir -p "$work" "corpus/$target"
exec nice -n 19 cargo fuzz run -s none -a "$target" "$work" "corpus/$target" -- \
    -rss_limit_mb=2048 -timeout=5 -max_len="$max_len" -max_total_time="$secs" \
    -print_final_stats=1 "${dict[@]}" "$@"
