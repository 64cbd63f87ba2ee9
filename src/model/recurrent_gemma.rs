//! RecurrentGemma (Griffin): residual blocks in a recurrent, recurrent, attention pattern.
//!
//! ```text
//! h = E[tok] · bf16(√D)
//! for each layer i:
//!     u = rms_norm(h, attn_norm)
//!     recurrent layer (recurrent_block):
//!         y = gelu_tanh(Wy·u + by),  x = Wx·u + bx                  input_branches
//!         x = conv1d(x)                  causal, depthwise, width 4, bias
//!         gx = σ(Gx·x + bx),  ga = σ(Ga·x + ba)    block-diagonal   rg_lru_gates
//!         a = exp(-c·softplus(Λ)·ga),  h' = a·h + √(1-a²)·(gx⊙x)    rg_lru_scan
//!         t = Wout·(h' ⊙ y) + bout
//!     attention layer (attention_block): local MQA, RoPE on the first half of each head,
//!         a query at p sees keys p-W ..= p (Google's convention), t = Wo·attn + bo
//!     r = h + t
//!     h = r + Wd·(gelu_tanh(Wg·u' + bg) ⊙ (Wu·u' + bu)) + bd,  u' = rms_norm(r, ffn_norm)
//!                                                                   mlp_block
//! logits = softcap(E · rms_norm(h, output_norm), 30)               the driver's OutputHead
//! ```
//! The state is fixed-size: per recurrent layer the last `conv_width − 1` conv inputs and the
//! RG-LRU vector (f32), per attention layer a ring of exactly `W` previous positions. The GGUF
//! naming is documented in `docs/gguf-recurrentgemma.md`.

use super::driver::{Decoder, OutputHead, Outputs, Stack};
use super::rows::{embed, norm_rows, residual};
use super::shared::{attend, ActsCache, AttnParams, MAX_GROUP_FLOATS, MAX_HEAD_DIM};
use super::state::Fingerprint;
use super::weights::{self, hparam_f32_opt, hparam_u32, hparam_u32_opt, MatRef};
use super::{ModelError, Result, RunConfig};
use crate::gguf::names::{key, tensor, Arch, BlockTensor};
use crate::gguf::GgufFile;
use crate::kv::{CacheType, KvRing};
use crate::ops::{self, Rope};
use rayon::prelude::*;

const ARCH: Arch = Arch::RecurrentGemma;

#[derive(Clone, Debug)]
pub struct RecurrentGemmaConfig {
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub eps: f32,
    /// Previous positions a query sees (it also sees itself).
    pub window: usize,
    /// Per layer: attention (true) or recurrent (false).
    pub is_attention: Vec<bool>,
    pub rope_dims: usize,
    pub rope_base: f32,
    pub attn_scale: f32,
    pub final_softcap: Option<f32>,
    pub embed_scale: f32,
    pub lru_width: usize,
    pub conv_width: usize,
    /// RG-LRU gate blocks (block-diagonal gates of `lru_width / gate_blocks` each).
    pub gate_blocks: usize,
    /// The RG-LRU constant `c` (8).
    pub lru_c: f32,
}

