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
//! Norm weights are used as stored: GGUF files hold `1 + w` (PITFALLS §1).

use super::rows::{embed, norm_rows, residual, softcap_all};
use super::shared::{attend, ActsCache, AttnParams, MAX_GROUP_FLOATS, MAX_HEAD_DIM};
use super::weights::{self, hparam_f32_opt, hparam_u32, hparam_u32_opt, MatRef};
use super::{state, LanguageModel, ModelError, Result, RunConfig};
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
    pub arch: String,
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
        let arch = file.architecture()?.to_string();
        let generation = match arch.as_str() {
            "gemma" => Generation::Gemma1,
            "gemma2" => Generation::Gemma2,
            "gemma3" => Generation::Gemma3,
            other => {
                return Err(ModelError(format!(
                    "{}: architecture {other:?} is not a Gemma decoder",
                    file.path().display()
                )))
            }
        };
        let a = arch.as_str();
        let n_embd = hparam_u32(file, a, "embedding_length")?;
        let n_layer = hparam_u32(file, a, "block_count")?;
        let n_ff = hparam_u32(file, a, "feed_forward_length")?;
        let n_head = hparam_u32(file, a, "attention.head_count")?;
        let n_head_kv = hparam_u32_opt(file, a, "attention.head_count_kv")?.unwrap_or(n_head);
        let bad = |msg: String| ModelError(format!("{}: {msg}", file.path().display()));
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(bad(format!(
                "head_count {n_head} is not a multiple of head_count_kv {n_head_kv}"
            )));
        }
        if n_embd == 0 || n_layer == 0 || n_ff == 0 {
            return Err(bad(
                "embedding_length, block_count and feed_forward_length must be > 0".into(),
            ));
        }
        let head_dim = hparam_u32_opt(file, a, "attention.key_length")?.unwrap_or(n_embd / n_head);
        if let Some(vd) = hparam_u32_opt(file, a, "attention.value_length")? {
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
        let n_ctx_train = hparam_u32_opt(file, a, "context_length")?.unwrap_or(8192);
        let eps = hparam_f32_opt(file, a, "attention.layer_norm_rms_epsilon")?.unwrap_or(1e-6);
        let embd = file.require_tensor("token_embd.weight")?;
        let n_vocab = embd.dims().get(1).copied().unwrap_or(0) as usize;

        // Sliding window and which layers use it (llama.cpp hard-codes the pattern; our
        // converter also writes it, PITFALLS §3).
        let window = match generation {
            Generation::Gemma1 => None,
            Generation::Gemma2 => {
                Some(hparam_u32_opt(file, a, "attention.sliding_window")?.unwrap_or(4096))
            }
            Generation::Gemma3 => {
                hparam_u32_opt(file, a, "attention.sliding_window")?.filter(|&w| w > 0)
            }
        };
        let pattern_key = format!("{a}.attention.sliding_window_pattern");
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

        let rope_base_global = hparam_f32_opt(file, a, "rope.freq_base")?.unwrap_or(10000.0);
        let rope_base_local = match generation {
            Generation::Gemma3 => hparam_f32_opt(file, a, "rope.freq_base_swa")?.unwrap_or(10000.0),
            _ => hparam_f32_opt(file, a, "rope.freq_base_swa")?.unwrap_or(rope_base_global),
        };
        let scaling_type = file.get_str_opt(&format!("{a}.rope.scaling.type"))?;
        let factor = match scaling_type {
            None | Some("none") => hparam_f32_opt(file, a, "rope.scale_linear")?.unwrap_or(1.0),
            Some("linear") => hparam_f32_opt(file, a, "rope.scaling.factor")?.unwrap_or(1.0),
            Some(other) => return Err(bad(format!("unsupported RoPE scaling type {other:?}"))),
        };
        if factor <= 0.0 || !factor.is_finite() {
            return Err(bad(format!("RoPE scaling factor {factor} is not positive")));
        }

        let attn_scale = match hparam_f32_opt(file, a, "attention.scale")? {
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
                    hparam_f32_opt(file, a, "attn_logit_softcapping")?.unwrap_or(50.0),
                )),
                cap(Some(
                    hparam_f32_opt(file, a, "final_logit_softcapping")?.unwrap_or(30.0),
                )),
            ),
            Generation::Gemma3 => (
                cap(hparam_f32_opt(file, a, "attn_logit_softcapping")?),
                cap(hparam_f32_opt(file, a, "final_logit_softcapping")?),
            ),
        };
        // llama.cpp scales by the exact √D; a file may say otherwise.
        let embed_scale =
            hparam_f32_opt(file, a, "embedding_scale")?.unwrap_or((n_embd as f32).sqrt());

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

