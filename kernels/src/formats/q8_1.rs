//! Q8_1: like Q8_0 plus `s = d * sum(qs)`, which lets Q4_1/Q5_1 dots apply their block minimum
//! without touching the values again. Activation-only format (ggml has no Q8_1 weights).
//! SIMD kernels (kernels/src/): activation quantizer x86/avx2/quantize.rs, aarch64/quantize.rs.

use super::{f16_bits_to_f32, f32_to_f16_bits};
use bytemuck::{Pod, Zeroable};

/// Elements per Q8_1 block.
pub const QK8_1: usize = 32;

/// ggml's `block_q8_1`: value `i` is `d * qs[i]`; `s` caches `d * sum(qs)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// `d * sum(qs)`, f16 bits.
    pub s: u16,
    pub qs: [i8; QK8_1],
}
const _: () = assert!(core::mem::size_of::<BlockQ8_1>() == 36);

/// ggml's `quantize_row_q8_1_ref`: as Q8_0, then `s = f16(sum(q) * d)` with the f32 `d`.
pub fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    assert_eq!(x.len(), y.len() * QK8_1, "q8_1 row length mismatch");
    for (xb, yb) in x.chunks_exact(QK8_1).zip(y.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f32_to_f16_bits(d);
        let mut sum = 0i32;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        yb.s = f32_to_f16_bits(sum as f32 * d);
    }
}

pub fn dequantize_row_q8_1(x: &[BlockQ8_1], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK8_1, "q8_1 row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK8_1)) {
        let d = f16_bits_to_f32(xb.d);
        for (o, &q) in yb.iter_mut().zip(&xb.qs) {
            *o = q as f32 * d;
        }
    }
}
