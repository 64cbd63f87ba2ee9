#!/usr/bin/env python3
"""Runs `edgegemma logits` (optionally under an emulator) on the tiny test models and compares
every position's logits with the transformers goldens in models/tiny/*/golden, or with the
logits another build wrote. Python 3 standard library only (CI has no numpy).

  check_tiny_logits.py --bin target/release/edgegemma --gguf-dir DIR --out OUT
        [--runner "qemu-aarch64-static -cpu cortex-a72"] [--type f32] [--tol 1e-3]
        [--against golden|none|DIR] [--models a,b] [--expect-kernels neon] [--no-argmax]

DIR holds <model>-<type>.gguf (edgegemma-convert hf models/tiny/<model> -t <type>). Logits
are written to OUT/<model>-<type>-<seq>.npy. With --against golden (the default) each is
compared with the golden seqN.logits.npy: max |diff| <= --tol at every position and the same
argmax in every row. With --against DIR, with DIR/<same name> (another build's run); with
none, nothing is compared (to make such a reference). The KV cache is f32, as the goldens'
comparison requires. Exits 1 on the first failure, printing what differed.
"""
import argparse
import array
import ast
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def read_npy(path):
    """(shape, flat float list) of a little-endian f32 C-order .npy (format 1.0 or 2.0)."""
    data = Path(path).read_bytes()
    if data[:6] != b"\x93NUMPY":
        raise SystemExit(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        hlen = int.from_bytes(data[8:10], "little")
        start = 10
    else:
        hlen = int.from_bytes(data[8:12], "little")
        start = 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        raise SystemExit(f"{path}: expected little-endian f32 in C order, got {header}")
    values = array.array("f")
    values.frombytes(data[start + hlen:])
    if sys.byteorder != "little":
        values.byteswap()
    return tuple(header["shape"]), values


def rows(shape, values, cols):
    """The first `cols` columns of every row."""
    n, width = shape
    return [values[r * width:r * width + cols] for r in range(n)]


def argmax(row):
    return max(range(len(row)), key=row.__getitem__)


def compare(got, want, tol, label, check_argmax=True):
    if len(got) != len(want):
        raise SystemExit(f"FAIL {label}: {len(got)} rows, expected {len(want)}")
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        d = max(abs(a - b) for a, b in zip(g, w))
        worst = max(worst, d)
        if not d <= tol:
            raise SystemExit(f"FAIL {label}: position {i}: max |diff| {d:.3e} > {tol:g}")
        if check_argmax and argmax(g) != argmax(w):
            raise SystemExit(f"FAIL {label}: position {i}: argmax {argmax(g)} != {argmax(w)}")
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runner", default="")
    ap.add_argument("--gguf-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--type", default="f32")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--against", default="golden")
    ap.add_argument("--models", default="")
    ap.add_argument("--expect-kernels", default="")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--no-argmax", action="store_true",
                    help="compare values only (quantized models on different kernel paths: "
                         "their rounding differs, near-ties may swap)")
    args = ap.parse_args()

    runner = shlex.split(args.runner)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    label_cpu = args.runner or "native"
    if args.expect_kernels:
        info = subprocess.run(runner + [args.bin, "info", "--json"], capture_output=True,
                              text=True, check=True)
        chosen = json.loads(info.stdout)["path_chosen"]
        if chosen != args.expect_kernels:
            raise SystemExit(f"FAIL {label_cpu}: kernels {chosen}, expected {args.expect_kernels}")
        print(f"{label_cpu}: kernel path {chosen}")

    tiny = REPO / "models" / "tiny"
    names = [m for m in args.models.split(",") if m] or sorted(
        p.parent.parent.name for p in tiny.glob("*/golden/golden.json"))
    start = time.time()
    worst_all = 0.0
    checked = 0
    for name in names:
        golden_dir = tiny / name / "golden"
        golden = json.loads((golden_dir / "golden.json").read_text())
        cols = golden["logits_columns"]
        gguf = Path(args.gguf_dir) / f"{name}-{args.type}.gguf"
        for seq in golden["sequences"]:
            ids = seq["ids"]
            stem = Path(seq["logits"]).name.split(".")[0]
            npy = out / f"{name}-{args.type}-{stem}.npy"
            cmd = runner + [args.bin, "logits", "-m", str(gguf), "--tokens",
                            ",".join(map(str, ids)), "-o", str(npy), "--cache-type", "f32",
                            "-c", "256", "-t", args.threads]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"FAIL {label_cpu} {name} {stem}: exit {r.returncode}\n"
                                 f"  {shlex.join(cmd)}\n{r.stderr}")
            got = rows(*read_npy(npy), cols)
            if args.against == "none":
                continue
            if args.against == "golden":
                want = rows(*read_npy(golden_dir / seq["logits"]), cols)
            else:
                want = rows(*read_npy(Path(args.against) / npy.name), cols)
            worst = compare(got, want, args.tol, f"{label_cpu} {name} {stem}",
                            check_argmax=not args.no_argmax)
            worst_all = max(worst_all, worst)
            checked += 1
    what = "" if args.against == "none" else \
        f", {checked} sequences, max |diff| {worst_all:.2e} <= {args.tol:g} vs {args.against}"
    print(f"{label_cpu}: {len(names)} {args.type} models{what} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
