//! Output file types and the per-tensor type choice, following llama.cpp's quantizer
//! (`llama_tensor_get_type` in llama-quant.cpp, 0.3.36 sources) for the types offered here:
//!
//! - Only tensors with 2+ dims whose name ends in `weight` are quantized, never a
//!   `*_norm.weight` or a conv1d kernel; the rest stays as it is (F32 from Hugging Face).
//! - The output projection, and the token embedding when it is tied to it, go to Q6_K, or
//!   Q8_0 when the row length is not a multiple of the file type's block (`q8_0` files keep
//!   Q8_0).
//! - `q4_k_m`: `attn_v` and `ffn_down` get Q6_K on the "more bits" layers — the first and
//!   last eighth and every third layer in between, counted over those tensors in layer order.
//! - A type whose block does not divide the row length falls back: Q4_K → Q5_0,
//!   Q5_K → Q5_1, Q6_K → Q8_0; a 32-element type that still does not fit → F16.
//! - `--pure` skips the mixing (not the fallbacks).
//!
//! RecurrentGemma adds one rule (llama.cpp has no such model): the RG-LRU gate blocks
//! (`rglru_gate_x/a`) feed the recurrence every step and stay at Q8_0 in the 4-6 bit mixes.

use std::fmt;

use edgegemma::gguf::names::{tensor, BlockTensor};
use edgegemma::gguf::GgmlType;

/// The `-t` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q4_0,
    Q5_0,
    Q6K,
    Q4KM,
}

impl FileType {
    pub const ALL: [FileType; 8] = [
        FileType::F32,
        FileType::F16,
        FileType::Bf16,
        FileType::Q8_0,
        FileType::Q4_0,
        FileType::Q5_0,
        FileType::Q6K,
        FileType::Q4KM,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileType::F32 => "f32",
            FileType::F16 => "f16",
            FileType::Bf16 => "bf16",
            FileType::Q8_0 => "q8_0",
            FileType::Q4_0 => "q4_0",
            FileType::Q5_0 => "q5_0",
            FileType::Q6K => "q6_k",
            FileType::Q4KM => "q4_k_m",
        }
    }

    pub fn parse(s: &str) -> Option<FileType> {
        let lower = s.to_ascii_lowercase();
        FileType::ALL.into_iter().find(|t| t.name() == lower)
    }

    /// `general.file_type` (llama.cpp `llama_ftype`).
    pub fn llama_ftype(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q8_0 => 7,
            FileType::Q5_0 => 8,
            FileType::Q4KM => 15,
            FileType::Q6K => 18,
            FileType::Bf16 => 32,
        }
    }

    /// The type most matrices get.
    pub fn default_type(self) -> GgmlType {
        match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::Bf16 => GgmlType::BF16,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q5_0 => GgmlType::Q5_0,
            FileType::Q6K => GgmlType::Q6_K,
            FileType::Q4KM => GgmlType::Q4_K,
        }
    }

    fn is_quantized(self) -> bool {
        !matches!(self, FileType::F32 | FileType::F16 | FileType::Bf16)
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether llama.cpp would quantize a tensor of this name and shape at all.
pub fn quantizable(name: &str, dims: &[u64]) -> bool {
    // ggml_n_dims: trailing 1s do not count.
    let n_dims = dims.iter().rposition(|&d| d != 1).map_or(1, |p| p + 1);
    n_dims >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains(BlockTensor::RglruConv1d.stem())
        && !name.contains("ssm_conv1d")
}

/// What a tensor becomes, and why (for `--dry-run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// `None`: not a quantizable tensor; it keeps its (float) type.
    pub ty: Option<GgmlType>,
    /// The type the recipe wanted before a row-length fallback, if one happened.
    pub fell_back_from: Option<GgmlType>,
}

/// Chooses the type of every tensor. `tensors` must be in write order (layer by layer):
/// the "more bits" layers are counted over the `attn_v` / `ffn_down` tensors in that order.
/// `n_layer` is the model's block count.
pub fn choose_types(
    tensors: &[(&str, &[u64])],
    ftype: FileType,
    pure: bool,
    n_layer: usize,
) -> Vec<Choice> {
    let tied = !tensors.iter().any(|(n, _)| *n == tensor::OUTPUT);
    let n_attn_v = tensors.iter().filter(|(n, _)| is_attn_v(n)).count();
    let mut i_attn_v = 0;
    let mut i_ffn_down = 0;
    let default = ftype.default_type();
    tensors
        .iter()
        .map(|&(name, dims)| {
            if !quantizable(name, dims) {
                return Choice {
                    ty: None,
                    fell_back_from: None,
                };
            }
            if !ftype.is_quantized() {
                return Choice {
                    ty: Some(default),
                    fell_back_from: None,
                };
            }
            let mut ty = default;
            // Counters advance whether or not the mix is applied (llama.cpp only reaches
            // them when it is, but --pure never reads them).
            let more_bits_v = is_attn_v(name).then(|| {
                let m = use_more_bits(i_attn_v, n_attn_v);
                i_attn_v += 1;
                m
            });
            let more_bits_down = name.contains(BlockTensor::FfnDown.stem()).then(|| {
                let m = use_more_bits(i_ffn_down, n_layer);
                i_ffn_down += 1;
                m
            });
            if !pure {
                let nx = dims[0];
                if name == tensor::OUTPUT || (tied && name == tensor::TOKEN_EMBD) {
                    if nx % default.block_size() as u64 != 0 {
                        ty = GgmlType::Q8_0;
                    } else if ty != GgmlType::Q8_0 {
                        ty = GgmlType::Q6_K;
                    }
                } else if ftype == FileType::Q4KM
                    && (more_bits_v == Some(true) || more_bits_down == Some(true))
                {
                    ty = GgmlType::Q6_K;
                } else if (name.contains(BlockTensor::RglruGateX.stem())
                    || name.contains(BlockTensor::RglruGateA.stem()))
                    && ftype != FileType::Q8_0
                {
                    ty = GgmlType::Q8_0;
                }
            }
            fallback(ty, dims[0])
        })
        .collect()
}

