//! GGUF names, spelled once: the architectures, the hyperparameter keys and the tensor names
//! that the converter writes (`tools/convert/src/arch.rs`) and the models read
//! (`src/model/*.rs`). `gemma`, `gemma2` and `gemma3` follow llama.cpp (`llama-arch.cpp`);
//! `recurrentgemma` is this project's convention (`docs/gguf-recurrentgemma.md`).
//!
//! A name that exists only here cannot be misspelled on one side and silently read as absent
//! (and so as its default) on the other. This module depends on nothing else in the crate.

use std::fmt;

/// `general.architecture`: which key family and tensor set a file uses.
pub const KEY_ARCHITECTURE: &str = "general.architecture";

/// The architectures edgegemma runs, by their `general.architecture` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    Gemma,
    Gemma2,
    Gemma3,
    RecurrentGemma,
}

impl Arch {
    pub const ALL: [Arch; 4] = [
        Arch::Gemma,
        Arch::Gemma2,
        Arch::Gemma3,
        Arch::RecurrentGemma,
    ];

    /// The `general.architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Gemma => "gemma",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
            Arch::RecurrentGemma => "recurrentgemma",
        }
    }

    /// The architecture a `general.architecture` value names, if edgegemma runs it.
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The hyperparameter key `{arch}.{suffix}` (`suffix` one of [`key`]'s constants).
    pub fn key(self, suffix: &str) -> String {
        key(self.name(), suffix)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The hyperparameter key `{arch}.{suffix}` for an architecture given by name (files of
/// architectures edgegemma does not run still use the same key suffixes).
pub fn key(arch: &str, suffix: &str) -> String {
    format!("{arch}.{suffix}")
}

/// Hyperparameter key suffixes; the full key is `{arch}.{suffix}` ([`Arch::key`]).
pub mod key {
    pub const CONTEXT_LENGTH: &str = "context_length";
    pub const EMBEDDING_LENGTH: &str = "embedding_length";
    pub const BLOCK_COUNT: &str = "block_count";
    /// Optional; when present it must equal the embedding rows.
    pub const VOCAB_SIZE: &str = "vocab_size";
    pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
    pub const HEAD_COUNT: &str = "attention.head_count";
    /// A u32 for Gemma; for RecurrentGemma one u32 per layer (1: attention, 0: recurrent).
    pub const HEAD_COUNT_KV: &str = "attention.head_count_kv";
    pub const KEY_LENGTH: &str = "attention.key_length";
    pub const VALUE_LENGTH: &str = "attention.value_length";
    pub const RMS_EPSILON: &str = "attention.layer_norm_rms_epsilon";
    /// Gemma 2/3: keys a local layer sees, itself included. RecurrentGemma: previous
    /// positions a query sees (it also sees itself).
    pub const SLIDING_WINDOW: &str = "attention.sliding_window";
    /// A period `P` (layer `i` is local iff `i mod P < P − 1`) or one bool per layer.
    pub const SLIDING_WINDOW_PATTERN: &str = "attention.sliding_window_pattern";
    pub const ATTENTION_SCALE: &str = "attention.scale";
    pub const ATTN_SOFTCAP: &str = "attn_logit_softcapping";
    pub const FINAL_SOFTCAP: &str = "final_logit_softcapping";
    pub const EMBEDDING_SCALE: &str = "embedding_scale";
    pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
    /// Gemma 3: RoPE base of the sliding-window layers.
    pub const ROPE_FREQ_BASE_SWA: &str = "rope.freq_base_swa";
    pub const ROPE_DIMENSION_COUNT: &str = "rope.dimension_count";
    /// `none` or `linear`.
    pub const ROPE_SCALING_TYPE: &str = "rope.scaling.type";
    pub const ROPE_SCALING_FACTOR: &str = "rope.scaling.factor";
    /// The older spelling of a linear factor (read when no scaling type is given).
    pub const ROPE_SCALE_LINEAR: &str = "rope.scale_linear";
    /// RecurrentGemma: RG-LRU width.
    pub const SSM_INNER_SIZE: &str = "ssm.inner_size";
    /// RecurrentGemma: temporal conv width.
    pub const SSM_CONV_KERNEL: &str = "ssm.conv_kernel";
    /// RecurrentGemma: block-diagonal gate blocks of the RG-LRU.
    pub const RGLRU_HEAD_COUNT: &str = "rglru.head_count";
    /// RecurrentGemma: the RG-LRU constant `c`.
    pub const RGLRU_C: &str = "rglru.c";
}

/// `general.*` keys the converter writes and the tools read.
pub mod general {
    /// What every `general.*` key starts with.
    pub const PREFIX: &str = "general.";
    pub const NAME: &str = "general.name";
    pub const TYPE: &str = "general.type";
    /// llama.cpp's `llama_ftype` of the file's main tensor type.
    pub const FILE_TYPE: &str = "general.file_type";
    pub const QUANTIZATION_VERSION: &str = "general.quantization_version";
    pub const SIZE_LABEL: &str = "general.size_label";
}

/// Tokenizer keys (llama.cpp's `tokenizer.ggml.*` and the chat templates).
pub mod tokenizer {
    /// What every tokenizer key starts with.
    pub const PREFIX: &str = "tokenizer.";
    /// What the `tokenizer.ggml.*` keys start with.
    pub const GGML_PREFIX: &str = "tokenizer.ggml.";
    pub const MODEL: &str = "tokenizer.ggml.model";
    pub const PRE: &str = "tokenizer.ggml.pre";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    pub const SCORES: &str = "tokenizer.ggml.scores";
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    pub const MERGES: &str = "tokenizer.ggml.merges";
    pub const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
    pub const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
    pub const EOT_ID: &str = "tokenizer.ggml.eot_token_id";
    pub const UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
    /// Spelled as llama.cpp spells it.
    pub const SEP_ID: &str = "tokenizer.ggml.seperator_token_id";
    pub const PAD_ID: &str = "tokenizer.ggml.padding_token_id";
    pub const CLS_ID: &str = "tokenizer.ggml.cls_token_id";
    pub const MASK_ID: &str = "tokenizer.ggml.mask_token_id";
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    pub const ADD_SEP: &str = "tokenizer.ggml.add_sep_token";
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
    /// The default chat template (Jinja source).
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
    /// The names of the other templates, each under `tokenizer.chat_template.{name}`.
    pub const CHAT_TEMPLATES: &str = "tokenizer.chat_templates";

    /// `tokenizer.chat_template.{name}`: a named (non-default) chat template.
    pub fn named_chat_template(name: &str) -> String {
        format!("{CHAT_TEMPLATE}.{name}")
    }
}

/// Tensors outside the blocks.
pub mod tensor {
    pub const TOKEN_EMBD: &str = "token_embd.weight";
    /// The untied output projection (absent: the embedding is reused).
    pub const OUTPUT: &str = "output.weight";
    pub const OUTPUT_NORM: &str = "output_norm.weight";
}

/// What every block tensor name starts with: `blk.{i}.`.
pub const BLOCK_PREFIX: &str = "blk.";

/// The block a tensor name belongs to (`blk.{i}.…` → `i`).
pub fn block_of(name: &str) -> Option<usize> {
    name.strip_prefix(BLOCK_PREFIX)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The tensors of one block, by their stem (`blk.{i}.{stem}.weight`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockTensor {
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    AttnOutput,
    /// Gemma 3 per-head query norm.
    AttnQNorm,
    /// Gemma 3 per-head key norm.
    AttnKNorm,
    /// Gemma 2/3: norm of the attention output.
    PostAttentionNorm,
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnDown,
    /// Gemma 2/3: norm of the MLP output.
    PostFfwNorm,
    RglruInX,
    RglruInY,
    RglruConv1d,
    RglruGateX,
    RglruGateA,
    /// The RG-LRU's raw `Λ` (no `.weight` suffix: see [`BlockTensor::bare`]).
    RglruA,
    RglruOut,
}

impl BlockTensor {
    /// The name between `blk.{i}.` and `.weight` / `.bias`.
    pub fn stem(self) -> &'static str {
        match self {
            BlockTensor::AttnNorm => "attn_norm",
            BlockTensor::AttnQ => "attn_q",
            BlockTensor::AttnK => "attn_k",
            BlockTensor::AttnV => "attn_v",
            BlockTensor::AttnOutput => "attn_output",
            BlockTensor::AttnQNorm => "attn_q_norm",
            BlockTensor::AttnKNorm => "attn_k_norm",
            BlockTensor::PostAttentionNorm => "post_attention_norm",
            BlockTensor::FfnNorm => "ffn_norm",
            BlockTensor::FfnGate => "ffn_gate",
            BlockTensor::FfnUp => "ffn_up",
            BlockTensor::FfnDown => "ffn_down",
            BlockTensor::PostFfwNorm => "post_ffw_norm",
            BlockTensor::RglruInX => "rglru_in_x",
            BlockTensor::RglruInY => "rglru_in_y",
            BlockTensor::RglruConv1d => "rglru_conv1d",
            BlockTensor::RglruGateX => "rglru_gate_x",
            BlockTensor::RglruGateA => "rglru_gate_a",
            BlockTensor::RglruA => "rglru_a",
            BlockTensor::RglruOut => "rglru_out",
        }
    }

    /// `blk.{layer}.{stem}.weight`.
    pub fn weight(self, layer: usize) -> String {
        format!("{BLOCK_PREFIX}{layer}.{}.weight", self.stem())
    }

    /// `blk.{layer}.{stem}.bias`.
    pub fn bias(self, layer: usize) -> String {
        format!("{BLOCK_PREFIX}{layer}.{}.bias", self.stem())
    }

    /// `blk.{layer}.{stem}`, for a parameter stored without a suffix.
    pub fn bare(self, layer: usize) -> String {
        format!("{BLOCK_PREFIX}{layer}.{}", self.stem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_as_llama_cpp_and_the_recurrentgemma_doc_do() {
        assert_eq!(
            Arch::Gemma3.key(key::HEAD_COUNT),
            "gemma3.attention.head_count"
        );
        assert_eq!(BlockTensor::AttnQ.weight(3), "blk.3.attn_q.weight");
        assert_eq!(BlockTensor::FfnUp.bias(0), "blk.0.ffn_up.bias");
        assert_eq!(BlockTensor::RglruA.bare(12), "blk.12.rglru_a");
        for a in Arch::ALL {
            assert_eq!(Arch::from_name(a.name()), Some(a));
        }
        assert_eq!(Arch::from_name("llama"), None);
        assert_eq!(block_of("blk.17.ffn_down.weight"), Some(17));
        assert_eq!(block_of(tensor::TOKEN_EMBD), None);
        assert_eq!(
            tokenizer::named_chat_template("tool_use"),
            "tokenizer.chat_template.tool_use"
        );
    }
}
