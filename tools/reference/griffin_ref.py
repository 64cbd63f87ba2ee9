"""Google's `recurrentgemma` PyTorch reference, fed with the weights of an HF checkpoint.

The package's top-level `__init__` imports JAX. Only its PyTorch half is needed, so the
package object is registered without running that `__init__`; `recurrentgemma.torch` then
imports normally (it needs torch, einops, jaxtyping, sentencepiece, not JAX).
"""

from __future__ import annotations

import importlib.util
import sys
import types

import torch


def import_recurrentgemma_torch():
    if "recurrentgemma.torch" in sys.modules:
        return sys.modules["recurrentgemma.torch"]
    spec = importlib.util.find_spec("recurrentgemma")
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit("recurrentgemma is not installed (pip install -r tools/reference/requirements.txt)")
    if "recurrentgemma" not in sys.modules:
        pkg = types.ModuleType("recurrentgemma")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        pkg.__file__ = spec.origin
        sys.modules["recurrentgemma"] = pkg
    import recurrentgemma.torch as rgt  # noqa: E402

    if "jax" in sys.modules:
        raise RuntimeError("importing recurrentgemma.torch pulled in JAX")
    return rgt


def build_ref_model(hf_config: dict, state: dict[str, torch.Tensor]):
    """Griffin (ref) model with the HF checkpoint's weights, float32."""
    rgt = import_recurrentgemma_torch()
    common = sys.modules["recurrentgemma.common"]
    block_types = []
    pattern = list(hf_config["block_types"])
    for i in range(hf_config["num_hidden_layers"]):
        kind = pattern[i % len(pattern)]
        block_types.append(
            common.TemporalBlockType.ATTENTION if kind == "attention" else common.TemporalBlockType.RECURRENT
        )
    cfg = common.GriffinConfig(
        vocab_size=hf_config["vocab_size"],
        width=hf_config["hidden_size"],
        mlp_expanded_width=hf_config["intermediate_size"] // 2,
        num_heads=hf_config["num_attention_heads"],
        block_types=tuple(block_types),
        embeddings_scale_by_sqrt_dim=True,
        attention_window_size=hf_config["attention_window_size"],
        logits_soft_cap=hf_config["logits_soft_cap"],
        lru_width=hf_config["lru_width"],
    )
    model = rgt.Griffin(cfg, gradient_checkpointing=False, dtype=torch.float32)
    model.load_state_dict(hf_to_ref_state(state, block_types, common), strict=True)
    model.eval()
    return model


def hf_to_ref_state(state: dict[str, torch.Tensor], block_types, common) -> dict[str, torch.Tensor]:
    f = {k: v.float() for k, v in state.items()}
    out = {
        "embedder.input_embedding": f["model.embed_tokens.weight"],
        "final_norm.scale": f["model.final_norm.weight"],
    }
    for i, kind in enumerate(block_types):
        h = f"model.layers.{i}."
        r = f"blocks.{i}."
        out[r + "temporal_pre_norm.scale"] = f[h + "temporal_pre_norm.weight"]
        out[r + "channel_pre_norm.scale"] = f[h + "channel_pre_norm.weight"]
        # ffw_up.w is [2, D, F] input-major: index 0 = GeLU (gate) branch, 1 = linear (up).
        out[r + "mlp_block.ffw_up.w"] = torch.stack(
            [f[h + "mlp_block.gate_proj.weight"].T, f[h + "mlp_block.up_proj.weight"].T]
        ).contiguous()
        out[r + "mlp_block.ffw_up.b"] = torch.stack(
            [f[h + "mlp_block.gate_proj.bias"], f[h + "mlp_block.up_proj.bias"]]
        )[:, None, None, :].contiguous()
        out[r + "mlp_block.ffw_down.weight"] = f[h + "mlp_block.down_proj.weight"]
        out[r + "mlp_block.ffw_down.bias"] = f[h + "mlp_block.down_proj.bias"]
        t = h + "temporal_block."
        if kind == common.TemporalBlockType.RECURRENT:
            rb = r + "recurrent_block."
            for name in ("linear_x", "linear_y", "linear_out"):
                out[rb + name + ".weight"] = f[t + name + ".weight"]
                out[rb + name + ".bias"] = f[t + name + ".bias"]
            # HF conv weight [R, 1, 4] -> ref [4, R]; same time order (index 3 = current).
            out[rb + "conv_1d.w"] = f[t + "conv_1d.weight"][:, 0, :].T.contiguous()
            out[rb + "conv_1d.b"] = f[t + "conv_1d.bias"]
            out[rb + "rg_lru.a_param"] = f[t + "rg_lru.recurrent_param"]
            out[rb + "rg_lru.input_gate.w"] = f[t + "rg_lru.input_gate_weight"]
            out[rb + "rg_lru.input_gate.b"] = f[t + "rg_lru.input_gate_bias"]
            out[rb + "rg_lru.a_gate.w"] = f[t + "rg_lru.recurrent_gate_weight"]
            out[rb + "rg_lru.a_gate.b"] = f[t + "rg_lru.recurrent_gate_bias"]
        else:
            ab = r + "attention_block."
            out[ab + "proj_q.weight"] = f[t + "q_proj.weight"]
            out[ab + "proj_k.weight"] = f[t + "k_proj.weight"]
            out[ab + "proj_v.weight"] = f[t + "v_proj.weight"]
            out[ab + "proj_final.weight"] = f[t + "o_proj.weight"]
            out[ab + "proj_final.bias"] = f[t + "o_proj.bias"]
    return out


@torch.no_grad()
def ref_logits(model, ids: list[int]) -> torch.Tensor:
    tokens = torch.tensor([ids], dtype=torch.long)
    pos = torch.arange(len(ids), dtype=torch.long)[None]
    logits, _ = model(tokens, pos, return_logits=True, return_cache=False)
    return logits[0].float()


@torch.no_grad()
def ref_greedy(model, prompt: list[int], new_tokens: int) -> tuple[list[int], torch.Tensor]:
    """Prefill, then one token at a time with the ref's own caches (ring KV of W slots,
    conv and RG-LRU state). Returns the new tokens and the logits each step chose from."""
    tokens = torch.tensor([prompt], dtype=torch.long)
    pos = torch.arange(len(prompt), dtype=torch.long)[None]
    logits, cache = model(tokens, pos, return_logits=True, return_cache=True)
    step_logits = [logits[0, -1].float()]
    out = [int(torch.argmax(step_logits[-1]))]
    for _ in range(new_tokens - 1):
        p = len(prompt) + len(out) - 1
        logits, cache = model(
            torch.tensor([[out[-1]]], dtype=torch.long),
            torch.tensor([[p]], dtype=torch.long),
            cache=cache,
            return_logits=True,
            return_cache=True,
        )
        step_logits.append(logits[0, -1].float())
        out.append(int(torch.argmax(step_logits[-1])))
    return out, torch.stack(step_logits)
