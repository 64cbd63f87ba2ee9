#!/usr/bin/env bash
# Integration + load test of `edgegemma serve` on the real Gemma 3 270M with the official
# `openai` Python client (installed into .venv-serve-test) and curl. Loopback only.
# Usage: tools/serve_test.sh   (SERVE_CLIENTS / SERVE_REQUESTS size the load test; 8 x 50)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
model="${EDGEGEMMA_REAL_MODEL:-$repo/models/real/gemma3-270m-q4_k_m.gguf}"
[ -f "$model" ] || tools/fetch-real-model.sh
venv="$repo/.venv-serve-test"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import openai" 2>/dev/null || "$venv/bin/pip" install -q "openai==3.51.0"
if ! command -v curl >/dev/null; then
    # A fresh machine may lack curl: install it from Debian's packages (as cross-env.sh does).
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q curl >/dev/null
fi
command -v curl >/dev/null || { echo "serve_test.sh: curl is needed and could not be installed" >&2; exit 1; }
cargo build --release --bin edgegemma
exec "$venv/bin/python" tools/serve_test.py target/release/edgegemma "$model"
