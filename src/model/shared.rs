//! Pieces both architectures use: activation quantization shared between matrices, and the
//! attention kernel over a KV ring.

use super::weights::MatRef;
use super::{ModelError, Result};
use crate::kernels::{matmul, GgmlType, QuantizedActs};
use crate::kv::KvRing;
use crate::ops;
use rayon::prelude::*;

/// Largest head dimension the attention kernel's stack buffers hold.
pub(crate) const MAX_HEAD_DIM: usize = 512;
/// Largest (query heads per KV head) × head_dim the attention kernel's stack buffers hold.
pub(crate) const MAX_GROUP_FLOATS: usize = 8192;

/// Activations quantized once and reused by every matrix of the same vec-dot format.
#[derive(Default)]
pub(crate) struct ActsCache {
    slots: Vec<(GgmlType, QuantizedActs)>,
    valid: Vec<bool>,
}

impl ActsCache {
    /// Marks the cached quantizations stale (the input changed).
    pub(crate) fn invalidate(&mut self) {
        self.valid.iter_mut().for_each(|v| *v = false);
    }

    /// `out = W · x` for `n` rows of `x`, quantizing `x` for W's format unless already done.
    pub(crate) fn matmul(
        &mut self,
        map: &[u8],
        w: &MatRef,
        x: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let dot_ty = crate::kernels::formats::vec_dot_type(w.ty)
            .ok_or_else(|| ModelError(format!("no kernel for {}", w.ty)))?;
        let i = match self.slots.iter().position(|(t, _)| *t == dot_ty) {
            Some(i) => i,
            None => {
                self.slots.push((dot_ty, QuantizedActs::new()));
                self.valid.push(false);
                self.slots.len() - 1
            }
        };
        if !self.valid[i] {
            self.slots[i]
                .1
                .quantize(w.ty, &x[..n * w.cols], n, w.cols)
                .map_err(|e| ModelError(e.to_string()))?;
            self.valid[i] = true;
        }
        matmul(&w.view(map), &self.slots[i].1, &mut out[..n * w.rows])
            .map_err(|e| ModelError(e.to_string()))
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
/// `cache`; the batch's own keys from `k_new`/`v_new` (the cache is written after). Work is
/// split over (token, KV head); each task streams its keys once for all the query heads that
/// share them, with a running (online) softmax so no score buffer is needed.
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
    let hd = p.head_dim;
    let group = p.n_head / p.n_head_kv;
    let q_dim = p.n_head * hd;
    let kv_dim = p.n_head_kv * hd;
    // Tasks are (token, KV head, slice of its query heads). Decode with multi-query attention
    // has a single (token, KV head) pair, so the query heads are split until every thread has
    // work; each head's arithmetic is the same whatever the split.
    let threads = rayon::current_num_threads();
    let base = n * p.n_head_kv;
    let splits = if base >= threads {
        1
    } else {
        let want = threads.div_ceil(base);
        (want..=group)
            .find(|&s| group.is_multiple_of(s))
            .unwrap_or(group)
    };
    let heads = group / splits;
    let task = |(i, out_g): (usize, &mut [f32])| {
        let (t, g, s) = (
            i / (p.n_head_kv * splits),
            (i / splits) % p.n_head_kv,
            i % splits,
        );
        let pos = pos0 + t;
        let first = match p.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        };
        let q0 = t * q_dim + (g * group + s * heads) * hd;
        let q_g = &q[q0..q0 + heads * hd];
        let mut kbuf = [0.0f32; MAX_HEAD_DIM];
        let mut vbuf = [0.0f32; MAX_HEAD_DIM];
        let mut max = [f32::NEG_INFINITY; MAX_GROUP_FLOATS / 2];
        let mut sum = [0.0f32; MAX_GROUP_FLOATS / 2];
        out_g.iter_mut().for_each(|v| *v = 0.0);
        for j in first..=pos {
            let (k, v): (&[f32], &[f32]) = if j >= pos0 {
                let o = (j - pos0) * kv_dim + g * hd;
                (&k_new[o..o + hd], &v_new[o..o + hd])
            } else {
                cache.read(j, g, &mut kbuf[..hd], &mut vbuf[..hd]);
                (&kbuf[..hd], &vbuf[..hd])
            };
            for h in 0..heads {
                let mut score = ops::dot(&q_g[h * hd..(h + 1) * hd], k) * p.scale;
                if let Some(c) = p.softcap {
                    score = ops::softcap(score, c);
                }
                let acc = &mut out_g[h * hd..(h + 1) * hd];
                if score > max[h] {
                    let r = (max[h] - score).exp();
                    sum[h] *= r;
                    acc.iter_mut().for_each(|a| *a *= r);
                    max[h] = score;
                }
                let w = (score - max[h]).exp();
                sum[h] += w;
                for (a, &vv) in acc.iter_mut().zip(v) {
                    *a += w * vv;
                }
            }
        }
        for h in 0..heads {
            let inv = 1.0 / sum[h];
            out_g[h * hd..(h + 1) * hd]
                .iter_mut()
                .for_each(|a| *a *= inv);
        }
    };
    if base * splits > 1 && threads > 1 {
        out[..n * q_dim]
            .par_chunks_mut(heads * hd)
            .enumerate()
            .for_each(task);
    } else {
        out[..n * q_dim]
            .chunks_mut(heads * hd)
            .enumerate()
            .for_each(task);
    }
}
