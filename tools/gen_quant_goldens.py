#!/usr/bin/env python3
"""Writes the golden files kernels/tests/goldens.rs checks the quant formats against.

From fixed-seed inputs (plus hand-made edge cases) it writes, per format and case, the quantized
bytes and the dequantized f32 produced by the reference implementations:

* gguf-py 0.19 (`gguf.quants.quantize` / `dequantize`) quantizes F16, BF16, Q4_0, Q4_1, Q5_0,
  Q5_1, Q8_0 and dequantizes those plus Q4_K, Q5_K, Q6_K.
* gguf-py has no quantizer for Q4_K, Q5_K, Q6_K, Q8_K, Q8_1 (and no dequantizer for Q8_K,
  Q8_1). Their bytes come from llama.cpp's reference C quantizers (`quantize_row_*_ref` in
  ggml-quants.c, what llama.cpp's converter uses when there is no importance matrix), compiled
  with gcc in a throw-away directory outside the repo. Q8_K is dequantized by ggml's
  `dequantize_row_q8_K`; Q8_1 (ggml has no dequantizer for it) by numpy as `d * q`.

The C step needs the llama.cpp sources: pass `--llama-cpp DIR` (a tree containing
ggml/src/ggml-quants.c, e.g. `vendor/llama.cpp` of the llama-cpp-python 0.3.36 sdist) or
`--fetch-llama-cpp` (downloads that sdist with pip into a temporary directory; needs gcc).
Without either, the committed C-made bytes are kept (the inputs must then be unchanged) and
everything else is regenerated and re-checked.

Run from anywhere; without gguf 0.19.0 importable it creates the repo's .venv from
tools/requirements-goldens.txt and re-runs itself there:

    python3 tools/gen_quant_goldens.py [--llama-cpp DIR | --fetch-llama-cpp]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "kernels" / "tests" / "data" / "quants"
REQUIREMENTS = REPO / "tools" / "requirements-goldens.txt"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
GGUF_VERSION = "0.19.0"


def ensure_environment() -> None:
    """Re-executes inside the repo's .venv (created from the pinned requirements) if needed."""
    try:
        import gguf  # noqa: F401
        import numpy  # noqa: F401
        from importlib.metadata import version

        if version("gguf") == GGUF_VERSION:
            return
    except ImportError:
        pass
    venv = REPO / ".venv"
    python = venv / "bin" / "python"
    if Path(sys.executable).resolve() == python.resolve() and os.environ.get("GEN_GOLDENS_REEXEC"):
        sys.exit(f"error: {python} still lacks gguf=={GGUF_VERSION} after installing {REQUIREMENTS}")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    os.environ["GEN_GOLDENS_REEXEC"] = "1"
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


ensure_environment()

import numpy as np  # noqa: E402
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf import quants  # noqa: E402

# ggml formats the Rust crate implements, with the source of golden quantized bytes.
GGUF_PY_QUANT = {"f32": T.F32, "f16": T.F16, "bf16": T.BF16, "q4_0": T.Q4_0, "q4_1": T.Q4_1,
                 "q5_0": T.Q5_0, "q5_1": T.Q5_1, "q8_0": T.Q8_0}
C_QUANT = ["q8_1", "q4_K", "q5_K", "q6_K", "q8_K"]
# Float formats only see the special-float case; quantized formats never do (NaN/inf are
# undefined behaviour in ggml's quantizers).
FLOAT_FORMATS = ["f32", "f16", "bf16"]
FORMATS = ["f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", *C_QUANT]
BLOCK = {"f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q4_0": (32, 18), "q4_1": (32, 20),
         "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34), "q8_1": (32, 36),
         "q4_K": (256, 144), "q5_K": (256, 176), "q6_K": (256, 210), "q8_K": (256, 292)}


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

