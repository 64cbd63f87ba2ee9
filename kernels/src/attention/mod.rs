//! Causal attention of a batch of query tokens over a key/value ring (f32, f16 or q8_0) plus the
//! batch's own new keys, for prefill (`n > 1`) and decode (`n == 1`).
//!
//! # Algorithm
//! Keys are cut into chunks of [`CHUNK`] positions aligned to absolute positions (chunk `c`
//! holds positions `c·CHUNK .. (c+1)·CHUNK`). For every query row (token × head) and every chunk
//! it sees, a *partial* is computed on its own: the scores of the keys the row sees in the chunk
//! (SIMD dot products, then scale and optional softcap), their maximum `m`, `p = exp(s − m)`,
//! `l = Σ p` and `a = Σ p·v`. Partials are then merged in chunk order
//! (`M' = max(M, m)`, `L' = L·e^(M−M') + l·e^(m−M')`, `A' = A·e^(M−M') + a·e^(m−M')`) and the
//! output is `A / L`.
//!
//! Because a partial depends only on (row, chunk) and the merge order is fixed, the result does
//! not depend on how work is split: a prefill tile (a block of query tokens × the heads of one
//! KV group, each key loaded once for all of them), a decode step, and a decode step whose
//! chunks are spread over threads all give the same bits for the same query. That is what lets
//! token-by-token decode equal the batched forward exactly. Keys a row does not see inside a
//! shared tile get `p = 0` exactly, which leaves `l` and `a` unchanged.
//!
//! # Threads
//! Work is split over tiles (query tokens × KV head) when there are enough of them; otherwise
//! (decode, a few tokens) over (tile, chunk) tasks, each writing its partial to a buffer that is
//! then merged in chunk order, so no two threads read the same keys.
//!
//! # Paths
//! One generic algorithm ([`kernel`]) over a small vector trait; the scalar path (one lane,
//! plain f32 arithmetic) and the AVX2, AVX-512 and NEON paths instantiate it. K/V are converted
//! in-register (F16C `vcvtph2ps`, NEON `fcvtl`; q8_0 as `q as f32 · d`, exactly what the
//! dequantizer gives), exp and tanh are polynomial (no libm call per score).
//! [`reference`] is an independent, plainly written f64 version the paths are tested against.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod kernel;
pub mod reference;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64::NEON;
pub(crate) use scalar::SCALAR;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{AVX2, AVX512};

use crate::formats::{BlockQ8_0, QK8_0};

/// Keys per chunk: the unit of the score tile, of the per-thread key split and of the merge.
/// Fixed (never derived from the thread count) so that results do not depend on it.
pub const CHUNK: usize = 128;

/// Query rows per tile (tokens × heads of one KV group): each key is loaded and converted once
/// for all of them.
pub(crate) const TILE_ROWS: usize = 16;

/// Largest head dimension.
pub const MAX_HEAD_DIM: usize = 512;

/// Storage format of the cached keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvFormat {
    F32,
    /// IEEE half, little-endian.
    F16,
    /// ggml `block_q8_0` (f16 scale, 32 × i8); `head_dim` must be a multiple of 32.
    Q8_0,
}

impl KvFormat {
    /// Bytes of one head vector of `head_dim` values.
    pub fn head_bytes(self, head_dim: usize) -> usize {
        match self {
            KvFormat::F32 => 4 * head_dim,
            KvFormat::F16 => 2 * head_dim,
            KvFormat::Q8_0 => head_dim / QK8_0 * std::mem::size_of::<BlockQ8_0>(),
        }
    }
}

/// The cached keys and values: position `p` lives in slot `p % slots`; head `h` of slot `s`
/// starts at byte `s · slot_stride + h · head_stride` of `k` (and of `v`).
#[derive(Clone, Copy, Debug)]
pub struct KvCache<'a> {
    pub format: KvFormat,
    pub k: &'a [u8],
    pub v: &'a [u8],
    pub slots: usize,
    pub slot_stride: usize,
    pub head_stride: usize,
}