/// Output rows computed together when every position's logits are wanted.
const LOGIT_ROWS: usize = 16;

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
    logits: Vec<f32>,
    /// `LOGIT_ROWS × n_vocab`, allocated on the first `eval_all`.
    logits_all: Vec<f32>,
    acts: ActsCache,
}

pub struct Gemma {
    file: GgufFile,
    pub cfg: GemmaConfig,
    token_embd: MatRef,
    output: MatRef,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    rope_local: Rope,
    rope_global: Rope,
    caches: Vec<KvRing>,
    n_ctx: usize,
    n_batch: usize,
    pos: usize,
    s: Scratch,
}

impl Gemma {
    pub fn load(file: &GgufFile, run: &RunConfig) -> Result<Gemma> {
        // Re-open: the model owns its own copy of the bytes, in 2 MiB pages where the OS has
        // them (weights are streamed once per token; see `open_in_huge_pages`).
        let file = GgufFile::open_in_huge_pages(file.path())?;
        let cfg = GemmaConfig::from_gguf(&file)?;
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let q_dim = cfg.n_head * hd;
        let kv_dim = cfg.n_head_kv * hd;
        let token_embd = weights::matrix(&file, "token_embd.weight", d, cfg.n_vocab)?;
        let output = weights::matrix_opt(&file, "output.weight", d, cfg.n_vocab)?
            .unwrap_or_else(|| token_embd.clone());
        let output_norm = weights::vector(&file, "output_norm.weight", d)?;
        let g2plus = cfg.generation != Generation::Gemma1;
        let g3 = cfg.generation == Generation::Gemma3;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            let opt_vec = |s: &str, len: usize, want: bool| -> Result<Option<Vec<f32>>> {
                if want {
                    weights::vector(&file, &n(s), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: weights::vector(&file, &n("attn_norm"), d)?,
                wq: weights::matrix(&file, &n("attn_q"), d, q_dim)?,
                wk: weights::matrix(&file, &n("attn_k"), d, kv_dim)?,
                wv: weights::matrix(&file, &n("attn_v"), d, kv_dim)?,
                wo: weights::matrix(&file, &n("attn_output"), q_dim, d)?,
                q_norm: opt_vec("attn_q_norm", hd, g3)?,
                k_norm: opt_vec("attn_k_norm", hd, g3)?,
                post_attn_norm: opt_vec("post_attention_norm", d, g2plus)?,
                ffn_norm: weights::vector(&file, &n("ffn_norm"), d)?,
                gate: weights::matrix(&file, &n("ffn_gate"), d, cfg.n_ff)?,
                up: weights::matrix(&file, &n("ffn_up"), d, cfg.n_ff)?,
                down: weights::matrix(&file, &n("ffn_down"), cfg.n_ff, d)?,
                post_ffw_norm: opt_vec("post_ffw_norm", d, g2plus)?,
                local: cfg.is_local[i],
            });
        }
        let n_ctx = if run.n_ctx == 0 {
            cfg.n_ctx_train
        } else {
            run.n_ctx
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
                KvRing::new(run.cache_type, slots, cfg.n_head_kv, hd)
            })
            .collect();
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
            logits: vec![0.0; cfg.n_vocab],
            logits_all: Vec::new(),
            acts: ActsCache::default(),
        };
        Ok(Gemma {
            file,
            cfg,
            token_embd,
            output,
            output_norm,
            layers,
            rope_local,
            rope_global,
            caches,
            n_ctx,
            n_batch,
            pos: 0,
            s,
        })
    }

    fn fingerprint(&self) -> u64 {
        state::fingerprint(&[
            format!("{:?}", self.cfg).as_bytes(),
            &self.file.file_size().to_le_bytes(),
            &(self.n_ctx as u64).to_le_bytes(),
            self.caches[0].cache_type().name().as_bytes(),
        ])
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.cfg.n_vocab) {
            return Err(ModelError(format!(
                "token id {t} is outside the vocabulary ({} entries)",
                self.cfg.n_vocab
            )));
        }
        if self.pos + tokens.len() > self.n_ctx {
            return Err(ModelError(format!(
                "context full: {} positions used + {} new tokens > context length {} (raise -c/--ctx)",
                self.pos,
                tokens.len(),
                self.n_ctx
            )));
        }
        Ok(())
    }

    /// Runs the decoder stack on `tokens` (at most `n_batch`), leaving the final hidden states
    /// in `s.x` and advancing the position. Every per-token step runs over the rayon pool in
    /// rows of tokens (each row computed alone, so the split never changes a bit).
    fn forward_batch(&mut self, tokens: &[u32]) -> Result<()> {
        let n = tokens.len();
        let pos0 = self.pos;
        let Gemma {
            file,
            cfg,
            token_embd,
            layers,
            rope_local,
            rope_global,
            caches,
            s,
            ..
        } = self;
        let map = file.mapped_bytes();
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
            s.acts.invalidate();
            s.acts.matmul_many(
                map,
                [&layer.wq, &layer.wk, &layer.wv],
                &s.u,
                n,
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
            attend(
                &AttnParams {
                    n_head: cfg.n_head,
                    n_head_kv: cfg.n_head_kv,
                    head_dim: hd,
                    scale: cfg.attn_scale,
                    softcap: cfg.attn_softcap,
                    window,
                },
                cache,
                pos0,
                n,
                &s.q[..n * q_dim],
                &s.k[..n * kv_dim],
                &s.v[..n * kv_dim],
                &mut s.attn[..n * q_dim],
            );
            // Only the newest `slots` positions of the batch can stay in the ring.
            let first = n.saturating_sub(cache.slots());
            for t in first..n {
                cache.write(
                    pos0 + t,
                    &s.k[t * kv_dim..(t + 1) * kv_dim],
                    &s.v[t * kv_dim..(t + 1) * kv_dim],
                );
            }
            // h = h + [post_attention_norm](Wo·a)
            s.acts.invalidate();
            s.acts.matmul(map, &layer.wo, &s.attn, n, &mut s.o)?;
            residual(
                &mut s.o[..n * d],
                layer.post_attn_norm.as_deref(),
                eps,
                &mut s.x[..n * d],
                d,
            );
            // MLP sub-block: h = h + [post_ffw_norm](Wdown·(gelu(Wgate·u') ⊙ Wup·u')).
            norm_rows(&s.x[..n * d], &layer.ffn_norm, eps, &mut s.u[..n * d], d);
            s.acts.invalidate();
            s.acts.matmul_many(
                map,
                [&layer.gate, &layer.up],
                &s.u,
                n,
                [&mut s.gate, &mut s.up],
            )?;
            ops::par_rows2(&mut s.gate[..n * f], f, &mut s.up[..n * f], f, |_, g, u| {
                ops.geglu(g, u)
            });
            s.acts.invalidate();
            s.acts.matmul(map, &layer.down, &s.gate, n, &mut s.o)?;
            residual(
                &mut s.o[..n * d],
                layer.post_ffw_norm.as_deref(),
                eps,
                &mut s.x[..n * d],
                d,
            );
        }
        self.pos += n;
        Ok(())
    }

    /// Logits of the hidden rows `rows` of `s.x` into `out` (`rows.len() × n_vocab`).
    fn logits_rows(&mut self, rows: std::ops::Range<usize>, all: bool) -> Result<()> {
        let d = self.cfg.n_embd;
        let map = self.file.mapped_bytes();
        let s = &mut self.s;
        let m = rows.len();
        norm_rows(
            &s.x[rows.start * d..rows.end * d],
            &self.output_norm,
            self.cfg.eps,
            &mut s.u[..m * d],
            d,
        );
        s.acts.invalidate();
        let out = if all {
            &mut s.logits_all
        } else {
            &mut s.logits
        };
        s.acts.matmul(map, &self.output, &s.u, m, out)?;
        if let Some(c) = self.cfg.final_softcap {
            softcap_all(&mut out[..m * self.cfg.n_vocab], c);
        }
        Ok(())
    }
}