def make_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240611)
    f = np.float32

    gauss = (rng.standard_normal(1024) * 0.5).astype(f)

    # Trained-weight-like: small gaussian with a few large outliers.
    weights = (rng.standard_normal(1024) * 0.02).astype(f)
    weights[rng.choice(1024, 6, replace=False)] *= 40

    sbs = []  # 256-value super-blocks, each one edge case for every block size
    sbs.append(np.zeros(256, f))                                   # all zero
    sbs.append(np.full(256, 0.37, f))                              # positive constant
    sbs.append(np.full(256, -1.25, f))                             # negative constant
    sbs.append((rng.standard_normal(256) * 1e-5).astype(f))        # tiny (f16 scale subnormal)
    sbs.append((rng.standard_normal(256) * 1e-30).astype(f))       # tiny (f16 scale flushes to 0)
    outl = rng.standard_normal(256).astype(f)                      # large outliers
    outl[[5, 70, 133, 250]] = [1000.0, -850.0, 640.0, -1200.0]
    sbs.append(outl)
    negmax = rng.uniform(-1.0, 0.2, 256).astype(f)                 # largest magnitude negative
    negmax[[17, 99, 200]] = [-3.0, -2.5, -4.0]
    sbs.append(negmax)
    sbs.append(rng.uniform(0.5, 2.0, 256).astype(f))               # all positive (min > 0)
    sbs.append(rng.uniform(-2.0, -0.5, 256).astype(f))             # all negative

    # One edge case per 32-value sub-block inside one super-block.
    mixed = [np.zeros(32, f), np.full(32, 2.0, f), (rng.standard_normal(32) * 1e-8).astype(f),
             rng.standard_normal(32).astype(f),
             np.tile(np.array([1.0, -1.0], f), 16),                # +-max tie: first one wins
             np.concatenate([[50.0], rng.standard_normal(31) * 0.01]).astype(f),
             -rng.uniform(0.1, 1.0, 32).astype(f),
             np.arange(-16, 16, dtype=f) / 4]                      # exact grid values
    sbs.append(np.concatenate(mixed))

    # Rounding ties: scales of exactly 1 so x/d lands on .5 (round-half-away vs -even, trunc).
    ties = [np.concatenate([[127.0], np.arange(-15, 16, dtype=f) + 0.5]),      # q8_0/q8_1: d = 1
            np.concatenate([[-127.0], np.arange(15, -16, -1, dtype=f) - 0.5]),
            np.concatenate([[-8.0], np.linspace(-7.5, 7.5, 31)]),               # q4_0: d = 1
            np.concatenate([[-16.0], np.arange(-15, 16, dtype=f) / 2]),         # q5_0: d = 1
            np.concatenate([[0.0, 15.0], np.arange(30, dtype=f) / 2]),          # q4_1: d = 1
            np.concatenate([[0.0, 31.0], np.arange(30, dtype=f) + 0.5]),        # q5_1: d = 1
            np.arange(32, dtype=f) - 15.5,
            np.concatenate([[-127.0], np.arange(31, dtype=f) * 4 - 60.5])]       # q8_K: iscale 1
    sbs.append(np.concatenate(ties).astype(f))
    edge = np.concatenate(sbs).astype(f)

    # Float-only edge values (F32/F16/BF16), 256 of them.
    specials = np.array([
        0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan,
        65504.0, 65519.0, 65520.0, 70000.0, -1e10, 3.4028235e38, -3.4028235e38, 1e-45,
        6.0e-8, 5.9604645e-8, 2.9802322e-8, 2.98e-8, 6.1035156e-05, 6.1e-05, 1e-10, -1e-10,
        1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11,
        1.0 + 2.0 ** -8 + 2.0 ** -20, -(1.0 + 2.0 ** -8), 3.3895314e38, 3.39e38,
    ], dtype=f)
    nan_payloads = np.array([0x7F800001, 0xFFC12345, 0x7FBFFFFF, 0x7FC00000], np.uint32).view(f)
    rest = 256 - len(specials) - len(nan_payloads)
    spread = (rng.standard_normal(rest) * np.exp2(rng.integers(-30, 30, rest))).astype(f)
    floats = np.concatenate([specials, nan_payloads, spread]).astype(f)

    inputs = {"gauss": gauss, "weights": weights, "edge": edge, "floats": floats}
    for name, x in inputs.items():
        assert x.dtype == np.float32 and x.size % 256 == 0, name
    return inputs


