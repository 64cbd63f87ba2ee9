#!/usr/bin/env python3
"""Memory and speed against position: RecurrentGemma's fixed-size state vs a Gemma KV cache.

For every model and depth D it starts a fresh `edgegemma bench` process that fills the
context with D tokens (batched prefill, random ids) and then times 32 generated tokens
(`tg32 @ dD`), and records the generation speed and the process's peak RSS (weights that were
touched plus state and scratch). One process per point, so the peak RSS belongs to that
depth. Writes a CSV and, with matplotlib available, a PNG of both curves.

Usage:
  benches/state_growth.py --model rg=PATH.gguf --model gemma=PATH.gguf \\
      [--depths 100,256,2048,8000,8192] [--threads 2] [--out bench-out/state_growth]
"""
import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="LABEL=PATH")
    ap.add_argument("--depths", default="100,256,2048,8000,8192")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--n-gen", default="32")
    ap.add_argument("--out", default=str(REPO / "bench-out/state_growth"))
    ap.add_argument("--bin", default=str(REPO / "target/release/edgegemma"))
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    rows = []
    for spec in args.model:
        label, path = spec.split("=", 1)
        for d in depths:
            cmd = [args.bin, "bench", "-m", path, "-p", "0", "-n", args.n_gen, "-d", str(d),
                   "-t", args.threads, "-r", "1", "-o", "jsonl"]
            print(f"{label} depth {d} ...", file=sys.stderr, flush=True)
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append({
                "model": label,
                "file": Path(path).name,
                "position": d,
                "gen_tps": round(r["avg_ts"], 3),
                "peak_rss_mib": round(r["peak_rss_bytes"] / 2**20, 1),
                "threads": r["n_threads"],
                "kernels": r["kernels"],
            })
            print(rows[-1], file=sys.stderr, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out.with_suffix('.csv')}", file=sys.stderr)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for label in dict.fromkeys(r["model"] for r in rows):
        pts = [r for r in rows if r["model"] == label]
        xs = [r["position"] for r in pts]
        a1.plot(xs, [r["gen_tps"] for r in pts], "o-", label=label)
        a2.plot(xs, [r["peak_rss_mib"] for r in pts], "o-", label=label)
    a1.set(xlabel="position (tokens in context)", ylabel="generation tokens/s", title="Speed")
    a2.set(xlabel="position (tokens in context)", ylabel="peak RSS (MiB)", title="Memory")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
        a.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)
    print(f"wrote {out.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
