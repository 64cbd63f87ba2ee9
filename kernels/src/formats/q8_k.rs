//! Q8_K: super-blocks of 256 signed 8-bit values with an f32 scale and per-16 sums.
//! Activation-only format: Q4_K, Q5_K and Q6_K weights dot against it.
//! SIMD kernels (kernels/src/): activation quantizer x86/avx2/quantize.rs, aarch64/quantize.rs.

use super::{nearest_int, QK_K};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_q8_K`: value `i` is `d * qs[i]`; `bsums[g]` is the sum of `qs[16g..16g+16]`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_K {
    /// Scale (a plain f32, unlike the other formats).
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(core::mem::size_of::<BlockQ8_K>() == 292);

/// ggml's `quantize_row_q8_K_ref`: the signed value of largest magnitude maps to -127
/// (`iscale = -127 / max`), `q = min(127, nearest_int(iscale * x))`, `d = 1 / iscale`.
/// An all-zero block gets `d = 0` and zero values and sums.
pub fn quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8_K]) {
    assert_eq!(x.len(), y.len() * QK_K, "q8_K row length mismatch");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *yb = BlockQ8_K::zeroed();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (sum, group) in yb.bsums.iter_mut().zip(yb.qs.chunks_exact(16)) {
            *sum = group.iter().map(|&q| q as i16).sum();
        }
        yb.d = 1.0 / iscale;
    }
}

pub fn dequantize_row_q8_k(x: &[BlockQ8_K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K, "q8_K row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        for (o, &q) in yb.iter_mut().zip(&xb.qs) {
            *o = xb.d * q as f32;
        }
    }
}
