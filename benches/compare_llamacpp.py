#!/usr/bin/env python3
"""Speed and memory of `edgegemma bench` against llama.cpp's `llama-bench` on the same GGUF files.

Usage: benches/compare_llamacpp.py [options]        (python3 >= 3.8, standard library only)

What it does, on a fresh machine:
 1. builds `edgegemma` (and `edgegemma-convert`) with `cargo build --release`;
 2. builds llama.cpp's `llama-bench` (and `llama-quantize`) natively from the llama.cpp sources
    vendored in the PyPI sdist of `llama-cpp-python` (pinned below) into bench-out/llama.cpp/
    (gitignored, cached: later runs reuse it). cmake comes from PyPI into a venv there when the
    system has none; a C/C++ compiler must be installed (Debian: `apt-get install build-essential`);
 3. gets the shipped Gemma 3 270M Q4_K_M GGUF (tools/fetch-real-model.sh) and makes Q8_0 and Q4_0
    files from it in bench-out/models/ (see --quantizer; requantizing from Q4_K_M loses quality,
    but only speed is compared here, and both programs read the very same file);
 4. for every file and thread count runs `edgegemma bench` and `llama-bench` with the same
    -p/-n/-r, alternating (E L E L ...) for --rounds rounds so slow drifts in machine load hit
    both alike; peak RSS of each process is taken from the kernel (wait4 ru_maxrss);
 5. prints a markdown table (medians over rounds) with the t/s ratios, the peak RSS ratio and
    decode speed as a share of the memory-bandwidth limit (weight bytes per token / read
    bandwidth measured by `edgegemma bench --mem-bw` in the same run), and writes it, with the
    raw rows, to bench-out/compare-<time>.{md,jsonl}.

Run it on an idle machine: other work on the cores skews both programs, not always alike.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
CMAKE_PYPI = "cmake==3.31.6"

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench-out"
LLAMA_DIR = OUT / "llama.cpp"
SHIPPED = REPO / "models" / "real" / "gemma3-270m-q4_k_m.gguf"


def log(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"compare: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    r = subprocess.run([str(c) for c in cmd], **kw)
    if r.returncode != 0:
        die(f"command failed with status {r.returncode}: {' '.join(str(c) for c in cmd)}")
    return r


# ---------------------------------------------------------------------------------------------
# llama.cpp from the llama-cpp-python sdist


def find_cmake():
    """System cmake if new enough, else one from PyPI in bench-out/llama.cpp/venv."""
    sys_cmake = shutil.which("cmake")
    if sys_cmake:
        out = subprocess.run([sys_cmake, "--version"], capture_output=True, text=True).stdout
        try:
            major, minor = (int(x) for x in out.split()[2].split(".")[:2])
            if (major, minor) >= (3, 16):
                return sys_cmake
        except (IndexError, ValueError):
            pass
    venv = LLAMA_DIR / "venv"
    cmake = venv / "bin" / "cmake"
    if not cmake.exists():
        if not (venv / "bin" / "python").exists():
            run([sys.executable, "-m", "venv", venv])
        run([venv / "bin" / "python", "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", CMAKE_PYPI])
    return str(cmake)


def setup_llama_cpp(jobs):
    """Builds llama-bench and llama-quantize once; returns the directory holding them."""
    bin_dir = LLAMA_DIR / "build" / "bin"
    stamp = LLAMA_DIR / "built-from"
    if (bin_dir / "llama-bench").exists() and (bin_dir / "llama-quantize").exists() \
            and stamp.exists() and stamp.read_text().strip() == LLAMA_CPP_PYTHON:
        return bin_dir
    for tool in ("cc", "c++"):
        if not shutil.which(tool):
            die(f"no {tool} on PATH: install a C/C++ compiler (Debian: apt-get install build-essential)")
    LLAMA_DIR.mkdir(parents=True, exist_ok=True)
    src = LLAMA_DIR / "src"
    if not (src / "CMakeLists.txt").exists():
        dl = LLAMA_DIR / "sdist"
        dl.mkdir(exist_ok=True)
        sdists = sorted(dl.glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            pip_py = sys.executable
            venv_py = LLAMA_DIR / "venv" / "bin" / "python"
            if venv_py.exists():
                pip_py = str(venv_py)
            run([pip_py, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--no-binary", LLAMA_CPP_PYTHON.split("==")[0], "-d", dl,
                 LLAMA_CPP_PYTHON])
            sdists = sorted(dl.glob("llama_cpp_python-*.tar.gz"))
            if not sdists:
                die(f"pip download of {LLAMA_CPP_PYTHON} produced no sdist in {dl}")
        tmp = LLAMA_DIR / "unpack"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(sdists[0]) as tf:
            # The sdist is a plain source tree; refuse absolute or parent-relative members.
            for m in tf.getmembers():
                if m.name.startswith("/") or ".." in Path(m.name).parts:
                    die(f"{sdists[0]}: unsafe path in archive: {m.name}")
            tf.extractall(tmp)
        vendored = next(tmp.glob("*/vendor/llama.cpp"), None)
        if vendored is None or not (vendored / "CMakeLists.txt").exists():
            die(f"{sdists[0]}: no vendor/llama.cpp in the sdist")
        shutil.rmtree(src, ignore_errors=True)
        shutil.move(str(vendored), str(src))
        shutil.rmtree(tmp, ignore_errors=True)
    cmake = find_cmake()
    build = LLAMA_DIR / "build"
    run([cmake, "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
         "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
         "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_TOOLS=ON",
         "-DBUILD_SHARED_LIBS=OFF", "-Wno-dev"], stdout=subprocess.DEVNULL)
    run([cmake, "--build", build, "--config", "Release", "-j", str(jobs),
         "--target", "llama-bench", "llama-quantize"], stdout=subprocess.DEVNULL)
    if not (bin_dir / "llama-bench").exists():
        die(f"llama-bench was not built in {bin_dir}")
    stamp.write_text(LLAMA_CPP_PYTHON + "\n")
    return bin_dir