impl RecurrentGemmaConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<RecurrentGemmaConfig> {
        super::hparams_check::check(file)?;
        let bad = |msg: String| ModelError(format!("{}: {msg}", file.path().display()));
        let a = ARCH;
        let n_embd = hparam_u32(file, a, key::EMBEDDING_LENGTH)?;
        let n_layer = hparam_u32(file, a, key::BLOCK_COUNT)?;
        let n_ff = hparam_u32(file, a, key::FEED_FORWARD_LENGTH)?;
        let n_head = hparam_u32(file, a, key::HEAD_COUNT)?;
        let head_dim = hparam_u32_opt(file, a, key::KEY_LENGTH)?
            .unwrap_or(n_embd.checked_div(n_head).unwrap_or(0));
        let kv_key = a.key(key::HEAD_COUNT_KV);
        let kv = file.get_u32_array(&kv_key)?;
        if kv.len() != n_layer {
            return Err(bad(format!(
                "{kv_key} has {} entries for {n_layer} layers",
                kv.len()
            )));
        }
        if let Some(&x) = kv.iter().find(|&&x| x > 1) {
            return Err(bad(format!(
                "{kv_key}: {x} KV heads; RecurrentGemma attention is multi-query (1) and recurrent layers have 0"
            )));
        }
        let is_attention: Vec<bool> = kv.iter().map(|&x| x == 1).collect();
        if n_embd == 0 || n_layer == 0 || n_ff == 0 || n_head == 0 {
            return Err(bad(format!(
                "{}, {}, {} and {} must be > 0",
                key::EMBEDDING_LENGTH,
                key::BLOCK_COUNT,
                key::FEED_FORWARD_LENGTH,
                key::HEAD_COUNT
            )));
        }
        if head_dim == 0 || head_dim > MAX_HEAD_DIM || n_head * head_dim > MAX_GROUP_FLOATS {
            return Err(bad(format!(
                "unsupported attention shape: {n_head} heads of {head_dim}"
            )));
        }
        let rope_dims = hparam_u32_opt(file, a, key::ROPE_DIMENSION_COUNT)?.unwrap_or(head_dim / 2);
        if rope_dims == 0 || rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(bad(format!(
                "{} {rope_dims} does not fit head dim {head_dim}",
                key::ROPE_DIMENSION_COUNT
            )));
        }
        let lru_width = hparam_u32_opt(file, a, key::SSM_INNER_SIZE)?.unwrap_or(n_embd);
        let conv_width = hparam_u32_opt(file, a, key::SSM_CONV_KERNEL)?.unwrap_or(4);
        let gate_blocks = hparam_u32_opt(file, a, key::RGLRU_HEAD_COUNT)?.unwrap_or(n_head);
        if conv_width == 0 || conv_width > 16 {
            return Err(bad(format!("unsupported conv width {conv_width}")));
        }
        if gate_blocks == 0 || lru_width == 0 || lru_width % gate_blocks != 0 {
            return Err(bad(format!(
                "lru width {lru_width} is not a multiple of {gate_blocks} gate blocks"
            )));
        }
        let window = hparam_u32(file, a, key::SLIDING_WINDOW)?;
        if window == 0 {
            return Err(bad(format!("{} must be > 0", key::SLIDING_WINDOW)));
        }
        let embd = file.require_tensor(tensor::TOKEN_EMBD)?;
        let n_vocab = embd.dims().get(1).copied().unwrap_or(0) as usize;
        let default_scale = half::bf16::from_f32((n_embd as f32).sqrt()).to_f32();
        Ok(RecurrentGemmaConfig {
            n_embd,
            n_layer,
            n_ff,
            n_head,
            head_dim,
            n_vocab,
            eps: hparam_f32_opt(file, a, key::RMS_EPSILON)?.unwrap_or(1e-6),
            window,
            is_attention,
            rope_dims,
            rope_base: hparam_f32_opt(file, a, key::ROPE_FREQ_BASE)?.unwrap_or(10000.0),
            attn_scale: hparam_f32_opt(file, a, key::ATTENTION_SCALE)?
                .unwrap_or(1.0 / (head_dim as f32).sqrt()),
            final_softcap: hparam_f32_opt(file, a, key::FINAL_SOFTCAP)?.filter(|&c| c > 0.0),
            embed_scale: hparam_f32_opt(file, a, key::EMBEDDING_SCALE)?.unwrap_or(default_scale),
            lru_width,
            conv_width,
            gate_blocks,
            lru_c: hparam_f32_opt(file, a, key::RGLRU_C)?.unwrap_or(8.0),
        })
    }
}

struct Mlp {
    gate: MatRef,
    gate_b: Vec<f32>,
    up: MatRef,
    up_b: Vec<f32>,
    down: MatRef,
    down_b: Vec<f32>,
}

struct Recurrent {
    in_x: MatRef,
    in_x_b: Vec<f32>,
    in_y: MatRef,
    in_y_b: Vec<f32>,
    /// Tap-major `[conv_width][lru_width]` (transposed from the file's `[lru_width][conv_width]`),
    /// tap `conv_width − 1` = the current step.
    conv_w: Vec<f32>,
    conv_b: Vec<f32>,
    /// Per gate block: a `B × B` matrix, rows = outputs.
    gate_x: Vec<MatRef>,
    gate_x_b: Vec<f32>,
    gate_a: Vec<MatRef>,
    gate_a_b: Vec<f32>,
    /// `−c · softplus(Λ)`, precomputed: `log a_t = this · r_t`.
    neg_c_softplus_a: Vec<f32>,
    out: MatRef,
    out_b: Vec<f32>,
}

