#!/usr/bin/env bash
# Installs llama.cpp's Python binding, llama-cpp-python (pinned), compiled from source for this
# CPU (-DGGML_NATIVE=ON), plus HF `tokenizers`, into the repo's own `.venv` (gitignored).
# Used by the scripts that make reference data from llama.cpp (tools/gen_tokenizer_ids.py,
# tools/gen_llamacpp_greedy.py) and for speed comparisons.
#
# Needs python3 (with venv) and a C/C++ compiler (Debian: build-essential); cmake and ninja
# come from PyPI inside pip's build environment. The compile takes a while: about 25 minutes
# on 2 busy cores (x86-64); pip keeps the built wheel in its cache, so a second run on the
# same machine takes seconds.
#
# Usage: tools/setup-llamacpp.sh [--rebuild]
#   --rebuild   compile again even if the pinned version is installed (ignores pip's cache)
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="0.3.36"
TOKENIZERS="tokenizers==0.23.3"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"

rebuild=0
for arg in "$@"; do
    case "$arg" in
        --rebuild) rebuild=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "setup-llamacpp.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if ! command -v c++ >/dev/null 2>&1; then
    echo "setup-llamacpp.sh: no C++ compiler found (Debian: apt-get install build-essential)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

"${pip[@]}" install --quiet "$TOKENIZERS"

installed="$("$venv/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)' 2>/dev/null || true)"
if [ "$installed" = "$LLAMA_CPP_PYTHON_VERSION" ] && [ "$rebuild" = 0 ]; then
    echo "llama-cpp-python $installed already in $venv"
    exit 0
fi

extra=()
if [ "$rebuild" = 1 ]; then
    extra=(--no-cache-dir --force-reinstall --no-deps)
fi
start=$(date +%s)
echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION natively into $venv (takes many minutes)..."
CMAKE_ARGS="-DGGML_NATIVE=ON ${CMAKE_ARGS:-}" \
    "${pip[@]}" install --no-binary llama-cpp-python "${extra[@]}" \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
"$venv/bin/python" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__, "ready")'
echo "setup-llamacpp.sh: done in $(( $(date +%s) - start )) s"
