#!/usr/bin/env python3
"""Independent float64 NumPy forward pass for the tiny checkpoints, written from the
architectures' equations (the papers; the runtime's are at the top of src/model/*.rs), not
from transformers, reading config.json in either dialect and the safetensors by hand.
`--check` compares it with every golden in models/tiny.

It is a second oracle (the goldens come from transformers / Google's reference) and a
readable, step-by-step reference for debugging the Rust runtime: `forward()` returns the
logits and, with `trace=True`, the hidden state after every layer.

    python tools/reference/numpy_forward.py --check [models/tiny]

Needs only NumPy.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

GELU_C = np.sqrt(2.0 / np.pi)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        raw = data[base + a : base + b]
        if meta["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif meta["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: {name} has unsupported dtype {meta['dtype']}")
        out[name] = arr.reshape(meta["shape"]).astype(np.float64)
    return out


def read_config(path: Path) -> dict:
    """Normalise both dialects (transformers 5 and hub) into one dict."""
    c = json.loads(path.read_text())
    mt = c["model_type"]
    out = {
        "model_type": mt,
        "D": c["hidden_size"],
        "L": c["num_hidden_layers"],
        "H": c["num_attention_heads"],
        "K": c["num_key_value_heads"],
        "eps": c.get("rms_norm_eps", 1e-6),
        "V": c["vocab_size"],
    }
    rp = c.get("rope_parameters") or {}
    if mt == "recurrent_gemma":
        out["d"] = c["hidden_size"] // c["num_attention_heads"]
        out["R"] = c.get("lru_width") or c["hidden_size"]
        out["F"] = c["intermediate_size"] // 2
        out["W"] = c["attention_window_size"]
        out["cap_final"] = c["logits_soft_cap"]
        out["rope_base"] = rp.get("rope_theta", c.get("rope_theta", 10000.0))
        out["partial"] = rp.get("partial_rotary_factor", c.get("partial_rotary_factor", 0.5))
        pattern = c.get("block_types", ["recurrent", "recurrent", "attention"])
        out["types"] = [pattern[i % len(pattern)] for i in range(out["L"])]
        return out
    out["d"] = c["head_dim"]
    out["F"] = c["intermediate_size"]
    act = c.get("hidden_activation") or c.get("hidden_act") or "gelu_pytorch_tanh"
    if act not in ("gelu", "gelu_pytorch_tanh"):  # "gelu" in Gemma configs means tanh GELU
        raise ValueError(f"{path}: unexpected activation {act}")
    if mt == "gemma":
        out["scale"] = out["d"] ** -0.5
        out["types"] = ["global"] * out["L"]
        out["rope"] = {"global": (rp.get("rope_theta", c.get("rope_theta", 10000.0)), 1.0)}
        return out
    out["scale"] = c["query_pre_attn_scalar"] ** -0.5
    out["W"] = c["sliding_window"]
    out["cap_attn"] = c.get("attn_logit_softcapping")
    out["cap_final"] = c.get("final_logit_softcapping")
    if "layer_types" in c:
        out["types"] = ["global" if t == "full_attention" else "local" for t in c["layer_types"]]
    else:
        p = 2 if mt == "gemma2" else c.get("sliding_window_pattern", 6)
        out["types"] = ["global" if (i + 1) % p == 0 else "local" for i in range(out["L"])]
    if mt == "gemma2":
        base = rp.get("rope_theta", c.get("rope_theta", 10000.0))
        out["rope"] = {"global": (base, 1.0), "local": (base, 1.0)}
    else:
        if "full_attention" in rp:
            g, s = rp["full_attention"], rp["sliding_attention"]
            gf = g.get("factor", 1.0) if g.get("rope_type") == "linear" else 1.0
            out["rope"] = {"global": (g["rope_theta"], gf), "local": (s["rope_theta"], 1.0)}
        else:
            sc = c.get("rope_scaling") or {}
            gf = sc.get("factor", 1.0) if sc.get("rope_type", sc.get("type")) == "linear" else 1.0
            out["rope"] = {"global": (c.get("rope_theta", 1e6), gf), "local": (c.get("rope_local_base_freq", 1e4), 1.0)}
        out["qk_norm"] = True
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * (1.0 + w)


def gelu(x):
    return 0.5 * x * (1.0 + np.tanh(GELU_C * (x + 0.044715 * x**3)))


def rope(x, pos, base, factor, rot):
    """Half-split (NeoX) RoPE on the first `rot` dims of the last axis. x: [T, heads, d]."""
    half = rot // 2
    inv = base ** (-np.arange(half) * 2.0 / rot)
    ang = (pos[:, None] / factor) * inv[None, :]  # [T, half]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b, rest = x[..., :half], x[..., half:rot], x[..., rot:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin, rest], axis=-1)


def attention(q, k, v, scale, visible, cap=None):
    """q [T,H,d], k/v [T,K,d]; query heads grouped contiguously per KV head."""
    T, H, _ = q.shape
    K = k.shape[1]
    g = H // K
    out = np.empty_like(q[..., : v.shape[-1]])
    for h in range(H):
        s = (q[:, h] * scale) @ k[:, h // g].T
        if cap:
            s = cap * np.tanh(s / cap)
        s = np.where(visible, s, -np.inf)
        s = s - s.max(-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(-1, keepdims=True)
        out[:, h] = p @ v[:, h // g]
    return out.reshape(T, -1)


def forward(
    folder: Path,
    ids: list[int],
    embed_scale: float,
    config_file: str = "config.json",
    window_inclusive: bool = True,
    trace: bool = False,
):
    cfg = read_config(folder / config_file)
    w = read_safetensors(folder / "model.safetensors")
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    emb = w["model.embed_tokens.weight"]
    h = emb[ids] * embed_scale
    causal = pos[None, :] <= pos[:, None]
    dist = pos[:, None] - pos[None, :]
    eps = cfg["eps"]
    hidden = []
    mt = cfg["model_type"]
    for i in range(cfg["L"]):
        p = f"model.layers.{i}."
        if mt == "recurrent_gemma":
            h = rg_block(cfg, w, p, h, pos, causal, dist, i, window_inclusive)
        else:
            kind = cfg["types"][i]
            u = rms_norm(h, w[p + "input_layernorm.weight"], eps)
            q = (u @ w[p + "self_attn.q_proj.weight"].T).reshape(T, cfg["H"], cfg["d"])
            k = (u @ w[p + "self_attn.k_proj.weight"].T).reshape(T, cfg["K"], cfg["d"])
            v = (u @ w[p + "self_attn.v_proj.weight"].T).reshape(T, cfg["K"], cfg["d"])
            if cfg.get("qk_norm"):
                q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
                k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
            base, factor = cfg["rope"][kind]
            q, k = rope(q, pos, base, factor, cfg["d"]), rope(k, pos, base, factor, cfg["d"])
            visible = causal & (dist < cfg["W"]) if kind == "local" else causal
            a = attention(q, k, v, cfg["scale"], visible, cfg.get("cap_attn")) @ w[p + "self_attn.o_proj.weight"].T
            if mt == "gemma":
                h = h + a
                u = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
                h = h + mlp(w, p + "mlp.", u)
            else:
                h = h + rms_norm(a, w[p + "post_attention_layernorm.weight"], eps)
                u = rms_norm(h, w[p + "pre_feedforward_layernorm.weight"], eps)
                h = h + rms_norm(mlp(w, p + "mlp.", u), w[p + "post_feedforward_layernorm.weight"], eps)
        if trace:
            hidden.append(h.copy())
    norm_name = "model.final_norm.weight" if mt == "recurrent_gemma" else "model.norm.weight"
    logits = rms_norm(h, w[norm_name], eps) @ emb.T
    if cfg.get("cap_final"):
        logits = cfg["cap_final"] * np.tanh(logits / cfg["cap_final"])
    return (logits, hidden) if trace else logits


def mlp(w, p, u, bias=False):
    g = u @ w[p + "gate_proj.weight"].T
    up = u @ w[p + "up_proj.weight"].T
    if bias:
        g, up = g + w[p + "gate_proj.bias"], up + w[p + "up_proj.bias"]
    out = (gelu(g) * up) @ w[p + "down_proj.weight"].T
    return out + w[p + "down_proj.bias"] if bias else out


def rg_block(cfg, w, p, h, pos, causal, dist, i, window_inclusive):
    eps = cfg["eps"]
    T = h.shape[0]
    u = rms_norm(h, w[p + "temporal_pre_norm.weight"], eps)
    t = p + "temporal_block."
    if cfg["types"][i] == "attention":
        d = cfg["d"]
        q = (u @ w[t + "q_proj.weight"].T).reshape(T, cfg["H"], d)
        k = (u @ w[t + "k_proj.weight"].T).reshape(T, 1, d)
        v = (u @ w[t + "v_proj.weight"].T).reshape(T, 1, d)
        rot = int(d * cfg["partial"])
        q, k = rope(q, pos, cfg["rope_base"], 1.0, rot), rope(k, pos, cfg["rope_base"], 1.0, rot)
        # Google's reference: p - t <= W (W+1 keys); transformers: p - t < W.
        visible = causal & ((dist <= cfg["W"]) if window_inclusive else (dist < cfg["W"]))
        out = attention(q, k, v, d**-0.5, visible) @ w[t + "o_proj.weight"].T + w[t + "o_proj.bias"]
    else:
        y = gelu(u @ w[t + "linear_y.weight"].T + w[t + "linear_y.bias"])
        x = u @ w[t + "linear_x.weight"].T + w[t + "linear_x.bias"]
        cw = w[t + "conv_1d.weight"][:, 0, :]  # [R, 4], index 3 = current step
        xc = np.tile(w[t + "conv_1d.bias"], (T, 1))
        for s in range(cw.shape[1]):
            shifted = np.zeros_like(x)
            shifted[s:] = x[: T - s] if s else x
            xc += shifted * cw[:, cw.shape[1] - 1 - s]
        R = xc.shape[1]
        nb = w[t + "rg_lru.input_gate_weight"].shape[0]
        xb = xc.reshape(T, nb, R // nb)
        gx = 1 / (
            1
            + np.exp(
                -(np.einsum("thi,hij->thj", xb, w[t + "rg_lru.input_gate_weight"]) + w[t + "rg_lru.input_gate_bias"])
            )
        ).reshape(T, R)
        ga = 1 / (
            1
            + np.exp(
                -(
                    np.einsum("thi,hij->thj", xb, w[t + "rg_lru.recurrent_gate_weight"])
                    + w[t + "rg_lru.recurrent_gate_bias"]
                )
            )
        ).reshape(T, R)
        lam = w[t + "rg_lru.recurrent_param"]
        softplus = np.maximum(lam, 0) + np.log1p(np.exp(-np.abs(lam)))
        log_a = -8.0 * ga * softplus
        a = np.exp(log_a)
        mult = np.sqrt(-np.expm1(2 * log_a))
        state = np.zeros(R)
        hs = np.empty_like(xc)
        for j in range(T):
            if j == 0:
                state = gx[j] * xc[j]  # reset: a = 0, multiplier = 1
            else:
                state = a[j] * state + mult[j] * gx[j] * xc[j]
            hs[j] = state
        out = (hs * y) @ w[t + "linear_out.weight"].T + w[t + "linear_out.bias"]
    r = h + out
    u2 = rms_norm(r, w[p + "channel_pre_norm.weight"], eps)
    return r + mlp(w, p + "mlp_block.", u2, bias=True)


def check(root: Path) -> float:
    worst = 0.0
    for gpath in sorted(root.glob("*/golden/golden.json")):
        folder = gpath.parent.parent
        g = json.loads(gpath.read_text())
        n_tok = g["logits_columns"]
        rows = []
        for cfg_file in ("config.json", g["other_config"]):
            for s in g["sequences"]:
                ours = forward(folder, s["ids"], g["embed_scale"], cfg_file)[:, :n_tok]
                d = float(np.abs(ours - np.load(gpath.parent / s["logits"])).max())
                rows.append(d)
                if "logits_hf" in s:
                    hf = forward(folder, s["ids"], g["embed_scale"], cfg_file, window_inclusive=False)[:, :n_tok]
                    rows.append(float(np.abs(hf - np.load(gpath.parent / s["logits_hf"])).max()))
                if "logits_bf16_embed_scale" in s:
                    b = forward(folder, s["ids"], g["embed_scale_bf16"], cfg_file)[:, :n_tok]
                    rows.append(float(np.abs(b - np.load(gpath.parent / s["logits_bf16_embed_scale"])).max()))
        for gr in g["greedy"]:
            full = forward(folder, gr["prompt_ids"] + gr["new_tokens"][:-1], g["embed_scale"])[:, :n_tok]
            step = full[len(gr["prompt_ids"]) - 1 :]
            rows.append(float(np.abs(step - np.load(gpath.parent / gr["step_logits"])).max()))
            if list(step.argmax(-1)) != gr["new_tokens"]:
                raise SystemExit(f"{folder.name}: greedy tokens differ")
        print(f"{folder.name:22s} max |numpy f64 - golden| = {max(rows):.2e}")
        worst = max(worst, max(rows))
    return worst


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--check"]
    if "--check" not in sys.argv[1:]:
        raise SystemExit(__doc__)
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent.parent / "models" / "tiny"
    worst = check(root)
    print(f"worst {worst:.2e}")
    if worst > 1e-4:
        raise SystemExit("numpy forward disagrees with the goldens")