struct Attention {
    wq: MatRef,
    wk: MatRef,
    wv: MatRef,
    wo: MatRef,
    wo_b: Vec<f32>,
}

enum Temporal {
    Recurrent(Recurrent),
    Attention(Attention),
}

struct Layer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    temporal: Temporal,
    mlp: Mlp,
}

/// One layer's run-time state.
enum LayerState {
    Recurrent {
        /// The last `conv_width − 1` conv inputs, oldest first, `lru_width` each.
        conv: Vec<f32>,
        /// RG-LRU hidden state.
        h: Vec<f32>,
    },
    Attention(KvRing),
}

struct Scratch {
    x: Vec<f32>,
    u: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    o: Vec<f32>,
    /// Recurrent branch buffers, `n × lru_width` each.
    rx: Vec<f32>,
    ry: Vec<f32>,
    conv_out: Vec<f32>,
    gx: Vec<f32>,
    ga: Vec<f32>,
    /// One gate block's inputs / outputs gathered contiguously (`n × B`).
    blk_in: Vec<f32>,
    blk_out: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    acts: ActsCache,
}

/// The RecurrentGemma blocks, their state and scratch: the [`Stack`] the driver runs.
pub struct RecurrentGemmaStack {
    cfg: RecurrentGemmaConfig,
    token_embd: MatRef,
    layers: Vec<Layer>,
    rope: Rope,
    state: Vec<LayerState>,
    s: Scratch,
}

/// A RecurrentGemma model: the shared decoder driver over the Griffin blocks.
pub type RecurrentGemma = Decoder<RecurrentGemmaStack>;

