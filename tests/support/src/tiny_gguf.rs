//! A Gemma 3-shaped GGUF with random weights, written with edgegemma's own GGUF writer, for the
//! end-to-end criterion benches (`benches/e2e.rs`) and `edgegemma bench`'s tests: no converter,
//! no download.

use edgegemma::gguf::{GgmlType, GgufWriter};
use edgegemma::kernels::formats::quantize_row;
use std::io::BufWriter;
use std::path::Path;

pub use crate::dirs::TempDir;

/// Dimensions of the random model.
#[derive(Clone, Copy, Debug)]
pub struct TinyShape {
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_layer: usize,
    pub n_vocab: usize,
    pub window: usize,
    pub n_ctx: usize,
}

impl TinyShape {
    /// Smallest useful: runs a whole bench in a unit test in milliseconds.
    pub const TEST: TinyShape = TinyShape {
        n_embd: 64,
        n_ff: 128,
        n_head: 2,
        n_head_kv: 1,
        head_dim: 32,
        n_layer: 2,
        n_vocab: 512,
        window: 8,
        n_ctx: 4096,
    };

    /// Gemma 3 270M's layer shape scaled down (width 256, 6 layers: five sliding-window and
    /// one global, vocabulary 8192): small enough to bench a 512-token prefill in well under a
    /// second, big enough that the matrices, not the bookkeeping, dominate.
    pub const BENCH: TinyShape = TinyShape {
        n_embd: 256,
        n_ff: 1024,
        n_head: 4,
        n_head_kv: 1,
        head_dim: 64,
        n_layer: 6,
        n_vocab: 8192,
        window: 128,
        n_ctx: 2048,
    };
}

/// llama.cpp's `general.file_type` for a file whose matrices are all `ty`.
fn file_type(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        GgmlType::Q6_K => 18,
        GgmlType::BF16 => 32,
        _ => 1024,
    }
}

/// Deterministic values in [-1, 1).
struct Values(u64);

impl Values {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Writes a random-weight Gemma 3 model of `shape` with every matrix in `ty` (norms in F32).
pub fn write_tiny_gemma3(path: &Path, shape: TinyShape, ty: GgmlType) -> Result<(), String> {
    let s = shape;
    let (d, hd) = (s.n_embd as u64, s.head_dim as u64);
    let q_dim = s.n_head as u64 * hd;
    let kv_dim = s.n_head_kv as u64 * hd;
    let e = |e: edgegemma::gguf::GgufError| e.to_string();
    let mut w = GgufWriter::new(path);
    let a = "gemma3";
    w.add_metadata("general.architecture", a).map_err(e)?;
    w.add_metadata("general.name", "tiny random gemma3")
        .map_err(e)?;
    w.add_metadata("general.size_label", "tiny").map_err(e)?;
    w.add_metadata("general.file_type", file_type(ty))
        .map_err(e)?;
    let u32_keys = [
        ("context_length", s.n_ctx),
        ("embedding_length", s.n_embd),
        ("block_count", s.n_layer),
        ("feed_forward_length", s.n_ff),
        ("attention.head_count", s.n_head),
        ("attention.head_count_kv", s.n_head_kv),
        ("attention.key_length", s.head_dim),
        ("attention.value_length", s.head_dim),
        ("attention.sliding_window", s.window),
    ];
    for (k, v) in u32_keys {
        w.add_metadata(&format!("{a}.{k}"), v as u32).map_err(e)?;
    }
    w.add_metadata(&format!("{a}.attention.layer_norm_rms_epsilon"), 1e-6f32)
        .map_err(e)?;
    w.add_metadata(&format!("{a}.rope.freq_base"), 1_000_000f32)
        .map_err(e)?;
    w.add_metadata("tokenizer.ggml.bos_token_id", 2u32)
        .map_err(e)?;
    w.add_metadata("tokenizer.ggml.add_bos_token", true)
        .map_err(e)?;

    // (name, dims in ggml order, is a matrix)
    let mut tensors: Vec<(String, Vec<u64>, bool)> = vec![
        ("token_embd.weight".into(), vec![d, s.n_vocab as u64], true),
        ("output_norm.weight".into(), vec![d], false),
    ];
    for i in 0..s.n_layer {
        let n = |x: &str| format!("blk.{i}.{x}.weight");
        let ff = s.n_ff as u64;
        tensors.extend([
            (n("attn_norm"), vec![d], false),
            (n("attn_q"), vec![d, q_dim], true),
            (n("attn_k"), vec![d, kv_dim], true),
            (n("attn_v"), vec![d, kv_dim], true),
            (n("attn_q_norm"), vec![hd], false),
            (n("attn_k_norm"), vec![hd], false),
            (n("attn_output"), vec![q_dim, d], true),
            (n("post_attention_norm"), vec![d], false),
            (n("ffn_norm"), vec![d], false),
            (n("ffn_gate"), vec![d, ff], true),
            (n("ffn_up"), vec![d, ff], true),
            (n("ffn_down"), vec![ff, d], true),
            (n("post_ffw_norm"), vec![d], false),
        ]);
    }
    for (name, dims, matrix) in &tensors {
        let t = if *matrix { ty } else { GgmlType::F32 };
        w.add_tensor(name, t, dims).map_err(e)?;
    }
    let file = std::fs::File::create(path)
        .map_err(|err| format!("{}: cannot create: {err}", path.display()))?;
    let mut data = w.begin(BufWriter::new(file)).map_err(e)?;
    let mut vals = Values(0x7e57);
    for (name, dims, matrix) in &tensors {
        let cols = dims[0] as usize;
        let rows: usize = dims[1..].iter().product::<u64>() as usize;
        let t = if *matrix { ty } else { GgmlType::F32 };
        let row_bytes = t
            .row_bytes(cols as u64)
            .ok_or_else(|| format!("{name}: {cols} columns is not whole {t} blocks"))?
            as usize;
        // Matrices scaled like trained ones (activations stay finite); norms stored as 1 + w.
        let scale = 1.0 / (cols as f32).sqrt();
        let mut row = vec![0f32; cols];
        let mut bytes = vec![0u8; row_bytes];
        data.begin_tensor(name).map_err(e)?;
        for _ in 0..rows {
            for x in &mut row {
                *x = if *matrix {
                    vals.next() * scale
                } else {
                    1.0 + 0.1 * vals.next()
                };
            }
            quantize_row(t, &row, &mut bytes).map_err(|err| format!("{name}: {err}"))?;
            data.write_data(&bytes).map_err(e)?;
        }
        data.end_tensor().map_err(e)?;
    }
    data.finish().map_err(e)?;
    Ok(())
}