fn is_attn_v(name: &str) -> bool {
    // llama.cpp's rule also names its fused-QKV and MLA tensors, which no Gemma file has.
    [BlockTensor::AttnV.stem(), "attn_qkv", "attn_kv_b"]
        .iter()
        .any(|stem| name.contains(&format!("{stem}.weight")))
}

/// llama.cpp's `use_more_bits`.
fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i as isize - (n / 8) as isize).rem_euclid(3) == 2
}

/// llama.cpp's `tensor_type_fallback` for the types used here.
fn fallback(ty: GgmlType, ncols: u64) -> Choice {
    if ncols.is_multiple_of(ty.block_size() as u64) {
        return Choice {
            ty: Some(ty),
            fell_back_from: None,
        };
    }
    let mut to = match ty {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        other => other,
    };
    if !ncols.is_multiple_of(to.block_size() as u64) {
        to = GgmlType::F16;
    }
    Choice {
        ty: Some(to),
        fell_back_from: Some(ty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_layers() {
        let picked: Vec<usize> = (0..18).filter(|&i| use_more_bits(i, 18)).collect();
        assert_eq!(picked, [0, 1, 4, 7, 10, 13, 15, 16, 17]);
        let picked: Vec<usize> = (0..8).filter(|&i| use_more_bits(i, 8)).collect();
        assert_eq!(picked, [0, 3, 6, 7]);
        // Fewer than 8 layers: n/8 = 0, so (i - 0) % 3 == 2 and the last eighth.
        let picked: Vec<usize> = (0..4).filter(|&i| use_more_bits(i, 4)).collect();
        assert_eq!(picked, [2, 3]);
    }

    #[test]
    fn fallbacks() {
        assert_eq!(fallback(GgmlType::Q4_K, 640).ty, Some(GgmlType::Q5_0));
        assert_eq!(fallback(GgmlType::Q6_K, 640).ty, Some(GgmlType::Q8_0));
        assert_eq!(fallback(GgmlType::Q4_K, 48).ty, Some(GgmlType::F16));
        assert_eq!(fallback(GgmlType::Q8_0, 48).ty, Some(GgmlType::F16));
        assert_eq!(fallback(GgmlType::Q4_0, 64).fell_back_from, None);
    }

    #[test]
    fn embedding_rules() {
        let dims = [256u64, 1000];
        let t = [("token_embd.weight", &dims[..])];
        let ty = |f| choose_types(&t, f, false, 1)[0].ty.unwrap();
        assert_eq!(ty(FileType::Q4_0), GgmlType::Q6_K);
        assert_eq!(ty(FileType::Q8_0), GgmlType::Q8_0);
        assert_eq!(ty(FileType::Q4KM), GgmlType::Q6_K);
        assert_eq!(ty(FileType::F16), GgmlType::F16);
        // Untied: the embedding is an ordinary matrix, the output gets Q6_K.
        let t2 = [
            ("token_embd.weight", &dims[..]),
            ("output.weight", &dims[..]),
        ];
        let c = choose_types(&t2, FileType::Q4_0, false, 1);
        assert_eq!(c[0].ty, Some(GgmlType::Q4_0));
        assert_eq!(c[1].ty, Some(GgmlType::Q6_K));
        let c = choose_types(&t2, FileType::Q4_0, true, 1);
        assert_eq!(c[1].ty, Some(GgmlType::Q4_0));
    }

    #[test]
    fn what_is_quantizable() {
        assert!(quantizable("blk.0.attn_q.weight", &[64, 64]));
        assert!(!quantizable("blk.0.attn_norm.weight", &[64]));
        assert!(!quantizable("blk.0.attn_q_norm.weight", &[64, 2]));
        assert!(!quantizable("blk.0.ffn_up.bias", &[64, 2]));
        assert!(!quantizable("blk.0.rglru_conv1d.weight", &[4, 64]));
        assert!(!quantizable("blk.0.rglru_a", &[64]));
        assert!(!quantizable("blk.0.ffn_up.weight", &[64, 1]));
        assert!(quantizable("blk.0.rglru_gate_x.weight", &[16, 16, 4]));
    }
}