impl RecurrentGemma {
    pub fn load(file: &GgufFile, run: &RunConfig) -> Result<RecurrentGemma> {
        let file = file.clone();
        let cfg = RecurrentGemmaConfig::from_gguf(&file)?;
        let (d, r, f) = (cfg.n_embd, cfg.lru_width, cfg.n_ff);
        let hd = cfg.head_dim;
        let q_dim = cfg.n_head * hd;
        let blk = r / cfg.gate_blocks;
        let ld = weights::Loader::new(&file);
        let token_embd = ld.matrix(tensor::TOKEN_EMBD, d, cfg.n_vocab)?;
        let output = ld
            .matrix_opt(tensor::OUTPUT, d, cfg.n_vocab)?
            .unwrap_or_else(|| token_embd.clone());
        let output_norm = weights::vector(&file, tensor::OUTPUT_NORM, d)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let w = |t: BlockTensor| t.weight(i);
            let b = |t: BlockTensor| t.bias(i);
            let mlp = Mlp {
                gate: ld.matrix(&w(BlockTensor::FfnGate), d, f)?,
                gate_b: weights::vector(&file, &b(BlockTensor::FfnGate), f)?,
                up: ld.matrix(&w(BlockTensor::FfnUp), d, f)?,
                up_b: weights::vector(&file, &b(BlockTensor::FfnUp), f)?,
                down: ld.matrix(&w(BlockTensor::FfnDown), f, d)?,
                down_b: weights::vector(&file, &b(BlockTensor::FfnDown), d)?,
            };
            let temporal = if cfg.is_attention[i] {
                Temporal::Attention(Attention {
                    wq: ld.matrix(&w(BlockTensor::AttnQ), d, q_dim)?,
                    wk: ld.matrix(&w(BlockTensor::AttnK), d, hd)?,
                    wv: ld.matrix(&w(BlockTensor::AttnV), d, hd)?,
                    wo: ld.matrix(&w(BlockTensor::AttnOutput), q_dim, d)?,
                    wo_b: weights::vector(&file, &b(BlockTensor::AttnOutput), d)?,
                })
            } else {
                let blocks = |name: &str| -> Result<Vec<MatRef>> {
                    let t = file.tensor(name).ok_or_else(|| {
                        ModelError(format!(
                            "{}: missing tensor {name:?}",
                            file.path().display()
                        ))
                    })?;
                    let want = [blk as u64, blk as u64, cfg.gate_blocks as u64];
                    if t.dims() != want {
                        return Err(ModelError(format!(
                            "{}: tensor {name:?} has shape {:?}, expected {want:?}",
                            file.path().display(),
                            t.dims()
                        )));
                    }
                    // Read it as one (H·B) × B matrix, then cut per block.
                    let whole = weights::matrix_from_3d(&file, name, blk, cfg.gate_blocks * blk)?;
                    let range = whole
                        .mapped_range()
                        .expect("matrix_from_3d reads the file's row layout");
                    let per = range.len() / cfg.gate_blocks;
                    Ok((0..cfg.gate_blocks)
                        .map(|h| {
                            let start = range.start + h * per;
                            MatRef::mapped(whole.ty, start..start + per, blk, blk)
                        })
                        .collect())
                };
                let lambda = weights::vector(&file, &BlockTensor::RglruA.bare(i), r)?;
                let per_channel =
                    weights::tensor_f32(&file, &w(BlockTensor::RglruConv1d), &[cfg.conv_width, r])?;
                let cw = cfg.conv_width;
                let conv_w = (0..cw * r)
                    .map(|i| per_channel[(i % r) * cw + i / r])
                    .collect();
                Temporal::Recurrent(Recurrent {
                    in_x: ld.matrix(&w(BlockTensor::RglruInX), d, r)?,
                    in_x_b: weights::vector(&file, &b(BlockTensor::RglruInX), r)?,
                    in_y: ld.matrix(&w(BlockTensor::RglruInY), d, r)?,
                    in_y_b: weights::vector(&file, &b(BlockTensor::RglruInY), r)?,
                    conv_w,
                    conv_b: weights::vector(&file, &b(BlockTensor::RglruConv1d), r)?,
                    gate_x: blocks(&w(BlockTensor::RglruGateX))?,
                    gate_x_b: weights::tensor_f32(
                        &file,
                        &b(BlockTensor::RglruGateX),
                        &[blk, cfg.gate_blocks],
                    )?,
                    gate_a: blocks(&w(BlockTensor::RglruGateA))?,
                    gate_a_b: weights::tensor_f32(
                        &file,
                        &b(BlockTensor::RglruGateA),
                        &[blk, cfg.gate_blocks],
                    )?,
                    neg_c_softplus_a: lambda
                        .iter()
                        .map(|&l| -cfg.lru_c * ops::softplus(l))
                        .collect(),
                    out: ld.matrix(&w(BlockTensor::RglruOut), r, d)?,
                    out_b: weights::vector(&file, &b(BlockTensor::RglruOut), d)?,
                })
            };
            layers.push(Layer {
                attn_norm: weights::vector(&file, &w(BlockTensor::AttnNorm), d)?,
                ffn_norm: weights::vector(&file, &w(BlockTensor::FfnNorm), d)?,
                temporal,
                mlp,
            });
        }
        if run.cache_type == CacheType::Q8_0 && hd % 32 != 0 {
            return Err(ModelError(format!(
                "{}: a q8_0 cache needs a head dimension divisible by 32 (got {hd})",
                file.path().display()
            )));
        }
        let state = layers
            .iter()
            .map(|l| match l.temporal {
                Temporal::Recurrent(_) => Ok(LayerState::Recurrent {
                    conv: vec![0.0; (cfg.conv_width - 1) * r],
                    h: vec![0.0; r],
                }),
                // The window's previous positions; the current one comes from the batch.
                Temporal::Attention(_) => KvRing::try_new(run.cache_type, cfg.window, 1, hd)
                    .map(LayerState::Attention)
                    .map_err(|e| ModelError(format!("{}: {e}", file.path().display()))),
            })
            .collect::<Result<Vec<_>>>()?;
        let nb = run.n_batch.max(1);
        let s = Scratch {
            x: vec![0.0; nb * d],
            u: vec![0.0; nb * d.max(q_dim).max(r)],
            q: vec![0.0; nb * q_dim],
            k: vec![0.0; nb * hd],
            v: vec![0.0; nb * hd],
            attn: vec![0.0; nb * q_dim],
            o: vec![0.0; nb * d],
            rx: vec![0.0; nb * r],
            ry: vec![0.0; nb * r],
            conv_out: vec![0.0; nb * r],
            gx: vec![0.0; nb * r],
            ga: vec![0.0; nb * r],
            blk_in: vec![0.0; nb * blk],
            blk_out: vec![0.0; nb * blk],
            gate: vec![0.0; nb * f],
            up: vec![0.0; nb * f],
            acts: ActsCache::default(),
        };
        let rope = Rope::new(hd, cfg.rope_dims, cfg.rope_base, 1.0, nb);
        let head = OutputHead::new(output_norm, output, cfg.eps, cfg.final_softcap);
        let stack = RecurrentGemmaStack {
            cfg,
            token_embd,
            layers,
            rope,
            state,
            s,
        };
        // The state is fixed-size: no context limit.
        // Done reading the file: the packed matrices' pages are dropped once more (see `Loader`).
        drop(ld);
        Ok(Decoder::new(file, stack, head, usize::MAX, nb))
    }

    pub fn cfg(&self) -> &RecurrentGemmaConfig {
        &self.stack.cfg
    }
}