impl LanguageModel for Gemma {
    fn arch(&self) -> &str {
        &self.cfg.arch
    }

    fn n_vocab(&self) -> usize {
        self.cfg.n_vocab
    }

    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn pos(&self) -> usize {
        self.pos
    }

    fn reset(&mut self) {
        self.pos = 0;
    }

    fn eval(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(ModelError("no tokens to evaluate".into()));
        }
        self.check_tokens(tokens)?;
        for chunk in tokens.chunks(self.n_batch) {
            self.forward_batch(chunk)?;
        }
        let last = (tokens.len() - 1) % self.n_batch;
        self.logits_rows(last..last + 1, false)?;
        Ok(&self.s.logits)
    }

    fn eval_all(&mut self, tokens: &[u32], sink: &mut dyn FnMut(&[f32])) -> Result<()> {
        self.check_tokens(tokens)?;
        let nv = self.cfg.n_vocab;
        if self.s.logits_all.len() < LOGIT_ROWS * nv {
            self.s.logits_all = vec![0.0; LOGIT_ROWS * nv];
        }
        for chunk in tokens.chunks(self.n_batch) {
            self.forward_batch(chunk)?;
            let mut r = 0;
            while r < chunk.len() {
                let m = LOGIT_ROWS.min(chunk.len() - r);
                self.logits_rows(r..r + m, true)?;
                for j in 0..m {
                    sink(&self.s.logits_all[j * nv..(j + 1) * nv]);
                }
                r += m;
            }
        }
        Ok(())
    }

    fn state_bytes(&self) -> usize {
        self.caches.iter().map(|c| c.bytes()).sum()
    }

    fn save_state(&self, w: &mut dyn std::io::Write) -> Result<()> {
        let bufs: Vec<&[u8]> = self
            .caches
            .iter()
            .flat_map(|c| {
                let (k, v) = c.raw();
                [k, v]
            })
            .collect();
        state::write(w, self.fingerprint(), self.pos, &bufs)
    }

    fn load_state(&mut self, r: &mut dyn std::io::Read) -> Result<()> {
        let fp = self.fingerprint();
        let mut bufs: Vec<&mut [u8]> = self
            .caches
            .iter_mut()
            .flat_map(|c| {
                let (k, v) = c.raw_mut();
                [k, v]
            })
            .collect();
        match state::read(r, fp, &mut bufs) {
            Ok(pos) => {
                self.pos = pos;
                Ok(())
            }
            Err(e) => {
                self.pos = 0;
                Err(e)
            }
        }
    }

    fn truncate(&mut self, pos: usize) -> bool {
        self.truncate_kv(pos)
    }
}

