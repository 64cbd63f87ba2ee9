//! The one place that says how a Hugging Face checkpoint becomes a GGUF: the HF → GGUF tensor
//! map (which HF tensor, shapes, transforms) and which hyperparameter keys are written, for
//! `gemma`, `gemma2`, `gemma3` (llama.cpp's conventions) and `recurrentgemma` (this project's
//! convention, written down in `docs/gguf-recurrentgemma.md`). The GGUF names themselves are
//! the runtime's (`edgegemma::gguf::names`), so writer and reader cannot disagree.
//!
//! GGUF shapes are in ggml `ne` order (contiguous axis first): a PyTorch `[out, in]` matrix is
//! written unchanged and appears as `{in, out}`.

use edgegemma::gguf::names::{key, tensor, Arch, BlockTensor};
use edgegemma::gguf::OwnedValue;

use crate::config::HParams;

/// Gemma 3 drops embedding rows past the tokenizer (vision checkpoints pad them);
/// the others keep every row and pad the token list instead (llama.cpp's converters).
pub fn truncates_embedding(arch: Arch) -> bool {
    arch == Arch::Gemma3
}

/// How a GGUF tensor's values come from its HF source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// The same values in the same row-major order.
    Copy,
    /// Gemma RMSNorm gains are zero-centred in HF (`1 + w` at use); GGUF stores `1 + w`,
    /// computed in f32.
    NormPlusOne,
    /// `[blocks, in, out]` → `[blocks, out, in]`: each block becomes an ordinary
    /// `[out, in]` matrix with its input axis contiguous (RG-LRU gates).
    TransposeBlocks,
}

/// One GGUF tensor and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorMap {
    pub gguf: String,
    /// HF name with the usual `model.` root (see [`crate::hf`] for the multimodal roots).
    pub hf: String,
    /// Shape the HF tensor must have.
    pub hf_shape: Vec<usize>,
    /// GGUF shape (`ne` order). Its element count may be smaller than the source's when
    /// trailing rows are dropped (the Gemma 3 embedding).
    pub ne: Vec<u64>,
    pub transform: Transform,
}

/// HF tensors a text conversion skips on purpose.
pub fn skipped_hf_tensor(name: &str) -> bool {
    const SKIP: [&str; 6] = [
        "vision_tower.",
        "multi_modal_projector.",
        "model.vision_tower.",
        "model.multi_modal_projector.",
        "language_model.vision_tower.",
        "language_model.multi_modal_projector.",
    ];
    SKIP.iter().any(|p| name.starts_with(p)) || name.ends_with(".rotary_emb.inv_freq")
}