impl Stack for RecurrentGemmaStack {
    fn arch(&self) -> &'static str {
        ARCH.name()
    }

    /// The residual blocks on `tokens` (at most `n_batch`), leaving the final hidden states
    /// in `s.x`. Per-token steps run over the rayon pool in rows of tokens; the RG-LRU scan
    /// is sequential in time and split across channels.
    fn forward_batch(
        &mut self,
        map: &[u8],
        pos0: usize,
        tokens: &[u32],
        _outputs: Outputs,
    ) -> Result<()> {
        let n = tokens.len();
        let RecurrentGemmaStack {
            cfg,
            token_embd,
            layers,
            rope,
            state,
            s,
        } = self;
        let (d, eps) = (cfg.n_embd, cfg.eps);
        // h = E[tok] · bf16(√D)
        embed(token_embd, map, tokens, cfg.embed_scale, &mut s.x[..n * d])?;
        rope.prepare(pos0, n);
        for (layer, state) in layers.iter().zip(state.iter_mut()) {
            // u = rms_norm(h, attn_norm)
            norm_rows(&s.x[..n * d], &layer.attn_norm, eps, &mut s.u[..n * d], d);
            // t = recurrent or attention block (u)
            match (&layer.temporal, state) {
                (Temporal::Recurrent(rec), LayerState::Recurrent { conv, h }) => {
                    recurrent_block(cfg, rec, conv, h, map, pos0, n, s)?
                }
                (Temporal::Attention(att), LayerState::Attention(cache)) => {
                    attention_block(cfg, att, cache, rope, map, pos0, n, s)?
                }
                _ => unreachable!("layer state is built from the layer kind"),
            }
            // r = h + t
            residual(&mut s.o[..n * d], None, eps, &mut s.x[..n * d], d);
            // h = r + mlp(u'),  u' = rms_norm(r, ffn_norm)
            norm_rows(&s.x[..n * d], &layer.ffn_norm, eps, &mut s.u[..n * d], d);
            mlp_block(cfg, &layer.mlp, map, n, s)?;
        }
        Ok(())
    }

    fn hidden(&self) -> &[f32] {
        &self.s.x
    }

    fn state_buffers(&self) -> Vec<&[u8]> {
        let mut bufs: Vec<&[u8]> = Vec::new();
        for st in &self.state {
            match st {
                LayerState::Recurrent { conv, h } => {
                    bufs.push(bytemuck::cast_slice(conv));
                    bufs.push(bytemuck::cast_slice(h));
                }
                LayerState::Attention(ring) => {
                    let (k, v) = ring.raw();
                    bufs.push(k);
                    bufs.push(v);
                }
            }
        }
        bufs
    }

    fn state_buffers_mut(&mut self) -> Vec<&mut [u8]> {
        let mut bufs: Vec<&mut [u8]> = Vec::new();
        for st in &mut self.state {
            match st {
                LayerState::Recurrent { conv, h } => {
                    bufs.push(bytemuck::cast_slice_mut(conv));
                    bufs.push(bytemuck::cast_slice_mut(h));
                }
                LayerState::Attention(ring) => {
                    let (k, v) = ring.raw_mut();
                    bufs.push(k);
                    bufs.push(v);
                }
            }
        }
        bufs
    }

    /// A sequence starts from zero conv inputs and a zero RG-LRU vector.
    fn reset(&mut self) {
        for st in &mut self.state {
            if let LayerState::Recurrent { conv, h } = st {
                conv.iter_mut().for_each(|v| *v = 0.0);
                h.iter_mut().for_each(|v| *v = 0.0);
            }
        }
    }

    fn fingerprint(&self, fp: &mut Fingerprint) {
        let c = &self.cfg;
        let cache = self
            .state
            .iter()
            .find_map(|s| match s {
                LayerState::Attention(r) => Some(r.cache_type().name()),
                _ => None,
            })
            .unwrap_or("none");
        fp.usize("embedding length", c.n_embd)
            .usize("layers", c.n_layer)
            .usize("feed-forward length", c.n_ff)
            .usize("heads", c.n_head)
            .usize("head dim", c.head_dim)
            .usize("vocabulary", c.n_vocab)
            .f32("rms epsilon", c.eps)
            .usize("attention window", c.window)
            .flags("attention layers", &c.is_attention)
            .usize("rope dims", c.rope_dims)
            .f32("rope base", c.rope_base)
            .f32("attention scale", c.attn_scale)
            .f32_opt("final softcap", c.final_softcap)
            .f32("embedding scale", c.embed_scale)
            .usize("lru width", c.lru_width)
            .usize("conv width", c.conv_width)
            .usize("gate blocks", c.gate_blocks)
            .f32("lru c", c.lru_c)
            .str("cache type", cache);
    }
}

