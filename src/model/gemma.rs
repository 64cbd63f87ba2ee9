//! Gemma 1, 2 and 3 (text): one decoder family, three sets of switches.
//!
//! ```text
//! h = E[tok] · √D
//! for each layer i:
//!     u = rms_norm(h, attn_norm)
//!     q, k, v = Wq·u, Wk·u, Wv·u
//!     [Gemma 3] q, k = rms_norm per head (q_norm, k_norm)
//!     q, k = RoPE(q, k, pos)           (Gemma 3: local layers base 10k, global 1M × linear scale)
//!     a = softmax(softcap(q·k · scale) + mask) · v     (local layers see the last W positions)
//!     o = Wo·a;  [Gemma 2/3] o = rms_norm(o, post_attention_norm)
//!     h = h + o
//!     m = Wdown·(gelu_tanh(Wgate·u') ⊙ Wup·u'),  u' = rms_norm(h, ffn_norm)
//!     [Gemma 2/3] m = rms_norm(m, post_ffw_norm)
//!     h = h + m
//! logits = softcap(E · rms_norm(h, output_norm))      (tied embedding; cap on Gemma 2)
//! ```
//! Norm weights are used as stored: llama.cpp-compatible GGUF files hold `1 + w` for every
//! norm (q/k norms and the final norm too), and the converter writes them that way.

use super::driver::{Decoder, OutputHead, Outputs, Stack};
use super::rows::{embed, norm_rows, residual};
use super::shared::{attend, ActsCache, AttnParams, MAX_GROUP_FLOATS, MAX_HEAD_DIM};
use super::state::Fingerprint;
use super::weights::{self, hparam_f32_opt, hparam_u32, hparam_u32_opt, MatRef};
use super::{ModelError, Result, RunConfig};
use crate::gguf::names::{key, tensor, Arch, BlockTensor};
use crate::gguf::{GgufFile, Value};
use crate::kv::{CacheType, KvRing};
use crate::ops::{self, Rope};

/// Which member of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    Gemma1,
    Gemma2,
    Gemma3,
}

/// Hyperparameters, read from GGUF keys with llama.cpp's defaults where it hard-codes them.
#[derive(Clone, Debug)]
pub struct GemmaConfig {
    pub arch: Arch,
    pub generation: Generation,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub eps: f32,
    /// Sliding window (keys a local layer sees, the current one included).
    pub window: Option<usize>,
    /// Per layer: does it use the sliding window?
    pub is_local: Vec<bool>,
    pub rope_base_global: f32,
    pub rope_base_local: f32,
    /// Linear RoPE scaling (`1/factor`) on global layers.
    pub rope_freq_scale_global: f32,
    pub attn_scale: f32,
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    pub embed_scale: f32,
}

