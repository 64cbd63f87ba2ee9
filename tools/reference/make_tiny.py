#!/usr/bin/env python3
"""Reference oracle for edgegemma: tiny random-weight HF checkpoints + transformers goldens.

    python tools/reference/make_tiny.py                      # (re)write models/tiny/
    python tools/reference/make_tiny.py --only gemma2-f32    # one model (manifest untouched)
    python tools/reference/make_tiny.py --shape gemma-2b --out /tmp/g2b   # real shapes, random

Everything is seeded; with the versions pinned in requirements.txt the output is
byte-identical from run to run (computation is forced single-threaded and deterministic).
See README.md for what each file contains.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import griffin_ref  # noqa: E402
import tokenizer_build as tb  # noqa: E402

TOKENIZER_VOCAB = 512
SEQ_LENGTHS = (32, 40, 48)
GREEDY_PROMPTS = (5, 20)  # prompt lengths (prefixes of seq0 and seq2)
GREEDY_NEW = 16
# Every ablated feature must move some logit by at least this much (the runtime tests compare
# at ~1e-3, so a feature below this would be invisible to them).
ABLATION_MIN = 5e-3
# Greedy goldens must not contain near-ties that f32 rounding differences could flip.
MIN_GREEDY_MARGIN = 2e-3
TOKENIZER_SEED_NOTE = "tokenizer: deterministic BPE (tokenizer_build.py) on tokenizer_corpus.txt, no RNG"

# ---------------------------------------------------------------------------------------
# Tiny model definitions. `cfg` are the architecture numbers; `primary` is the config
# dialect written as config.json (the goldens' source); the other dialect goes to
# config.hub.json / config.v5.json and must load to the identical model.
# ---------------------------------------------------------------------------------------
TINY_MODELS = [
    {
        "name": "gemma1-mqa-f32",
        "arch": "gemma",
        "seed": 1001,
        "dtype": "float32",
        "primary": "hub",
        "tokenizer": "gemma",
        "cfg": dict(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            rope_theta=10000.0,
        ),
        "features": "MQA (K=1), H*d=64 != D=48, hub config says hidden_act='gelu' (means tanh GELU)",
    },
    {
        "name": "gemma1-mha-bf16",
        "arch": "gemma",
        "seed": 1022,
        "dtype": "bfloat16",
        "primary": "v5",
        "tokenizer": "gemma",
        "cfg": dict(
            hidden_size=40,
            intermediate_size=80,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            head_dim=16,
            rope_theta=10000.0,
        ),
        "features": "MHA (K=H=4), H*d=64 != D=40, bf16 storage, sqrt(40) not representable in bf16",
    },
    {
        "name": "gemma2-f32",
        "arch": "gemma2",
        "seed": 1003,
        "dtype": "float32",
        "primary": "hub",
        "tokenizer": "gemma",
        "cfg": dict(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            rope_theta=10000.0,
            sliding_window=8,
            query_pre_attn_scalar=12,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=4.0,
        ),
        "features": "GQA 4:2, local/global alternating (even layers local), window 8, "
        "query_pre_attn_scalar 12 != head_dim 16, attention softcap 5, final softcap 4",
    },
    {
        "name": "gemma3-f32",
        "arch": "gemma3",
        "seed": 1004,
        "dtype": "float32",
        "primary": "v5",
        "tokenizer": "gemma3",
        "cfg": dict(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=7,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            sliding_window=10,
            query_pre_attn_scalar=16,
            rope_theta=1000000.0,
            rope_local_base_freq=10000.0,
            sliding_window_pattern=6,
        ),
        "features": "QK-norm, 5 local : 1 global (layer 5 global, layer 6 local again), window 10, "
        "RoPE base local 1e4 / global 1e6, MQA (like 270M)",
    },
    {
        "name": "gemma3-scaled-bf16",
        "arch": "gemma3",
        "seed": 1005,
        "dtype": "bfloat16",
        "primary": "hub",
        "tokenizer": "gemma3",
        "vocab_rows": 576,
        "cfg": dict(
            hidden_size=40,
            intermediate_size=80,
            num_hidden_layers=6,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            sliding_window=12,
            query_pre_attn_scalar=10,
            rope_theta=1000000.0,
            rope_local_base_freq=10000.0,
            sliding_window_pattern=3,
            rope_scaling={"rope_type": "linear", "factor": 8.0},
            final_logit_softcapping=5.0,
        ),
        "features": "4B+/27B-style: linear RoPE x8 on global layers only, query_pre_attn_scalar = D/H = 10, "
        "576 embedding rows for a 512-token tokenizer (drop rows >= 512), non-default pattern "
        "(sliding_window_pattern 3: globals 2, 5), final softcap 5 set, GQA 4:2, bf16",
    },
    {
        "name": "recurrentgemma-f32",
        "arch": "recurrent_gemma",
        "seed": 1006,
        "dtype": "float32",
        "primary": "hub",
        "tokenizer": "gemma",
        "cfg": dict(
            hidden_size=48,
            lru_width=64,
            intermediate_size=192,
            num_hidden_layers=6,
            num_attention_heads=4,
            num_key_value_heads=1,
            attention_window_size=16,
            logits_soft_cap=8.0,
            rope_theta=10000.0,
            partial_rotary_factor=0.5,
        ),
        "features": "R,R,A x2, lru_width 64 != D 48 (gate blocks 16), head_dim 12 (RoPE on 6 dims), "
        "window 16, MLP F = intermediate_size/2 = 96, final softcap 8, bf16(sqrt(48)) = 6.9375",
    },
    {
        "name": "recurrentgemma-bf16",
        "arch": "recurrent_gemma",
        "seed": 1007,
        "dtype": "bfloat16",
        "primary": "v5",
        "tokenizer": "gemma",
        "cfg": dict(
            hidden_size=48,
            lru_width=48,
            intermediate_size=288,
            num_hidden_layers=6,
            num_attention_heads=2,
            num_key_value_heads=1,
            attention_window_size=12,
            logits_soft_cap=8.0,
            rope_theta=10000.0,
            partial_rotary_factor=0.5,
        ),
        "features": "R,R,A x2, lru_width = D = 48 (gate blocks 24), head_dim 24 (RoPE on 12 dims), "
        "window 12, MLP F = 144, bf16 storage",
    },
]

HF_CLASS = {
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "recurrent_gemma": "RecurrentGemmaForCausalLM",
}

TOKENIZER_CASES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Hello  world   with    runs of     spaces",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "tabs\tand\t\tdouble tabs",
    "line one\nline two\n\n\nafter blank lines\n",
    "digits 1234567890, 3.14159 and 2024-03-15",
    "café, naïve, crème brûlée, Straße",
    "Москва и Санкт-Петербург",
    "日本語のテキストと中文",
    "emoji 🙂✨ and rare letters ǅ ẞ",
    "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n",
    "<h1>Title</h1><br>and <b>bold</b>",
    "<bos>a literal bos in the text",
    "x<unused0>y<unk>z",
    "\u2581already a sentencepiece space",
    "def f(x):\n\treturn x * 2\n",
    "",
    " ",
    "\n",
    "\n\n",
    "mixed\t \n \t\n",
]

TEXT_SOURCE = (
    "The model reads the prompt one token at a time. Local attention looks back over a short "
    "window, global attention over everything; the recurrent state is small and fixed. "
    "Numbers like 2024 and 3.14 split into digits, and café or Москва fall back to bytes. "
) * 3

CHAT_SOURCE = [
    {"role": "system", "content": "You are a tiny random model."},
    {"role": "user", "content": "What is the capital of France? Answer in one word, please."},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And the capital of Germany, with\ttabs and  spaces?\n\nThanks 123!"},
]


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def set_determinism() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_json(path: Path, obj, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=sort_keys) + "\n")


def save_npy(path: Path, arr: np.ndarray) -> None:
    """Plain little-endian .npy (format 1.0), no pickle."""
    if arr.dtype.kind == "f":
        arr = np.ascontiguousarray(arr, dtype="<f4")
    else:
        arr = np.ascontiguousarray(arr, dtype="<i4")
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=False)


def bf16_round(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).float())


def maxdiff(a, b) -> float:
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max())


def top2_margin(step_logits: torch.Tensor) -> float:
    """Smallest gap between the best and second-best logit over the decode steps: greedy
    tokens are only a robust test if no step is a near-tie."""
    top = torch.topk(step_logits.double(), 2, dim=-1).values
    return float((top[:, 0] - top[:, 1]).min())


def fmt(x: float) -> float:
    """Numbers in JSON reports: 3 significant digits (keeps reports stable and readable)."""
    return float(f"{x:.3g}")


# ---------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------
def build_tokenizers() -> dict[str, dict]:
    corpus = (HERE / "tokenizer_corpus.txt").read_text(encoding="utf-8")
    base = len(tb.SPECIALS["gemma"]) + len(tb.USER_DEFINED) + tb.NUM_BYTES
    _, chars = tb.train(corpus, 0)
    merged, chars = tb.train(corpus, TOKENIZER_VOCAB - base - len(chars))
    out = {}
    for layout in ("gemma", "gemma3"):
        pieces = tb.vocab_list(layout, merged, chars)
        if len(pieces) != TOKENIZER_VOCAB:
            raise SystemExit(f"tokenizer has {len(pieces)} pieces, expected {TOKENIZER_VOCAB}")
        out[layout] = {
            "pieces": pieces,
            "types": tb.piece_types(pieces, layout),
            "json": tb.dumps(tb.tokenizer_json(pieces, layout)),
            "config": tb.tokenizer_config(layout, pieces),
        }
    return out


def tokenizer_goldens(folder: Path, tok: dict) -> list[dict]:
    """Token ids via `tokenizers` (and checked against transformers' AutoTokenizer and the
    llama.cpp-style SentencePiece algorithm on the same vocabulary)."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(folder))
    cases = []
    for text in TOKENIZER_CASES:
        ids = raw.encode(text, add_special_tokens=True).ids
        auto_ids = auto(text)["input_ids"]
        if auto_ids != ids:
            raise SystemExit(f"{folder}: AutoTokenizer {auto_ids} != tokenizers {ids} for {text!r}")
        spm_ids = tb.spm_encode(tok["pieces"], tok["types"], text)
        if spm_ids != ids:
            raise SystemExit(f"{folder}: SentencePiece-style {spm_ids} != HF {ids} for {text!r}")
        decoded = raw.decode(ids, skip_special_tokens=False)
        cases.append({"text": text, "ids": ids, "decoded": decoded})
    chat = auto.apply_chat_template(CHAT_SOURCE[:2], tokenize=False, add_generation_prompt=True)
    chat_ids = raw.encode(chat, add_special_tokens=False).ids
    if tb.spm_encode(tok["pieces"], tok["types"], chat)[1:] != chat_ids:
        raise SystemExit(f"{folder}: chat template ids differ between HF and SentencePiece-style")
    cases.append(
        {
            "text": chat,
            "ids": chat_ids,
            "decoded": raw.decode(chat_ids, skip_special_tokens=False),
            "note": "rendered chat template (already starts with <bos>; encoded without adding another)",
        }
    )
    return cases