/// The recurrent block on `n` rows of `s.u`, output in `s.o`.
#[allow(clippy::too_many_arguments)]
fn recurrent_block(
    cfg: &RecurrentGemmaConfig,
    rec: &Recurrent,
    conv: &mut [f32],
    h: &mut [f32],
    map: &[u8],
    pos0: usize,
    n: usize,
    s: &mut Scratch,
) -> Result<()> {
    let ops = ops::vec_ops();
    let (d, r) = (cfg.n_embd, cfg.lru_width);
    // y = gelu_tanh(Wy·u + by),  x = Wx·u + bx
    input_branches(rec, map, r, n, s)?;
    // x = conv1d(x)
    conv1d(
        cfg.conv_width,
        r,
        &rec.conv_w,
        &rec.conv_b,
        conv,
        &s.rx[..n * r],
        &mut s.conv_out[..n * r],
    );
    // gx = σ(Gx·x + bx),  ga = σ(Ga·x + ba)
    rg_lru_gates(cfg, rec, map, n, s)?;
    // h_t = a_t·h_{t−1} + √(1 − a_t²)·(gx_t ⊙ x_t), then h ⊙ y (into s.gx)
    rg_lru_scan(rec, h, pos0 == 0, r, n, s);
    // t = Wout·(h ⊙ y) + bout
    s.acts.input(&s.gx, n).matmul(map, &rec.out, &mut s.o)?;
    ops::par_rows(&mut s.o[..n * d], d, |_, o| ops.add(o, &rec.out_b));
    Ok(())
}

/// The two input branches of the recurrent block from `s.u`: the GeLU branch
/// `y = gelu_tanh(Wy·u + by)` into `s.ry` and the recurrence input `x = Wx·u + bx` into `s.rx`.
fn input_branches(rec: &Recurrent, map: &[u8], r: usize, n: usize, s: &mut Scratch) -> Result<()> {
    let ops = ops::vec_ops();
    s.acts
        .input(&s.u, n)
        .matmul_many(map, [&rec.in_y, &rec.in_x], [&mut s.ry, &mut s.rx])?;
    ops::par_rows2(&mut s.ry[..n * r], r, &mut s.rx[..n * r], r, |_, y, x| {
        ops.add(y, &rec.in_y_b);
        ops.gelu(y);
        ops.add(x, &rec.in_x_b);
    });
    Ok(())
}

/// The RG-LRU's block-diagonal gates on the conv output `s.conv_out`: `gx = σ(Gx·x + bx)` into
/// `s.gx` and `ga = σ(Ga·x + ba)` into `s.ga`. Per block, the batch's columns are gathered once,
/// quantized once and multiplied by both gate matrices.
fn rg_lru_gates(
    cfg: &RecurrentGemmaConfig,
    rec: &Recurrent,
    map: &[u8],
    n: usize,
    s: &mut Scratch,
) -> Result<()> {
    let ops = ops::vec_ops();
    let r = cfg.lru_width;
    let blk = r / cfg.gate_blocks;
    for hblk in 0..cfg.gate_blocks {
        let cols = hblk * blk..(hblk + 1) * blk;
        s.blk_in[..n * blk]
            .par_chunks_mut(blk)
            .zip(s.conv_out[..n * r].par_chunks(r))
            .for_each(|(dst, src)| dst.copy_from_slice(&src[cols.clone()]));
        let mut x = s.acts.input(&s.blk_in, n);
        for (mats, bias, out) in [
            (&rec.gate_x, &rec.gate_x_b, &mut s.gx),
            (&rec.gate_a, &rec.gate_a_b, &mut s.ga),
        ] {
            x.matmul(map, &mats[hblk], &mut s.blk_out)?;
            out[..n * r]
                .par_chunks_mut(r)
                .zip(s.blk_out[..n * blk].par_chunks(blk))
                .for_each(|(row, src)| {
                    let dst = &mut row[cols.clone()];
                    dst.copy_from_slice(src);
                    ops.add(dst, &bias[cols.clone()]);
                    ops.sigmoid(dst);
                });
        }
    }
    Ok(())
}

