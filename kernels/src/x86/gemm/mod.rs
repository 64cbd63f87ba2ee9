//! Prefill (batch of tokens × weight matrix) kernels for x86_64: the `gemm` entries of the
//! `avx2` and `avx512` tables. A format with a register-tiled microkernel here
//! ([`walk::GemmKernel`]) runs through [`walk::gemm`]; the others (F32; on AVX2 also Q5_1,
//! the K-quants and F16 / BF16) use the decode path's row kernels through the
//! tile walker in `rows.rs`. Which kernel runs for which format (and the tile of each): the
//! `avx2` and `avx512` rows of the table in `dispatch.rs`.
//!
//! Tiles (weight rows × tokens), from `benches/gemm.rs` on Zen 5, 1 thread, 128 tokens, GOP/s
//! against the decode kernels on the same batch:
//! - AVX-512: 4 × 4 (16 zmm accumulators). Q4_0 ~250-300 (2.6-2.9x), Q5_0 ~215-250
//!   (2.4-2.6x), Q8_0 ~220-270 (2.1-2.5x), Q6_K ~220 (2.2x), Q4_K / Q5_K ~170-180 (1.7-1.8x);
//!   Q4_1 / Q5_1 (3 × 4: one more weight register per row) ~190-200 (2.8-3.3x; their decode
//!   kernels are AVX2 / 256-bit); F16 / BF16 ~130-190 (3-3.5x).
//!   Zen 5 issues `vpdpbusd`, `vpmaddubsw`, `vpdpwssd`, `vmulps` and `vfmadd` on the same two
//!   pipes (measured 2 per cycle for any mix), which bounds the Q8_0-family at ~490 GOP/s.
//!   An 8-block step (one float update per 8 blocks instead of 4) measured no faster: its
//!   unpacking (more shuffles, on those pipes too) ate the saving.
//! - AVX2: 2 × 4 (8 ymm accumulators, 6 weight registers: 16 in all). Q4_0 1.55x, Q8_0 and
//!   Q5_0 1.2x; 2 × 3 measured 5-10% slower. Q4_1 2 × 3: 1.45-1.65x.

pub(crate) mod avx2_q8;
pub(crate) mod avx512_float;
pub(crate) mod avx512_k;
pub(crate) mod avx512_q8;
pub(crate) mod walk;

use super::avx512::decode::{decode, DecodeRows};
use crate::rows::RowKernel;
use crate::types::GgmlType;

/// The `avx512` prefill entry of F32 weights, instantiated with the decode kernel's parameters
/// (`decode::<D, P, R>`). F32 weights (tiny test checkpoints; no released model stores its
/// matrices in f32) run the one-token decode kernel once per token, so a batch gives exactly
/// the bits of token-by-token decode: the decode kernel sums 16 lanes, the tile walker's AVX2
/// kernel 8, and on the Gemma 2 tiny model with an f16 cache that difference reached 2.1e-4 in the logits.
///
/// # Safety
/// As [`DotRowsFn`](crate::kernel_types::DotRowsFn).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn avx512_f32_per_token<D: DecodeRows, P: RowKernel, const R: usize>(
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    w_row_bytes: usize,
    n_w: usize,
    acts: &[u8],
    act_row_bytes: usize,
    n_act: usize,
    out: *mut f32,
    out_stride: usize,
) {
    assert!(acts.len() >= n_act * act_row_bytes);
    for t in 0..n_act {
        // SAFETY: the caller's contract, restricted to activation row `t`, whose outputs are
        // `out[t * out_stride + r]`.
        unsafe {
            decode::<D, P, R>(
                ty,
                cols,
                w,
                w_row_bytes,
                n_w,
                &acts[t * act_row_bytes..(t + 1) * act_row_bytes],
                act_row_bytes,
                1,
                out.add(t * out_stride),
                out_stride,
            )
        };
    }
}