# The "bulk" case: many super-blocks so that rarely taken branches of the k-quant searches
# (e.g. the last step of make_qkx2_quants wins in ~0.5% of Q4_K super-blocks) are exercised.
# Too big to commit, it is regenerated by the Rust test from this exact integer recipe (no
# transcendental functions, so both languages get identical f32 values), and only FNV-1a
# hashes of each BULK_CHUNK values' quantized bytes / dequantized f32 are stored.
BULK_N = 256 * 1024
BULK_CHUNK = 4096
BULK_SEED = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1


def bulk_input() -> np.ndarray:
    """xorshift64* draws: per 32 values an integer offset, per 256 a power-of-two scale
    2^-8..2^7; each value is a sum of four 22-bit uniforms (near-gaussian), x64 for 1 in 256."""
    state = BULK_SEED

    def draw() -> int:
        nonlocal state
        state ^= state >> 12
        state ^= (state << 25) & MASK64
        state ^= state >> 27
        return (state * 0x2545F4914F6CDD1D) & MASK64

    ints = np.empty(BULK_N, dtype=np.int64)
    exps = np.empty(BULK_N, dtype=np.int64)
    exp = offset = 0
    for i in range(BULK_N):
        if i % 256 == 0:
            exp = (draw() >> 60) - 8 - 22
        if i % 32 == 0:
            offset = ((draw() >> 61) - 3) << 21
        v = sum(draw() >> 42 for _ in range(4)) - 2 * ((1 << 22) - 1) + offset
        if (draw() >> 56) == 0:
            v *= 64
        ints[i] = v
        exps[i] = exp
    # |v| < 2^30 with at most 24 significant bits, times a power of two: exact in f32.
    return np.ldexp(ints.astype(np.float64), exps).astype(np.float32)


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return f"{h:016x}"


def chunk_hashes(data: bytes, n_chunks: int) -> str:
    size = len(data) // n_chunks
    return ",".join(fnv1a64(data[i * size:(i + 1) * size]) for i in range(n_chunks))


def cases_for(fmt: str) -> list[str]:
    if fmt in FLOAT_FORMATS:
        return ["floats"] if fmt == "f32" else ["gauss", "weights", "edge", "floats"]
    return ["gauss", "weights", "edge"]


# ---------------------------------------------------------------------------------------------
# llama.cpp reference C quantizers (throw-away harness outside the repo)
# ---------------------------------------------------------------------------------------------