/// The tensor list for `hp`, with `n_vocab` embedding rows kept (see
/// [`Arch::truncates_embedding`]). `untied_output` adds `output.weight` from `lm_head`.
pub fn tensor_map(hp: &HParams, n_vocab: usize, untied_output: bool) -> Vec<TensorMap> {
    let (d, v) = (hp.n_embd, hp.vocab_size);
    let mut out = Vec::new();
    let mut add = |gguf: String, hf: String, hf_shape: Vec<usize>, transform: Transform| {
        let ne = ggml_dims(&hf_shape, transform);
        out.push(TensorMap {
            gguf,
            hf,
            hf_shape,
            ne,
            transform,
        });
    };
    use Transform::{Copy, NormPlusOne, TransposeBlocks};
    add(
        tensor::TOKEN_EMBD.into(),
        "model.embed_tokens.weight".into(),
        vec![v, d],
        Copy,
    );
    let final_norm = match hp.arch {
        Arch::RecurrentGemma => "model.final_norm.weight",
        _ => "model.norm.weight",
    };
    add(
        tensor::OUTPUT_NORM.into(),
        final_norm.into(),
        vec![d],
        NormPlusOne,
    );
    if untied_output {
        add(
            tensor::OUTPUT.into(),
            "lm_head.weight".into(),
            vec![v, d],
            Copy,
        );
    }

    let (h, kv, hd, f) = (hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_ff);
    for i in 0..hp.n_layer {
        let g = |t: BlockTensor| t.weight(i);
        let gb = |t: BlockTensor| t.bias(i);
        let l = |s: &str| format!("model.layers.{i}.{s}");
        match hp.arch {
            Arch::Gemma | Arch::Gemma2 | Arch::Gemma3 => {
                add(
                    g(BlockTensor::AttnNorm),
                    l("input_layernorm.weight"),
                    vec![d],
                    NormPlusOne,
                );
                add(
                    g(BlockTensor::AttnQ),
                    l("self_attn.q_proj.weight"),
                    vec![h * hd, d],
                    Copy,
                );
                add(
                    g(BlockTensor::AttnK),
                    l("self_attn.k_proj.weight"),
                    vec![kv * hd, d],
                    Copy,
                );
                add(
                    g(BlockTensor::AttnV),
                    l("self_attn.v_proj.weight"),
                    vec![kv * hd, d],
                    Copy,
                );
                add(
                    g(BlockTensor::AttnOutput),
                    l("self_attn.o_proj.weight"),
                    vec![d, h * hd],
                    Copy,
                );
                if hp.arch == Arch::Gemma3 {
                    add(
                        g(BlockTensor::AttnQNorm),
                        l("self_attn.q_norm.weight"),
                        vec![hd],
                        NormPlusOne,
                    );
                    add(
                        g(BlockTensor::AttnKNorm),
                        l("self_attn.k_norm.weight"),
                        vec![hd],
                        NormPlusOne,
                    );
                }
                if hp.arch == Arch::Gemma {
                    // Gemma 1's "post_attention_layernorm" is the pre-MLP norm.
                    add(
                        g(BlockTensor::FfnNorm),
                        l("post_attention_layernorm.weight"),
                        vec![d],
                        NormPlusOne,
                    );
                } else {
                    add(
                        g(BlockTensor::PostAttentionNorm),
                        l("post_attention_layernorm.weight"),
                        vec![d],
                        NormPlusOne,
                    );
                    add(
                        g(BlockTensor::FfnNorm),
                        l("pre_feedforward_layernorm.weight"),
                        vec![d],
                        NormPlusOne,
                    );
                    add(
                        g(BlockTensor::PostFfwNorm),
                        l("post_feedforward_layernorm.weight"),
                        vec![d],
                        NormPlusOne,
                    );
                }
                add(
                    g(BlockTensor::FfnGate),
                    l("mlp.gate_proj.weight"),
                    vec![f, d],
                    Copy,
                );
                add(
                    g(BlockTensor::FfnUp),
                    l("mlp.up_proj.weight"),
                    vec![f, d],
                    Copy,
                );
                add(
                    g(BlockTensor::FfnDown),
                    l("mlp.down_proj.weight"),
                    vec![d, f],
                    Copy,
                );
            }
            Arch::RecurrentGemma => {
                let r = hp.lru_width;
                let blk = r / h;
                add(
                    g(BlockTensor::AttnNorm),
                    l("temporal_pre_norm.weight"),
                    vec![d],
                    NormPlusOne,
                );
                add(
                    g(BlockTensor::FfnNorm),
                    l("channel_pre_norm.weight"),
                    vec![d],
                    NormPlusOne,
                );
                for (gg, hf, shape) in [
                    (BlockTensor::FfnGate, "mlp_block.gate_proj", [f, d]),
                    (BlockTensor::FfnUp, "mlp_block.up_proj", [f, d]),
                    (BlockTensor::FfnDown, "mlp_block.down_proj", [d, f]),
                ] {
                    add(g(gg), l(&format!("{hf}.weight")), shape.to_vec(), Copy);
                    add(gb(gg), l(&format!("{hf}.bias")), vec![shape[0]], Copy);
                }
                if hp.attention_layers[i] {
                    let t = |s: &str| l(&format!("temporal_block.{s}"));
                    add(
                        g(BlockTensor::AttnQ),
                        t("q_proj.weight"),
                        vec![h * hd, d],
                        Copy,
                    );
                    add(
                        g(BlockTensor::AttnK),
                        t("k_proj.weight"),
                        vec![kv * hd, d],
                        Copy,
                    );
                    add(
                        g(BlockTensor::AttnV),
                        t("v_proj.weight"),
                        vec![kv * hd, d],
                        Copy,
                    );
                    add(
                        g(BlockTensor::AttnOutput),
                        t("o_proj.weight"),
                        vec![d, h * hd],
                        Copy,
                    );
                    add(gb(BlockTensor::AttnOutput), t("o_proj.bias"), vec![d], Copy);
                } else {
                    let t = |s: &str| l(&format!("temporal_block.{s}"));
                    add(
                        g(BlockTensor::RglruInX),
                        t("linear_x.weight"),
                        vec![r, d],
                        Copy,
                    );
                    add(gb(BlockTensor::RglruInX), t("linear_x.bias"), vec![r], Copy);
                    add(
                        g(BlockTensor::RglruInY),
                        t("linear_y.weight"),
                        vec![r, d],
                        Copy,
                    );
                    add(gb(BlockTensor::RglruInY), t("linear_y.bias"), vec![r], Copy);
                    // [R, 1, W] is [R, W] row-major: channel c's taps, index W-1 = now.
                    add(
                        g(BlockTensor::RglruConv1d),
                        t("conv_1d.weight"),
                        vec![r, 1, hp.conv_width],
                        Copy,
                    );
                    add(
                        gb(BlockTensor::RglruConv1d),
                        t("conv_1d.bias"),
                        vec![r],
                        Copy,
                    );
                    add(
                        g(BlockTensor::RglruGateX),
                        t("rg_lru.input_gate_weight"),
                        vec![h, blk, blk],
                        TransposeBlocks,
                    );
                    add(
                        gb(BlockTensor::RglruGateX),
                        t("rg_lru.input_gate_bias"),
                        vec![h, blk],
                        Copy,
                    );
                    add(
                        g(BlockTensor::RglruGateA),
                        t("rg_lru.recurrent_gate_weight"),
                        vec![h, blk, blk],
                        TransposeBlocks,
                    );
                    add(
                        gb(BlockTensor::RglruGateA),
                        t("rg_lru.recurrent_gate_bias"),
                        vec![h, blk],
                        Copy,
                    );
                    // Stored raw: the runtime computes a = exp(-c·softplus(Λ)·r_t) from it.
                    add(
                        BlockTensor::RglruA.bare(i),
                        t("rg_lru.recurrent_param"),
                        vec![r],
                        Copy,
                    );
                    add(
                        g(BlockTensor::RglruOut),
                        t("linear_out.weight"),
                        vec![d, r],
                        Copy,
                    );
                    add(
                        gb(BlockTensor::RglruOut),
                        t("linear_out.bias"),
                        vec![d],
                        Copy,
                    );
                }
            }
        }
    }
    // Embedding (and untied output) rows past the vocabulary are dropped.
    for t in &mut out {
        if t.gguf == tensor::TOKEN_EMBD || t.gguf == tensor::OUTPUT {
            t.ne[1] = n_vocab as u64;
        }
    }
    out
}