fn rg_lru_scan(rec: &Recurrent, h: &mut [f32], reset: bool, r: usize, n: usize, s: &mut Scratch) {
    let ops = ops::vec_ops();
    s.gx[..n * r]
        .par_chunks_mut(r)
        .zip(s.ga[..n * r].par_chunks_mut(r))
        .zip(s.rx[..n * r].par_chunks_mut(r))
        .zip(s.conv_out[..n * r].par_chunks_mut(r))
        .with_min_len((8192 / r).max(1))
        .enumerate()
        .for_each(|(t, (((gx, ga), a), x_then_m))| {
            // inp = gx ⊙ x
            gx.iter_mut()
                .zip(x_then_m.iter())
                .for_each(|(g, &x)| *g *= x);
            if reset && t == 0 {
                // h_0 = inp: no decay, no multiplier.
                a.iter_mut().for_each(|v| *v = 0.0);
                return;
            }
            // log a = (−c·softplus(Λ)) ⊙ ga, then a and m = √(1 − a²).
            ga.iter_mut()
                .zip(&rec.neg_c_softplus_a)
                .for_each(|(g, &k)| *g *= k);
            ops.decay(ga, a, x_then_m);
            // b = m ⊙ inp
            gx.iter_mut()
                .zip(x_then_m.iter())
                .for_each(|(g, &m)| *g *= m);
        });
    // h_t = a_t·h_{t−1} + b_t, written over b_t as h_t ⊙ y_t.
    let threads = rayon::current_num_threads();
    let chunk = r.div_ceil(threads).next_multiple_of(16).max(64);
    let (a, y) = (&s.rx[..n * r], &s.ry[..n * r]);
    let out = SharedRows(s.gx.as_mut_ptr());
    h.par_chunks_mut(chunk).enumerate().for_each(|(ci, hc)| {
        let c0 = ci * chunk;
        for t in 0..n {
            let row = t * r + c0;
            let (a, y) = (&a[row..row + hc.len()], &y[row..row + hc.len()]);
            // SAFETY: this task alone touches channels c0..c0 + hc.len() of every row of
            // `s.gx` (the chunks of `h` are disjoint), and `s.gx` outlives the loop.
            let b = unsafe { std::slice::from_raw_parts_mut(out.at(row), hc.len()) };
            for (((hv, &a), &y), b) in hc.iter_mut().zip(a).zip(y).zip(b) {
                *hv = if reset && t == 0 { *b } else { a * *hv + *b };
                *b = *hv * y;
            }
        }
    });
}

/// A pointer to rows that tasks write in disjoint column ranges.
struct SharedRows(*mut f32);
// SAFETY: used only where each task writes its own disjoint elements (see `rg_lru_scan`).
unsafe impl Sync for SharedRows {}
unsafe impl Send for SharedRows {}

impl SharedRows {
    fn at(&self, i: usize) -> *mut f32 {
        // SAFETY of the pointer arithmetic: callers stay inside the buffer.
        self.0.wrapping_add(i)
    }
}