# ---------------------------------------------------------------------------------------
# Configs in both dialects
# ---------------------------------------------------------------------------------------
def v5_config(spec: dict) -> dict:
    """What transformers 5 save_pretrained writes (rope_parameters, layer_types, dtype)."""
    from transformers import GemmaConfig, Gemma2Config, Gemma3TextConfig, RecurrentGemmaConfig

    cls = {
        "gemma": GemmaConfig,
        "gemma2": Gemma2Config,
        "gemma3": Gemma3TextConfig,
        "recurrent_gemma": RecurrentGemmaConfig,
    }[spec["arch"]]
    kw = dict(spec["cfg"])
    kw["vocab_size"] = spec.get("vocab_rows", TOKENIZER_VOCAB)
    kw["dtype"] = spec["dtype"]
    if spec["arch"] == "gemma":
        kw["hidden_act"] = "gelu_pytorch_tanh"
    cfg = cls(**kw)
    with tempfile.TemporaryDirectory() as d:
        cfg.save_pretrained(d)
        out = json.loads(Path(d, "config.json").read_text())
    out["architectures"] = [HF_CLASS[spec["arch"]]]
    return out


def hub_config(spec: dict) -> dict:
    """The older dialect of released hub checkpoints (rope_theta, rope_local_base_freq,
    sliding_window_pattern, top-level partial_rotary_factor, torch_dtype)."""
    c = spec["cfg"]
    arch = spec["arch"]
    out = {
        "architectures": [HF_CLASS[arch]],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
        "hidden_size": c["hidden_size"],
        "intermediate_size": c["intermediate_size"],
        "num_hidden_layers": c["num_hidden_layers"],
        "num_attention_heads": c["num_attention_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_theta": c["rope_theta"],
        "torch_dtype": spec["dtype"],
        "use_cache": True,
        "vocab_size": spec.get("vocab_rows", TOKENIZER_VOCAB),
    }
    if arch == "gemma":
        out.update(
            model_type="gemma",
            head_dim=c["head_dim"],
            hidden_act="gelu",
            initializer_range=0.02,
            max_position_embeddings=8192,
            rope_scaling=None,
        )
    elif arch == "gemma2":
        out.update(
            model_type="gemma2",
            head_dim=c["head_dim"],
            hidden_act="gelu_pytorch_tanh",
            hidden_activation="gelu_pytorch_tanh",
            initializer_range=0.02,
            max_position_embeddings=8192,
            query_pre_attn_scalar=c["query_pre_attn_scalar"],
            sliding_window=c["sliding_window"],
            attn_logit_softcapping=c["attn_logit_softcapping"],
            final_logit_softcapping=c["final_logit_softcapping"],
            cache_implementation="hybrid",
        )
    elif arch == "gemma3":
        out.update(
            model_type="gemma3_text",
            head_dim=c["head_dim"],
            hidden_activation="gelu_pytorch_tanh",
            initializer_range=0.02,
            max_position_embeddings=32768,
            query_pre_attn_scalar=c["query_pre_attn_scalar"],
            sliding_window=c["sliding_window"],
            sliding_window_pattern=c["sliding_window_pattern"],
            rope_local_base_freq=c["rope_local_base_freq"],
            rope_scaling=c.get("rope_scaling"),
            attn_logit_softcapping=None,
            final_logit_softcapping=c.get("final_logit_softcapping"),
        )
    elif arch == "recurrent_gemma":
        out.update(
            model_type="recurrent_gemma",
            head_dim=c["hidden_size"] // c["num_attention_heads"],
            hidden_activation="gelu_pytorch_tanh",
            lru_width=c["lru_width"],
            attention_window_size=c["attention_window_size"],
            block_types=["recurrent", "recurrent", "attention"],
            conv1d_width=4,
            embeddings_scale_by_sqrt_dim=True,
            logits_soft_cap=c["logits_soft_cap"],
            partial_rotary_factor=c["partial_rotary_factor"],
            w_init_variance_scale=0.01,
            final_w_init_variance_scale=2.0 / c["num_hidden_layers"],
        )
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------
# Random weights
# ---------------------------------------------------------------------------------------
def init_tensor(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Every tensor random, norm gains and biases included (zero-init would hide a missing
    `1 + w` or a dropped bias). Scales keep activations O(1) so softcaps/windows matter."""
    if name.endswith("norm.weight"):
        return torch.rand(shape, generator=gen) * 1.2 - 0.6  # gain 1 + w in [0.4, 1.6]
    if name.endswith("rg_lru.recurrent_param"):
        # Same ring distribution as the reference init, wider: |a| in [0.5, 0.999].
        u = torch.rand(shape, generator=gen) * (0.999**2 - 0.5**2) + 0.5**2
        return torch.log(torch.expm1(-0.5 * torch.log(u)))  # softplus^-1(-log|a|)
    if name.endswith("conv_1d.weight"):
        return torch.randn(shape, generator=gen) * 0.5
    if name.endswith("gate_weight"):  # RG-LRU block-diagonal [H, B, B]
        return torch.randn(shape, generator=gen) / math.sqrt(shape[-1])
    if name.endswith("bias"):
        return torch.randn(shape, generator=gen) * 0.2
    if name.endswith("gate_proj.weight"):
        # Wide GELU inputs: erf vs tanh GELU differ most near |x| = 2.7 (by ~0.005).
        return torch.randn(shape, generator=gen) * 2.5 / math.sqrt(shape[1])
    if name.endswith("up_proj.weight"):
        return torch.randn(shape, generator=gen) * 2.0 / math.sqrt(shape[1])
    if name.endswith("embed_tokens.weight"):
        return torch.randn(shape, generator=gen) / math.sqrt(shape[1])
    if len(shape) == 2:
        return torch.randn(shape, generator=gen) / math.sqrt(shape[1])
    raise SystemExit(f"no init rule for {name} {shape}")


def tensor_shapes(config) -> dict[str, tuple[int, ...]]:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes.pop("lm_head.weight", None)  # tied to the embedding, never stored (like the releases)
    return dict(sorted(shapes.items()))


def random_state(config, seed: int, dtype: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in tensor_shapes(config).items():
        t = init_tensor(name, shape, gen).to(torch.float32)
        out[name] = t.to(torch.bfloat16 if dtype == "bfloat16" else torch.float32).contiguous()
    return out


# ---------------------------------------------------------------------------------------
# HF model runs
# ---------------------------------------------------------------------------------------
def load_config(folder: Path, config_file: str = "config.json"):
    from transformers import AutoConfig

    with tempfile.TemporaryDirectory() as d:
        shutil.copy(folder / config_file, Path(d) / "config.json")
        return AutoConfig.from_pretrained(d)


def load_hf(folder: Path, config=None):
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(
        str(folder), config=config, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    bad = {k: v for k, v in info.items() if v and k != "error_msgs"} | (
        {"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {}
    )
    if bad:
        raise SystemExit(f"{folder}: loading reported {bad}")
    return model.eval()


@torch.no_grad()
def hf_logits(model, ids: list[int]) -> torch.Tensor:
    out = model(input_ids=torch.tensor([ids]), use_cache=False)
    return out.logits[0].float()


@torch.no_grad()
def hf_greedy(model, prompt: list[int], n_tok: int) -> tuple[list[int], torch.Tensor]:
    vocab = model.config.vocab_size
    extra = {}
    if vocab > n_tok:
        extra["suppress_tokens"] = list(range(n_tok, vocab))  # rows past the tokenizer
    out = model.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        max_new_tokens=GREEDY_NEW,
        min_new_tokens=GREEDY_NEW,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
        use_cache=True,
        output_logits=True,
        return_dict_in_generate=True,
        **extra,
    )
    new = out.sequences[0, len(prompt) :].tolist()
    step_logits = torch.stack([x[0].float() for x in out.logits])
    return new, step_logits


def assert_weights_loaded(model, state: dict[str, torch.Tensor], folder: Path) -> None:
    sd = model.state_dict()
    for name, t in state.items():
        if not torch.equal(sd[name].float(), t.float()):
            raise SystemExit(f"{folder}: {name} differs after loading")


# ---------------------------------------------------------------------------------------
# Sequences
# ---------------------------------------------------------------------------------------
def make_sequences(folder: Path, seed: int) -> list[dict]:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(folder))
    n_tok = raw.get_vocab_size(with_added_tokens=True)
    text_ids = raw.encode(TEXT_SOURCE, add_special_tokens=True).ids
    chat_text = auto.apply_chat_template(CHAT_SOURCE, tokenize=False, add_generation_prompt=True)
    chat_ids = raw.encode(chat_text, add_special_tokens=False).ids
    gen = torch.Generator().manual_seed(seed + 7)
    rand_ids = [2] + torch.randint(0, n_tok, (SEQ_LENGTHS[1] - 1,), generator=gen).tolist()
    seqs = [
        {
            "name": "seq0",
            "source": "text: prose (BOS + tokens of a fixed string, truncated)",
            "ids": text_ids[: SEQ_LENGTHS[0]],
        },
        {"name": "seq1", "source": f"random ids in [0, {n_tok}) after BOS (seeded)", "ids": rand_ids},
        {
            "name": "seq2",
            "source": "chat template with system+user+model+user turns, truncated",
            "ids": chat_ids[: SEQ_LENGTHS[2]],
        },
    ]
    for s, n in zip(seqs, SEQ_LENGTHS):
        if len(s["ids"]) != n:
            raise SystemExit(f"sequence {s['name']} has {len(s['ids'])} tokens, expected {n}")
    return seqs


# ---------------------------------------------------------------------------------------
# Ablations: each feature must move the logits (otherwise the tiny model does not test it)
# ---------------------------------------------------------------------------------------
def ablations(spec: dict, config) -> list[tuple]:
    """(description, modified config, minimum effect, optional in-place model change)."""
    arch = spec["arch"]
    c = spec["cfg"]
    out = []

    def variant(desc, fn, minimum=ABLATION_MIN, model_fn=None):
        cfg = copy.deepcopy(config)
        if fn is not None:
            fn(cfg)
        out.append((desc, cfg, minimum, model_fn))

    if arch == "gemma":
        # GELU flavours differ by at most 5e-4 per activation; the effect stays ~1e-3 (as in
        # real models), so it only has to clear the comparison tolerance.
        variant("exact-erf GELU instead of tanh GELU", lambda k: setattr(k, "hidden_act", "gelu"), 1e-3)
    if arch == "gemma2":
        variant("no attention softcap", lambda k: setattr(k, "attn_logit_softcapping", None))
        variant("no final softcap", lambda k: setattr(k, "final_logit_softcapping", None))
        variant("no sliding window (all layers global)", lambda k: setattr(k, "sliding_window", 4096))
        variant("sliding window W-1 (off-by-one)", lambda k: setattr(k, "sliding_window", c["sliding_window"] - 1))
        variant("query scale 1/sqrt(head_dim)", lambda k: setattr(k, "query_pre_attn_scalar", c["head_dim"]))
    if arch == "gemma3":
        variant("no sliding window", lambda k: setattr(k, "sliding_window", 4096))
        variant("sliding window W-1 (off-by-one)", lambda k: setattr(k, "sliding_window", c["sliding_window"] - 1))

        def same_base(k):
            k.rope_parameters["sliding_attention"]["rope_theta"] = k.rope_parameters["full_attention"]["rope_theta"]

        variant("local RoPE base = global base", same_base)
        variant("all layers global", lambda k: setattr(k, "layer_types", ["full_attention"] * k.num_hidden_layers))
        if c.get("rope_scaling"):

            def no_scaling(k):
                k.rope_parameters["full_attention"] = {"rope_type": "default", "rope_theta": c["rope_theta"]}

            variant("no linear RoPE scaling on global layers", no_scaling)

            def scale_local_too(k):
                k.rope_parameters["sliding_attention"] = {
                    "rope_type": "linear",
                    "factor": 8.0,
                    "rope_theta": c["rope_local_base_freq"],
                }

            variant("linear RoPE scaling applied to local layers too", scale_local_too)
        if c["query_pre_attn_scalar"] != c["head_dim"]:
            variant("query scale 1/sqrt(head_dim)", lambda k: setattr(k, "query_pre_attn_scalar", c["head_dim"]))
        if c.get("final_logit_softcapping"):
            variant("no final softcap", lambda k: setattr(k, "final_logit_softcapping", None))
    if arch == "recurrent_gemma":
        variant("final softcap effectively off (1e9)", lambda k: setattr(k, "logits_soft_cap", 1e9))
        variant(
            "RoPE on the full head (partial_rotary_factor 1)",
            lambda k: k.rope_parameters.update(partial_rotary_factor=1.0),
        )
        d = c["hidden_size"]
        variant(
            f"exact sqrt({d}) embedding scale instead of bf16",
            None,
            model_fn=lambda m: setattr(m.model, "normalizer", torch.tensor(math.sqrt(d))),
        )

        def flip_conv(m):
            for layer in m.model.layers:
                if hasattr(layer.temporal_block, "conv_1d"):
                    w = layer.temporal_block.conv_1d.weight
                    w.copy_(w.flip(-1))

        variant("Conv1D kernel reversed in time", None, model_fn=flip_conv)
    return out


@torch.no_grad()
def run_ablation(folder: Path, cfg, model_fn, ids_list, base_logits, n_tok) -> float:
    model = load_hf(folder, cfg)
    if model_fn is not None:
        model_fn(model)
    worst = 0.0
    for ids, base in zip(ids_list, base_logits):
        worst = max(worst, maxdiff(hf_logits(model, ids)[:, :n_tok], base))
    return worst


# ---------------------------------------------------------------------------------------
# One tiny model
# ---------------------------------------------------------------------------------------
def write_model(spec: dict, toks: dict, root: Path) -> dict:
    name = spec["name"]
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "golden").mkdir(parents=True)
    tok = toks[spec["tokenizer"]]
    n_tok = len(tok["pieces"])

    v5 = v5_config(spec)
    hub = hub_config(spec)
    primary, other = (hub, v5) if spec["primary"] == "hub" else (v5, hub)
    other_name = "config.v5.json" if spec["primary"] == "hub" else "config.hub.json"
    write_json(folder / "config.json", primary, sort_keys=True)
    write_json(folder / other_name, other, sort_keys=True)
    eot = tok["pieces"].index("<end_of_turn>")
    write_json(folder / "generation_config.json", {"bos_token_id": 2, "eos_token_id": [1, eot], "pad_token_id": 0})
    write_text(folder / "tokenizer.json", tok["json"])
    write_json(folder / "tokenizer_config.json", tok["config"])

    config = load_config(folder)
    state = random_state(config, spec["seed"], spec["dtype"])
    from safetensors.torch import save_file

    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(folder / "model.safetensors", 0o644)

    model = load_hf(folder)
    assert_weights_loaded(model, state, folder)
    check_config(spec, model.config)

    tok_cases = tokenizer_goldens(folder, tok)
    seqs = make_sequences(folder, spec["seed"])
    ids_list = [s["ids"] for s in seqs]
    checks: dict = {}
    golden: dict = {
        "model": name,
        "arch": spec["arch"],
        "hf_class": HF_CLASS[spec["arch"]],
        "features": spec["features"],
        "config": "config.json",
        "config_dialect": DIALECT_NOTE[spec["primary"]][spec["arch"]],
        "other_config": other_name,
        "stored_dtype": spec["dtype"],
        "compute": compute_note(spec),
        "tokenizer_vocab": n_tok,
        "embedding_rows": config.vocab_size,
        "logits_columns": n_tok,
    }
    if config.vocab_size > n_tok:
        golden["logits_note"] = (
            f"embedding has {config.vocab_size} rows but the tokenizer {n_tok} tokens; "
            f"logits are stored for the first {n_tok} columns (the converter drops the "
            f"extra rows, as llama.cpp's does); greedy suppresses ids >= {n_tok}"
        )
    golden.update(embed_scale_info(spec, config))
    golden["layer_types"] = layer_types(spec, config)

    if spec["arch"] == "recurrent_gemma":
        seq_entries, greedy_entries = rg_goldens(folder, spec, config, state, model, seqs, checks)
        base_logits = [np.load(folder / "golden" / e["logits_hf"]) for e in seq_entries]
    else:
        seq_entries, greedy_entries = transformer_goldens(folder, spec, model, seqs, n_tok, checks)
        base_logits = [np.load(folder / "golden" / e["logits"]) for e in seq_entries]

    # The other config dialect must give the identical model.
    alt = load_hf(folder, load_config(folder, other_name))
    checks["other_dialect_max_abs_diff"] = max(
        maxdiff(hf_logits(alt, ids)[:, :n_tok], base) for ids, base in zip(ids_list, base_logits)
    )
    if checks["other_dialect_max_abs_diff"] != 0.0:
        raise SystemExit(f"{name}: {other_name} does not reproduce config.json")
    del alt

    abl = []
    for desc, cfg, minimum, model_fn in ablations(spec, config):
        d = run_ablation(folder, cfg, model_fn, ids_list, base_logits, n_tok)
        if d < minimum:
            raise SystemExit(f"{name}: ablation '{desc}' moves logits only {d:.2e}; feature not exercised")
        abl.append({"change": desc, "max_abs_logit_change": fmt(d)})
    checks["ablations_hf"] = abl

    golden["tokenizer_cases"] = tok_cases
    golden["sequences"] = seq_entries
    golden["greedy"] = greedy_entries
    golden["checks"] = checks
    write_json(folder / "golden" / "golden.json", golden)
    summary = copy.deepcopy(checks)
    summary.get("griffin_crosscheck", {}).pop("seq2_per_position_max_abs_diff_ref_vs_hf", None)
    return {
        "name": name,
        "seed": spec["seed"],
        "stored_dtype": spec["dtype"],
        "config_json_dialect": spec["primary"],
        "features": spec["features"],
        "checks": summary,
    }


DIALECT_NOTE = {
    "hub": {
        "gemma": "hub (top-level rope_theta, rope_scaling null, hidden_act 'gelu', torch_dtype)",
        "gemma2": "hub (top-level rope_theta, no layer_types, torch_dtype)",
        "gemma3": "hub (rope_theta, rope_local_base_freq, sliding_window_pattern, rope_scaling, no layer_types, "
        "torch_dtype)",
        "recurrent_gemma": "hub (top-level rope_theta and partial_rotary_factor, torch_dtype)",
    },
    "v5": {
        "gemma": "transformers 5 (rope_parameters, dtype)",
        "gemma2": "transformers 5 (rope_parameters, layer_types, dtype)",
        "gemma3": "transformers 5 (rope_parameters per layer type, layer_types, dtype)",
        "recurrent_gemma": "transformers 5 (rope_parameters with partial_rotary_factor, dtype)",
    },
}


def compute_note(spec: dict) -> str:
    import importlib.metadata as md

    tf = "transformers " + md.version("transformers")
    if spec["arch"] == "recurrent_gemma":
        return (
            f"float32 (checkpoint upcast at load); logits and greedy from Google's recurrentgemma "
            f"{md.version('recurrentgemma')} (PyTorch), logits_hf from {tf} with eager attention"
        )
    return f"float32 (checkpoint upcast at load), eager attention, {tf}"


def check_config(spec: dict, cfg) -> None:
    """The loaded config must say what the spec says (guards against a dialect key being
    silently ignored: llama.cpp's converter, for one, misses a transformers-5
    `rope_parameters.rope_theta` and uses its 1e6 default)."""
    c = spec["cfg"]
    if spec["arch"] == "gemma3":
        rp = cfg.rope_parameters
        assert rp["full_attention"]["rope_theta"] == c["rope_theta"], rp
        assert rp["sliding_attention"]["rope_theta"] == c["rope_local_base_freq"], rp
        want = [
            "full_attention" if (i + 1) % c["sliding_window_pattern"] == 0 else "sliding_attention"
            for i in range(c["num_hidden_layers"])
        ]
        assert list(cfg.layer_types) == want, cfg.layer_types
        if c.get("rope_scaling"):
            assert rp["full_attention"]["rope_type"] == "linear" and rp["full_attention"]["factor"] == 8.0, rp
            assert rp["sliding_attention"]["rope_type"] == "default", rp
    elif spec["arch"] == "recurrent_gemma":
        assert cfg.rope_parameters["rope_theta"] == c["rope_theta"], cfg.rope_parameters
        assert cfg.rope_parameters["partial_rotary_factor"] == 0.5, cfg.rope_parameters
        assert cfg.num_key_value_heads == 1
    else:
        assert cfg.rope_parameters["rope_theta"] == c["rope_theta"], cfg.rope_parameters
    if spec["arch"] == "gemma":
        assert cfg.hidden_act == "gelu_pytorch_tanh", cfg.hidden_act


def layer_types(spec: dict, config) -> list[str]:
    if spec["arch"] == "recurrent_gemma":
        return ["recurrent" if t == "linear_attention" else "attention" for t in config.layers_block_type]
    if spec["arch"] == "gemma":
        return ["global"] * config.num_hidden_layers
    return ["global" if t == "full_attention" else "local" for t in config.layer_types]


def embed_scale_info(spec: dict, config) -> dict:
    d = config.hidden_size
    exact = math.sqrt(d)
    if spec["arch"] == "recurrent_gemma":
        return {
            "embed_scale": bf16_round(exact),
            "embed_scale_rule": f"bf16(sqrt({d})) = {bf16_round(exact)}: RecurrentGemma (HF and Google) "
            "always round the normalizer to bf16, even in f32",
        }
    info = {
        "embed_scale": float(np.float32(exact)),
        "embed_scale_rule": f"exact f32 sqrt({d}) = {np.float32(exact)}: HF casts the scale to the weight "
        "dtype, and the goldens run with f32 weights",
    }
    if spec["dtype"] == "bfloat16":
        info["embed_scale_bf16"] = bf16_round(exact)
        info["embed_scale_note"] = (
            "seqN.logits_bf16_embed_scale.npy: same f32 computation but with "
            f"bf16(sqrt({d})) = {bf16_round(exact)}, the scale HF uses when it runs "
            "this bf16 checkpoint in bf16 and the runtime's default"
        )
    return info


def transformer_goldens(folder, spec, model, seqs, n_tok, checks):
    gdir = folder / "golden"
    entries = []
    for s in seqs:
        logits = hf_logits(model, s["ids"])[:, :n_tok]
        fn = f"{s['name']}.logits.npy"
        save_npy(gdir / fn, logits.numpy())
        e = {**s, "logits": fn, "shape": list(logits.shape)}
        entries.append(e)
    if spec["dtype"] == "bfloat16":
        emb = model.model.embed_tokens
        exact = float(emb.embed_scale)
        emb.embed_scale.fill_(bf16_round(math.sqrt(model.config.hidden_size)))
        worst = 0.0
        for s, e in zip(seqs, entries):
            fn = f"{s['name']}.logits_bf16_embed_scale.npy"
            alt = hf_logits(model, s["ids"])[:, :n_tok]
            worst = max(worst, maxdiff(alt, np.load(gdir / e["logits"])))
            save_npy(gdir / fn, alt.numpy())
            e["logits_bf16_embed_scale"] = fn
        emb.embed_scale.fill_(exact)
        checks["bf16_vs_exact_embed_scale_max_abs_diff"] = fmt(worst)
    greedy = []
    worst_step = 0.0
    for gi, (src, plen) in enumerate(zip((seqs[0], seqs[2]), GREEDY_PROMPTS)):
        prompt = src["ids"][:plen]
        new, step = hf_greedy(model, prompt, n_tok)
        step = step[:, :n_tok]
        if max(new) >= n_tok:
            raise SystemExit("greedy produced an id past the tokenizer")
        if top2_margin(step) < MIN_GREEDY_MARGIN:
            raise SystemExit(f"{folder}: greedy {gi} has a near-tie ({top2_margin(step):.2e}); pick another seed")
        # The cached decode must agree with a full recompute of the same tokens.
        full = hf_logits(model, prompt + new[:-1])[plen - 1 :, :n_tok]
        worst_step = max(worst_step, maxdiff(step, full))
        if torch.argmax(full, -1).tolist() != new:
            raise SystemExit(f"{folder}: greedy tokens differ from argmax of a full forward")
        fn = f"greedy{gi}.logits.npy"
        save_npy(gdir / fn, step.numpy())
        greedy.append(
            {
                "prompt_from": src["name"],
                "prompt_ids": prompt,
                "new_tokens": new,
                "step_logits": fn,
                "shape": list(step.shape),
                "min_top1_top2_margin": fmt(top2_margin(step)),
                "note": "KV-cached decode; step_logits[i] is what new_tokens[i] was chosen from",
            }
        )
    checks["cached_decode_vs_full_forward_max_abs_diff"] = fmt(worst_step)
    if worst_step > 1e-4:
        raise SystemExit(f"{folder}: cached decode differs from full forward by {worst_step}")
    return entries, greedy


def rg_goldens(folder, spec, config, state, hf_model, seqs, checks):
    """RecurrentGemma: goldens from Google's reference (window p - t <= W), HF logits kept
    as logits_hf.npy (HF window p - t < W). Cross-checks: HF with window W+1 equals the
    reference; HF with window W equals it before position W and differs from W on."""
    gdir = folder / "golden"
    ref = griffin_ref.build_ref_model(config.to_dict(), state)
    w = config.attention_window_size
    cfg_w1 = copy.deepcopy(config)
    cfg_w1.attention_window_size = w + 1
    hf_w1 = load_hf(folder, cfg_w1)

    entries = []
    inside = edge = beyond = overall = w1_diff = 0.0
    per_pos = None
    for s in seqs:
        r = griffin_ref.ref_logits(ref, s["ids"])
        h = hf_logits(hf_model, s["ids"])
        h1 = hf_logits(hf_w1, s["ids"])
        d = (r.double() - h.double()).abs().max(-1).values  # per position
        inside = max(inside, float(d[:w].max()))
        edge = max(edge, float(d[w]))
        beyond = max(beyond, float(d[w:].max()))
        overall = max(overall, float(d.max()))
        w1_diff = max(w1_diff, maxdiff(r, h1))
        if s["name"] == "seq2":
            per_pos = [fmt(float(x)) for x in d]
        save_npy(gdir / f"{s['name']}.logits.npy", r.numpy())
        save_npy(gdir / f"{s['name']}.logits_hf.npy", h.numpy())
        entries.append(
            {
                **s,
                "logits": f"{s['name']}.logits.npy",
                "logits_hf": f"{s['name']}.logits_hf.npy",
                "shape": list(r.shape),
            }
        )
    checks["griffin_crosscheck"] = {
        "window": w,
        "max_abs_diff_ref_vs_hf_positions_below_W": fmt(inside),
        "max_abs_diff_ref_vs_hf_at_position_W": fmt(edge),
        "max_abs_diff_ref_vs_hf_positions_W_and_beyond": fmt(beyond),
        "max_abs_diff_ref_vs_hf_overall": fmt(overall),
        "max_abs_diff_ref_vs_hf_with_window_W_plus_1": fmt(w1_diff),
        "seq2_per_position_max_abs_diff_ref_vs_hf": per_pos,
        "meaning": "HF lets position p see keys p-W+1..p (W keys), Google's reference p-W..p (W+1 keys). "
        "Positions < W see the same keys in both; from p = W on they differ. HF with the window "
        "set to W+1 reproduces the reference everywhere, so the window edge is the only difference.",
    }
    if inside > 1e-4 or w1_diff > 1e-4:
        raise SystemExit(
            f"{folder}: HF and the Griffin reference disagree beyond the window edge (inside {inside}, W+1 {w1_diff})"
        )
    if edge < 1e-3:
        raise SystemExit(f"{folder}: window edge does not show (diff {edge}); sequences too short?")

    greedy = []
    worst_step = 0.0
    for gi, (src, plen) in enumerate(zip((seqs[0], seqs[2]), GREEDY_PROMPTS)):
        prompt = src["ids"][:plen]
        new, step = griffin_ref.ref_greedy(ref, prompt, GREEDY_NEW)
        full = griffin_ref.ref_logits(ref, prompt + new[:-1])[plen - 1 :]
        worst_step = max(worst_step, maxdiff(step, full))
        hf_new, hf_step = hf_greedy(hf_w1, prompt, config.vocab_size)
        if hf_new != new:
            raise SystemExit(f"{folder}: HF(W+1) greedy {hf_new} != reference greedy {new}")
        worst_step = max(worst_step, maxdiff(step, hf_step))
        if top2_margin(step) < MIN_GREEDY_MARGIN:
            raise SystemExit(f"{folder}: greedy {gi} has a near-tie ({top2_margin(step):.2e}); pick another seed")
        fn = f"greedy{gi}.logits.npy"
        save_npy(gdir / fn, step.numpy())
        greedy.append(
            {
                "prompt_from": src["name"],
                "prompt_ids": prompt,
                "new_tokens": new,
                "step_logits": fn,
                "shape": list(step.shape),
                "min_top1_top2_margin": fmt(top2_margin(step)),
                "note": "Google reference, cached decode (KV ring of W previous tokens, conv and "
                "RG-LRU state); HF with window W+1 generates the same tokens",
            }
        )
    checks["cached_decode_vs_full_forward_and_hf_w_plus_1_max_abs_diff"] = fmt(worst_step)
    if worst_step > 1e-4:
        raise SystemExit(f"{folder}: cached decode differs by {worst_step}")
    return entries, greedy


# ---------------------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------------------
def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in (
        "torch",
        "transformers",
        "safetensors",
        "tokenizers",
        "numpy",
        "recurrentgemma",
        "gguf",
        "einops",
        "jaxtyping",
    ):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def tokenizer_summary(toks: dict) -> dict:
    out = {
        "how": TOKENIZER_SEED_NOTE,
        "scores": "merge rank of a piece = its id (transformers' SentencePiece-BPE merge generation); a "
        "llama.cpp-style tokenizer with score = -id reproduces every golden id list "
        "(checked by tokenizer_build.spm_encode)",
        "layouts": {},
    }
    for layout, tok in toks.items():
        p = tok["pieces"]
        first_merge = len(tb.SPECIALS[layout]) + len(tb.USER_DEFINED) + tb.NUM_BYTES
        n_chars = sum(1 for t, x in zip(tok["types"], p) if t == "normal" and len(x) == 1)
        out["layouts"][layout] = {
            "vocab": len(p),
            "control": {x: p.index(x) for x in tb.SPECIALS[layout]},
            "user_defined": {x: p.index(x) for x in tb.USER_DEFINED},
            "bytes": [p.index("<0x00>"), p.index("<0xFF>")],
            "merged_pieces": [first_merge, len(p) - n_chars - 1],
            "single_characters": [len(p) - n_chars, len(p) - 1],
            "used_by": sorted(m["name"] for m in TINY_MODELS if m["tokenizer"] == layout),
        }
    return out


def write_manifest(root: Path, results: list[dict], toks: dict) -> None:
    files = {}
    total = 0
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in ("MANIFEST.json", "README.md"):
            rel = p.relative_to(root).as_posix()
            files[rel] = {"sha256": sha256(p), "bytes": p.stat().st_size}
            total += p.stat().st_size
    manifest = {
        "generator": "tools/reference/make_tiny.py",
        "regenerate": "see tools/reference/README.md",
        "versions": versions(),
        "determinism": "torch single-threaded, deterministic algorithms; byte-identical with the pinned "
        "versions on the same CPU architecture",
        "seeds": {m["name"]: m["seed"] for m in TINY_MODELS},
        "tokenizer": tokenizer_summary(toks),
        "models": results,
        "total_bytes": total,
        "files": files,
    }
    write_json(root / "MANIFEST.json", manifest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default models/tiny in the repo; required with --shape)",
    )
    ap.add_argument("--only", action="append", default=None, help="write only this tiny model (repeatable)")
    ap.add_argument("--shape", default=None, help="write a random checkpoint with a real model's shapes")
    ap.add_argument("--layers", type=int, default=None, help="with --shape: override the layer count")
    ap.add_argument("--seed", type=int, default=7, help="with --shape: weight seed")
    args = ap.parse_args()
    set_determinism()

    if args.shape:
        import real_shape

        if args.out is None:
            raise SystemExit("--shape needs --out DIR (real-shape checkpoints are never committed)")
        real_shape.write(args.shape, args.out, layers=args.layers, seed=args.seed, tokenizer=build_tokenizers())
        return

    root = (args.out or REPO / "models" / "tiny").resolve()
    root.mkdir(parents=True, exist_ok=True)
    specs = TINY_MODELS
    if args.only:
        known = {m["name"] for m in TINY_MODELS}
        for n in args.only:
            if n not in known:
                raise SystemExit(f"unknown model {n!r}; known: {sorted(known)}")
        specs = [m for m in TINY_MODELS if m["name"] in args.only]
    toks = build_tokenizers()
    results = []
    for spec in specs:
        print(f"== {spec['name']}", flush=True)
        results.append(write_model(spec, toks, root))
        print(json.dumps(results[-1]["checks"], indent=1), flush=True)
    if not args.only:
        write_manifest(root, results, toks)
        print(f"wrote {root}/MANIFEST.json", flush=True)


if __name__ == "__main__":
    main()