/// GGUF `ne` for an HF shape: reversed. The conv1d weight's channel-group axis
/// (`[R, 1, W]`, always 1 for a depthwise conv) is dropped: it becomes `{W, R}`.
fn ggml_dims(hf_shape: &[usize], transform: Transform) -> Vec<u64> {
    let mut ne: Vec<u64> = hf_shape.iter().rev().map(|&x| x as u64).collect();
    if transform == Transform::Copy && hf_shape.len() == 3 && hf_shape[1] == 1 {
        ne.remove(1);
    }
    if transform == Transform::TransposeBlocks {
        // [H, in, out] → [H, out, in]; ne = {in, out, H} with in == out.
        ne.swap(0, 1);
    }
    ne
}

/// The architecture's hyperparameter keys.
pub fn metadata(hp: &HParams) -> Vec<(String, OwnedValue)> {
    let a = hp.arch;
    let mut kv: Vec<(String, OwnedValue)> = Vec::new();
    let mut put = |suffix: &str, v: OwnedValue| kv.push((a.key(suffix), v));
    let u = |x: usize| OwnedValue::U32(x as u32);
    put(key::CONTEXT_LENGTH, u(hp.context_length));
    put(key::EMBEDDING_LENGTH, u(hp.n_embd));
    put(key::BLOCK_COUNT, u(hp.n_layer));
    put(key::FEED_FORWARD_LENGTH, u(hp.n_ff));
    put(key::HEAD_COUNT, u(hp.n_head));
    match hp.arch {
        Arch::RecurrentGemma => {
            // Per layer: KV heads of the attention layers, 0 marks a recurrent layer.
            let per_layer: Vec<u32> = hp
                .attention_layers
                .iter()
                .map(|&att| if att { hp.n_head_kv as u32 } else { 0 })
                .collect();
            put(key::HEAD_COUNT_KV, per_layer.into());
        }
        _ => put(key::HEAD_COUNT_KV, u(hp.n_head_kv)),
    }
    put(key::KEY_LENGTH, u(hp.head_dim));
    put(key::VALUE_LENGTH, u(hp.head_dim));
    put(key::RMS_EPSILON, OwnedValue::F32(hp.rms_eps));
    if hp.arch == Arch::RecurrentGemma {
        // Window semantics: a query at p sees keys p-W ..= p (Google's reference).
        put(
            key::SLIDING_WINDOW,
            u(hp.sliding_window.expect("set for RecurrentGemma")),
        );
        put(key::ROPE_DIMENSION_COUNT, u(hp.rope_dims));
        put(key::ROPE_FREQ_BASE, OwnedValue::F32(hp.rope_theta));
        if let Some(cap) = hp.final_softcap {
            put(key::FINAL_SOFTCAP, OwnedValue::F32(cap));
        }
        // transformers and Google's reference round √D to bf16 even in f32.
        let scale = half::bf16::from_f32((hp.n_embd as f64).sqrt() as f32).to_f32();
        put(key::EMBEDDING_SCALE, OwnedValue::F32(scale));
        put(key::SSM_CONV_KERNEL, u(hp.conv_width));
        put(key::SSM_INNER_SIZE, u(hp.lru_width));
        put(key::RGLRU_HEAD_COUNT, u(hp.n_head));
        put(key::RGLRU_C, OwnedValue::F32(8.0));
        return kv;
    }
    put(key::ROPE_FREQ_BASE, OwnedValue::F32(hp.rope_theta));
    if let Some(local) = hp.rope_theta_local {
        put(key::ROPE_FREQ_BASE_SWA, OwnedValue::F32(local));
    }
    if let Some(factor) = hp.rope_linear_factor {
        put(key::ROPE_SCALING_TYPE, OwnedValue::from("linear"));
        put(key::ROPE_SCALING_FACTOR, OwnedValue::F32(factor));
    }
    if hp.arch != Arch::Gemma {
        let any_local = hp.local_layers.contains(&true);
        if let Some(w) = hp.sliding_window.filter(|_| any_local) {
            put(key::SLIDING_WINDOW, u(w));
        }
        // llama.cpp hard-codes the pattern (gemma2: 2, gemma3: 6) but reads this key.
        // Gemma 2 always has a window in llama.cpp, so an all-global Gemma 2 says so.
        if any_local || hp.arch == Arch::Gemma2 {
            put(
                key::SLIDING_WINDOW_PATTERN,
                sliding_window_pattern(&hp.local_layers),
            );
        }
        let scalar = hp.query_pre_attn_scalar.expect("set for Gemma 2/3");
        put(
            key::ATTENTION_SCALE,
            OwnedValue::F32((1.0 / (scalar as f64).sqrt()) as f32),
        );
        if let Some(cap) = hp.attn_softcap {
            put(key::ATTN_SOFTCAP, OwnedValue::F32(cap));
        }
        if let Some(cap) = hp.final_softcap {
            put(key::FINAL_SOFTCAP, OwnedValue::F32(cap));
        }
    }
    kv
}