/// The local-attention block on `n` rows of `s.u`, output in `s.o`: MQA, RoPE on the first
/// `rope_dims` of each head, a query at p sees keys p−W ..= p, `t = Wo·attn + bo`.
#[allow(clippy::too_many_arguments)]
fn attention_block(
    cfg: &RecurrentGemmaConfig,
    att: &Attention,
    cache: &mut KvRing,
    rope: &Rope,
    map: &[u8],
    pos0: usize,
    n: usize,
    s: &mut Scratch,
) -> Result<()> {
    let ops = ops::vec_ops();
    let (d, hd) = (cfg.n_embd, cfg.head_dim);
    let q_dim = cfg.n_head * hd;
    s.acts.input(&s.u, n).matmul_many(
        map,
        [&att.wq, &att.wk, &att.wv],
        [&mut s.q, &mut s.k, &mut s.v],
    )?;
    // RoPE, then keys and values rounded as the cache will hold them.
    let ct = cache.cache_type();
    ops::par_rows2(
        &mut s.q[..n * q_dim],
        q_dim,
        &mut s.k[..n * hd],
        hd,
        |t, q, k| {
            rope.apply(ops, q, t);
            rope.apply(ops, k, t);
            ct.round_trip(k);
        },
    );
    ops::par_rows(&mut s.v[..n * hd], hd, |_, v| ct.round_trip(v));
    attend(
        &AttnParams {
            n_head: cfg.n_head,
            n_head_kv: 1,
            head_dim: hd,
            scale: cfg.attn_scale,
            softcap: None,
            // Google's convention: W previous positions plus the current one.
            window: Some(cfg.window + 1),
        },
        cache,
        pos0,
        n,
        &s.q[..n * q_dim],
        &s.k[..n * hd],
        &s.v[..n * hd],
        &mut s.attn[..n * q_dim],
    );
    for t in n.saturating_sub(cache.slots())..n {
        cache.write(
            pos0 + t,
            &s.k[t * hd..(t + 1) * hd],
            &s.v[t * hd..(t + 1) * hd],
        );
    }
    s.acts.input(&s.attn, n).matmul(map, &att.wo, &mut s.o)?;
    ops::par_rows(&mut s.o[..n * d], d, |_, o| ops.add(o, &att.wo_b));
    Ok(())
}

/// The MLP block on `n` rows of `s.u` (= u'), added to the residual stream `s.x`:
/// `h = r + Wd·(gelu_tanh(Wg·u' + bg) ⊙ (Wu·u' + bu)) + bd`.
fn mlp_block(
    cfg: &RecurrentGemmaConfig,
    mlp: &Mlp,
    map: &[u8],
    n: usize,
    s: &mut Scratch,
) -> Result<()> {
    let ops = ops::vec_ops();
    let (d, f) = (cfg.n_embd, cfg.n_ff);
    s.acts
        .input(&s.u, n)
        .matmul_many(map, [&mlp.gate, &mlp.up], [&mut s.gate, &mut s.up])?;
    ops::par_rows2(&mut s.gate[..n * f], f, &mut s.up[..n * f], f, |_, g, u| {
        ops.add(g, &mlp.gate_b);
        ops.add(u, &mlp.up_b);
        ops.geglu(g, u);
    });
    s.acts.input(&s.gate, n).matmul(map, &mlp.down, &mut s.o)?;
    ops::par_rows2(&mut s.o[..n * d], d, &mut s.x[..n * d], d, |_, o, x| {
        ops.add(o, &mlp.down_b);
        ops.add(x, o);
    });
    Ok(())
}

/// Causal depthwise convolution over `n` new rows of `r` channels, continuing from `tail` (the
/// previous `width − 1` inputs, oldest first, zeros at the start of a sequence), which is
/// updated to the newest `width − 1` inputs. `w` is tap-major (`w[k · r + c]`, tap
/// `width − 1` the current step), so each tap is one contiguous multiply-add over the
/// channels; output rows are computed in parallel.
fn conv1d(
    width: usize,
    r: usize,
    w: &[f32],
    b: &[f32],
    tail: &mut [f32],
    x: &[f32],
    out: &mut [f32],
) {
    let n = x.len() / r;
    let keep = width - 1;
    let old_tail: &[f32] = tail;
    ops::par_rows(out, r, |t, o| {
        o.copy_from_slice(b);
        for k in 0..width {
            // Tap k multiplies the input `width − 1 − k` steps back.
            let back = keep - k;
            let src = if t >= back {
                &x[(t - back) * r..(t - back + 1) * r]
            } else {
                let j = keep + t - back;
                &old_tail[j * r..(j + 1) * r]
            };
            for ((o, &w), &v) in o.iter_mut().zip(&w[k * r..(k + 1) * r]).zip(src) {
                *o += w * v;
            }
        }
    });
    // New tail: the last `keep` inputs of (old tail ++ x). Row s reads row s + n > s of the
    // old tail (or x), so updating in increasing order never reads an overwritten row.
    for s in 0..keep {
        let j = n as isize - keep as isize + s as isize;
        if j >= 0 {
            let j = j as usize;
            tail[s * r..(s + 1) * r].copy_from_slice(&x[j * r..(j + 1) * r]);
        } else {
            let src = (keep as isize + j) as usize;
            tail.copy_within(src * r..(src + 1) * r, s * r);
        }
    }
}
