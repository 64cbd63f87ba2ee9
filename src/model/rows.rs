//! Per-token steps of a batch that both architectures share, each one parallel pass over the
//! token rows on the rayon pool (a row is always computed alone, so how the rows are split
//! over threads never changes a bit).

use super::weights::MatRef;
use super::{ModelError, Result};
use crate::ops;
use rayon::prelude::*;

/// `x[t] = E[tokens[t]] · scale` for every token, over the rayon pool.
pub(crate) fn embed(
    emb: &MatRef,
    map: &[u8],
    tokens: &[u32],
    scale: f32,
    x: &mut [f32],
) -> Result<()> {
    let ops = ops::vec_ops();
    let emb = emb.view(map);
    let d = x.len() / tokens.len().max(1);
    x.par_chunks_mut(d)
        .zip(tokens.par_iter())
        .try_for_each(|(row, &tok)| {
            emb.dequantize_row(tok as usize, row)
                .map_err(|e| ModelError(e.to_string()))?;
            ops.scale(row, scale);
            Ok(())
        })
}

/// `out[t] = rms_norm(x[t], w)` for every row of `d` floats, over the rayon pool.
pub(crate) fn norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], d: usize) {
    let ops = ops::vec_ops();
    ops::par_rows_from(x, out, d, |_, x, o| ops.rms_norm(x, w, eps, o));
}

/// `x[t] += norm(o[t])` (or `+= o[t]` without a norm) for every row of `d` floats.
pub(crate) fn residual(o: &mut [f32], norm: Option<&[f32]>, eps: f32, x: &mut [f32], d: usize) {
    let ops = ops::vec_ops();
    ops::par_rows2(o, d, x, d, |_, o, x| {
        if let Some(w) = norm {
            ops.rms_norm_in_place(o, w, eps);
        }
        ops.add(x, o);
    });
}

/// `c · tanh(x / c)` over a whole logits buffer, in pieces over the rayon pool (the op is
/// element-wise, so where the pieces are cut changes nothing).
pub(crate) fn softcap_all(x: &mut [f32], cap: f32) {
    let ops = ops::vec_ops();
    ops::par_rows(x, 16384, |_, piece| ops.softcap(piece, cap));
}