impl GemmaConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<GemmaConfig> {
        super::hparams_check::check(file)?;
        let name = file.architecture()?;
        let (arch, generation) = match Arch::from_name(name) {
            Some(a @ Arch::Gemma) => (a, Generation::Gemma1),
            Some(a @ Arch::Gemma2) => (a, Generation::Gemma2),
            Some(a @ Arch::Gemma3) => (a, Generation::Gemma3),
            _ => {
                return Err(ModelError(format!(
                    "{}: architecture {name:?} is not a Gemma decoder",
                    file.path().display()
                )))
            }
        };
        let a = arch;
        let n_embd = hparam_u32(file, a, key::EMBEDDING_LENGTH)?;
        let n_layer = hparam_u32(file, a, key::BLOCK_COUNT)?;
        let n_ff = hparam_u32(file, a, key::FEED_FORWARD_LENGTH)?;
        let n_head = hparam_u32(file, a, key::HEAD_COUNT)?;
        let n_head_kv = hparam_u32_opt(file, a, key::HEAD_COUNT_KV)?.unwrap_or(n_head);
        let bad = |msg: String| ModelError(format!("{}: {msg}", file.path().display()));
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(bad(format!(
                "head_count {n_head} is not a multiple of head_count_kv {n_head_kv}"
            )));
        }
        if n_embd == 0 || n_layer == 0 || n_ff == 0 {
            return Err(bad(format!(
                "{}, {} and {} must be > 0",
                key::EMBEDDING_LENGTH,
                key::BLOCK_COUNT,
                key::FEED_FORWARD_LENGTH
            )));
        }
        let head_dim = hparam_u32_opt(file, a, key::KEY_LENGTH)?.unwrap_or(n_embd / n_head);
        if let Some(vd) = hparam_u32_opt(file, a, key::VALUE_LENGTH)? {
            if vd != head_dim {
                return Err(bad(format!(
                    "value_length {vd} differs from key_length {head_dim}"
                )));
            }
        }
        if head_dim == 0 || head_dim % 2 != 0 || head_dim > MAX_HEAD_DIM {
            return Err(bad(format!("unsupported head dimension {head_dim}")));
        }
        if (n_head / n_head_kv) * head_dim > MAX_GROUP_FLOATS {
            return Err(bad(format!(
                "{} query heads per KV head of {head_dim} dims exceed the attention kernel's limit",
                n_head / n_head_kv
            )));
        }
        let n_ctx_train = hparam_u32_opt(file, a, key::CONTEXT_LENGTH)?.unwrap_or(8192);
        let eps = hparam_f32_opt(file, a, key::RMS_EPSILON)?.unwrap_or(1e-6);
        let embd = file.require_tensor(tensor::TOKEN_EMBD)?;
        let n_vocab = embd.dims().get(1).copied().unwrap_or(0) as usize;

        // Sliding window and which layers use it (llama.cpp hard-codes the pattern and does
        // not store it; our converter also writes it as a key, read here when present).
        let window = match generation {
            Generation::Gemma1 => None,
            Generation::Gemma2 => {
                Some(hparam_u32_opt(file, a, key::SLIDING_WINDOW)?.unwrap_or(4096))
            }
            Generation::Gemma3 => hparam_u32_opt(file, a, key::SLIDING_WINDOW)?.filter(|&w| w > 0),
        };
        let pattern_key = a.key(key::SLIDING_WINDOW_PATTERN);
        let is_local: Vec<bool> = match (window, file.get(&pattern_key)) {
            (None, _) => vec![false; n_layer],
            (Some(_), Some(Value::Array(_))) => {
                let v = file.get_bool_array(&pattern_key)?;
                if v.len() != n_layer {
                    return Err(bad(format!(
                        "{pattern_key} has {} entries for {n_layer} layers",
                        v.len()
                    )));
                }
                v
            }
            (Some(_), found) => {
                let period = match found {
                    Some(_) => file.get_u32(&pattern_key)? as usize,
                    None if generation == Generation::Gemma2 => 2,
                    None => 6,
                };
                // llama.cpp `set_swa_pattern(P)`: layer i is local iff P == 0 or
                // i mod P < P - 1 (so P = 1 makes every layer global).
                (0..n_layer)
                    .map(|i| period == 0 || i % period < period - 1)
                    .collect()
            }
        };

        let rope_base_global = hparam_f32_opt(file, a, key::ROPE_FREQ_BASE)?.unwrap_or(10000.0);
        let rope_base_local = match generation {
            Generation::Gemma3 => {
                hparam_f32_opt(file, a, key::ROPE_FREQ_BASE_SWA)?.unwrap_or(10000.0)
            }
            _ => hparam_f32_opt(file, a, key::ROPE_FREQ_BASE_SWA)?.unwrap_or(rope_base_global),
        };
        let scaling_type = file.get_str_opt(&a.key(key::ROPE_SCALING_TYPE))?;
        let factor = match scaling_type {
            None | Some("none") => hparam_f32_opt(file, a, key::ROPE_SCALE_LINEAR)?.unwrap_or(1.0),
            Some("linear") => hparam_f32_opt(file, a, key::ROPE_SCALING_FACTOR)?.unwrap_or(1.0),
            Some(other) => return Err(bad(format!("unsupported RoPE scaling type {other:?}"))),
        };
        if factor <= 0.0 || !factor.is_finite() {
            return Err(bad(format!("RoPE scaling factor {factor} is not positive")));
        }

        let attn_scale = match hparam_f32_opt(file, a, key::ATTENTION_SCALE)? {
            Some(s) => s,
            // llama.cpp's rule for the 27B models, whose query_pre_attn_scalar is D/H.
            None if (generation == Generation::Gemma2 && n_layer == 46)
                || (generation == Generation::Gemma3 && n_layer == 62) =>
            {
                1.0 / ((n_embd / n_head) as f32).sqrt()
            }
            None => 1.0 / (head_dim as f32).sqrt(),
        };
        let cap = |v: Option<f32>| v.filter(|&c| c > 0.0);
        let (attn_softcap, final_softcap) = match generation {
            Generation::Gemma1 => (None, None),
            Generation::Gemma2 => (
                cap(Some(
                    hparam_f32_opt(file, a, key::ATTN_SOFTCAP)?.unwrap_or(50.0),
                )),
                cap(Some(
                    hparam_f32_opt(file, a, key::FINAL_SOFTCAP)?.unwrap_or(30.0),
                )),
            ),
            Generation::Gemma3 => (
                cap(hparam_f32_opt(file, a, key::ATTN_SOFTCAP)?),
                cap(hparam_f32_opt(file, a, key::FINAL_SOFTCAP)?),
            ),
        };
        // llama.cpp scales by the exact √D; a file may say otherwise.
        let embed_scale =
            hparam_f32_opt(file, a, key::EMBEDDING_SCALE)?.unwrap_or((n_embd as f32).sqrt());

        Ok(GemmaConfig {
            arch,
            generation,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            n_vocab,
            n_ctx_train,
            eps,
            window,
            is_local,
            rope_base_global,
            rope_base_local,
            rope_freq_scale_global: 1.0 / factor,
            attn_scale,
            attn_softcap,
            final_softcap,
            embed_scale,
        })
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: MatRef,
    wk: MatRef,
    wv: MatRef,
    wo: MatRef,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: MatRef,
    up: MatRef,
    down: MatRef,
    post_ffw_norm: Option<Vec<f32>>,
    local: bool,
}

