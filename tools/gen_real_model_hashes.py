#!/usr/bin/env python3
"""Write tests/data/gemma3-270m-dequant-hashes.json from the real Gemma 3 270M GGUF.

For every tensor: its ggml type and shape (ne order) as gguf-py reads them, and the
FNV-1a 64 hash of gguf-py's dequantization of it (float32 little-endian bytes, rows in file
order). tests/real_model.rs dequantizes with edgegemma_kernels and compares bit for bit.

The hash is plain Python (about 4-5 minutes for the ~1 GB of floats); this is a one-off,
its output is committed.

Usage:
    tools/fetch-real-model.sh --with-gguf-py
    .venv/bin/python tools/gen_real_model_hashes.py [MODEL.gguf] [OUT.json]
"""

import hashlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import gguf
import numpy as np
from gguf import quants

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "real" / "gemma3-270m-q4_k_m.gguf"
DEFAULT_OUT = REPO / "tests" / "data" / "gemma3-270m-dequant-hashes.json"

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a64(data: bytes, h: int = FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT
    assert fnv1a64(b"") == FNV_OFFSET and fnv1a64(b"a") == 0xAF63DC4C8601EC8C

    reader = gguf.GGUFReader(model)
    tensors = {}
    start = time.time()
    for t in reader.tensors:
        values = quants.dequantize(t.data, t.tensor_type)
        raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
        assert len(raw) == 4 * int(t.n_elements), t.name
        tensors[t.name] = {
            "type": t.tensor_type.name,
            "shape": [int(d) for d in t.shape],
            "elements": int(t.n_elements),
            "fnv1a64": f"{fnv1a64(raw):016x}",
        }
        print(f"{time.time() - start:7.1f}s {t.name} {t.tensor_type.name}", file=sys.stderr)

    doc = {
        "model": "gemma3-270m-q4_k_m.gguf",
        "model_sha256": sha256_file(model),
        "generator": f"tools/gen_real_model_hashes.py with gguf-py {metadata.version('gguf')}",
        "hash": "FNV-1a 64 of the dequantized float32 little-endian bytes",
        "tensor_count": len(tensors),
        "tensors": tensors,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out} ({len(tensors)} tensors)", file=sys.stderr)


if __name__ == "__main__":
    main()
