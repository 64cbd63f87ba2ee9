#!/usr/bin/env python3
"""Expected GGUF contents for the converter tests (tools/convert/tests/convert_tiny.rs).

For every tiny checkpoint in models/tiny/ this writes, independently of the Rust converter:

* per GGUF tensor: its name and `ne`, the Hugging Face tensor it comes from and how
  (copy / norm+1 / per-block transpose / conv squeeze / embedding rows kept), and the sha256
  (first 16 hex digits) of the bytes gguf-py's reference quantizer (`gguf.quants.quantize`,
  gguf 0.19) makes from it for F32, F16, BF16, Q8_0, Q4_0 and Q5_0 (where the row length
  allows the type);
* the architecture keys, computed from the transformers config object (so both config
  dialects are resolved by transformers itself, not by a re-implementation);
* the tokenizer arrays (sha256 of tokens, scores, types) and special ids following
  llama.cpp's `_create_vocab_sentencepiece` rules applied to tokenizer.json.

The test converts each checkpoint to each type and checks every tensor's bytes against
these hashes, so CI needs no Python. Regenerate only when models/tiny changes:

    python3 tools/gen_convert_goldens.py

Without gguf 0.19.0 and transformers 5.23.0 importable it creates the repo's .venv from
tools/requirements-convert-goldens.txt and re-runs itself there.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tools/convert/tests/data/tiny_goldens.json"
REQUIREMENTS = REPO / "tools/requirements-convert-goldens.txt"
PINS = {"gguf": "0.19.0", "transformers": "5.23.0"}
MODELS = ["gemma1-mqa-f32", "gemma1-mha-bf16", "gemma2-f32", "gemma3-f32",
          "gemma3-scaled-bf16", "recurrentgemma-f32", "recurrentgemma-bf16"]


def ensure_environment() -> None:
    try:
        from importlib.metadata import version
        import numpy  # noqa: F401
        if all(version(p) == v for p, v in PINS.items()):
            return
    except Exception:
        pass
    venv = REPO / ".venv"
    python = venv / "bin" / "python"
    if os.environ.get("GEN_CONVERT_GOLDENS_REEXEC"):
        sys.exit(f"error: {python} still lacks {PINS} after installing {REQUIREMENTS}")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    os.environ["GEN_CONVERT_GOLDENS_REEXEC"] = "1"
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


ensure_environment()

import numpy as np  # noqa: E402
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf import quants  # noqa: E402
from transformers import AutoConfig  # noqa: E402

TYPES = {"f32": (T.F32, 1), "f16": (T.F16, 1), "bf16": (T.BF16, 1),
         "q8_0": (T.Q8_0, 32), "q4_0": (T.Q4_0, 32), "q5_0": (T.Q5_0, 32)}


def h16(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """name -> float32 array (bf16/f16/f32 sources), without the safetensors package."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = raw[base + a:base + b]
        if info["dtype"] == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: {name} has dtype {info['dtype']}")
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def tensor_specs(cfg, kind: str, n_vocab: int) -> list[dict]:
    """GGUF tensors: name, hf source, transform. Mirrors docs/gguf-recurrentgemma.md and
    llama.cpp's Gemma converters."""
    s = []

    def add(gguf, hf, transform="copy"):
        s.append({"name": gguf, "hf": hf, "transform": transform})

    add("token_embd.weight", "model.embed_tokens.weight", "rows")
    add("output_norm.weight", "model.final_norm.weight" if kind == "recurrentgemma" else "model.norm.weight", "norm")
    for i in range(cfg.num_hidden_layers):
        g = lambda x: f"blk.{i}.{x}"  # noqa: E731
        hf = lambda x: f"model.layers.{i}.{x}"  # noqa: E731
        if kind != "recurrentgemma":
            add(g("attn_norm.weight"), hf("input_layernorm.weight"), "norm")
            for a, b in [("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), ("attn_output", "o_proj")]:
                add(g(f"{a}.weight"), hf(f"self_attn.{b}.weight"))
            if kind == "gemma3":
                add(g("attn_q_norm.weight"), hf("self_attn.q_norm.weight"), "norm")
                add(g("attn_k_norm.weight"), hf("self_attn.k_norm.weight"), "norm")
            if kind == "gemma":
                add(g("ffn_norm.weight"), hf("post_attention_layernorm.weight"), "norm")
            else:
                add(g("post_attention_norm.weight"), hf("post_attention_layernorm.weight"), "norm")
                add(g("ffn_norm.weight"), hf("pre_feedforward_layernorm.weight"), "norm")
                add(g("post_ffw_norm.weight"), hf("post_feedforward_layernorm.weight"), "norm")
            for a in ["gate", "up", "down"]:
                add(g(f"ffn_{a}.weight"), hf(f"mlp.{a}_proj.weight"))
        else:
            add(g("attn_norm.weight"), hf("temporal_pre_norm.weight"), "norm")
            add(g("ffn_norm.weight"), hf("channel_pre_norm.weight"), "norm")
            for a in ["gate", "up", "down"]:
                add(g(f"ffn_{a}.weight"), hf(f"mlp_block.{a}_proj.weight"))
                add(g(f"ffn_{a}.bias"), hf(f"mlp_block.{a}_proj.bias"))
            t = lambda x: hf(f"temporal_block.{x}")  # noqa: E731
            if cfg.layers_block_type[i] == "sliding_attention":
                for a, b in [("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), ("attn_output", "o_proj")]:
                    add(g(f"{a}.weight"), t(f"{b}.weight"))
                add(g("attn_output.bias"), t("o_proj.bias"))
            else:
                for a, b in [("rglru_in_x", "linear_x"), ("rglru_in_y", "linear_y"), ("rglru_out", "linear_out")]:
                    add(g(f"{a}.weight"), t(f"{b}.weight"))
                    add(g(f"{a}.bias"), t(f"{b}.bias"))
                add(g("rglru_conv1d.weight"), t("conv_1d.weight"), "squeeze")
                add(g("rglru_conv1d.bias"), t("conv_1d.bias"))
                add(g("rglru_gate_x.weight"), t("rg_lru.input_gate_weight"), "transpose_blocks")
                add(g("rglru_gate_x.bias"), t("rg_lru.input_gate_bias"))
                add(g("rglru_gate_a.weight"), t("rg_lru.recurrent_gate_weight"), "transpose_blocks")
                add(g("rglru_gate_a.bias"), t("rg_lru.recurrent_gate_bias"))
                add(g("rglru_a"), t("rg_lru.recurrent_param"))
    return s


def transformed(spec: dict, w: np.ndarray, n_vocab: int) -> np.ndarray:
    t = spec["transform"]
    if t == "norm":
        return (w.astype(np.float32) + np.float32(1.0)).astype(np.float32)
    if t == "rows":
        return w[:n_vocab]
    if t == "squeeze":
        return w.reshape(w.shape[0], w.shape[2])
    if t == "transpose_blocks":
        return np.ascontiguousarray(w.transpose(0, 2, 1))
    return w


def quantizable(name: str, arr: np.ndarray) -> bool:
    return (arr.ndim >= 2 and name.endswith("weight") and "_norm.weight" not in name
            and "rglru_conv1d" not in name)


def f32(x) -> dict:
    return {"f32": float(np.float32(x))}


def u32(x) -> dict:
    return {"u32": int(x)}


def arch_keys(cfg, kind: str) -> dict:
    a = kind
    k = {}
    k[f"{a}.embedding_length"] = u32(cfg.hidden_size)
    k[f"{a}.block_count"] = u32(cfg.num_hidden_layers)
    k[f"{a}.attention.head_count"] = u32(cfg.num_attention_heads)
    k[f"{a}.attention.key_length"] = u32(cfg.head_dim)
    k[f"{a}.attention.value_length"] = u32(cfg.head_dim)
    k[f"{a}.attention.layer_norm_rms_epsilon"] = f32(cfg.rms_norm_eps)
    rp = cfg.rope_parameters
    if kind == "recurrentgemma":
        attn = [t == "sliding_attention" for t in cfg.layers_block_type]
        k[f"{a}.context_length"] = u32(8192)
        k[f"{a}.feed_forward_length"] = u32(cfg.intermediate_size // 2)
        k[f"{a}.attention.head_count_kv"] = {"u32[]": [cfg.num_key_value_heads if x else 0 for x in attn]}
        k[f"{a}.attention.sliding_window"] = u32(cfg.attention_window_size)
        k[f"{a}.rope.dimension_count"] = u32(int(cfg.head_dim * rp["partial_rotary_factor"]))
        k[f"{a}.rope.freq_base"] = f32(rp["rope_theta"])
        k[f"{a}.final_logit_softcapping"] = f32(cfg.logits_soft_cap)
        # bf16(sqrt(D)), as transformers' normalizer buffer holds it.
        sq = np.array([math.sqrt(cfg.hidden_size)], dtype=np.float32).view(np.uint32)[0]
        sq = ((int(sq) + 0x7FFF + ((int(sq) >> 16) & 1)) >> 16) << 16
        k[f"{a}.embedding_scale"] = f32(np.array([sq], dtype=np.uint32).view(np.float32)[0])
        k[f"{a}.ssm.conv_kernel"] = u32(cfg.conv1d_width)
        k[f"{a}.ssm.inner_size"] = u32(cfg.lru_width)
        k[f"{a}.rglru.head_count"] = u32(cfg.num_attention_heads)
        k[f"{a}.rglru.c"] = f32(8.0)
        return k
    k[f"{a}.context_length"] = u32(cfg.max_position_embeddings)
    k[f"{a}.feed_forward_length"] = u32(cfg.intermediate_size)
    k[f"{a}.attention.head_count_kv"] = u32(cfg.num_key_value_heads)
    full = rp.get("full_attention", rp)
    k[f"{a}.rope.freq_base"] = f32(full["rope_theta"])
    if kind == "gemma3":
        k[f"{a}.rope.freq_base_swa"] = f32(rp["sliding_attention"]["rope_theta"])
    if full.get("rope_type") == "linear":
        k[f"{a}.rope.scaling.type"] = {"str": "linear"}
        k[f"{a}.rope.scaling.factor"] = f32(full["factor"])
    if kind in ("gemma2", "gemma3"):
        local = [t == "sliding_attention" for t in cfg.layer_types]
        if any(local):
            k[f"{a}.attention.sliding_window"] = u32(cfg.sliding_window)
            first_global = local.index(False) if False in local else None
            p = first_global + 1 if first_global is not None else 0
            if p >= 2 and all(l == (i % p < p - 1) for i, l in enumerate(local)):
                k[f"{a}.attention.sliding_window_pattern"] = u32(p)
            else:
                k[f"{a}.attention.sliding_window_pattern"] = {"bool[]": local}
        k[f"{a}.attention.scale"] = f32(cfg.query_pre_attn_scalar ** -0.5)
        if cfg.attn_logit_softcapping is not None:
            k[f"{a}.attn_logit_softcapping"] = f32(cfg.attn_logit_softcapping)
        if cfg.final_logit_softcapping is not None:
            k[f"{a}.final_logit_softcapping"] = f32(cfg.final_logit_softcapping)
    return k


def looks_special(t: str) -> bool:
    return (t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (t.startswith("<|") and t.endswith("|>"))
            or (t.startswith("<unused") and t.endswith(">")))


def tokenizer_expect(d: Path, vocab_size: int, truncate: bool) -> dict:
    tj = json.loads((d / "tokenizer.json").read_text())
    tc = json.loads((d / "tokenizer_config.json").read_text())
    model = tj["model"]
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    types = [5] * vocab_size
    special_ids = {a["id"] for a in tj["added_tokens"] if a["special"]}
    defined = 0
    for piece, i in model["vocab"].items():
        if i >= vocab_size:
            continue
        if piece == model.get("unk_token"):
            ty = 2
        elif model.get("byte_fallback") and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            ty = 6
        elif i in special_ids:
            ty = 3
        else:
            ty = 1
        tokens[i], scores[i], types[i] = piece, 0.0, ty
        defined = max(defined, i + 1)
    added = tc.get("added_tokens_decoder")
    added = ([(int(i), v["content"], v.get("special", False)) for i, v in added.items()] if added
             else [(a["id"], a["content"], a["special"]) for a in tj["added_tokens"]])
    for i, content, special in added:
        if i >= vocab_size:
            continue
        if special or looks_special(content):
            types[i], tokens[i] = 3, content
        else:
            types[i], tokens[i] = 4, content.replace("\u2581", " ")
        scores[i] = -1000.0
        defined = max(defined, i + 1)
    first = types.index(1)
    # -0.0 for the first piece, like SentencePiece (the real Gemma 3 GGUF has it too).
    scores = [-float(i - first) if t == 1 else s for i, (t, s) in enumerate(zip(types, scores))]
    n = defined if truncate else vocab_size
    tokens, scores, types = tokens[:n], scores[:n], types[:n]
    by_content = {a["content"]: a["id"] for a in reversed(tj["added_tokens"])}
    ids = {}
    for typ, key in [("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"),
                     ("pad", "padding_token_id"), ("mask", "mask_token_id")]:
        if isinstance(tc.get(f"{typ}_token"), str) and tc[f"{typ}_token"] in by_content:
            ids[f"tokenizer.ggml.{key}"] = by_content[tc[f"{typ}_token"]]
    if "<end_of_turn>" in tokens:
        ids["tokenizer.ggml.eot_token_id"] = tokens.index("<end_of_turn>")
    return {
        "n_tokens": n,
        "tokens_sha": h16("\0".join(tokens).encode()),
        "scores_sha": h16(np.array(scores, dtype="<f4").tobytes()),
        "types_sha": h16(np.array(types, dtype="<i4").tobytes()),
        "ids": ids,
        "chat_template": tc.get("chat_template"),
    }


def main() -> None:
    result = {"generator": "tools/gen_convert_goldens.py", "gguf": PINS["gguf"],
              "transformers": PINS["transformers"], "models": {}}
    for name in MODELS:
        d = REPO / "models/tiny" / name
        cfg = AutoConfig.from_pretrained(d)
        kind = {"gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3",
                "recurrent_gemma": "recurrentgemma"}[cfg.model_type]
        tok = tokenizer_expect(d, cfg.vocab_size, kind == "gemma3")
        weights = read_safetensors(d / "model.safetensors")
        tensors = {}
        used = set()
        for spec in tensor_specs(cfg, kind, tok["n_tokens"]):
            w = weights[spec["hf"]]
            used.add(spec["hf"])
            data = transformed(spec, w, tok["n_tokens"])
            entry = {"hf": spec["hf"], "transform": spec["transform"],
                     "ne": list(reversed(data.shape)), "sha": {}}
            if quantizable(spec["name"], data):
                for tname, (qt, block) in TYPES.items():
                    if data.shape[-1] % block == 0:
                        entry["sha"][tname] = h16(quants.quantize(data, qt).tobytes())
            else:
                entry["sha"]["f32"] = h16(data.astype("<f4").tobytes())
            tensors[spec["name"]] = entry
        unused = set(weights) - used
        assert not unused, f"{name}: unmapped tensors {sorted(unused)}"
        result["models"][name] = {"arch": kind, "keys": arch_keys(cfg, kind), "tokenizer": tok,
                                  "tensors": tensors}
        print(name, len(tensors), "tensors", file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