/// Per-batch buffers, allocated once for `n_batch` tokens.
struct Scratch {
    x: Vec<f32>,
    u: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    acts: ActsCache,
}

/// The Gemma blocks, their KV caches and scratch: the [`Stack`] the driver runs.
pub struct GemmaStack {
    cfg: GemmaConfig,
    token_embd: MatRef,
    layers: Vec<Layer>,
    rope_local: Rope,
    rope_global: Rope,
    caches: Vec<KvRing>,
    s: Scratch,
}

/// A Gemma model: the shared decoder driver over the Gemma blocks.
pub type Gemma = Decoder<GemmaStack>;

impl Gemma {
    pub fn load(file: &GgufFile, run: &RunConfig) -> Result<Gemma> {
        // The model keeps its own handle on the same mapping.
        let file = file.clone();
        let cfg = GemmaConfig::from_gguf(&file)?;
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let q_dim = cfg.n_head * hd;
        let kv_dim = cfg.n_head_kv * hd;
        let ld = weights::Loader::new(&file);
        let token_embd = ld.matrix(tensor::TOKEN_EMBD, d, cfg.n_vocab)?;
        let output = ld
            .matrix_opt(tensor::OUTPUT, d, cfg.n_vocab)?
            .unwrap_or_else(|| token_embd.clone());
        let output_norm = weights::vector(&file, tensor::OUTPUT_NORM, d)?;
        let g2plus = cfg.generation != Generation::Gemma1;
        let g3 = cfg.generation == Generation::Gemma3;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |t: BlockTensor| t.weight(i);
            let opt_vec = |t: BlockTensor, len: usize, want: bool| -> Result<Option<Vec<f32>>> {
                if want {
                    weights::vector(&file, &n(t), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: weights::vector(&file, &n(BlockTensor::AttnNorm), d)?,
                wq: ld.matrix(&n(BlockTensor::AttnQ), d, q_dim)?,
                wk: ld.matrix(&n(BlockTensor::AttnK), d, kv_dim)?,
                wv: ld.matrix(&n(BlockTensor::AttnV), d, kv_dim)?,
                wo: ld.matrix(&n(BlockTensor::AttnOutput), q_dim, d)?,
                q_norm: opt_vec(BlockTensor::AttnQNorm, hd, g3)?,
                k_norm: opt_vec(BlockTensor::AttnKNorm, hd, g3)?,
                post_attn_norm: opt_vec(BlockTensor::PostAttentionNorm, d, g2plus)?,
                ffn_norm: weights::vector(&file, &n(BlockTensor::FfnNorm), d)?,
                gate: ld.matrix(&n(BlockTensor::FfnGate), d, cfg.n_ff)?,
                up: ld.matrix(&n(BlockTensor::FfnUp), d, cfg.n_ff)?,
                down: ld.matrix(&n(BlockTensor::FfnDown), cfg.n_ff, d)?,
                post_ffw_norm: opt_vec(BlockTensor::PostFfwNorm, d, g2plus)?,
                local: cfg.is_local[i],
            });
        }
        // Never more positions than the model was trained for: the KV rings are sized by it.
        let n_ctx = match run.n_ctx {
            0 => cfg.n_ctx_train,
            n => n.min(cfg.n_ctx_train),
        };
        let n_batch = run.n_batch.clamp(1, n_ctx.max(1));
        if run.cache_type == CacheType::Q8_0 && hd % 32 != 0 {
            return Err(ModelError(format!(
                "{}: a q8_0 cache needs a head dimension divisible by 32 (got {hd})",
                file.path().display()
            )));
        }
        let caches = layers
            .iter()
            .map(|l| {
                let slots = match (l.local, cfg.window) {
                    (true, Some(w)) => w.min(n_ctx),
                    _ => n_ctx,
                };
                KvRing::try_new(run.cache_type, slots, cfg.n_head_kv, hd).map_err(|e| {
                    ModelError(format!("{}: {e} (use a smaller -c)", file.path().display()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let rope_local = Rope::new(hd, hd, cfg.rope_base_local, 1.0, n_batch);
        let rope_global = Rope::new(
            hd,
            hd,
            cfg.rope_base_global,
            cfg.rope_freq_scale_global,
            n_batch,
        );
        let nb = n_batch;
        let s = Scratch {
            x: vec![0.0; nb * d],
            u: vec![0.0; nb * d.max(q_dim)],
            q: vec![0.0; nb * q_dim],
            k: vec![0.0; nb * kv_dim],
            v: vec![0.0; nb * kv_dim],
            attn: vec![0.0; nb * q_dim],
            o: vec![0.0; nb * d],
            gate: vec![0.0; nb * cfg.n_ff],
            up: vec![0.0; nb * cfg.n_ff],
            acts: ActsCache::default(),
        };
        let head = OutputHead::new(output_norm, output, cfg.eps, cfg.final_softcap);
        let stack = GemmaStack {
            cfg,
            token_embd,
            layers,
            rope_local,
            rope_global,
            caches,
            s,
        };
        // Done reading the file: the packed matrices' pages are dropped once more (see `Loader`).
        drop(ld);
        Ok(Decoder::new(file, stack, head, n_ctx, n_batch))
    }

    pub fn cfg(&self) -> &GemmaConfig {
        &self.stack.cfg
    }
}

impl Stack for GemmaStack {
    fn arch(&self) -> &'static str {
        self.cfg.arch.name()
    }

    /// Runs the decoder stack on `tokens` (at most `n_batch`), leaving the final hidden states
    /// in `s.x`. Every per-token step runs over the rayon pool in rows of tokens (each row
    /// computed alone, so the split never changes a bit).
    fn forward_batch(
        &mut self,
        map: &[u8],
        pos0: usize,
        tokens: &[u32],
        outputs: Outputs,
    ) -> Result<()> {
        let n = tokens.len();
        let GemmaStack {
            cfg,
            token_embd,
            layers,
            rope_local,
            rope_global,
            caches,
            s,
        } = self;
        let ops = ops::vec_ops();
        let (d, hd, f, eps) = (cfg.n_embd, cfg.head_dim, cfg.n_ff, cfg.eps);
        let (q_dim, kv_dim) = (cfg.n_head * hd, cfg.n_head_kv * hd);
        embed(token_embd, map, tokens, cfg.embed_scale, &mut s.x[..n * d])?;
        // One cos/sin table per RoPE base for the whole batch, shared by every layer.
        rope_local.prepare(pos0, n);
        rope_global.prepare(pos0, n);
        for (layer, cache) in layers.iter().zip(caches.iter_mut()) {
            // Attention sub-block: u = rms_norm(h); q, k, v.
            norm_rows(&s.x[..n * d], &layer.attn_norm, eps, &mut s.u[..n * d], d);
            s.acts.input(&s.u, n).matmul_many(
                map,
                [&layer.wq, &layer.wk, &layer.wv],
                [&mut s.q, &mut s.k, &mut s.v],
            )?;
            // [Gemma 3] QK-norm per head, RoPE, then keys and values rounded as the cache will
            // hold them, so the batch attends to its own keys exactly as later steps will.
            let rope: &Rope = if layer.local { rope_local } else { rope_global };
            let ct = cache.cache_type();
            let qk_norm = layer.q_norm.as_ref().zip(layer.k_norm.as_ref());
            ops::par_rows2(
                &mut s.q[..n * q_dim],
                q_dim,
                &mut s.k[..n * kv_dim],
                kv_dim,
                |t, q, k| {
                    if let Some((qn, kn)) = qk_norm {
                        q.chunks_exact_mut(hd)
                            .for_each(|h| ops.rms_norm_in_place(h, qn, eps));
                        k.chunks_exact_mut(hd)
                            .for_each(|h| ops.rms_norm_in_place(h, kn, eps));
                    }
                    rope.apply(ops, q, t);
                    rope.apply(ops, k, t);
                    ct.round_trip(k);
                },
            );
            ops::par_rows(&mut s.v[..n * kv_dim], kv_dim, |_, v| ct.round_trip(v));
            let window = if layer.local { cfg.window } else { None };
            let params = AttnParams {
                n_head: cfg.n_head,
                n_head_kv: cfg.n_head_kv,
                head_dim: hd,
                scale: cfg.attn_scale,
                softcap: cfg.attn_softcap,
                window,
            };
            // Only the newest `slots` positions of the batch can stay in the ring.
            let first = n.saturating_sub(cache.slots());
            // The token rows `r0..n` that go on through this block: all of them, or, in the
            // last block when only the last hidden state is wanted, the last one alone.
            let last_block = std::ptr::eq(layer, layers.last().expect("at least one layer"));
            let r0 = if last_block && outputs != Outputs::All {
                // The batch's keys go into the ring first; the last token then attends to them
                // there (its window is the ring's newest positions), with the same bits the
                // batched call gives it (see `kernels::attention`).
                for t in first..n {
                    cache.write(
                        pos0 + t,
                        &s.k[t * kv_dim..(t + 1) * kv_dim],
                        &s.v[t * kv_dim..(t + 1) * kv_dim],
                    );
                }
                if outputs == Outputs::None {
                    break;
                }
                let t = n - 1;
                attend(
                    &params,
                    cache,
                    pos0 + t,
                    1,
                    &s.q[t * q_dim..n * q_dim],
                    &s.k[t * kv_dim..n * kv_dim],
                    &s.v[t * kv_dim..n * kv_dim],
                    &mut s.attn[..q_dim],
                );
                t
            } else {
                attend(
                    &params,
                    cache,
                    pos0,
                    n,
                    &s.q[..n * q_dim],
                    &s.k[..n * kv_dim],
                    &s.v[..n * kv_dim],
                    &mut s.attn[..n * q_dim],
                );
                for t in first..n {
                    cache.write(
                        pos0 + t,
                        &s.k[t * kv_dim..(t + 1) * kv_dim],
                        &s.v[t * kv_dim..(t + 1) * kv_dim],
                    );
                }
                0
            };
            // The attention output of rows r0..n is in s.attn[..m * q_dim].
            let m = n - r0;
            let x = &mut s.x[r0 * d..n * d];
            // h = h + [post_attention_norm](Wo·a)
            s.acts
                .input(&s.attn[..m * q_dim], m)
                .matmul(map, &layer.wo, &mut s.o)?;
            residual(
                &mut s.o[..m * d],
                layer.post_attn_norm.as_deref(),
                eps,
                x,
                d,
            );
            // MLP sub-block: h = h + [post_ffw_norm](Wdown·(gelu(Wgate·u') ⊙ Wup·u')).
            norm_rows(x, &layer.ffn_norm, eps, &mut s.u[..m * d], d);
            s.acts.input(&s.u[..m * d], m).matmul_many(
                map,
                [&layer.gate, &layer.up],
                [&mut s.gate, &mut s.up],
            )?;
            ops::par_rows2(&mut s.gate[..m * f], f, &mut s.up[..m * f], f, |_, g, u| {
                ops.geglu(g, u)
            });
            s.acts
                .input(&s.gate[..m * f], m)
                .matmul(map, &layer.down, &mut s.o)?;
            residual(&mut s.o[..m * d], layer.post_ffw_norm.as_deref(), eps, x, d);
        }
        Ok(())
    }

    fn hidden(&self) -> &[f32] {
        &self.s.x
    }

    fn state_buffers(&self) -> Vec<&[u8]> {
        self.caches
            .iter()
            .flat_map(|c| {
                let (k, v) = c.raw();
                [k, v]
            })
            .collect()
    }

    fn state_buffers_mut(&mut self) -> Vec<&mut [u8]> {
        self.caches
            .iter_mut()
            .flat_map(|c| {
                let (k, v) = c.raw_mut();
                [k, v]
            })
            .collect()
    }

    fn fingerprint(&self, fp: &mut Fingerprint) {
        let c = &self.cfg;
        fp.usize("embedding length", c.n_embd)
            .usize("layers", c.n_layer)
            .usize("feed-forward length", c.n_ff)
            .usize("heads", c.n_head)
            .usize("kv heads", c.n_head_kv)
            .usize("head dim", c.head_dim)
            .usize("vocabulary", c.n_vocab)
            .usize("trained context", c.n_ctx_train)
            .f32("rms epsilon", c.eps)
            .usize_opt("sliding window", c.window)
            .flags("local layers", &c.is_local)
            .f32("rope base global", c.rope_base_global)
            .f32("rope base local", c.rope_base_local)
            .f32("rope scale global", c.rope_freq_scale_global)
            .f32("attention scale", c.attn_scale)
            .f32_opt("attention softcap", c.attn_softcap)
            .f32_opt("final softcap", c.final_softcap)
            .f32("embedding scale", c.embed_scale)
            .str("cache type", self.caches[0].cache_type().name());
        for cache in &self.caches {
            fp.usize("cache slots", cache.slots());
        }
    }

    fn can_rewind(&self, pos: usize, to: usize) -> bool {
        // The next position needs the `window - 1` before it. A ring that never wrapped still
        // has them; one that did has overwritten one kept position per position written since
        // `to`, which a ring of `window - 1 + rewound` slots survives.
        // Without a window every ring holds the whole context, which `pos` never passes.
        let Some(window) = self.cfg.window else {
            return true;
        };
        let rewound = pos - to;
        self.caches
            .iter()
            .all(|c| pos <= c.slots() || window.saturating_sub(1) + rewound <= c.slots())
    }
}

/// Prompt-cache support: rewinding the KV cache to a prefix shared with the next prompt
/// (the rewind test itself is [`Stack::can_rewind`]).
impl Gemma {
    /// Gives sliding-window layers a ring as long as the context, so [`crate::model::LanguageModel::truncate`]
    /// can rewind to any position: a ring of exactly `window` slots has overwritten the keys
    /// an earlier position needs once the conversation passed it. Local layers then cost as
    /// much KV memory as global ones. Forgets the conversation.
    pub fn keep_full_local_cache(&mut self) {
        let n_ctx = self.n_ctx;
        let st = &mut self.stack;
        let (n_kv, hd) = (st.cfg.n_head_kv, st.cfg.head_dim);
        for c in st.caches.iter_mut().filter(|c| c.slots() < n_ctx) {
            *c = KvRing::new(c.cache_type(), n_ctx, n_kv, hd);
        }
        self.pos = 0;
    }
}