/// The period `P` (layer `i` local iff `i mod P < P − 1`, llama.cpp's `set_swa_pattern`) when
/// the layers follow one with `P ≥ 2`, else one bool per layer (true = sliding window).
pub fn sliding_window_pattern(local: &[bool]) -> OwnedValue {
    if let Some(first_global) = local.iter().position(|&l| !l) {
        let period = first_global + 1;
        if period >= 2
            && local
                .iter()
                .enumerate()
                .all(|(i, &l)| l == (i % period < period - 1))
        {
            return OwnedValue::U32(period as u32);
        }
    }
    local.to_vec().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_periods_when_they_can_be() {
        let gemma3: Vec<bool> = (0..18).map(|i| (i + 1) % 6 != 0).collect();
        assert_eq!(sliding_window_pattern(&gemma3), OwnedValue::U32(6));
        let gemma2: Vec<bool> = (0..26).map(|i| i % 2 == 0).collect();
        assert_eq!(sliding_window_pattern(&gemma2), OwnedValue::U32(2));
        // 7 layers of period 6: layer 6 is local again.
        let seven: Vec<bool> = (0..7).map(|i| (i + 1) % 6 != 0).collect();
        assert_eq!(sliding_window_pattern(&seven), OwnedValue::U32(6));
        let irregular = vec![true, false, false, true];
        assert_eq!(
            sliding_window_pattern(&irregular),
            OwnedValue::from(irregular.clone())
        );
        let all_global = vec![false; 3];
        assert_eq!(
            sliding_window_pattern(&all_global),
            OwnedValue::from(all_global.clone())
        );
        let all_local = vec![true; 3];
        assert_eq!(
            sliding_window_pattern(&all_local),
            OwnedValue::from(all_local.clone())
        );
    }

    #[test]
    fn conv_and_gate_shapes() {
        assert_eq!(ggml_dims(&[64, 1, 4], Transform::Copy), [4, 64]);
        assert_eq!(
            ggml_dims(&[4, 16, 16], Transform::TransposeBlocks),
            [16, 16, 4]
        );
        assert_eq!(
            ggml_dims(&[1, 16, 16], Transform::TransposeBlocks),
            [16, 16, 1]
        );
        assert_eq!(ggml_dims(&[1], Transform::Copy), [1]);
        assert_eq!(ggml_dims(&[512, 48], Transform::Copy), [48, 512]);
    }
}
