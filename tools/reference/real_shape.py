"""Random-weight checkpoints with the shapes of released models (for memory/speed work).

Writes config.json (hub dialect, like the releases), generation_config.json, a bf16
model.safetensors streamed tensor by tensor (bounded memory), and a tokenizer.json whose
vocabulary is the tiny tokenizer padded with `<unusedN>` pieces up to the model's vocab size.
No goldens; these files are large and never committed.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import torch

import make_tiny as mt
import tokenizer_build as tb

PRESETS = {
    "gemma-2b": (
        "gemma",
        "gemma",
        dict(
            vocab_size=256000,
            hidden_size=2048,
            intermediate_size=16384,
            num_hidden_layers=18,
            num_attention_heads=8,
            num_key_value_heads=1,
            head_dim=256,
            rope_theta=10000.0,
        ),
    ),
    "gemma-7b": (
        "gemma",
        "gemma",
        dict(
            vocab_size=256000,
            hidden_size=3072,
            intermediate_size=24576,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=16,
            head_dim=256,
            rope_theta=10000.0,
        ),
    ),
    "gemma2-2b": (
        "gemma2",
        "gemma",
        dict(
            vocab_size=256000,
            hidden_size=2304,
            intermediate_size=9216,
            num_hidden_layers=26,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            rope_theta=10000.0,
            sliding_window=4096,
            query_pre_attn_scalar=256,
            attn_logit_softcapping=50.0,
            final_logit_softcapping=30.0,
        ),
    ),
    "gemma3-270m": (
        "gemma3",
        "gemma3",
        dict(
            vocab_size=262144,
            hidden_size=640,
            intermediate_size=2048,
            num_hidden_layers=18,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
            sliding_window=512,
            query_pre_attn_scalar=256,
            rope_theta=1000000.0,
            rope_local_base_freq=10000.0,
            sliding_window_pattern=6,
        ),
    ),
    "gemma3-1b": (
        "gemma3",
        "gemma3",
        dict(
            vocab_size=262144,
            hidden_size=1152,
            intermediate_size=6912,
            num_hidden_layers=26,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
            sliding_window=512,
            query_pre_attn_scalar=256,
            rope_theta=1000000.0,
            rope_local_base_freq=10000.0,
            sliding_window_pattern=6,
        ),
    ),
    "recurrentgemma-2b": (
        "recurrent_gemma",
        "gemma",
        dict(
            vocab_size=256000,
            hidden_size=2560,
            lru_width=2560,
            intermediate_size=15360,
            num_hidden_layers=26,
            num_attention_heads=10,
            num_key_value_heads=1,
            attention_window_size=2048,
            logits_soft_cap=30.0,
            rope_theta=10000.0,
            partial_rotary_factor=0.5,
        ),
    ),
    "recurrentgemma-9b": (
        "recurrent_gemma",
        "gemma",
        dict(
            vocab_size=256000,
            hidden_size=4096,
            lru_width=4096,
            intermediate_size=24576,
            num_hidden_layers=38,
            num_attention_heads=16,
            num_key_value_heads=1,
            attention_window_size=2048,
            logits_soft_cap=30.0,
            rope_theta=10000.0,
            partial_rotary_factor=0.5,
        ),
    ),
}

CHUNK_ELEMS = 1 << 24  # generate at most 16M values at a time


def write(shape: str, out: Path, layers: int | None, seed: int, tokenizer: dict) -> None:
    if shape not in PRESETS:
        raise SystemExit(f"unknown --shape {shape!r}; known: {sorted(PRESETS)}")
    arch, layout, cfg = PRESETS[shape]
    cfg = dict(cfg)
    vocab = cfg.pop("vocab_size")
    if layers is not None:
        if layers < 1:
            raise SystemExit("--layers must be >= 1")
        cfg["num_hidden_layers"] = layers
    spec = {"name": shape, "arch": arch, "dtype": "bfloat16", "cfg": cfg, "vocab_rows": vocab}
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = mt.hub_config(spec)
    mt.write_json(out / "config.json", config, sort_keys=True)
    loaded = mt.load_config(out)
    shapes = mt.tensor_shapes(loaded)
    total = sum(2 * math.prod(s) for s in shapes.values())
    free = shutil.disk_usage(out).free
    if total * 1.05 > free:
        raise SystemExit(f"{out}: needs {total / 2**30:.1f} GiB, only {free / 2**30:.1f} GiB free")

    tok = tokenizer[layout]
    pieces = list(tok["pieces"])
    if vocab < len(pieces):
        raise SystemExit(f"vocab {vocab} smaller than the tiny tokenizer ({len(pieces)})")
    pieces += [f"<unused{i}>" for i in range(1, vocab - len(pieces) + 1)]
    mt.write_text(out / "tokenizer.json", tb.dumps(tb.tokenizer_json(pieces, layout)))
    mt.write_json(out / "tokenizer_config.json", tb.tokenizer_config(layout, pieces))
    eot = pieces.index("<end_of_turn>")
    mt.write_json(out / "generation_config.json", {"bos_token_id": 2, "eos_token_id": [1, eot], "pad_token_id": 0})

    write_safetensors_bf16(out / "model.safetensors", shapes, seed)
    print(f"wrote {out} ({total / 2**30:.2f} GiB of bf16 weights, {len(shapes)} tensors)")


def write_safetensors_bf16(path: Path, shapes: dict[str, tuple[int, ...]], seed: int) -> None:
    """safetensors file written tensor by tensor: 8-byte little-endian header length, JSON
    header (dtype, shape, data offsets), then the raw little-endian data in header order."""
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        n = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    gen = torch.Generator().manual_seed(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape in shapes.items():
            rows = shape[0]
            per_row = math.prod(shape[1:]) if len(shape) > 1 else 1
            step = max(1, CHUNK_ELEMS // per_row) if len(shape) > 1 else rows
            for r0 in range(0, rows, step):
                part = (min(step, rows - r0),) + tuple(shape[1:])
                t = mt.init_tensor(name, part, gen).to(torch.bfloat16)
                f.write(t.view(torch.int16).numpy().astype("<i2").tobytes())
    tmp.replace(path)