/// One attention computation: `n` query tokens at positions `pos0 .. pos0 + n`.
#[derive(Clone, Copy, Debug)]
pub struct Attention<'a> {
    pub n_head: usize,
    /// KV heads; query head `h` uses KV head `h / (n_head / n_head_kv)`.
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Multiplies the dot products.
    pub scale: f32,
    /// Gemma 2: `s ← c · tanh(s / c)` after scaling.
    pub softcap: Option<f32>,
    /// Keys a query sees, itself included (`None`: every earlier position).
    pub window: Option<usize>,
    pub pos0: usize,
    pub n: usize,
    /// `n × n_head × head_dim`.
    pub q: &'a [f32],
    /// The batch's keys and values, `n × n_head_kv × head_dim`, already rounded to the cache
    /// format (so that they equal what a later step reads back).
    pub k_new: &'a [f32],
    pub v_new: &'a [f32],
    /// Keys and values of positions before `pos0`.
    pub cache: KvCache<'a>,
}

/// Why an attention call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionError(pub String);

impl std::fmt::Display for AttentionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "attention: {}", self.0)
    }
}

impl std::error::Error for AttentionError {}

/// A path's attention entry (what [`crate::dispatch::Kernels`] holds).
///
/// # Safety
/// `a` must have passed [`Attention::validate`] for `out`, and the CPU must have the path's
/// features (the dispatch table only hands out such paths).
pub type AttentionFn = unsafe fn(a: &Attention<'_>, out: &mut [f32]);

impl Attention<'_> {
    /// Queries per KV head.
    pub fn group(&self) -> usize {
        self.n_head / self.n_head_kv
    }

    /// First position the query at `pos` sees.
    #[inline]
    pub fn first_visible(&self, pos: usize) -> usize {
        match self.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        }
    }

    /// Checks shapes, lengths and that the ring still holds every cached key a query needs.
    pub fn validate(&self, out: &[f32]) -> Result<(), AttentionError> {
        let err = |m: String| Err(AttentionError(m));
        let hd = self.head_dim;
        if self.n_head == 0 || self.n_head_kv == 0 || !self.n_head.is_multiple_of(self.n_head_kv) {
            return err(format!(
                "{} query heads cannot share {} KV heads",
                self.n_head, self.n_head_kv
            ));
        }
        if hd == 0 || hd > MAX_HEAD_DIM {
            return err(format!("head_dim {hd} is not in 1..={MAX_HEAD_DIM}"));
        }
        if self.cache.format == KvFormat::Q8_0 && !hd.is_multiple_of(QK8_0) {
            return err(format!(
                "a q8_0 cache needs head_dim a multiple of 32, not {hd}"
            ));
        }
        if self.window == Some(0) {
            return err("a window of 0 positions".into());
        }
        if !self.scale.is_finite() || self.softcap.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return err(format!(
                "scale {} / softcap {:?} must be finite (softcap > 0)",
                self.scale, self.softcap
            ));
        }
        let q_len = self.n * self.n_head * hd;
        let kv_len = self.n * self.n_head_kv * hd;
        if self.q.len() < q_len || out.len() < q_len {
            return err(format!(
                "{} query / {} output floats for {q_len}",
                self.q.len(),
                out.len()
            ));
        }
        if self.k_new.len() < kv_len || self.v_new.len() < kv_len {
            return err(format!(
                "{} / {} new key / value floats for {kv_len}",
                self.k_new.len(),
                self.v_new.len()
            ));
        }
        if self.n == 0 {
            return Ok(());
        }
        let cached = self.pos0 - self.first_visible(self.pos0);
        if cached > 0 {
            let c = &self.cache;
            if c.slots < cached {
                return err(format!(
                    "position {} needs {cached} cached positions, the ring holds {}",
                    self.pos0, c.slots
                ));
            }
            let hb = c.format.head_bytes(hd);
            let need = (c.slots - 1) * c.slot_stride + (self.n_head_kv - 1) * c.head_stride + hb;
            if c.k.len() < need || c.v.len() < need {
                return err(format!(
                    "{} / {} cache bytes for {} slots of {} heads ({need} needed)",
                    c.k.len(),
                    c.v.len(),
                    c.slots,
                    self.n_head_kv
                ));
            }
        }
        Ok(())
    }
}

/// Runs attention on the process's kernel path (see [`crate::dispatch::kernels`]).
pub fn attend(a: &Attention<'_>, out: &mut [f32]) -> Result<(), AttentionError> {
    crate::dispatch::kernels().attend(a, out)
}