HARNESS_C = r"""
// Runs ggml's reference quantizers/dequantizers on a raw f32 file.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml-quants.h"

// ggml.c symbols ggml-quants.c references but the reference functions never call.
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d\n", file, line); abort();
}
size_t ggml_row_size(enum ggml_type t, int64_t n) { (void)t; (void)n; abort(); }
size_t ggml_type_size(enum ggml_type t) { (void)t; abort(); }
const char * ggml_type_name(enum ggml_type t) { (void)t; abort(); }

static void * slurp(const char * path, long * len) {
    FILE * f = fopen(path, "rb"); if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END); *len = ftell(f); fseek(f, 0, SEEK_SET);
    void * buf = calloc(1, *len + 1);
    if (fread(buf, 1, *len, f) != (size_t)*len) { perror(path); exit(1); }
    fclose(f); return buf;
}

int main(int argc, char ** argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s quant|dequant TYPE IN OUT\n", argv[0]); return 2; }
    const char * op = argv[1], * type = argv[2];
    long in_len; void * in = slurp(argv[3], &in_len);
    size_t bs = 0; int qk = 0;
#define T(tname, block, blk) if (!strcmp(type, tname)) { bs = sizeof(block); qk = blk; }
    T("q4_0", block_q4_0, QK4_0) T("q4_1", block_q4_1, QK4_1) T("q5_0", block_q5_0, QK5_0)
    T("q5_1", block_q5_1, QK5_1) T("q8_0", block_q8_0, QK8_0) T("q8_1", block_q8_1, QK8_1)
    T("q4_K", block_q4_K, QK_K) T("q5_K", block_q5_K, QK_K) T("q6_K", block_q6_K, QK_K)
    T("q8_K", block_q8_K, QK_K)
    if (!bs) { fprintf(stderr, "unknown type %s\n", type); return 2; }
    void * out; size_t out_len; int64_t k;
    if (!strcmp(op, "quant")) {
        k = in_len / 4; out_len = k / qk * bs; out = calloc(1, out_len);
#define QR(tname, fn, block) if (!strcmp(type, tname)) fn((const float *)in, (block *)out, k);
        QR("q4_0", quantize_row_q4_0_ref, block_q4_0) QR("q4_1", quantize_row_q4_1_ref, block_q4_1)
        QR("q5_0", quantize_row_q5_0_ref, block_q5_0) QR("q5_1", quantize_row_q5_1_ref, block_q5_1)
        QR("q8_0", quantize_row_q8_0_ref, block_q8_0) QR("q8_1", quantize_row_q8_1_ref, block_q8_1)
        QR("q4_K", quantize_row_q4_K_ref, block_q4_K) QR("q5_K", quantize_row_q5_K_ref, block_q5_K)
        QR("q6_K", quantize_row_q6_K_ref, block_q6_K) QR("q8_K", quantize_row_q8_K_ref, block_q8_K)
    } else {
        if (!strcmp(type, "q8_1")) { fprintf(stderr, "ggml has no q8_1 dequantizer\n"); return 2; }
        k = in_len / bs * qk; out_len = k * 4; out = calloc(1, out_len);
#define DQ(tname, fn, block) if (!strcmp(type, tname)) fn((const block *)in, (float *)out, k);
        DQ("q4_0", dequantize_row_q4_0, block_q4_0) DQ("q4_1", dequantize_row_q4_1, block_q4_1)
        DQ("q5_0", dequantize_row_q5_0, block_q5_0) DQ("q5_1", dequantize_row_q5_1, block_q5_1)
        DQ("q8_0", dequantize_row_q8_0, block_q8_0) DQ("q4_K", dequantize_row_q4_K, block_q4_K)
        DQ("q5_K", dequantize_row_q5_K, block_q5_K) DQ("q6_K", dequantize_row_q6_K, block_q6_K)
        DQ("q8_K", dequantize_row_q8_K, block_q8_K)
    }
    FILE * f = fopen(argv[4], "wb");
    if (!f || fwrite(out, 1, out_len, f) != out_len) { perror(argv[4]); return 1; }
    fclose(f);
    return 0;
}
"""

# -ffp-contract=off: no fused multiply-adds, so every f32 operation rounds like the C source
# reads (the Rust reference never fuses either). gcc's default for GNU C would fuse on targets
# with FMA (e.g. -march=native builds of llama.cpp), which can move a rounding boundary.
CFLAGS = ["-O2", "-std=gnu11", "-ffp-contract=off", "-fno-fast-math"]