/// Prompt-cache support: rewinding the KV cache to a prefix shared with the next prompt.
impl Gemma {
    /// Gives sliding-window layers a ring as long as the context, so [`LanguageModel::truncate`]
    /// can rewind to any position: a ring of exactly `window` slots has overwritten the keys
    /// an earlier position needs once the conversation passed it. Local layers then cost as
    /// much KV memory as global ones. Forgets the conversation.
    pub fn keep_full_local_cache(&mut self) {
        let (n_ctx, n_kv, hd) = (self.n_ctx, self.cfg.n_head_kv, self.cfg.head_dim);
        for c in self.caches.iter_mut().filter(|c| c.slots() < n_ctx) {
            *c = KvRing::new(c.cache_type(), n_ctx, n_kv, hd);
        }
        self.pos = 0;
    }

    fn truncate_kv(&mut self, pos: usize) -> bool {
        if pos > self.pos {
            return false;
        }
        // The next position needs the `window - 1` before it. A ring that never wrapped still
        // has them; one that did has overwritten one kept position per position written since
        // `pos`, which a ring of `window - 1 + rewound` slots survives.
        let window = self.cfg.window.unwrap_or(self.n_ctx);
        let rewound = self.pos - pos;
        let intact =
            |c: &KvRing| self.pos <= c.slots() || window.saturating_sub(1) + rewound <= c.slots();
        if !self.caches.iter().all(intact) {
            return false;
        }
        self.pos = pos;
        true
    }
}
