//! Pieces both architectures use: activation quantization shared between matrices, and the
//! attention kernel over a KV ring.

use super::weights::MatRef;
use super::{ModelError, Result};
use crate::kernels::{attention, matmul, matmul_many, GgmlType, QuantizedActs};
use crate::kv::KvRing;

/// Largest head dimension the attention kernel takes.
pub(crate) const MAX_HEAD_DIM: usize = attention::MAX_HEAD_DIM;
/// Largest (query heads per KV head) × head_dim the models accept (the kernel itself has no
/// such limit: it tiles wide groups).
pub(crate) const MAX_GROUP_FLOATS: usize = 8192;

/// Activations quantized once per vec-dot format and reused by every matrix of that format.
/// Reuse is tied to the input by the borrow checker: [`ActsCache::input`] borrows the rows
/// for as long as the returned [`Acts`] lives, so they cannot change while their
/// quantizations are in use, and a new input always starts from nothing quantized.
#[derive(Default)]
pub(crate) struct ActsCache {
    slots: Vec<(GgmlType, QuantizedActs)>,
    valid: Vec<bool>,
}

impl ActsCache {
    /// `n` rows of `x` (each as long as the next matrices' columns) as the input of the
    /// matmuls that follow.
    pub(crate) fn input<'a>(&'a mut self, x: &'a [f32], n: usize) -> Acts<'a> {
        self.valid.iter_mut().for_each(|v| *v = false);
        Acts { cache: self, x, n }
    }
}

/// One input's quantizations (see [`ActsCache::input`]).
pub(crate) struct Acts<'a> {
    cache: &'a mut ActsCache,
    x: &'a [f32],
    n: usize,
}

impl Acts<'_> {
    /// `out = W · x` for the input's rows, quantizing them for W's format unless already done.
    pub(crate) fn matmul(&mut self, map: &[u8], w: &MatRef, out: &mut [f32]) -> Result<()> {
        let i = self.quantized(w)?;
        matmul(
            &w.view(map),
            &self.cache.slots[i].1,
            &mut out[..self.n * w.rows],
        )
        .map_err(|e| ModelError(e.to_string()))
    }

    /// `outs[i] = ws[i] · x` for matrices that read this input (Q, K and V; gate and up).
    /// When they all take one activation format (Gemma's usual quantizations: Q5_0 / Q8_0 /
    /// Q4_0 all dot with Q8_0) the decode step runs them in one fork-join over the pool
    /// instead of `N`; otherwise (e.g. a Q6_K V beside Q5_0 Q and K) one after another.
    /// Either way each output gets the same bits as [`Acts::matmul`] would give it.
    pub(crate) fn matmul_many<const N: usize>(
        &mut self,
        map: &[u8],
        ws: [&MatRef; N],
        outs: [&mut [f32]; N],
    ) -> Result<()> {
        let mut slot = None;
        let mut shared = true;
        for w in ws {
            let i = self.quantized(w)?;
            shared &= slot.is_none_or(|s| s == i);
            slot = Some(i);
        }
        let Some(i) = slot.filter(|_| shared) else {
            for (w, out) in ws.into_iter().zip(outs) {
                self.matmul(map, w, out)?;
            }
            return Ok(());
        };
        let views = ws.map(|w| w.view(map));
        let n = self.n;
        let mut k = 0;
        let outs = outs.map(|o| {
            let rows = ws[k].rows;
            k += 1;
            &mut o[..n * rows]
        });
        matmul_many(views.each_ref(), &self.cache.slots[i].1, outs)
            .map_err(|e| ModelError(e.to_string()))
    }

    /// The slot holding the input quantized for `w`'s vec-dot format, quantizing it unless done.
    fn quantized(&mut self, w: &MatRef) -> Result<usize> {
        let c = &mut *self.cache;
        let n = self.n;
        let dot_ty = crate::kernels::formats::vec_dot_type(w.ty)
            .ok_or_else(|| ModelError(format!("no kernel for {}", w.ty)))?;
        let i = match c.slots.iter().position(|(t, _)| *t == dot_ty) {
            Some(i) => i,
            None => {
                c.slots.push((dot_ty, QuantizedActs::new()));
                c.valid.push(false);
                c.slots.len() - 1
            }
        };
        if !c.valid[i] {
            c.slots[i]
                .1
                .quantize(w.ty, &self.x[..n * w.cols], n, w.cols)
                .map_err(|e| ModelError(e.to_string()))?;
            c.valid[i] = true;
        }
        Ok(i)
    }
}

/// Shape of one attention computation.
pub(crate) struct AttnParams {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
    /// Keys a query sees, itself included (`None`: all earlier positions).
    pub window: Option<usize>,
}

/// Causal attention of `n` new queries at positions `pos0..pos0+n`. Keys before `pos0` come from
/// `cache`; the batch's own keys from `k_new`/`v_new` (the cache is written after). The work is
/// the kernels crate's (`kernels::attention`): tiles of query tokens × the heads of a KV group
/// against chunks of keys, split over threads by tile or, in decode, by key chunk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    p: &AttnParams,
    cache: &KvRing,
    pos0: usize,
    n: usize,
    q: &[f32],
    k_new: &[f32],
    v_new: &[f32],
    out: &mut [f32],
) {
    let a = attention::Attention {
        n_head: p.n_head,
        n_head_kv: p.n_head_kv,
        head_dim: p.head_dim,
        scale: p.scale,
        softcap: p.softcap,
        window: p.window,
        pos0,
        n,
        q,
        k_new,
        v_new,
        cache: cache.view(),
    };
    // The models check head_dim, the q8_0 block multiple and the context length at load / per
    // call, so a refusal here is a bug in the caller, not bad input.
    if let Err(e) = attention::attend(&a, out) {
        panic!("{e}");
    }
}