class CReference:
    def __init__(self, llama_cpp: Path, workdir: Path):
        ggml = llama_cpp / "ggml"
        src = ggml / "src" / "ggml-quants.c"
        if not src.is_file():
            sys.exit(f"error: {src} not found (--llama-cpp must point at a llama.cpp source tree)")
        self.workdir = workdir
        harness = workdir / "harness.c"
        harness.write_text(HARNESS_C)
        self.exe = workdir / "quant_harness"
        incs = ["-I", str(ggml / "include"), "-I", str(ggml / "src")]
        subprocess.run(["gcc", *CFLAGS, *incs, "-o", str(self.exe), str(harness), str(src), "-lm"],
                       check=True)
        self.description = (
            f"ggml-quants.c of {llama_cpp} compiled with gcc {gcc_version()} "
            f"{' '.join(CFLAGS)} (x86-64 baseline)")

    def run(self, op: str, fmt: str, data: bytes) -> bytes:
        src = self.workdir / "in.bin"
        dst = self.workdir / "out.bin"
        src.write_bytes(data)
        subprocess.run([str(self.exe), op, fmt, str(src), str(dst)], check=True)
        return dst.read_bytes()


def gcc_version() -> str:
    out = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def fetch_llama_cpp(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--no-binary", "llama-cpp-python", LLAMA_CPP_PYTHON, "-d", str(tmp)], check=True)
    (sdist,) = glob.glob(str(tmp / "llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/ggml/" in m.name]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp, members=members, **safe)
    (root,) = glob.glob(str(tmp / "llama_cpp_python-*" / "vendor" / "llama.cpp"))
    return Path(root)


# ---------------------------------------------------------------------------------------------
# gguf-py / numpy references
# ---------------------------------------------------------------------------------------------

def gguf_quantize(fmt: str, x: np.ndarray) -> bytes:
    with np.errstate(over="ignore"):  # values beyond the f16 range become inf, as intended
        return quants.quantize(x, GGUF_PY_QUANT[fmt]).view(np.uint8).tobytes()


def gguf_dequantize(fmt: str, data: bytes) -> np.ndarray:
    qtype = {**GGUF_PY_QUANT, "q4_K": T.Q4_K, "q5_K": T.Q5_K, "q6_K": T.Q6_K}[fmt]
    raw = np.frombuffer(data, dtype=np.uint8).copy()
    out = quants.dequantize(raw, qtype)
    return np.ascontiguousarray(out, dtype=np.float32).reshape(-1)


def numpy_dequantize_q8_1(data: bytes) -> np.ndarray:
    blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, 36)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 4:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def numpy_dequantize_q8_k(data: bytes) -> np.ndarray:
    blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, 292)
    d = blocks[:, 0:4].copy().view(np.float32)
    q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)


def same_f32(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all(a.view(np.uint32) == b.view(np.uint32)))


def differing_blocks(fmt: str, a: bytes, b: bytes) -> int:
    size = BLOCK[fmt][1]
    return sum(a[i:i + size] != b[i:i + size] for i in range(0, len(a), size))


# ---------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--llama-cpp", type=Path, help="llama.cpp source tree for the C reference")
    src.add_argument("--fetch-llama-cpp", action="store_true",
                     help=f"download the {LLAMA_CPP_PYTHON} sdist for the C reference")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs()
    manifest_lines = []
    notes = []

    with tempfile.TemporaryDirectory(prefix="quant-goldens-") as tmpdir:
        tmp = Path(tmpdir)
        cref = None
        if args.llama_cpp or args.fetch_llama_cpp:
            root = args.llama_cpp.resolve() if args.llama_cpp else fetch_llama_cpp(tmp / "sdist")
            (tmp / "build").mkdir()
            cref = CReference(root, tmp / "build")
            c_note = cref.description
            if args.fetch_llama_cpp:
                c_note = c_note.replace(str(root), f"{LLAMA_CPP_PYTHON} sdist vendor/llama.cpp")
            elif "llama_cpp_python-0.3.36" in str(root):
                c_note = c_note.replace(str(root), f"{LLAMA_CPP_PYTHON} sdist vendor/llama.cpp")
        else:
            c_note = previous_c_note()

        for case, x in inputs.items():
            path = OUT / f"input_{case}.f32"
            data = x.tobytes()
            if cref is None and path.exists() and path.read_bytes() != data:
                sys.exit(f"error: regenerated input {path.name} differs from the committed one; "
                         "the C-reference goldens must be regenerated (--llama-cpp/--fetch-llama-cpp)")
            path.write_bytes(data)
            manifest_lines.append(f"input {case} {x.size} {path.name}")

        previous = previous_records()
        for fmt in ["f32", *FORMATS]:
            for case in cases_for(fmt):
                x = inputs[case]
                qpath = OUT / f"{fmt}_{case}.q"
                dpath = OUT / f"{fmt}_{case}.deq.f32"
                if fmt in GGUF_PY_QUANT:
                    qbytes = gguf_quantize(fmt, x)
                    qsrc = "gguf-py"
                    if cref is not None and fmt.startswith("q"):
                        cbytes = cref.run("quant", fmt, x.tobytes())
                        if cbytes != qbytes:
                            notes.append(f"{fmt} {case}: gguf-py and ggml C quantizers differ in "
                                         f"{differing_blocks(fmt, qbytes, cbytes)} blocks")
                        else:
                            qsrc = "gguf-py=ggml-c-ref"
                elif cref is not None:
                    qbytes = cref.run("quant", fmt, x.tobytes())
                    qsrc = "ggml-c-ref"
                else:
                    if not qpath.exists():
                        sys.exit(f"error: {qpath} missing; run with --llama-cpp or --fetch-llama-cpp")
                    qbytes = qpath.read_bytes()
                    qsrc = "ggml-c-ref"
                bs, ts = BLOCK[fmt]
                assert len(qbytes) == x.size // bs * ts, (fmt, case, len(qbytes))

                if fmt == "q8_1":
                    deq, dsrc = numpy_dequantize_q8_1(qbytes), "numpy"
                elif fmt == "q8_K":
                    deq, dsrc = numpy_dequantize_q8_k(qbytes), "numpy"
                    if cref is not None:
                        cdeq = np.frombuffer(cref.run("dequant", fmt, qbytes), dtype=np.float32)
                        assert same_f32(cdeq, deq), f"q8_K {case}: ggml and numpy dequantize differ"
                        dsrc = "ggml-c=numpy"
                else:
                    deq, dsrc = gguf_dequantize(fmt, qbytes), "gguf-py"
                    if cref is not None and fmt.startswith("q"):
                        cdeq = np.frombuffer(cref.run("dequant", fmt, qbytes), dtype=np.float32)
                        if same_f32(cdeq, deq):
                            dsrc = "gguf-py=ggml-c"
                        else:
                            notes.append(f"{fmt} {case}: gguf-py and ggml C dequantizers differ")
                assert deq.size == x.size, (fmt, case)
                deq_bytes = deq.astype(np.float32).tobytes()
                old = previous.get(("golden", fmt, case))
                if (cref is None and old and qpath.exists() and dpath.exists()
                        and qpath.read_bytes() == qbytes and dpath.read_bytes() == deq_bytes):
                    qsrc, dsrc = old[5], old[7]  # unchanged: keep the earlier cross-check labels
                qpath.write_bytes(qbytes)
                dpath.write_bytes(deq_bytes)
                manifest_lines.append(
                    f"golden {fmt} {case} {x.size} {qpath.name} {qsrc} {dpath.name} {dsrc}")

        manifest_lines += bulk_lines(cref)

    write_manifest(manifest_lines, c_note, notes)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT.relative_to(REPO)}")
    for n in notes:
        print("note:", n)


def previous_records() -> dict[tuple[str, ...], list[str]]:
    """The committed manifest's records, keyed by ("golden", fmt, case) / ("bulk", fmt)."""
    records = {}
    manifest = OUT / "manifest.txt"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            f = line.split()
            if f and f[0] == "golden":
                records[("golden", f[1], f[2])] = f
            elif f and f[0] == "bulk":
                records[("bulk", f[1])] = f
    return records


def bulk_lines(cref: CReference | None) -> list[str]:
    x = bulk_input()
    n_chunks = BULK_N // BULK_CHUNK
    previous = {k[1]: v for k, v in previous_records().items() if k[0] == "bulk"}
    lines = []
    for fmt in FORMATS:
        if fmt in GGUF_PY_QUANT:
            qbytes, qsrc = gguf_quantize(fmt, x), "gguf-py"
            if cref is not None and fmt.startswith("q"):
                if cref.run("quant", fmt, x.tobytes()) != qbytes:
                    sys.exit(f"error: gguf-py and ggml C quantizers differ on bulk {fmt}")
                qsrc = "gguf-py=ggml-c-ref"
        elif cref is not None:
            qbytes, qsrc = cref.run("quant", fmt, x.tobytes()), "ggml-c-ref"
        else:
            if fmt not in previous:
                sys.exit(f"error: no committed bulk hashes for {fmt}; run with --llama-cpp")
            lines.append(" ".join(previous[fmt]))
            continue
        if fmt == "q8_1":
            deq, dsrc = numpy_dequantize_q8_1(qbytes), "numpy"
        elif fmt == "q8_K":
            deq, dsrc = numpy_dequantize_q8_k(qbytes), "numpy"
        else:
            deq, dsrc = gguf_dequantize(fmt, qbytes), "gguf-py"
        qh, dh = chunk_hashes(qbytes, n_chunks), chunk_hashes(deq.tobytes(), n_chunks)
        old = previous.get(fmt)
        if cref is None and old and old[6:8] == [qh, dh]:
            qsrc, dsrc = old[4], old[5]  # unchanged: keep the earlier cross-check labels
        lines.append(f"bulk {fmt} {BULK_N} {BULK_CHUNK} {qsrc} {dsrc} {qh} {dh}")
    return lines


def previous_c_note() -> str:
    manifest = OUT / "manifest.txt"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            if line.startswith("# c-reference: "):
                return line[len("# c-reference: "):]
    sys.exit("error: no committed C-reference goldens; run with --llama-cpp or --fetch-llama-cpp")


def write_manifest(lines: list[str], c_note: str, notes: list[str]) -> None:
    from importlib.metadata import version

    header = [
        "# Quant-format goldens for kernels/tests/goldens.rs. Generated by tools/gen_quant_goldens.py;",
        "# do not edit. All .f32/.q files are raw little-endian.",
        "#   input <case> <n> <file>: the f32 input values",
        "#   golden <format> <case> <n> <quantized file> <who quantized> <dequantized file> <who dequantized>",
        f"# gguf-py: gguf=={version('gguf')} numpy=={version('numpy')} (gguf.quants.quantize/dequantize)",
        f"# c-reference: {c_note}",
        "# ggml-c-ref = quantize_row_<type>_ref (the no-imatrix path llama.cpp's converter uses);",
        "# ggml-c = dequantize_row_<type>; 'a=b' means both references produced these exact bytes.",
        "# q8_1 has no ggml dequantizer: numpy d*q. q8_K: numpy d*q, checked equal to ggml's.",
        "#   bulk <format> <n> <chunk> <who quantized> <who dequantized> <quant hashes> <dequant hashes>:",
        "#   the 'bulk' input is rebuilt from the integer recipe in gen_quant_goldens.py:bulk_input();",
        "#   hashes are FNV-1a 64 of the quantized bytes / dequantized f32 of each <chunk> values.",
        "# f16 'floats': numpy keeps signalling NaNs signalling (0x7f800001 -> 0x7c01), ggml, F16C",
        "#   and the half crate quiet them (0x7e00); the Rust test compares NaNs by sign only for f16.",
    ]
    header += [f"# note: {n}" for n in notes]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    header.append(f"# content digest: {digest}")
    (OUT / "manifest.txt").write_text("\n".join(header + lines) + "\n")


if __name__ == "__main__":
    main()
